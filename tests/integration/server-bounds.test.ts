/**
 * The reference server's resource bounds, each against the real server on loopback
 * with small limits: stored tasks (count and bytes), task creation per address, taken
 * ids, sockets on unknown tasks, sockets per address, chunked bodies, `/healthz`, and
 * paths with encoded dot segments.
 */
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { CloseCode } from 'tabcast'
import { MemoryTaskStore, TaskStoreFullError } from 'tabcast/server'
import { type RunningServer, trackServers, waitUntil } from './server-helpers.js'

const { start, client, follow } = trackServers()
const stores: MemoryTaskStore[] = []

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()))
})

function post(server: RunningServer, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.http}/api/v1/projects`, { method: 'POST', headers, body: JSON.stringify(body) })
}

/** A raw HTTP request, so the path is sent exactly as written (fetch would resolve dot segments). */
function rawGet(server: RunningServer, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(server.http)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: 'GET' }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('stored tasks are capped in count and bytes', () => {
  it('evicts finished tasks oldest first to make room, and refuses a new task when only running ones are left', async () => {
    const store = new MemoryTaskStore({ maxTasks: 3 })
    stores.push(store)
    const server = await start({ store, demo: true })
    for (const taskId of ['a', 'b', 'c']) await server.server.createTask({ taskId })
    await expect(server.server.createTask({ taskId: 'd' })).rejects.toBeInstanceOf(TaskStoreFullError)
    // A job reporting on an unknown task is refused the same way.
    await expect(server.server.progress('d', 0.1, 'x')).rejects.toBeInstanceOf(TaskStoreFullError)
    const refused = await post(server, { taskId: 'd' })
    expect(refused.status).toBe(503)
    expect(refused.headers.get('retry-after')).not.toBeNull()

    await server.server.complete('b', { ok: true })
    await server.server.fail('a', 'broken')
    await server.server.createTask({ taskId: 'd' })
    // b finished first, so b went first; a (finished later) and the running ones stay.
    expect(await server.server.getTask('b')).toBeNull()
    expect(await server.server.getTask('a')).toMatchObject({ status: 'failed' })
    expect(await server.server.getTask('c')).toMatchObject({ status: 'running' })
    await server.server.createTask({ taskId: 'e' })
    expect(await server.server.getTask('a')).toBeNull()
    expect(await store.health()).toMatchObject({ detail: expect.stringMatching(/^3 tasks held/) as unknown })
  })

  it('evicts finished tasks for bytes, and trims a running task\'s own history rather than refusing its messages', async () => {
    const store = new MemoryTaskStore({ maxBytes: 16 * 1024 })
    stores.push(store)
    const server = await start({ store })
    const padding = 'x'.repeat(1000)
    await server.server.complete('done', { padding })
    for (let i = 1; i <= 30; i += 1) await server.server.progress('busy', i / 100, `step ${i}`, { metadata: { padding } })
    expect(await server.server.getTask('done')).toBeNull()
    expect(await server.server.getTask('busy')).toMatchObject({ status: 'running', lastSeq: 30 })
    const history = await store.readSince('busy', 0)
    expect(history.complete).toBe(false)
    expect(history.messages.length).toBeGreaterThan(0)
    expect(history.messages.length).toBeLessThan(16)
    expect(history.messages[history.messages.length - 1]).toMatchObject({ seq: 30 })
    // A replay that reaches past what was trimmed gets the current state instead.
    const follower = await follow(server.streamUrl('busy', 1))
    expect(await follower.next()).toMatchObject({ seq: 30 })
  })

  it('does not count tasks that expired but were not swept yet', async () => {
    let now = Date.parse('2026-12-03T10:00:00Z')
    const store = new MemoryTaskStore({ maxTasks: 1, now: () => now })
    stores.push(store)
    const server = await start({ store, staleTaskTimeout: 60_000 })
    await server.server.createTask({ taskId: 'silent' })
    await expect(server.server.createTask({ taskId: 'next' })).rejects.toBeInstanceOf(TaskStoreFullError)
    now += 60_000
    await server.server.createTask({ taskId: 'next' })
    expect(await server.server.getTask('next')).toMatchObject({ status: 'running' })
  })

  it('applies taskLimits to the server\'s own memory store', async () => {
    const server = await start({ taskLimits: { maxTasks: 1 } })
    await server.server.createTask({ taskId: 'only' })
    await expect(server.server.createTask({ taskId: 'second' })).rejects.toBeInstanceOf(TaskStoreFullError)
  })
})

describe('task creation', () => {
  it('is rate-limited per client address with 429 and Retry-After', async () => {
    const server = await start({
      demo: true,
      createRateLimit: { perMinute: 0.001, burst: 2 },
      // As behind a proxy that forwards the client's address.
      clientAddress: (req) => (req.headers['x-client'] as string | undefined) ?? req.socket.remoteAddress,
    })
    const from = (address: string): Record<string, string> => ({ 'X-Client': address })
    expect((await post(server, { stepMs: 1 }, from('10.0.0.1'))).status).toBe(201)
    expect((await post(server, { stepMs: 1 }, from('10.0.0.1'))).status).toBe(201)
    const limited = await post(server, { stepMs: 1 }, from('10.0.0.1'))
    expect(limited.status).toBe(429)
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await post(server, { stepMs: 1 }, from('10.0.0.2'))).status).toBe(201)
  })

  it('cannot take an id already in use, whether created, reported on or finished', async () => {
    const server = await start({ demo: true, createRateLimit: false })
    await server.server.createTask({ taskId: 'created' })
    await server.server.progress('reported', 0.5, 'half')
    await server.server.complete('finished', { ok: true })
    for (const taskId of ['created', 'reported', 'finished']) {
      const response = await post(server, { taskId, stepMs: 1 })
      expect(response.status, taskId).toBe(409)
    }
    expect(await server.server.getTask('reported')).toMatchObject({ lastSeq: 1, progress: 0.5 })
  })

  it('refuses demo tasks longer than demo.maxDurationMs', async () => {
    const server = await start({ demo: { maxDurationMs: 10_000 } })
    const response = await post(server, { steps: 100, stepMs: 1000 })
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ error: expect.stringContaining('at most 10000 ms') as unknown })
    expect((await post(server, { steps: 10, stepMs: 1000 })).status).toBe(201)
  })

  it('answers a chunked body over the limit with 413, not a reset', async () => {
    const server = await start({ demo: true })
    const { hostname, port } = new URL(server.http)
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: hostname, port, path: '/api/v1/projects', method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', reject)
      const chunk = 'x'.repeat(16 * 1024)
      // No Content-Length: Node sends the body chunked.
      for (let i = 0; i < 56; i += 1) req.write(chunk)
      req.end()
    })
    expect(status).toBe(413)
    expect(server.server.stats().demoTasksRunning).toBe(0)
  })
})

describe('sockets', () => {
  it('closes a socket on a task nothing creates or publishes with 4004 after unknownTaskTimeout, and keeps the others', async () => {
    // Long enough for the job below to start well before the first timer is due.
    const server = await start({ unknownTaskTimeout: 1000 })
    const published = await follow(server.streamUrl('published'))
    const created = await follow(server.streamUrl('created'))
    await server.server.progress('published', 0.5, 'half')
    await server.server.createTask({ taskId: 'created' })
    // Opened last, so the other two timers were due (and disarmed or passed) before it closes.
    const ghost = await follow(server.streamUrl('ghost'))
    const closed = await ghost.waitClosed()
    expect(closed.code).toBe(CloseCode.TaskNotFound)
    expect(closed.reason).toMatch(/not found/)
    expect(published.isOpen).toBe(true)
    expect(created.isOpen).toBe(true)
    await waitUntil(() => server.server.stats().connections === 2, 'the server dropped the ghost socket')
    expect(server.server.stats().connectionsByTask).toEqual({ published: 1, created: 1 })
  })

  it('caps the sockets one client address holds, refusing the extra upgrades with 429', async () => {
    const server = await start({ maxConnectionsPerAddress: 2 })
    const first = await follow(server.streamUrl('a'))
    await follow(server.streamUrl('b'))
    expect(await client(server.streamUrl('c')).refused).toBe(429)
    expect(server.server.stats().connections).toBe(2)
    await first.close()
    await waitUntil(() => server.server.stats().connections === 1, 'the server saw the close')
    expect((await follow(server.streamUrl('c'))).isOpen).toBe(true)
  })

  it('caps the connections one address holds before sending a complete request (slowloris); streams do not count', async () => {
    const server = await start({ maxPendingConnectionsPerAddress: 2 })
    const { hostname, port } = new URL(server.http)
    const silent: Socket[] = []
    const openSilent = (): Promise<{ socket: Socket; closedByServer: Promise<boolean> }> =>
      new Promise((resolve, reject) => {
        const socket = connect({ host: hostname, port: Number(port) }, () => {
          silent.push(socket)
          // Half a request line, then nothing.
          socket.write('GET /healthz HT')
          resolve({ socket, closedByServer: new Promise((closed) => socket.once('close', () => closed(true))) })
        })
        socket.on('error', () => {})
        socket.once('error', reject)
      })
    try {
      // A stream, once upgraded, leaves the count.
      await follow(server.streamUrl('a'))
      await openSilent()
      await openSilent()
      const third = await openSilent()
      const refused = await Promise.race([third.closedByServer, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3000))])
      expect(refused).toBe(true)
      silent[0]?.destroy()
      // Room again once the server has seen that close.
      let status = 0
      for (let i = 0; i < 50 && status !== 200; i++) {
        status = await rawGet(server, '/healthz').then(
          (answer) => answer.status,
          () => new Promise<number>((resolve) => setTimeout(() => resolve(0), 20)),
        )
      }
      expect(status).toBe(200)
    } finally {
      for (const socket of silent) socket.destroy()
    }
  })

  it('counts refused and unauthorized upgrades only while they are open', async () => {
    const server = await start({ maxConnectionsPerAddress: 1, authorize: () => 'unauthenticated' })
    for (let i = 0; i < 3; i += 1) {
      expect((await client(server.streamUrl('t')).waitClosed()).code).toBe(CloseCode.Unauthenticated)
    }
  })
})

describe('/healthz and paths', () => {
  it('answers only ok by default', async () => {
    const server = await start()
    const response = await fetch(`${server.http}/healthz`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ ok: true })
  })

  it('does not let an encoded .. reach another route', async () => {
    const server = await start()
    await server.server.createTask({ taskId: 'x' })
    for (const path of [
      '/api/v1/projects/%2e%2e/%2e%2e/%2e%2e/healthz',
      '/api/v1/projects/%2E%2E/%2E%2E/%2E%2E/healthz',
      '/api/v1/projects/../../../healthz',
      '/api/v1/projects/.%2e/.%2e/.%2e/healthz',
      '/api/v1/projects/x/status/%2e%2e/status',
      '/api/v1/./projects/x/status',
    ]) {
      expect((await rawGet(server, path)).status, path).toBe(404)
    }
    expect((await rawGet(server, '/healthz')).status).toBe(200)
    expect((await rawGet(server, '/api/v1/projects/x/status')).status).toBe(200)
  })

  it('does not open a stream through an encoded ..', async () => {
    const server = await start()
    // Sent raw: a WebSocket client would resolve the dot segments itself.
    const upgrade = (path: string): Promise<number> => {
      const { hostname, port } = new URL(server.http)
      return new Promise((resolve, reject) => {
        const req = request({
          host: hostname,
          port,
          path,
          headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
        })
        req.on('response', (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        })
        req.on('upgrade', (res, socket) => {
          socket.destroy()
          resolve(res.statusCode ?? 0)
        })
        req.on('error', reject)
        req.end()
      })
    }
    expect(await upgrade('/api/v1/ws/projects/%2e%2e/projects/x/stream')).toBe(404)
    expect(await upgrade('/api/v1/ws/projects/x/stream')).toBe(101)
  })
})
