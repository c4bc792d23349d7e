import { afterEach, describe, expect, it } from 'vitest'
import type { ServerMessage, TaskOptions, TaskSnapshot } from 'tabcast'
import { Broker, FINISHED_RETENTION_MS, MAX_FOLLOWED_TASKS } from '../../src/core/broker.js'
import type { ChannelEvent } from '../../src/core/task-channel.js'
import { SEND_QUEUE_LIMIT } from '../../src/core/task-channel.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { settle } from '../support/fake-fetch.js'
import type { FakeSocket } from '../support/fake-socket.js'

const TASK = 'audio_generation_12345'
const STREAM = `ws://localhost:8000/api/v1/ws/projects/${TASK}/stream`
const STATUS = `http://localhost:8000/api/v1/projects/${TASK}/status`

interface Follower {
  events: ChannelEvent[]
  readonly snapshot: TaskSnapshot
  readonly snapshots: TaskSnapshot[]
  readonly messages: ServerMessage[]
  unsubscribe: () => void
}

let world: FakeEnv & { broker: Broker }

function setup(): typeof world {
  const env = fakeEnv()
  world = { ...env, broker: new Broker(env.env, { mode: 'shared-worker', modeReason: 'test' }, 'instance-1') }
  return world
}

afterEach(() => world?.broker.close())

function follow(projectId = TASK, options: TaskOptions = {}): Follower {
  const events: ChannelEvent[] = []
  const unsubscribe = world.broker.subscribe(projectId, options, (event) => events.push(event))
  return {
    events,
    unsubscribe,
    get snapshots() {
      return events.flatMap((event) => (event.type === 'snapshot' ? [event.snapshot] : []))
    },
    get snapshot() {
      const last = this.snapshots[this.snapshots.length - 1]
      if (!last) throw new Error('no snapshot yet')
      return last
    },
    get messages() {
      return events.flatMap((event) => (event.type === 'message' ? [event.message] : []))
    },
  }
}

const progress = (value: number, seq?: number, message?: string): ServerMessage => ({
  type: 'progress',
  progress: value,
  ...(seq === undefined ? {} : { seq }),
  ...(message === undefined ? {} : { message }),
})

/** Fails the current socket and every reconnect until the channel polls (default schedule). */
function failUntilPolling(delays = [1000, 2000, 4000, 8000, 16_000]): void {
  const reads = world.http.requests.length
  world.sockets.last.drop()
  for (const delay of delays) {
    const before = world.sockets.count
    world.clock.advance(delay)
    expect(world.sockets.count).toBe(before + 1)
    // The status reads of the backoff steps (task-channel.test.ts tests them) are left out:
    // the tests using this helper count the polls that follow.
    if (delay === delays.at(-1)) world.http.requests.splice(reads)
    world.sockets.last.drop()
  }
}

function openLive(): FakeSocket {
  const socket = world.sockets.last
  socket.open()
  socket.receive({ type: 'connected', project_id: TASK, last_seq: 0 })
  return socket
}

describe('Broker: one connection per task', () => {
  it('opens one socket for many subscribers and fans every message out in order', () => {
    setup()
    const tabs = [follow(), follow(), follow(TASK, { pollingInterval: 500 })]
    expect(world.sockets.count).toBe(1)
    expect(world.sockets.last.url).toBe(STREAM)
    const socket = openLive()
    socket.receive(progress(0.1, 1, 'a'))
    socket.receive(progress(0.5, 2, 'b'))
    socket.receive({ type: 'completed', seq: 3, result: { url: '/out.mp3' } })
    for (const tab of tabs) {
      expect(tab.messages.map((message) => message.type)).toEqual(['connected', 'progress', 'progress', 'completed'])
      expect(tab.messages.map((message) => message.seq ?? null)).toEqual([null, 1, 2, 3])
      expect(tab.snapshot).toMatchObject({ status: 'completed', progress: 1, result: { url: '/out.mp3' }, connection: 'closed', seq: 3 })
    }
    expect(tabs[0]?.snapshot).toBe(tabs[2]?.snapshot)
    expect(socket.closedBy).toEqual({ code: 1000, reason: 'task finished' })
    world.clock.advance(60_000)
    expect(world.sockets.count).toBe(1)
  })

  it('a different task or backend gets its own socket; another spelling of one backend does not', () => {
    setup()
    follow(TASK)
    follow(TASK, { backendUrl: 'http://localhost:8000/' })
    follow('other_task')
    follow(TASK, { backendUrl: 'localhost:9000' })
    // other_task's socket waits for the handshake to the same backend ahead of it (see the next describe).
    world.sockets.all[0]?.open()
    expect(world.sockets.all.map((socket) => socket.url)).toEqual([
      STREAM,
      `ws://localhost:9000/api/v1/ws/projects/${TASK}/stream`,
      'ws://localhost:8000/api/v1/ws/projects/other_task/stream',
    ])
  })

  it('a late subscriber gets the current snapshot at once, with no new socket', () => {
    setup()
    follow()
    const socket = openLive()
    socket.receive(progress(0.4, 1, 'encoding'))
    const late = follow()
    expect(late.events).toHaveLength(1)
    expect(late.snapshot).toMatchObject({ progress: 0.4, message: 'encoding', connection: 'live', isConnected: true, status: 'running' })
    expect(world.sockets.count).toBe(1)
  })

  it('getSnapshot returns one object until something changes', () => {
    setup()
    follow()
    const socket = openLive()
    const first = world.broker.getSnapshot(TASK)
    expect(world.broker.getSnapshot(TASK)).toBe(first)
    socket.receive({ type: 'pong' })
    expect(world.broker.getSnapshot(TASK)).toBe(first)
    socket.receive(progress(0.2, 1))
    expect(world.broker.getSnapshot(TASK)).not.toBe(first)
    expect(world.broker.getSnapshot(TASK).progress).toBe(0.2)
  })

  it('a subscriber whose listener throws does not stop the others', () => {
    setup()
    world.broker.subscribe(TASK, {}, () => {
      throw new Error('listener bug')
    })
    const good = follow()
    openLive().receive(progress(0.3, 1))
    expect(good.snapshot.progress).toBe(0.3)
    expect(good.messages).toHaveLength(2)
  })

  it('the most demanding options win: one subscriber asking for polling gets it for all', () => {
    setup()
    const strict = follow(TASK, { pollingFallback: false, maxReconnectAttempts: 1 })
    const lenient = follow(TASK, { pollingFallback: true, maxReconnectAttempts: 1 })
    world.sockets.last.drop()
    world.clock.advance(1000)
    world.sockets.last.drop()
    expect(strict.snapshot.connection).toBe('polling')
    expect(lenient.snapshot.isFallback).toBe(true)
    expect(world.http.requests).toHaveLength(1)
  })
})

describe('Broker: reconnecting', () => {
  it('reconnects with backoff and ?since=<last seq>, and takes the replay of a server that announces last_seq', async () => {
    setup()
    const tab = follow()
    const socket = openLive()
    socket.receive(progress(0.1, 1))
    socket.receive(progress(0.2, 2))
    socket.receive(progress(0.3, 3))
    socket.drop(1006)
    expect(tab.snapshot).toMatchObject({ connection: 'reconnecting', reconnectAttempts: 1, isConnected: false })
    // The backoff step's status read, left unanswered here.
    expect(world.http.requests).toHaveLength(1)
    expect(tab.snapshot.connectionError).toMatch(/closed \(code 1006\)/)
    world.clock.advance(999)
    expect(world.sockets.count).toBe(1)
    world.clock.advance(1)
    expect(world.sockets.count).toBe(2)
    const again = world.sockets.last
    expect(again.url).toBe(`${STREAM}?since=3`)
    again.open()
    again.receive({ type: 'connected', last_seq: 6 })
    for (const seq of [4, 5, 6]) again.receive(progress(seq / 10, seq, `step ${seq}`))
    await settle()
    expect(tab.messages.filter((m) => m.type === 'progress').map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6])
    expect(tab.snapshot).toMatchObject({ connection: 'live', progress: 0.6, seq: 6, message: 'step 6', connectionError: null })
    // The replay is the gap fill: a status read could overtake it and hide its steps as duplicates.
    expect(world.http.requests).toHaveLength(1)
  })

  it('a server without last_seq (guide-only) gets one status read after a reconnect, on its first message', async () => {
    setup()
    const tab = follow()
    const socket = world.sockets.last
    socket.open()
    socket.receive({ type: 'connected' })
    socket.receive(progress(0.2))
    expect(world.http.requests).toHaveLength(0)
    socket.drop()
    // The backoff step reads the status once; the server has nothing new.
    expect(world.http.requests).toHaveLength(1)
    world.http.last.respond({ body: { project_id: TASK, status: 'running', progress: 0.2 } })
    world.clock.advance(1000)
    expect(world.sockets.last.url).toBe(STREAM)
    world.sockets.last.open()
    expect(world.http.requests).toHaveLength(1)
    world.sockets.last.receive({ type: 'connected' })
    expect(world.http.requests.map((request) => request.url)).toEqual([STATUS, STATUS])
    world.http.last.respond({ body: { project_id: TASK, status: 'running', progress: 0.5, message: 'missed' } })
    await settle()
    expect(tab.snapshot).toMatchObject({ connection: 'live', progress: 0.5, message: 'missed' })
    expect(tab.messages.at(-1)).toEqual({ type: 'progress', project_id: TASK, progress: 0.5, message: 'missed' })
    world.sockets.last.receive(progress(0.6))
    expect(world.http.requests).toHaveLength(2)
  })

  it('a gap fill that fails says nothing and keeps the stream live', async () => {
    setup()
    const tab = follow()
    openLive().drop()
    world.clock.advance(1000)
    world.sockets.last.open()
    world.sockets.last.receive({ type: 'connected' })
    world.http.last.respond({ status: 404, body: 'not found' })
    await settle()
    expect(tab.snapshot).toMatchObject({ connection: 'live', connectionError: null })
  })

  it("a channel seeded from a tab's last snapshot resumes after its seq and never shows less", async () => {
    setup()
    const seed = { ...world.broker.getSnapshot(TASK), status: 'running' as const, progress: 0.7, message: 'seeded', seq: 7 }
    const events: ChannelEvent[] = []
    world.broker.subscribe(TASK, {}, (event) => events.push(event), seed)
    expect(world.sockets.last.url).toBe(`${STREAM}?since=7`)
    expect(world.broker.getSnapshot(TASK)).toMatchObject({ progress: 0.7, message: 'seeded', seq: 7, status: 'running' })
    world.sockets.last.open()
    world.sockets.last.receive({ type: 'connected', last_seq: 8 })
    world.sockets.last.receive(progress(0.8, 8))
    expect(world.broker.getSnapshot(TASK)).toMatchObject({ progress: 0.8, seq: 8 })
    expect(world.http.requests).toHaveLength(0)
  })

  it("a seeded channel takes the seed's epoch, so a server that restarted meanwhile may show less", async () => {
    setup()
    // What the tabs last saw of the old numbering: 90 % at seq 500, epoch "a".
    const seed = { ...world.broker.getSnapshot(TASK), status: 'running' as const, progress: 0.9, seq: 500, epoch: 'a' }
    world.broker.subscribe(TASK, {}, () => {}, seed)
    expect(world.broker.getSnapshot(TASK)).toMatchObject({ progress: 0.9, seq: 500, epoch: 'a' })
    world.sockets.last.open()
    // The job was restarted under a new numbering that is already past the old seq.
    world.sockets.last.receive({ type: 'connected', epoch: 'b', last_seq: 600 })
    expect(world.http.requests.length).toBeGreaterThan(0)
    for (const request of world.http.requests) request.respond({ body: { project_id: TASK, status: 'running', progress: 0.3, seq: 600, epoch: 'b' } })
    await settle()
    expect(world.broker.getSnapshot(TASK)).toMatchObject({ progress: 0.3, seq: 600, epoch: 'b', connection: 'live' })
  })

  it('a server going away (1001) is reconnected to at once', () => {
    setup()
    follow()
    openLive().drop(1001, 'restart')
    world.clock.flush()
    expect(world.sockets.count).toBe(2)
  })

  it('a fatal close fails the task with the reason and never retries', () => {
    setup()
    const tab = follow()
    world.sockets.last.drop(4004, 'task not found')
    expect(tab.snapshot).toMatchObject({ status: 'failed', connection: 'closed', error: 'task not found (close code 4004)' })
    world.clock.advance(120_000)
    expect(world.sockets.count).toBe(1)
    expect(world.http.requests).toHaveLength(0)
  })

  it('a socket constructor that throws counts as a failed attempt', () => {
    setup()
    world.sockets.refuse = new Error('port blocked')
    const tab = follow()
    // Reported on the next turn, like a close.
    world.clock.flush()
    expect(tab.snapshot.connectionError).toContain('could not be created: port blocked')
    expect(tab.snapshot).toMatchObject({ connection: 'reconnecting', reconnectAttempts: 1 })
    world.sockets.refuse = null
    world.clock.advance(1000)
    expect(world.sockets.count).toBe(1)
  })

  it('a socket that never opens times out as a failed attempt', () => {
    setup()
    const tab = follow(TASK, { connectTimeout: 3000 })
    const first = world.sockets.last
    world.clock.advance(3000)
    expect(first.closedBy).toEqual({ code: 1000, reason: 'connect timeout' })
    expect(tab.snapshot).toMatchObject({ connection: 'reconnecting', reconnectAttempts: 1 })
    world.clock.advance(1000)
    expect(world.sockets.count).toBe(2)
  })

  it('online() cuts a long backoff short', () => {
    setup()
    follow()
    failUntilPolling([1000, 2000, 4000])
    expect(world.broker.getSnapshot(TASK)).toMatchObject({ connection: 'reconnecting', reconnectAttempts: 4 })
    const before = world.sockets.count
    world.broker.online()
    expect(world.sockets.count).toBe(before + 1)
    openLive()
    expect(world.broker.getSnapshot(TASK).connection).toBe('live')
  })

  it('events of a replaced socket are ignored', () => {
    setup()
    const tab = follow(TASK, { connectTimeout: 100 })
    const stale = world.sockets.last
    world.clock.advance(100)
    world.clock.advance(1000)
    stale.onmessage?.({ data: JSON.stringify(progress(0.9, 1)) })
    stale.onclose?.({ code: 4004, reason: 'late' })
    expect(tab.snapshot).toMatchObject({ progress: 0, status: 'idle', connection: 'reconnecting' })
  })
})

describe('Broker: keep-alive', () => {
  it('pings every pingInterval and never judges a server that has not answered a pong', () => {
    setup()
    follow(TASK, { pingInterval: 1000, pongTimeout: 500 })
    const socket = openLive()
    world.clock.advance(5000)
    expect(socket.sent.filter((data) => data === '{"type":"ping"}')).toHaveLength(5)
    expect(socket.isClosed).toBe(false)
  })

  it('once a pong was seen, a missing pong closes the dead socket and reconnects', () => {
    setup()
    const tab = follow(TASK, { pingInterval: 1000, pongTimeout: 500 })
    const socket = openLive()
    world.clock.advance(1000)
    socket.receive({ type: 'pong' })
    world.clock.advance(1000)
    expect(socket.sent.filter((data) => data === '{"type":"ping"}')).toHaveLength(2)
    world.clock.advance(499)
    expect(socket.isClosed).toBe(false)
    world.clock.advance(1)
    expect(socket.closedBy).toEqual({ code: 1000, reason: 'no pong' })
    expect(tab.snapshot.connection).toBe('reconnecting')
    world.clock.advance(1000)
    expect(world.sockets.count).toBe(2)
  })

  it('any message in time keeps the connection', () => {
    setup()
    follow(TASK, { pingInterval: 1000, pongTimeout: 500 })
    const socket = openLive()
    world.clock.advance(1000)
    socket.receive({ type: 'pong' })
    for (let i = 1; i <= 5; i++) {
      world.clock.advance(1000)
      socket.receive(progress(i / 10, i))
    }
    expect(socket.isClosed).toBe(false)
  })
})

describe('Broker: polling fallback', () => {
  it('after the 5th failed reconnect it polls with one poller for all subscribers, and stops on a terminal status', async () => {
    setup()
    const tabs = [follow(), follow(), follow()]
    failUntilPolling()
    expect(world.sockets.count).toBe(6)
    for (const tab of tabs) expect(tab.snapshot).toMatchObject({ connection: 'polling', isFallback: true, reconnectAttempts: 5 })
    expect(world.http.requests.map((request) => request.url)).toEqual([STATUS])
    world.http.last.respond({ body: { project_id: TASK, status: 'running', progress: 0.3, message: 'rendering' } })
    await settle()
    for (const tab of tabs) {
      expect(tab.snapshot).toMatchObject({ progress: 0.3, message: 'rendering', status: 'running' })
      expect(tab.messages).toEqual([{ type: 'progress', project_id: TASK, progress: 0.3, message: 'rendering' }])
    }
    world.clock.advance(1999)
    expect(world.http.requests).toHaveLength(1)
    world.clock.advance(1)
    expect(world.http.requests).toHaveLength(2)
    world.http.last.respond({ body: { project_id: TASK, status: 'completed', result: { url: '/a.wav' } } })
    await settle()
    for (const tab of tabs) expect(tab.snapshot).toMatchObject({ status: 'completed', progress: 1, connection: 'closed', result: { url: '/a.wav' } })
    world.clock.advance(120_000)
    expect(world.http.requests).toHaveLength(2)
    expect(world.sockets.count).toBe(6)
  })

  it('a failed status stops polling too', async () => {
    setup()
    const tab = follow()
    failUntilPolling()
    world.http.last.respond({ body: { status: 'failed', error: 'GPU lost' } })
    await settle()
    expect(tab.snapshot).toMatchObject({ status: 'failed', error: 'GPU lost', connection: 'closed' })
    expect(tab.messages).toEqual([{ type: 'error', project_id: '', error: 'GPU lost' }])
    world.clock.advance(60_000)
    expect(world.http.requests).toHaveLength(1)
  })

  it.each([
    ['a 404', { status: 404, body: { detail: 'Task not found' } }, /HTTP 404: Task not found/],
    ['a 500', { status: 500, body: 'Internal Server Error' }, /HTTP 500/],
    ['a 502 HTML page', { status: 502, body: '<html>Bad Gateway</html>', contentType: 'text/html' }, /HTTP 502 \(an HTML page\)/],
    ['an HTML body with 200', { body: '<!doctype html><html></html>', contentType: 'text/html' }, /HTML page, not JSON/],
    ['invalid JSON', { body: '{"status": "runn', contentType: 'application/json' }, /not valid JSON/],
    ['a body that fails validation', { body: { status: 'running', progress: 3 } }, /progress must be between 0 and 1, got 3/],
  ])('%s becomes a connectionError naming the problem while polling continues', async (_name, reply, pattern) => {
    setup()
    const tab = follow(TASK, { socketRetryInterval: 0 })
    failUntilPolling()
    world.http.last.respond(reply)
    await settle()
    expect(tab.snapshot.connectionError).toMatch(pattern)
    expect(tab.snapshot.connectionError).toContain(STATUS)
    expect(tab.snapshot).toMatchObject({ status: 'idle', connection: 'polling', error: null })
    world.clock.advance(2000)
    expect(world.http.requests).toHaveLength(2)
    world.http.last.respond({ body: { status: 'running', progress: 0.2 } })
    await settle()
    expect(tab.snapshot).toMatchObject({ connectionError: null, progress: 0.2 })
  })

  it('a network error becomes a connectionError while polling continues', async () => {
    setup()
    const tab = follow(TASK, { socketRetryInterval: 0 })
    failUntilPolling()
    world.http.last.reject(new TypeError('fetch failed'))
    await settle()
    expect(tab.snapshot.connectionError).toBe(`status request to ${STATUS} failed: fetch failed`)
    world.clock.advance(2000)
    expect(world.http.requests).toHaveLength(2)
  })

  it('a request that never answers times out after requestTimeout and polling continues', async () => {
    setup()
    const tab = follow(TASK, { socketRetryInterval: 0, requestTimeout: 5000 })
    failUntilPolling()
    const hanging = world.http.last
    world.clock.advance(4999)
    await settle()
    expect(hanging.signal.aborted).toBe(false)
    world.clock.advance(1)
    await settle()
    expect(hanging.signal.aborted).toBe(true)
    expect(tab.snapshot.connectionError).toBe(`status endpoint ${STATUS} did not answer within 5000 ms`)
    world.clock.advance(2000)
    expect(world.http.requests).toHaveLength(2)
  })

  it('while polling it probes the socket now and then and stops polling once it opens', async () => {
    setup()
    const tab = follow(TASK, { socketRetryInterval: 10_000 })
    failUntilPolling()
    world.http.auto = (request) => request.respond({ body: { status: 'running', progress: 0.1 } })
    world.http.last.respond({ body: { status: 'running', progress: 0.1 } })
    await settle()
    // A probe that fails: polling goes on.
    for (let t = 0; t < 10_000; t += 2000) {
      world.clock.advance(2000)
      await settle()
    }
    expect(world.sockets.count).toBe(7)
    world.sockets.last.drop()
    expect(tab.snapshot.connection).toBe('polling')
    const polls = world.http.requests.length
    world.clock.advance(2000)
    await settle()
    expect(world.http.requests.length).toBe(polls + 1)
    // The next probe opens: live again, and no more polls.
    for (let t = 0; t < 8000; t += 2000) {
      world.clock.advance(2000)
      await settle()
    }
    expect(world.sockets.count).toBe(8)
    world.sockets.last.open()
    await settle()
    expect(tab.snapshot).toMatchObject({ connection: 'live', isFallback: false })
    const afterOpen = world.http.requests.length
    world.clock.advance(20_000)
    await settle()
    expect(world.http.requests.length).toBe(afterOpen)
    expect(world.sockets.last.url).toBe(STREAM)
  })

  it('gives up without polling when pollingFallback is off', () => {
    setup()
    const tab = follow(TASK, { pollingFallback: false })
    failUntilPolling()
    expect(tab.snapshot).toMatchObject({ connection: 'closed', status: 'idle', connectionError: 'gave up after 5 reconnect attempts' })
    world.clock.advance(120_000)
    expect(world.http.requests).toHaveLength(0)
    expect(world.sockets.count).toBe(6)
  })
})

describe('Broker: bad server messages', () => {
  it.each([
    ['malformed JSON', '{"type":"progress",', /not valid JSON/],
    ['progress 7', '{"type":"progress","progress":7}', /progress must be between 0 and 1, got 7/],
    ['an HTML page', '<html>oops</html>', /looks like HTML/],
  ])('%s becomes a connectionError and does not kill the channel or other tasks', (_name, frame, pattern) => {
    setup()
    const tab = follow()
    const other = follow('other_task')
    const socket = world.sockets.all[0]
    socket?.open()
    const otherSocket = world.sockets.all[1]
    if (!socket || !otherSocket) throw new Error('two sockets expected')
    otherSocket.open()
    socket.receive(progress(0.2, 1))
    socket.receive(frame)
    expect(tab.snapshot.connectionError).toMatch(pattern)
    expect(tab.snapshot.connectionError).toContain('ignored a bad message')
    expect(tab.snapshot).toMatchObject({ connection: 'live', progress: 0.2, status: 'running' })
    expect(tab.messages).toHaveLength(1)
    expect(socket.isClosed).toBe(false)
    socket.receive(progress(0.4, 2))
    expect(tab.snapshot).toMatchObject({ progress: 0.4, connectionError: null })
    otherSocket.receive(progress(0.9, 1))
    expect(other.snapshot).toMatchObject({ progress: 0.9, connectionError: null })
  })

  it('a message of an unknown type reaches every subscriber and leaves the task alone', () => {
    setup()
    const tab = follow()
    const socket = openLive()
    socket.receive(progress(0.2, 1))
    const before = tab.snapshot
    socket.receive({ type: 'launch_missiles', project_id: TASK, seq: 9, progress: 0.9, payload: { n: 1 } })
    expect(tab.messages.at(-1)).toEqual({ type: 'launch_missiles', project_id: TASK, seq: 9, progress: 0.9, payload: { n: 1 } })
    expect(tab.snapshot).toBe(before)
    socket.receive(progress(0.3, 2))
    expect(tab.snapshot).toMatchObject({ progress: 0.3, seq: 2, connectionError: null })
  })

  it('a connection-scoped error from the server does not fail the task', () => {
    setup()
    const tab = follow()
    const socket = openLive()
    socket.receive({ type: 'error', error: 'rate limited', details: { scope: 'connection', code: 'rate_limited' } })
    expect(tab.snapshot).toMatchObject({ status: 'idle', error: null, connectionError: 'rate limited', connection: 'live' })
    expect(socket.isClosed).toBe(false)
  })
})

describe('Broker: send()', () => {
  it('sends at once while live', () => {
    setup()
    follow()
    const socket = openLive()
    expect(world.broker.send(TASK, {}, { action: 'cancel' })).toEqual({ ok: true, queued: false })
    expect(socket.appMessages).toEqual(['{"action":"cancel"}'])
  })

  it('queues while down (bounded) and flushes in order when the socket opens', () => {
    setup()
    follow()
    for (let i = 0; i < SEND_QUEUE_LIMIT; i++) expect(world.broker.send(TASK, {}, { n: i })).toEqual({ ok: true, queued: true })
    const full = world.broker.send(TASK, {}, { n: 'overflow' })
    expect(full.ok).toBe(false)
    expect(!full.ok && full.error).toMatch(/send queue is full \(100 messages/)
    expect(world.broker.stats().tasks[0]?.queued).toBe(SEND_QUEUE_LIMIT)
    const socket = world.sockets.last
    socket.open()
    expect(socket.appMessages).toEqual(Array.from({ length: SEND_QUEUE_LIMIT }, (_, i) => JSON.stringify({ n: i })))
    expect(world.broker.stats().tasks[0]?.queued).toBe(0)
  })

  it('flushes what was queued during a reconnect on the new socket, in order', () => {
    setup()
    follow()
    const first = openLive()
    first.drop()
    world.broker.send(TASK, {}, 'one')
    world.broker.send(TASK, {}, { two: 2 })
    world.clock.advance(1000)
    const second = world.sockets.last
    expect(second).not.toBe(first)
    second.open()
    expect(second.appMessages).toEqual(['one', '{"two":2}'])
    expect(first.appMessages).toEqual([])
  })

  it('refuses to send for a task nobody follows, an invalid target, a finished task, or an oversized message', () => {
    setup()
    expect(world.broker.send(TASK, {}, 'x')).toEqual({ ok: false, error: expect.stringContaining('subscribe before sending') })
    expect(world.broker.send('../x', {}, 'x')).toEqual({ ok: false, error: expect.stringContaining('"../x"') })
    follow()
    const big = world.broker.send(TASK, {}, 'x'.repeat(70_000))
    expect(!big.ok && big.error).toMatch(/the limit is 65536/)
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    expect(world.broker.send(TASK, {}, cyclic).ok).toBe(false)
    const socket = openLive()
    socket.receive({ type: 'completed', seq: 1 })
    expect(world.broker.send(TASK, {}, 'late')).toEqual({ ok: false, error: expect.stringContaining('no longer followed') })
  })
})

describe('Broker: linger and release', () => {
  it('closes the socket linger ms after the last subscriber leaves', () => {
    setup()
    const a = follow()
    const b = follow()
    const socket = openLive()
    a.unsubscribe()
    b.unsubscribe()
    b.unsubscribe()
    world.clock.advance(2999)
    expect(socket.isClosed).toBe(false)
    world.clock.advance(1)
    expect(socket.closedBy).toEqual({ code: 1000, reason: 'no subscribers' })
    expect(world.broker.stats().tasks).toHaveLength(0)
    world.clock.advance(60_000)
    expect(world.sockets.count).toBe(1)
  })

  it('a resubscribe within the linger reuses the socket and its state', () => {
    setup()
    const a = follow(TASK, { linger: 500 })
    const socket = openLive()
    socket.receive(progress(0.7, 4))
    a.unsubscribe()
    world.clock.advance(400)
    const b = follow()
    expect(b.snapshot).toMatchObject({ progress: 0.7, connection: 'live' })
    world.clock.advance(10_000)
    expect(socket.isClosed).toBe(false)
    expect(world.sockets.count).toBe(1)
  })

  it.each([
    ['the first to leave', 5000, 100],
    ['the last to leave', 100, 5000],
  ])('the longest linger any subscriber asked for applies, when it is %s', (_who, first, second) => {
    setup()
    const a = follow(TASK, { linger: first })
    const b = follow(TASK, { linger: second })
    const socket = openLive()
    a.unsubscribe()
    b.unsubscribe()
    world.clock.advance(4999)
    expect(socket.isClosed).toBe(false)
    world.clock.advance(1)
    expect(socket.isClosed).toBe(true)
  })

  it('linger 0 closes at once', () => {
    setup()
    const a = follow(TASK, { linger: 0 })
    const socket = openLive()
    a.unsubscribe()
    expect(socket.isClosed).toBe(true)
  })

  it('a stopped channel tells nobody anything and opens nothing more', async () => {
    setup()
    const a = follow(TASK, { linger: 0 })
    failUntilPolling([1000])
    a.unsubscribe()
    const seen = a.events.length
    world.clock.advance(60_000)
    await settle()
    expect(a.events).toHaveLength(seen)
    expect(world.sockets.count).toBe(2)
    expect(world.http.requests).toHaveLength(0)
  })

  it('keeps a finished task for late joiners without a socket', () => {
    setup()
    const a = follow()
    openLive().receive({ type: 'completed', seq: 2, result: { ok: true } })
    a.unsubscribe()
    world.clock.advance(FINISHED_RETENTION_MS - 1)
    const late = follow()
    expect(late.snapshot).toMatchObject({ status: 'completed', result: { ok: true } })
    expect(world.sockets.count).toBe(1)
  })
})

describe('Broker: one handshake at a time per backend', () => {
  const urlOf = (task: string): string => `ws://localhost:8000/api/v1/ws/projects/${task}/stream`

  it('a task whose upgrade is never answered does not time out the others on its backend', () => {
    setup()
    follow('hangs', { connectTimeout: 10_000 })
    const ok = follow('ok', { connectTimeout: 10_000 })
    follow(TASK, { backendUrl: 'localhost:9000' })
    // Browsers hold a second handshake to one host in CONNECTING; tabcast does not start it yet.
    expect(world.sockets.all.map((socket) => socket.url)).toEqual([urlOf('hangs'), `ws://localhost:9000/api/v1/ws/projects/${TASK}/stream`])
    world.clock.advance(10_000)
    // The hanging attempt timed out; only now does ok's socket exist, and its own 10 s start now.
    const okSocket = world.sockets.last
    expect(okSocket.url).toBe(urlOf('ok'))
    world.clock.advance(9_999)
    expect(okSocket.closedBy).toBeNull()
    okSocket.open()
    expect(ok.snapshot).toMatchObject({ connection: 'live', reconnectAttempts: 0 })
  })

  it('an attempt that leaves while it waits gives its turn to the next', () => {
    setup()
    follow('first')
    const leaving = follow('leaving', { linger: 0 })
    follow('third')
    leaving.unsubscribe()
    world.sockets.last.open()
    expect(world.sockets.all.map((socket) => socket.url)).toEqual([urlOf('first'), urlOf('third')])
  })
})

describe('Broker: the bound on followed tasks', () => {
  it(`follows at most ${MAX_FOLLOWED_TASKS} unfinished tasks; past it a subscription is told why and opens nothing`, () => {
    setup()
    const followers = Array.from({ length: MAX_FOLLOWED_TASKS }, (_, i) => follow(`task_${i}`))
    const followed = (): string[] => world.broker.stats().tasks.map((task) => task.projectId)
    expect(followed()).toHaveLength(MAX_FOLLOWED_TASKS)
    const refused = follow('one_too_many')
    expect(followed()).toHaveLength(MAX_FOLLOWED_TASKS)
    expect(followed()).not.toContain('one_too_many')
    expect(refused.snapshot).toMatchObject({ status: 'idle', connection: 'closed', isConnected: false })
    expect(refused.snapshot.connectionError).toBe(
      `tabcast follows ${MAX_FOLLOWED_TASKS} tasks here already (the limit): task one_too_many is not followed; stop following another, then subscribe again`,
    )
    // The tasks already followed are untouched, and a second subscriber of one of them is welcome.
    expect(follow('task_0').snapshot.connection).toBe('connecting')
    followers[0]?.unsubscribe()
    followers[1]?.unsubscribe()
  })

  it('a lingering task makes room for a new one; a finished one does not count', () => {
    setup()
    const followers = Array.from({ length: MAX_FOLLOWED_TASKS }, (_, i) => follow(`task_${i}`))
    // task_0 finishes: it holds no socket, so it leaves room at once.
    world.sockets.all[0]?.open()
    world.sockets.all[0]?.receive({ type: 'completed', seq: 1, result: {} })
    expect(follow('first_extra').snapshot.connectionError).toBeNull()
    // Full again; task_1's last subscriber leaves and the task lingers: it is closed to make room.
    followers[1]?.unsubscribe()
    const lingering = world.sockets.all[1]
    expect(lingering?.closedBy).toBeNull()
    expect(follow('second_extra').snapshot.connectionError).toBeNull()
    expect(lingering?.closedBy).not.toBeNull()
    expect(follow('third_extra').snapshot.connection).toBe('closed')
  })
})

describe('Broker: invalid targets', () => {
  it('an invalid task id gives a failed snapshot with the reason and opens nothing', () => {
    setup()
    const tab = follow('../etc/passwd')
    expect(tab.snapshot).toMatchObject({ status: 'failed', connection: 'closed', isConnected: false })
    expect(tab.snapshot.error).toContain('"../etc/passwd"')
    expect(tab.snapshot.connectionError).toBe(tab.snapshot.error)
    expect(world.sockets.count).toBe(0)
    expect(world.broker.getSnapshot('../etc/passwd')).toBe(tab.snapshot)
    tab.unsubscribe()
  })

  it('an invalid backend gives a failed snapshot with the reason and opens nothing', () => {
    setup()
    const tab = follow(TASK, { backendUrl: 'ftp://files.example.com' })
    expect(tab.snapshot.error).toContain('scheme "ftp"')
    expect(world.sockets.count).toBe(0)
    expect(world.http.requests).toHaveLength(0)
  })

  it('a secure page turns host:port into wss', () => {
    const env = fakeEnv({ secure: true })
    world = { ...env, broker: new Broker(env.env, { mode: 'per-tab', modeReason: 'test' }) }
    follow(TASK, { backendUrl: 'api.example.com' })
    expect(world.sockets.last.url).toBe(`wss://api.example.com/api/v1/ws/projects/${TASK}/stream`)
  })

  it('task ids are URL-encoded in the socket URL', () => {
    setup()
    follow('job:42~a')
    expect(world.sockets.last.url).toBe('ws://localhost:8000/api/v1/ws/projects/job%3A42~a/stream')
  })
})

describe('Broker: stats and close', () => {
  it('reports transports, subscribers and message counts', async () => {
    setup()
    follow()
    follow()
    const socket = openLive()
    socket.receive(progress(0.1, 1))
    world.broker.send(TASK, {}, 'x')
    expect(world.broker.stats()).toMatchObject({
      mode: 'shared-worker',
      modeReason: 'test',
      instanceId: 'instance-1',
      sockets: 1,
      pollers: 0,
      tasks: [{ projectId: TASK, connection: 'live', transport: 'websocket', subscribers: 2, messagesIn: 2, messagesOut: 1, seq: 1 }],
    })
    failUntilPolling([1000, 2000, 4000, 8000])
    world.clock.advance(16_000)
    world.sockets.last.drop()
    await settle()
    expect(world.broker.stats()).toMatchObject({ sockets: 0, pollers: 1, tasks: [{ transport: 'polling', reconnectAttempts: 5 }] })
  })

  it('close() stops every socket, timer and request', async () => {
    setup()
    follow()
    follow('other_task')
    world.sockets.all[0]?.open()
    world.broker.close()
    expect(world.sockets.openSockets).toHaveLength(0)
    expect(world.clock.pendingCount).toBe(0)
    await settle()
  })
})
