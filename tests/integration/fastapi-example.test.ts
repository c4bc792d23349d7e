/**
 * The FastAPI example (examples/fastapi/app.py) under a real uvicorn: `check-backend`
 * passes it (restart and auth included), its signed tokens are the SPEC's format (made
 * here by an independent TypeScript signer), and its lease fails a silent task.
 */
import { createHmac } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { parseServerMessage, type ServerMessage } from 'tabcast'
import { checkBackend, type CheckReport } from '../../cli/check-backend/index.js'
import { startFastapiBackend, type FastapiBackend } from '../support/fastapi-backend.js'

const SECRET = 'integration-secret-of-at-least-32-bytes'
const ORIGIN = 'http://localhost:3020'

let backend: FastapiBackend | null = null
afterEach(async () => {
  await backend?.close()
  backend = null
})

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url')

/** PROTOCOL.md / SPEC: "v1." + b64url(taskId) + "." + exp + "." + b64url(HMAC_SHA256(secret, the part before)). */
function signToken(taskId: string, expSeconds: number, secret = SECRET): string {
  const body = `v1.${b64url(taskId)}.${expSeconds}`
  return `${body}.${b64url(createHmac('sha256', secret).update(body).digest())}`
}

const inAnHour = (): number => Math.floor(Date.now() / 1000) + 3600

function verdicts(report: CheckReport): Record<string, string> {
  return Object.fromEntries(report.results.map((result) => [result.feature, `${result.verdict}: ${result.words}`]))
}

/** Opens the stream and resolves with the close code (or the first message when it stays open). */
function connectOnce(url: string, protocols: string[]): Promise<{ code: number | null; protocol: string; first: ServerMessage | null }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols)
    ws.once('error', reject)
    ws.once('message', (data: Buffer) => {
      const parsed = parseServerMessage(data.toString('utf8'))
      // Give a close right after connected (none is expected) no chance to be missed: resolve on the message.
      resolve({ code: null, protocol: ws.protocol, first: parsed.ok ? parsed.value : null })
      ws.close()
    })
    ws.once('close', (code: number) => resolve({ code, protocol: ws.protocol, first: null }))
  })
}

// Each test starts uvicorn and follows a demo task: more than the project's 20 s default on a loaded machine.
describe('the FastAPI example under uvicorn', { timeout: 60_000 }, () => {
  it('passes every check of check-backend, restart included (1012 under --ws wsproto, then a new epoch)', async () => {
    backend = await startFastapiBackend({ supervise: true })
    const report = await checkBackend({
      url: backend.http,
      startUrl: `${backend.http}/api/v1/projects`,
      origin: ORIGIN,
      restartCommand: `kill -TERM ${backend.pid}`,
      answerTimeout: 2000,
      timeout: 15_000,
    })
    const rows = verdicts(report)
    expect(report.results.filter((result) => result.verdict !== 'PASS' && result.verdict !== 'SKIP'), backend.output()).toEqual([])
    // Without a secret the example has no auth to check; everything else is checked.
    expect(report.results.filter((result) => result.verdict === 'SKIP').map((result) => result.feature)).toEqual(['auth'])
    expect(rows['restart']).toMatch(/^PASS: sockets closed with 1012: tabcast reconnects at once; back with a new epoch/)
    expect(rows['unknown task']).toContain('the socket left no task behind')
    expect(rows['foreign origin']).toContain('the status endpoint answers 403')
    expect(rows['bad since']).toContain('bad_request note')
    expect(rows['client messages']).toContain('a binary frame: bad_request note, socket open')
    expect(rows['capabilities']).toContain('pong')
  })

  it('with TABCAST_AUTH_SECRET: check-backend passes auth with the token the start URL returns', async () => {
    backend = await startFastapiBackend({ env: { TABCAST_AUTH_SECRET: SECRET } })
    const report = await checkBackend({ url: backend.http, startUrl: `${backend.http}/api/v1/projects`, origin: ORIGIN, answerTimeout: 2000, timeout: 15_000 })
    expect(report.results.filter((result) => result.verdict === 'FAIL' || result.verdict === 'WARN')).toEqual([])
    expect(verdicts(report)['auth']).toBe(
      'PASS: the stream takes the token and selects "tabcast"; without a token it closes with 4401; another task\'s id with this token closes with 4403; the status endpoint answers 200 with the token, 401 without',
    )
  })

  it('refuses to start with a TABCAST_AUTH_SECRET shorter than 32 bytes', async () => {
    await expect(startFastapiBackend({ env: { TABCAST_AUTH_SECRET: 'short' } })).rejects.toThrow(/TABCAST_AUTH_SECRET must be at least 32 bytes/)
  })

  it('verifies the SPEC token format: bound to the task, expiring, signed with the secret', async () => {
    backend = await startFastapiBackend({ env: { TABCAST_AUTH_SECRET: SECRET } })
    const { project_id: taskId } = await backend.create({ steps: 0 })
    const stream = (id: string): string => `ws://127.0.0.1:${backend!.port}/api/v1/ws/projects/${id}/stream`
    const offer = (token: string): string[] => ['tabcast', `tabcast.bearer.${token}`]

    const good = await connectOnce(stream(taskId), offer(signToken(taskId, inAnHour())))
    expect(good).toEqual({ code: null, protocol: 'tabcast', first: expect.objectContaining({ type: 'connected', project_id: taskId }) })
    expect((await connectOnce(stream(taskId), offer(signToken(taskId, Math.floor(Date.now() / 1000) - 1)))).code).toBe(4401)
    expect((await connectOnce(stream(taskId), offer(signToken(taskId, inAnHour(), 'another-secret')))).code).toBe(4401)
    expect((await connectOnce(stream(taskId), ['tabcast'])).code).toBe(4401)
    expect((await connectOnce(stream('another_task'), offer(signToken(taskId, inAnHour())))).code).toBe(4403)

    const status = async (id: string, token: string | null): Promise<string> => {
      const answer = await fetch(`${backend!.http}/api/v1/projects/${id}/status`, token === null ? {} : { headers: { Authorization: `Bearer ${token}` } })
      const challenge = answer.headers.get('www-authenticate')
      return challenge === null ? String(answer.status) : `${answer.status} ${challenge}`
    }
    expect(await status(taskId, signToken(taskId, inAnHour()))).toBe('200')
    // The challenge of PROTOCOL.md's refusals table, as the reference server sends it.
    expect(await status(taskId, null)).toBe('401 Bearer realm="tabcast"')
    expect(await status(taskId, signToken(taskId, inAnHour(), 'another-secret'))).toBe('401 Bearer realm="tabcast", error="invalid_token"')
    expect(await status('another_task', signToken(taskId, inAnHour()))).toBe('403')
  })

  it('fails a task whose job stops reporting once its lease (TABCAST_STALE_AFTER_MS) runs out', async () => {
    backend = await startFastapiBackend({ env: { TABCAST_STALE_AFTER_MS: '300' } })
    const { project_id: taskId } = await backend.create({ steps: 0 })
    await backend.event(taskId, { type: 'progress', progress: 0.25, message: 'then silence' })
    const messages: ServerMessage[] = []
    const ws = new WebSocket(`ws://127.0.0.1:${backend.port}/api/v1/ws/projects/${taskId}/stream`)
    const failed = new Promise<ServerMessage>((resolve) => {
      ws.on('message', (data: Buffer) => {
        const parsed = parseServerMessage(data.toString('utf8'))
        if (!parsed.ok) throw new Error(parsed.error.message)
        messages.push(parsed.value)
        if (parsed.value.type === 'error') resolve(parsed.value)
      })
    })
    const error = await failed
    ws.close()
    expect(error).toEqual(expect.objectContaining({ error: 'the job stopped reporting (no update for 0.3 s)', details: { code: 'job_stale' }, seq: 2 }))
    const status = (await (await fetch(`${backend.http}/api/v1/projects/${taskId}/status`)).json()) as Record<string, unknown>
    expect(status).toEqual(expect.objectContaining({ status: 'failed', progress: 0.25, details: { code: 'job_stale' } }))
    // The job that comes back too late is told so.
    await expect(backend.event(taskId, { type: 'progress', progress: 0.5 })).rejects.toThrow(/409.*already ended/)
  })

  it('keeps nothing for a mere subscriber of an unknown task once its socket closes', async () => {
    backend = await startFastapiBackend()
    const taskId = 'nobody_created_this'
    const first = await connectOnce(`ws://127.0.0.1:${backend.port}/api/v1/ws/projects/${taskId}/stream`, [])
    expect(first.first).toEqual(expect.objectContaining({ type: 'connected', last_seq: 0 }))
    expect(first.first).not.toHaveProperty('status')
    await expect.poll(async () => (await backend!.health()).connections).toBe(0)
    const health = await backend.health()
    expect(health.opened_by_task).toEqual({})
    expect(health.connections_by_task).toEqual({})
    expect((await fetch(`${backend.http}/api/v1/projects/${taskId}/status`)).status).toBe(404)
  })

  it('serves no demo endpoints and no per-task health details unless TABCAST_DEMO=1', async () => {
    backend = await startFastapiBackend({ env: { TABCAST_DEMO: '' } })
    const create = await fetch(`${backend.http}/api/v1/projects`, { method: 'POST', body: '{}' })
    expect(create.status).toBe(404)
    expect((await fetch(`${backend.http}/api/v1/projects/some_task/events`, { method: 'POST', body: '{"type":"heartbeat"}' })).status).toBe(404)
    expect(await backend.health()).toEqual({ ok: true, tasks: 0, connections: 0 })
  })
})
