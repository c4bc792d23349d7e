import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { parseStatusResponse, type ServerMessage } from 'tabcast'
import { createTabcastServer, MemoryTaskStore, silentLogger, type TabcastServer } from 'tabcast/server'
import { connect, type RunningServer, TestClient, trackServers } from './server-helpers.js'

const { start, clients } = trackServers()

async function getStatus(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await fetch(url, init)
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown), headers: response.headers }
}

async function createDemo(http: string, body: unknown, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${http}/api/v1/projects`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers }
}

/** Follows a task from its first message to its terminal one. */
async function follow(server: RunningServer, taskId: string): Promise<ServerMessage[]> {
  const client = new TestClient(server.streamUrl(taskId, 0))
  clients.push(client)
  return client.until((message) => message.type === 'completed' || (message.type === 'error' && message.seq !== undefined), 'the end of the task')
}

describe('status endpoint', () => {
  it('reports a running task, then the finished one, in the shape the client parser accepts', async () => {
    const server = await start()
    await server.server.createTask({ taskId: 'job-1', taskName: '오디오 생성' })
    let response = await getStatus(server.statusUrl('job-1'))
    expect(response.status).toBe(200)
    expect(response.body).toMatchObject({ project_id: 'job-1', status: 'running', progress: 0, seq: 0 })

    await server.server.progress('job-1', 0.5, 'TTS 생성 중... (시도 2/5)')
    response = await getStatus(server.statusUrl('job-1'))
    expect(response.headers.get('cache-control')).toBe('no-store')
    const parsed = parseStatusResponse(JSON.stringify(response.body))
    expect(parsed).toEqual({
      ok: true,
      value: expect.objectContaining({
        project_id: 'job-1',
        status: 'running',
        progress: 0.5,
        message: 'TTS 생성 중... (시도 2/5)',
        task_name: '오디오 생성',
        seq: 1,
      }),
    })

    await server.server.complete('job-1', { audio_id: 'audio_1' })
    response = await getStatus(server.statusUrl('job-1'))
    expect(response.body).toMatchObject({ status: 'completed', progress: 1, result: { audio_id: 'audio_1' }, seq: 2 })
  })

  it('answers 404 with a JSON error for an unknown task and 400 for an invalid id', async () => {
    const server = await start()
    const unknown = await getStatus(server.statusUrl('nobody_here'))
    expect(unknown.status).toBe(404)
    expect(unknown.body).toMatchObject({ error: expect.stringContaining('nobody_here') as unknown })

    for (const bad of ['bad id!', '.hidden', 'x'.repeat(129)]) {
      const invalid = await getStatus(server.statusUrl(bad))
      expect(invalid.status, bad).toBe(400)
      expect(invalid.body).toMatchObject({ error: expect.stringMatching(/task id/) as unknown })
    }
    const undecodable = await getStatus(`${server.http}/api/v1/projects/%E0%A4%A/status`)
    expect(undecodable.status).toBe(400)
  })

  it('forgets a finished task after the retention time', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z')
    const store = new MemoryTaskStore({ now: () => now })
    const server = await start({ store, retention: 60_000 })
    await server.server.complete('short-lived', { ok: true })
    now += 59_000
    expect((await getStatus(server.statusUrl('short-lived'))).status).toBe(200)
    now += 2_000
    expect((await getStatus(server.statusUrl('short-lived'))).status).toBe(404)
    await store.close()
  })

  it('answers a wrong method with 405 and an Allow header', async () => {
    const server = await start()
    const response = await fetch(server.statusUrl('job'), { method: 'DELETE' })
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toContain('GET')
  })
})

describe('CORS and origins', () => {
  it('echoes an allowed origin on the status endpoint and answers the preflight of the POST', async () => {
    const server = await start()
    await server.server.createTask({ taskId: 'cors' })
    const simple = await getStatus(server.statusUrl('cors'), { headers: { Origin: 'http://localhost:3020' } })
    expect(simple.status).toBe(200)
    expect(simple.headers.get('access-control-allow-origin')).toBe('http://localhost:3020')
    expect(simple.headers.get('vary')).toBe('Origin')

    const preflight = await fetch(`${server.http}/api/v1/projects`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://127.0.0.1:5173', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:5173')
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST')
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type')
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization')
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true')
  })

  it('refuses requests from origins that are not allowed, with no CORS headers', async () => {
    const server = await start()
    await server.server.createTask({ taskId: 'cors' })
    const status = await getStatus(server.statusUrl('cors'), { headers: { Origin: 'https://evil.example' } })
    expect(status.status).toBe(403)
    expect(status.headers.get('access-control-allow-origin')).toBeNull()
    const created = await createDemo(server.http, {}, { headers: { Origin: 'https://evil.example', 'Content-Type': 'text/plain' } })
    expect(created.status).toBe(403)
    expect(server.server.stats().demoTasksRunning).toBe(0)
  })

  it('uses a configured origin list instead of the localhost default', async () => {
    const server = await start({ allowedOrigins: ['https://studio.example.com'] })
    await server.server.createTask({ taskId: 'cors' })
    expect((await getStatus(server.statusUrl('cors'), { headers: { Origin: 'https://studio.example.com' } })).status).toBe(200)
    expect((await getStatus(server.statusUrl('cors'), { headers: { Origin: 'http://localhost:3020' } })).status).toBe(403)
  })
})

describe('demo tasks (POST /api/v1/projects)', () => {
  it('creates an audio-generation task that runs to completion like the guide\'s studio', async () => {
    const server = await start({ demo: true })
    const created = await createDemo(server.http, { script: '가'.repeat(600), steps: 5, stepMs: 1 })
    expect(created.status).toBe(201)
    const projectId = created.body['project_id'] as string
    expect(created.body).toEqual({
      project_id: projectId,
      status_url: `/api/v1/projects/${projectId}/status`,
      stream_url: `/api/v1/ws/projects/${projectId}/stream`,
    })
    expect(created.headers.get('location')).toBe(created.body['status_url'])

    const messages = await follow(server, projectId)
    const progress = messages.filter((message) => message.type === 'progress')
    expect(progress).toHaveLength(5)
    for (const message of progress) expect(message.task_name).toBe('오디오 생성')
    expect(progress.some((message) => message.message === 'TTS 생성 중... (시도 1/5)')).toBe(true)
    expect(messages[messages.length - 1]).toMatchObject({
      type: 'completed',
      seq: 6,
      result: { audio_id: expect.stringMatching(/^audio_\d+$/) as unknown, duration: 120, accuracy: 0.97, attempt: 1 },
    })
    const result = messages[messages.length - 1]?.result ?? {}
    expect(result['file_path']).toBe(`/media/audio/${String(result['audio_id'])}.mp3`)
  })

  it('retries TTS after injected failures and reports the attempt that succeeded', async () => {
    const server = await start({ demo: true })
    const created = await createDemo(server.http, { taskId: 'retry_task', steps: 4, stepMs: 1, failAttempts: 2 })
    expect(created.body['project_id']).toBe('retry_task')
    const messages = await follow(server, 'retry_task')
    const texts = messages.map((message) => message.message)
    expect(texts).toContain('TTS 생성 중... (시도 1/5)')
    expect(texts).toContain('TTS 생성 중... (시도 2/5)')
    expect(texts).toContain('TTS 생성 중... (시도 3/5)')
    expect(messages[messages.length - 1]).toMatchObject({ type: 'completed', result: { attempt: 3 } })
  })

  it('fails with the provider error at failAt, and when every attempt fails', async () => {
    const server = await start({ demo: true })
    await createDemo(server.http, { taskId: 'fail_half', steps: 10, stepMs: 1, failAt: 0.5 })
    const failed = await follow(server, 'fail_half')
    expect(failed.filter((message) => message.type === 'progress').map((message) => message.progress)).toEqual([0, 0.1, 0.2, 0.3, 0.4])
    expect(failed[failed.length - 1]).toMatchObject({
      type: 'error',
      error: 'ElevenLabs API 호출 실패',
      details: { status_code: 500, reason: 'Internal Server Error' },
    })
    expect((await getStatus(server.statusUrl('fail_half'))).body).toMatchObject({ status: 'failed', error: 'ElevenLabs API 호출 실패' })

    await createDemo(server.http, { taskId: 'fail_all', steps: 3, stepMs: 1, failAttempts: 5 })
    const exhausted = await follow(server, 'fail_all')
    expect(exhausted.map((message) => message.message)).toContain('TTS 생성 중... (시도 5/5)')
    expect(exhausted[exhausted.length - 1]).toMatchObject({ type: 'error', details: { status_code: 500, attempts: 5 } })
  })

  it('rejects bad bodies with 400 naming the field, a taken id with 409, and creates nothing when the demo is off', async () => {
    const server = await start({ demo: true })
    expect(await createDemo(server.http, { steps: 0 })).toMatchObject({ status: 400, body: { error: expect.stringContaining('steps') as unknown } })
    expect(await createDemo(server.http, { failAt: 2 })).toMatchObject({ status: 400, body: { error: expect.stringContaining('failAt') as unknown } })
    expect(await createDemo(server.http, { taskId: 'bad id' })).toMatchObject({ status: 400, body: { error: expect.stringContaining('task id') as unknown } })
    expect(await createDemo(server.http, '{not json')).toMatchObject({ status: 400, body: { error: expect.stringContaining('JSON') as unknown } })
    expect(await createDemo(server.http, [1, 2])).toMatchObject({ status: 400 })
    expect((await createDemo(server.http, { taskId: 'taken', stepMs: 1000 })).status).toBe(201)
    expect(await createDemo(server.http, { taskId: 'taken' })).toMatchObject({ status: 409, body: { project_id: 'taken' } })

    const noDemo = await start({ demo: false })
    expect((await createDemo(noDemo.http, {})).status).toBe(404)
    // Off unless asked for.
    const byDefault = await start()
    expect((await createDemo(byDefault.http, {})).status).toBe(404)
  })

  it('turns new demo tasks away with 503 beyond maxRunningTasks', async () => {
    const server = await start({ demo: { maxRunningTasks: 1 } })
    expect((await createDemo(server.http, { stepMs: 60_000 })).status).toBe(201)
    const second = await createDemo(server.http, { stepMs: 60_000 })
    expect(second.status).toBe(503)
    expect(second.headers.get('retry-after')).not.toBeNull()
  })
})

describe('health and mounting', () => {
  it('reports health with the store kind when healthDetails is on', async () => {
    const server = await start({ healthDetails: true })
    const health = await getStatus(`${server.http}/healthz`)
    expect(health).toMatchObject({ status: 200, body: { ok: true, store: { ok: true, kind: 'memory' }, connections: 0 } })
  })

  it('attaches to an existing http server, leaving its other routes to it, and detaches on close', async () => {
    const app: Server = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' })
      res.end('app')
    })
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`
    let tabcast: TabcastServer | null = createTabcastServer({ server: app, logger: silentLogger })
    try {
      await expect(tabcast.listen(0)).rejects.toThrow(/attached/)
      expect(await (await fetch(`${base}/somewhere/else`)).text()).toBe('app')
      await tabcast.progress('mounted', 0.5, 'half')
      expect((await getStatus(`${base}/api/v1/projects/mounted/status`)).body).toMatchObject({ progress: 0.5 })
      const { client, connected } = await connect(`${base.replace('http', 'ws')}/api/v1/ws/projects/mounted/stream`)
      clients.push(client)
      expect(connected).toMatchObject({ last_seq: 1 })
      await tabcast.close()
      tabcast = null
      expect((await client.waitClosed()).code).toBe(1001)
      // Detached: the app answers everything again, and the server is still listening.
      expect(await (await fetch(`${base}/api/v1/projects/mounted/status`)).text()).toBe('app')
    } finally {
      await tabcast?.close()
      await new Promise((resolve) => app.close(resolve))
    }
  })

  it('answers other paths with a 404 an allowed page can read (CORS), so a wrong path prefix is not mistaken for a refusal', async () => {
    const server = await start({ allowedOrigins: ['http://studio.test'] })
    const origin = new URL(server.http).origin
    const wrong = `${origin}/wrong/api/v1/projects/task_1/status`
    const allowed = await getStatus(wrong, { headers: { Origin: 'http://studio.test' } })
    expect(allowed.status).toBe(404)
    expect(allowed.headers.get('access-control-allow-origin')).toBe('http://studio.test')
    expect(allowed.body).toEqual({ error: 'not found: no tabcast route at this path' })
    // The preflight of a read with a token gets through, so the read can meet its 404.
    const preflight = await fetch(wrong, {
      method: 'OPTIONS',
      headers: { Origin: 'http://studio.test', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/)
    // Another origin learns nothing more than before.
    const other = await getStatus(wrong, { headers: { Origin: 'http://evil.test' } })
    expect(other.status).toBe(404)
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('serves every route under basePath', async () => {
    const server = await start({ basePath: '/tabcast' })
    expect(server.http.endsWith('/tabcast')).toBe(true)
    const origin = server.http.slice(0, -'/tabcast'.length)
    await server.server.progress('prefixed', 0.3, 'x')
    expect((await getStatus(`${server.http}/api/v1/projects/prefixed/status`)).status).toBe(200)
    expect((await getStatus(`${origin}/api/v1/projects/prefixed/status`)).status).toBe(404)
    const { client, connected } = await connect(server.streamUrl('prefixed'))
    clients.push(client)
    expect(connected).toMatchObject({ project_id: 'prefixed', last_seq: 1 })
  })
})

describe('listen', () => {
  it('rejects when the port is taken and can listen again afterwards', async () => {
    const first = await start()
    const port = Number(new URL(first.http).port)
    const second = createTabcastServer({ logger: silentLogger })
    try {
      await expect(second.listen(port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' })
      const address = await second.listen(0, '127.0.0.1')
      expect(address.port).not.toBe(port)
      expect((await getStatus(`${address.url}/healthz`)).status).toBe(200)
    } finally {
      await second.close()
    }
  })
})
