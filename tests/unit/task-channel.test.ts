/**
 * One task's channel against fake sockets, a fake fetch and an injected clock: the
 * rules of issue 11 (numbering epochs, staleness, status during backoff, the pong
 * capability, naming a refused origin) and the client bounds (send size in UTF-8 bytes,
 * a status body refused while it streams in).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_CLIENT_MESSAGE_BYTES, resolveOptions, type ServerMessage, type TaskOptions, type TaskSnapshot } from 'tabcast'
import { TaskChannel, type ChannelEvent } from '../../src/core/task-channel.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { settle } from '../support/fake-fetch.js'
import type { FakeSocket } from '../support/fake-socket.js'

const TASK = 'audio_generation_12345'
const STREAM = `ws://localhost:8000/api/v1/ws/projects/${TASK}/stream`
const STATUS = `http://localhost:8000/api/v1/projects/${TASK}/status`
const BACKEND = { ws: 'ws://localhost:8000', http: 'http://localhost:8000' }

interface World extends FakeEnv {
  channel: TaskChannel
  events: ChannelEvent[]
  readonly snapshot: TaskSnapshot
  readonly messages: ServerMessage[]
}

let world: World

function setup(options: TaskOptions = {}, { origin }: { origin?: string } = {}): World {
  const env = fakeEnv()
  if (origin !== undefined) env.env.origin = origin
  const channel = new TaskChannel({ key: 'k', projectId: TASK, backend: BACKEND }, resolveOptions(options), env.env)
  const events: ChannelEvent[] = []
  channel.addSubscriber(1, resolveOptions(options), (event) => events.push(event))
  world = {
    ...env,
    channel,
    events,
    get snapshot() {
      return channel.getSnapshot()
    },
    get messages() {
      return events.flatMap((event) => (event.type === 'message' ? [event.message] : []))
    },
  }
  return world
}

afterEach(() => world?.channel.stop())

function live(connected: Record<string, unknown> = { last_seq: 0 }): FakeSocket {
  const socket = world.sockets.last
  socket.open()
  socket.receive({ type: 'connected', project_id: TASK, ...connected })
  return socket
}

const progress = (value: number, seq?: number, message?: string): ServerMessage => ({
  type: 'progress',
  progress: value,
  ...(seq === undefined ? {} : { seq }),
  ...(message === undefined ? {} : { message }),
})

describe('numbering epochs (issue 11, case 1)', () => {
  it('a restart that renumbers: completed with seq == last_seq < ours reaches the task, with its result', async () => {
    setup({ reconnectBaseDelay: 100 })
    const socket = live({ last_seq: 0, epoch: 'boot-1' })
    for (let seq = 1; seq <= 5; seq++) socket.receive(progress(0.12 * seq + 0.02, seq, `step ${seq}`))
    expect(world.snapshot).toMatchObject({ progress: 0.62, seq: 5 })
    socket.drop(1001)
    world.clock.flush()
    const again = world.sockets.last
    expect(again.url).toBe(`${STREAM}?since=5`)
    again.open()
    const reads = world.http.requests.length
    // The restarted server's history ends at 4: the job finished while it restarted.
    again.receive({ type: 'connected', project_id: TASK, last_seq: 4 })
    again.receive({ type: 'completed', project_id: TASK, seq: 4, result: { audio_id: 'audio_123' } })
    expect(world.snapshot).toMatchObject({ status: 'completed', progress: 1, result: { audio_id: 'audio_123' }, connection: 'closed' })
    expect(world.messages.at(-1)).toMatchObject({ type: 'completed', seq: 4 })
    // The new epoch was read once, even though the server announced last_seq.
    expect(world.http.requests.slice(reads).map((request) => request.url)).toEqual([STATUS])
  })

  it('a new epoch reads the status once and shows the server’s truth, even lower progress', async () => {
    setup()
    const socket = live({ last_seq: 0, epoch: 'A' })
    socket.receive(progress(0.62, 5))
    socket.drop(1001)
    world.clock.flush()
    const again = world.sockets.last
    again.open()
    const reads = world.http.requests.length
    again.receive({ type: 'connected', project_id: TASK, last_seq: 9, epoch: 'B' })
    expect(world.http.requests.length).toBe(reads + 1)
    world.http.last.respond({ body: { project_id: TASK, status: 'running', progress: 0.25, seq: 9, epoch: 'B', message: 'restarted' } })
    await settle()
    expect(world.snapshot).toMatchObject({ status: 'running', progress: 0.25, seq: 9, message: 'restarted' })
    // Within the new epoch progress does not go back again; a duplicate is dropped.
    again.receive(progress(0.2, 9))
    again.receive(progress(0.4, 10))
    expect(world.snapshot).toMatchObject({ progress: 0.4, seq: 10 })
    expect(world.http.requests.length).toBe(reads + 1)
  })

  it('a new epoch whose status read answers 404 says the job may be gone with the old history', async () => {
    setup()
    const socket = live({ last_seq: 0 })
    socket.receive(progress(0.25, 3))
    socket.drop(1001)
    world.clock.flush()
    world.sockets.last.open()
    world.sockets.last.receive({ type: 'connected', project_id: TASK, last_seq: 0 })
    world.http.last.respond({ status: 404, body: { error: `task ${TASK} not found` } })
    await settle()
    expect(world.snapshot.connectionError).toBe(
      `the server's numbering restarted (a new epoch); status endpoint ${STATUS} answered HTTP 404: task ${TASK} not found`,
    )
    expect(world.snapshot).toMatchObject({ status: 'running', progress: 0.25, connection: 'live' })
  })

  it('a read that fails after the task ended adds no notice to the finished task', async () => {
    setup()
    world.sockets.last.open()
    world.sockets.last.receive({ type: 'connected', project_id: TASK, last_seq: 0 })
    world.sockets.last.receive(progress(0.5, 5))
    world.sockets.last.drop(1001)
    world.clock.flush()
    world.sockets.last.open()
    world.sockets.last.receive({ type: 'connected', project_id: TASK, last_seq: 4 })
    world.sockets.last.receive({ type: 'completed', project_id: TASK, seq: 4, result: {} })
    world.http.last.respond({ status: 404, body: 'gone' })
    await settle()
    expect(world.snapshot).toMatchObject({ status: 'completed', connectionError: null })
  })

  it('the same epoch with a replay reads nothing (the replay is the gap fill)', () => {
    setup()
    const socket = live({ last_seq: 0, epoch: 'A' })
    socket.receive(progress(0.3, 3))
    socket.drop(1001)
    world.clock.flush()
    world.sockets.last.open()
    const reads = world.http.requests.length
    world.sockets.last.receive({ type: 'connected', project_id: TASK, last_seq: 4, epoch: 'A' })
    world.sockets.last.receive(progress(0.4, 4))
    expect(world.http.requests.length).toBe(reads)
    expect(world.snapshot).toMatchObject({ progress: 0.4, seq: 4 })
  })

  it('a terminal state is not lost when it arrives late, after a renumbered socket already went live', async () => {
    setup({ reconnectBaseDelay: 100 })
    const socket = live({ last_seq: 0, epoch: 'A' })
    socket.receive(progress(0.5, 5))
    socket.drop()
    const backoffRead = world.http.last
    world.clock.advance(100)
    const again = world.sockets.last
    again.open()
    again.receive({ type: 'connected', project_id: TASK, last_seq: 1, epoch: 'B' })
    again.receive(progress(0.1, 1))
    expect(world.snapshot).toMatchObject({ status: 'running', progress: 0.1, connection: 'live' })
    backoffRead.respond({ body: { project_id: TASK, status: 'completed', result: { r: 1 }, seq: 6, epoch: 'A' } })
    await settle()
    expect(world.snapshot).toMatchObject({ status: 'completed', result: { r: 1 }, connection: 'closed' })
    again.receive(progress(0.2, 2))
    expect(world.snapshot).toMatchObject({ status: 'completed', progress: 1 })
  })
})

describe('status during backoff (issue 11, case 3)', () => {
  it('a running status that answers after the socket is live again is older than the stream: ignored', async () => {
    setup({ reconnectBaseDelay: 100 })
    live().receive(progress(0.5, 5))
    world.sockets.last.drop()
    const backoffRead = world.http.last
    world.clock.advance(100)
    live({ last_seq: 7 }).receive(progress(0.7, 7))
    backoffRead.respond({ body: { project_id: TASK, status: 'running', progress: 0.55, seq: 6, message: 'old' } })
    await settle()
    expect(world.snapshot).toMatchObject({ progress: 0.7, seq: 7, connection: 'live' })
    expect(world.messages.at(-1)).toMatchObject({ type: 'progress', seq: 7 })
  })

  it('the first failed attempt reads the status at once: 40 % shows while reconnecting', async () => {
    setup()
    world.sockets.last.drop()
    expect(world.snapshot).toMatchObject({ connection: 'reconnecting', progress: 0 })
    expect(world.http.requests.map((request) => request.url)).toEqual([STATUS])
    world.http.last.respond({ body: { project_id: TASK, status: 'running', progress: 0.4, message: 'TTS', seq: 8 } })
    await settle()
    expect(world.snapshot).toMatchObject({ connection: 'reconnecting', status: 'running', progress: 0.4, message: 'TTS' })
    // The read shows the state but keeps the resume point: the reconnect asks for no `since`.
    world.clock.advance(1000)
    expect(world.sockets.last.url).toBe(STREAM)
  })

  it('onMessage hears a step shown by a backoff read once, from the replay, not twice', async () => {
    setup({ reconnectBaseDelay: 100 })
    const socket = live()
    socket.receive(progress(0.1, 1))
    socket.drop()
    world.http.last.respond({ body: { project_id: TASK, status: 'running', progress: 0.3, seq: 3 } })
    await settle()
    // The bar shows the read at once; no message is made up from it.
    expect(world.snapshot).toMatchObject({ connection: 'reconnecting', progress: 0.3 })
    const steps = (): (number | undefined)[] => world.messages.filter((message) => message.type === 'progress').map((message) => message.seq)
    expect(steps()).toEqual([1])
    world.clock.advance(100)
    expect(world.sockets.last.url).toBe(`${STREAM}?since=1`)
    const again = live({ last_seq: 3 })
    again.receive({ ...progress(0.2, 2), metadata: { from: 'replay' } })
    again.receive({ ...progress(0.3, 3), metadata: { from: 'replay' } })
    expect(steps()).toEqual([1, 2, 3])
    expect(world.messages.at(-1)).toMatchObject({ metadata: { from: 'replay' } })
    expect(world.snapshot).toMatchObject({ connection: 'live', progress: 0.3, seq: 3 })
  })

  it('at most one read per backoff step, never closer than pollingInterval', async () => {
    setup({ pollingInterval: 3000 })
    world.http.auto = (request) => request.respond({ body: { project_id: TASK, status: 'running', progress: 0.1 } })
    world.sockets.last.drop()
    expect(world.http.requests).toHaveLength(1)
    // Step 1 waits 1 s, step 2 starts 1 s after the first read: too soon, skipped.
    world.clock.advance(1000)
    world.sockets.last.drop()
    expect(world.http.requests).toHaveLength(1)
    // Step 2 waits 2 s; step 3 starts 3 s after the first read: read.
    world.clock.advance(2000)
    world.sockets.last.drop()
    expect(world.http.requests).toHaveLength(2)
    await settle()
    // Nothing more within the step.
    world.clock.advance(3999)
    expect(world.http.requests).toHaveLength(2)
  })

  it('a terminal state read during backoff ends following: no more sockets', async () => {
    setup()
    world.sockets.last.drop()
    world.http.last.respond({ body: { project_id: TASK, status: 'failed', error: 'GPU lost' } })
    await settle()
    expect(world.snapshot).toMatchObject({ status: 'failed', error: 'GPU lost', connection: 'closed' })
    world.clock.advance(120_000)
    expect(world.sockets.count).toBe(1)
  })

  it('a server going away is reconnected at once, without a read', () => {
    setup()
    live().drop(1001)
    expect(world.http.requests).toHaveLength(0)
  })

  it('the first poll after the reconnects waits out pollingInterval after the last backoff read', () => {
    setup({ maxReconnectAttempts: 1, reconnectBaseDelay: 50, pollingInterval: 250, socketRetryInterval: 0 })
    world.sockets.last.drop()
    expect(world.http.requests).toHaveLength(1)
    world.clock.advance(50)
    world.sockets.last.drop()
    expect(world.snapshot.connection).toBe('polling')
    expect(world.http.requests).toHaveLength(1)
    world.clock.advance(199)
    expect(world.http.requests).toHaveLength(1)
    world.clock.advance(1)
    expect(world.http.requests).toHaveLength(2)
  })
})

describe('staleness (issue 11, case 2)', () => {
  it('a running task with no message for staleAfter is stalled since its last update, not failed', () => {
    setup({ staleAfter: 30_000 })
    const socket = live()
    const t0 = world.clock.now()
    socket.receive(progress(0.25, 1))
    world.clock.advance(29_999)
    expect(world.snapshot.stalledSince).toBeNull()
    world.clock.advance(1)
    expect(world.snapshot).toMatchObject({ stalledSince: t0, status: 'running', connection: 'live', error: null })
    socket.receive(progress(0.25, 2))
    expect(world.snapshot.stalledSince).toBeNull()
    world.clock.advance(30_000)
    expect(world.snapshot.stalledSince).toBe(t0 + 30_000)
  })

  it('pongs and keep-alive traffic are not updates', () => {
    setup({ staleAfter: 10_000, pingInterval: 1000 })
    const socket = live({ last_seq: 0, capabilities: ['pong'] })
    socket.receive(progress(0.1, 1))
    for (let i = 0; i < 10; i++) {
      world.clock.advance(1000)
      socket.receive({ type: 'pong' })
    }
    expect(world.snapshot.stalledSince).not.toBeNull()
  })

  it('staleAfter 0 never marks a task stalled', () => {
    setup({ staleAfter: 0 })
    live().receive(progress(0.25, 1))
    world.clock.advance(3_600_000)
    expect(world.snapshot.stalledSince).toBeNull()
  })

  it('while polling, statuses that do not change count as no update; a change clears it', async () => {
    setup({ staleAfter: 5000, maxReconnectAttempts: 0, pollingInterval: 1000, socketRetryInterval: 0 })
    world.http.auto = (request) => request.respond({ body: { project_id: TASK, status: 'running', progress: 0.3, seq: 3 } })
    world.sockets.last.drop()
    await settle()
    const firstUpdate = world.clock.now()
    expect(world.snapshot).toMatchObject({ connection: 'polling', progress: 0.3 })
    for (let i = 0; i < 5; i++) {
      world.clock.advance(1000)
      await settle()
    }
    expect(world.snapshot.stalledSince).toBe(firstUpdate)
    world.http.auto = (request) => request.respond({ body: { project_id: TASK, status: 'running', progress: 0.35, seq: 4 } })
    world.clock.advance(1000)
    await settle()
    expect(world.snapshot).toMatchObject({ stalledSince: null, progress: 0.35 })
  })

  it('the end clears the stall and stops the stale timer', () => {
    setup({ staleAfter: 1000 })
    const socket = live()
    socket.receive(progress(0.5, 1))
    world.clock.advance(1000)
    expect(world.snapshot.stalledSince).not.toBeNull()
    socket.receive({ type: 'completed', seq: 2, result: {} })
    expect(world.snapshot).toMatchObject({ status: 'completed', stalledSince: null })
    expect(world.clock.pendingCount).toBe(0)
  })

  it('an idle task (nothing known yet) is never stalled', () => {
    setup({ staleAfter: 1000 })
    live()
    world.clock.advance(60_000)
    expect(world.snapshot.stalledSince).toBeNull()
  })
})

describe('half-open detection (issue 11, case 4)', () => {
  it('a server announcing "pong" is held to it from the first ping: no pong → a new connection', () => {
    setup({ pingInterval: 1000, pongTimeout: 300 })
    const socket = live({ last_seq: 0, capabilities: ['seq', 'pong'] })
    world.clock.advance(1000)
    expect(socket.sent).toContain('{"type":"ping"}')
    world.clock.advance(299)
    expect(socket.isClosed).toBe(false)
    world.clock.advance(1)
    expect(socket.closedBy).toEqual({ code: 1000, reason: 'no pong' })
    expect(world.snapshot.connectionError).toMatch(/no pong within 300 ms/)
    world.clock.advance(1000)
    expect(world.sockets.count).toBe(2)
  })

  it('a server without the capability is not judged before its first pong (guide-only)', () => {
    setup({ pingInterval: 1000, pongTimeout: 300 })
    const socket = live({ last_seq: 0, capabilities: ['seq'] })
    world.clock.advance(10_000)
    expect(socket.isClosed).toBe(false)
    expect(world.sockets.count).toBe(1)
  })
})

describe('naming a refused origin (issue 11, case 5)', () => {
  function refusedEverywhere(origin: string, { opened = false } = {}): void {
    setup({ maxReconnectAttempts: 0, socketRetryInterval: 0 }, { origin })
    if (opened) world.sockets.last.open()
    world.sockets.last.drop()
    world.http.last.reject(new TypeError('Failed to fetch'))
  }

  it('socket failed before opening + status read failed at the network level + another origin: names the likely cause', async () => {
    refusedEverywhere('http://127.0.0.1:3020')
    await settle()
    const error = world.snapshot.connectionError ?? ''
    expect(error).toContain('Failed to fetch')
    expect(error).toContain('Origin allow-list or CORS')
    expect(error).toContain('http://127.0.0.1:3020')
    expect(error).toContain('http://localhost:8000')
  })

  it('a no-cors probe that gets an answer: the backend is up and refuses this page', async () => {
    refusedEverywhere('http://127.0.0.1:3020')
    await settle()
    const probe = world.http.last
    expect(probe).toMatchObject({ url: STATUS, mode: 'no-cors' })
    probe.respond({ status: 403, body: '' })
    await settle()
    expect(world.snapshot.connectionError).toBe(
      `status request to ${STATUS} failed: Failed to fetch. http://localhost:8000 is up but refuses this page: ` +
        "its Origin allow-list or CORS does not allow this page's origin http://127.0.0.1:3020, or it serves nothing at this path " +
        '(check the path in backendUrl); the WebSocket fails before opening too',
    )
    // Up but refusing does not heal by itself: the next failed poll asks no second probe.
    world.clock.advance(2000)
    world.http.last.reject(new TypeError('Failed to fetch'))
    await settle()
    expect(world.http.requests.filter((request) => request.mode === 'no-cors')).toHaveLength(1)
    expect(world.snapshot.connectionError).toContain('is up but refuses this page')
  })

  it('a no-cors probe that fails too: the backend is down, not refusing', async () => {
    refusedEverywhere('http://127.0.0.1:3020')
    await settle()
    world.http.last.reject(new TypeError('Failed to fetch'))
    await settle()
    expect(world.snapshot.connectionError).toContain('http://localhost:8000 does not answer at all')
    expect(world.snapshot.connectionError).not.toContain('CORS')
  })

  it('the same page origin as the backend: the plain network error, and no probe', async () => {
    refusedEverywhere('http://localhost:8000')
    await settle()
    expect(world.snapshot.connectionError).toBe(`status request to ${STATUS} failed: Failed to fetch`)
    expect(world.http.requests.every((request) => request.mode === 'cors')).toBe(true)
  })

  it('a socket that had opened: the plain network error', async () => {
    refusedEverywhere('http://127.0.0.1:3020', { opened: true })
    await settle()
    expect(world.snapshot.connectionError).not.toContain('CORS')
  })

  it('an HTTP answer (403 readable by the page) is named as such', async () => {
    setup({ maxReconnectAttempts: 0, socketRetryInterval: 0 }, { origin: 'http://127.0.0.1:3020' })
    world.sockets.last.drop()
    world.http.last.respond({ status: 403, body: { error: 'origin not allowed' } })
    await settle()
    expect(world.snapshot.connectionError).toBe(`status endpoint ${STATUS} answered HTTP 403: origin not allowed`)
  })
})

describe('client bounds', () => {
  it('send() counts UTF-8 bytes: 30,000 Korean characters are refused with the sizes', () => {
    setup()
    const socket = live()
    const korean = '가'.repeat(30_000)
    expect(world.channel.send(korean)).toEqual({ ok: false, error: `message is 90000 bytes (UTF-8); the limit is ${MAX_CLIENT_MESSAGE_BYTES}` })
    expect(world.channel.send('가'.repeat(21_845))).toEqual({ ok: true, queued: false })
    expect(world.channel.send('a'.repeat(MAX_CLIENT_MESSAGE_BYTES))).toEqual({ ok: true, queued: false })
    expect(world.channel.send('a'.repeat(MAX_CLIENT_MESSAGE_BYTES + 1)).ok).toBe(false)
    expect(socket.appMessages.map((data) => data.length)).toEqual([21_845, MAX_CLIENT_MESSAGE_BYTES])
  })

  it('a status body past the limit is refused while it streams in: reading stops early and the stream is cancelled', async () => {
    setup({ maxReconnectAttempts: 0, socketRetryInterval: 0 })
    const chunk = new Uint8Array(64 * 1024).fill(0x20)
    let pulled = 0
    let cancelled = false
    // An endless body: only a reader that stops itself ends this.
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++
        controller.enqueue(chunk)
      },
      cancel() {
        cancelled = true
      },
    })
    world.sockets.last.drop()
    world.http.last.respond({ body: '', contentType: 'application/json', stream })
    for (let i = 0; i < 50 && !cancelled; i++) await settle()
    expect(cancelled).toBe(true)
    // 1 MiB limit in 64 KiB chunks: the 17th chunk crosses it (plus the stream's read-ahead).
    expect(pulled).toBeLessThanOrEqual(20)
    expect(world.snapshot.connectionError).toBe(`status endpoint ${STATUS} sent more than 1048576 bytes; the limit is 1048576 bytes`)
  })

  it('a declared Content-Length past the limit is refused before reading', async () => {
    setup({ maxReconnectAttempts: 0, socketRetryInterval: 0 })
    let pulled = 0
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++
        controller.enqueue(new Uint8Array(10))
      },
    })
    world.sockets.last.drop()
    world.http.last.respond({ body: '', stream, headers: { 'content-length': String(5 * 1024 * 1024) } })
    await settle()
    expect(world.snapshot.connectionError).toBe(`status endpoint ${STATUS} sent 5242880 bytes; the limit is 1048576 bytes`)
    expect(pulled).toBeLessThanOrEqual(1)
  })

  it('a streamed body within the limit is read and applied', async () => {
    setup({ maxReconnectAttempts: 0, socketRetryInterval: 0 })
    const bytes = new TextEncoder().encode(JSON.stringify({ project_id: TASK, status: 'running', progress: 0.45, message: '합성 중' }))
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        // Split inside a multi-byte character: the decoder must carry it over.
        const cut = bytes.length - 5
        controller.enqueue(bytes.slice(0, cut))
        controller.enqueue(bytes.slice(cut))
        controller.close()
      },
    })
    world.sockets.last.drop()
    world.http.last.respond({ body: '', stream })
    for (let i = 0; i < 5; i++) await settle()
    expect(world.snapshot).toMatchObject({ progress: 0.45, message: '합성 중', connectionError: null })
  })
})
