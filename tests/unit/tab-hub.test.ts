import { afterEach, describe, expect, it } from 'vitest'
import type { ServerMessage } from 'tabcast'
import { Broker } from '../../src/core/broker.js'
import { isBatch, type Batch, type HostRequest, type HostToTab, type WireEvent } from '../../src/core/session-protocol.js'
import { LOCK_REPORT_TIMEOUT, MAX_IN_FLIGHT, MAX_SUBSCRIPTIONS_PER_TAB, OUTBOX_LIMIT, TabHub, type TabSession } from '../../src/core/tab-hub.js'
import { FRAME_MS } from '../../src/core/delivery.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { settle } from '../support/fake-fetch.js'

const TASK = 'render_1'
/** The socket the broker opened for `task`. */
function socketOf(task: string) {
  const socket = world.sockets.all.find((candidate) => candidate.url.includes(`/projects/${task}/stream`))
  if (!socket) throw new Error(`no socket for ${task}`)
  return socket
}
const OTHER = 'render_2'

interface Tab {
  session: TabSession
  batches: Batch[]
  requests: HostRequest[]
  readonly events: WireEvent[]
  ackAll(): void
}

let world: FakeEnv & { broker: Broker; hub: TabHub; gone: Map<string, () => void> }

function setup(): void {
  const env = fakeEnv()
  const broker = new Broker(env.env, { mode: 'shared-worker', modeReason: 'test' }, 'worker-1')
  const gone = new Map<string, () => void>()
  world = { ...env, broker, gone, hub: new TabHub(broker, (tabId, onGone) => gone.set(tabId, onGone)) }
}

afterEach(() => world?.hub.close())

/** A tab registers and (unless `locked` is false) reports its tab lock held, as a tab client does right after hello. */
function attach(tabId: string, post?: (message: HostToTab) => void, locked = true): Tab {
  const batches: Batch[] = []
  const requests: HostRequest[] = []
  const record = (message: HostToTab): void => {
    if (isBatch(message)) batches.push(message)
    else requests.push(message)
  }
  const session = world.hub.attach(tabId, post ?? record)
  if (locked) world.hub.lockHeld(session)
  let acked = 0
  return {
    session,
    batches,
    requests,
    get events() {
      return batches.flatMap((batch) => batch.events)
    },
    ackAll() {
      for (const batch of batches.slice(acked)) session.ack(batch.id)
      acked = batches.length
    },
  }
}

const progress = (seq: number): ServerMessage => ({ type: 'progress', progress: Math.min(1, seq / 1000), seq })

function messagesOf(events: WireEvent[]): ServerMessage[] {
  return events.flatMap((event) => (event.type === 'message' ? [event.message] : []))
}

function snapshotsOf(events: WireEvent[]) {
  return events.flatMap((event) => (event.type === 'snapshot' ? [event.snapshot] : []))
}

describe('TabSession: batches', () => {
  it('posts the current snapshot of a new subscription in a batch stamped with the instance id', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(7, TASK, {})
    expect(tab.batches).toHaveLength(0)
    await settle()
    expect(tab.batches).toEqual([
      { type: 'batch', id: 1, instanceId: 'worker-1', events: [{ sub: 7, type: 'snapshot', snapshot: world.broker.getSnapshot(TASK) }] },
    ])
  })

  it('the events of one socket message leave in one batch: messages first, then the newest snapshot', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, {})
    await settle()
    tab.ackAll()
    world.sockets.last.open()
    world.sockets.last.receive(progress(100))
    await settle()
    expect(tab.batches).toHaveLength(2)
    expect(tab.batches[1]?.events.map((event) => event.type)).toEqual(['message', 'snapshot'])
    expect(snapshotsOf(tab.batches[1]?.events ?? [])[0]).toMatchObject({ progress: 0.1, connection: 'live' })
  })

  it('subscribing is idempotent per subId', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, {})
    tab.session.subscribe(1, TASK, {})
    await settle()
    expect(world.broker.stats().tasks[0]?.subscribers).toBe(1)
    expect(tab.events).toHaveLength(1)
  })
})

describe('TabSession: backpressure', () => {
  it('with acks withheld, at most MAX_IN_FLIGHT batches go out; the rest leave in order on ack', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, {})
    await settle()
    const socket = world.sockets.last
    socket.open()
    for (let seq = 1; seq <= 10; seq++) {
      socket.receive(progress(seq))
      await settle()
    }
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT)
    expect(tab.session.stats().backlog).toBeGreaterThan(0)
    const firstBatch = tab.batches[0]
    if (!firstBatch) throw new Error('no batch')
    tab.session.ack(firstBatch.id)
    await settle()
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT + 1)
    // Every message, once, in order; each batch ends with at most one snapshot per subscription.
    expect(messagesOf(tab.events).map((message) => message.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    const last = tab.batches[MAX_IN_FLIGHT]?.events ?? []
    expect(snapshotsOf(last)).toHaveLength(1)
    expect(snapshotsOf(last)[0]).toMatchObject({ progress: 0.01, seq: 10 })
    expect(tab.session.stats().backlog).toBe(0)
  })

  it("a new subscription's first state is not held behind a full in-flight window (a late join's tasks)", async () => {
    setup()
    const tab = attach('tab-1')
    const tasks = Array.from({ length: MAX_IN_FLIGHT + 2 }, (_, i) => `render_join_${i}`)
    // One subscribe per call, as a joining tab sends them; the tab acknowledges nothing yet.
    for (const [index, task] of tasks.entries()) {
      tab.session.subscribe(index + 1, task, {}, undefined)
      await settle()
    }
    expect(snapshotsOf(tab.events).map((snapshot) => snapshot.projectId)).toEqual(tasks)
    // The stream itself still waits for acknowledgements, past MAX_IN_FLIGHT plus one per extra subscription.
    const socket = socketOf(tasks[0] as string)
    socket.open()
    for (let seq = 1; seq <= 10; seq++) {
      socket.receive(progress(seq))
      await settle()
    }
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT + tasks.length - 1)
  })

  it('a subscription made while the window is over its limit (after an unsubscribe) still gets its first state at once', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, {})
    tab.session.subscribe(2, OTHER, {})
    await settle()
    const socket = socketOf(TASK)
    socket.open()
    for (let seq = 1; seq <= 10; seq++) {
      socket.receive(progress(seq))
      await settle()
    }
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT + 1)
    // Two subscriptions' worth in flight, now one subscription's limit; then a new task.
    tab.session.unsubscribe(2)
    tab.session.subscribe(3, 'render_3', {})
    await settle()
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT + 2)
    expect(tab.batches.at(-1)?.events).toEqual([{ sub: 3, type: 'snapshot', snapshot: world.broker.getSnapshot('render_3') }])
  })

  it('tasks that report at the same moment each get their state to a tab without waiting for its acknowledgements', async () => {
    setup()
    const tab = attach('tab-1')
    const tasks = Array.from({ length: MAX_IN_FLIGHT + 2 }, (_, i) => `render_tick_${i}`)
    for (const [index, task] of tasks.entries()) tab.session.subscribe(index + 1, task, { delivery: 'snapshots' })
    await settle()
    tab.ackAll()
    const sockets = tasks.map((task) => {
      const socket = socketOf(task)
      socket.open()
      return socket
    })
    await settle()
    tab.ackAll()
    // A frame later, so no snapshot-only subscription is paced.
    world.clock.advance(FRAME_MS)
    const before = tab.batches.length
    // One tick of a backend that reports all its jobs at once: one socket message per
    // task, each its own batch; the tab is busy and acknowledges none of them yet.
    for (const socket of sockets) {
      socket.receive(progress(500))
      await settle()
    }
    const sent = snapshotsOf(tab.batches.slice(before).flatMap((batch) => batch.events))
    expect(sent.map((snapshot) => [snapshot.projectId, snapshot.progress])).toEqual(tasks.map((task) => [task, 0.5]))
  })

  /** A tab following TASK that received `count` progress messages and acknowledged none. */
  async function tabWithoutAcks(count: number): Promise<ReturnType<typeof attach>> {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, {})
    await settle()
    world.sockets.last.open()
    for (let seq = 1; seq <= count; seq++) {
      world.sockets.last.receive(progress(seq))
      await settle()
    }
    return tab
  }

  it('an ack for a batch never sent is ignored', async () => {
    const tab = await tabWithoutAcks(6)
    tab.session.ack(99)
    await settle()
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT)
  })

  it('a repeated ack frees one place only', async () => {
    const tab = await tabWithoutAcks(8)
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT)
    const first = tab.batches[0]!.id
    tab.session.ack(first)
    tab.session.ack(first)
    tab.session.ack(first)
    await settle()
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT + 1)
  })

  it('past OUTBOX_LIMIT the oldest progress is dropped, never connected, error or completed; snapshots coalesce', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, {})
    await settle()
    const socket = world.sockets.last
    socket.open()
    for (let seq = 1; seq < MAX_IN_FLIGHT; seq++) {
      socket.receive(progress(seq))
      await settle()
    }
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT)

    // The tab is stuck. A second task starts (its subscription brings one more batch in
    // flight: its first state), connects and fails while the first floods.
    tab.session.subscribe(2, OTHER, {})
    await settle()
    expect(tab.batches).toHaveLength(MAX_IN_FLIGHT + 1)
    const sentBefore = tab.events.length
    const other = world.sockets.last
    other.open()
    other.receive({ type: 'connected', project_id: OTHER, last_seq: 0 })
    const flood = 600
    for (let seq = MAX_IN_FLIGHT; seq < MAX_IN_FLIGHT + flood; seq++) socket.receive(progress(seq))
    other.receive({ type: 'error', error: 'out of memory', seq: 1 })
    socket.receive({ type: 'completed', seq: MAX_IN_FLIGHT + flood, result: { url: '/x' } })
    await settle()
    // OUTBOX_LIMIT progress steps, the three kept messages and both tasks' snapshots.
    expect(tab.session.stats().backlog).toBe(OUTBOX_LIMIT + 3 + 2)

    tab.ackAll()
    await settle()
    const delivered = tab.events.slice(sentBefore)
    const messages = delivered.filter((event) => event.type === 'message')
    expect(messages).toHaveLength(OUTBOX_LIMIT + 3)
    const kinds = messages.map((event) => (event.type === 'message' ? `${event.sub}:${event.message.type}` : ''))
    expect(kinds[0]).toBe('2:connected')
    expect(kinds).toContain('2:error')
    expect(kinds[kinds.length - 1]).toBe('1:completed')
    const progressSeqs = messagesOf(messages).filter((message) => message.type === 'progress').map((message) => message.seq ?? 0)
    // The newest progress steps survive, still in order.
    expect(progressSeqs).toHaveLength(OUTBOX_LIMIT)
    expect(progressSeqs[progressSeqs.length - 1]).toBe(MAX_IN_FLIGHT + flood - 1)
    expect(progressSeqs).toEqual([...progressSeqs].sort((a, b) => a - b))
    // One snapshot per subscription, the newest.
    const snapshots = delivered.filter((event) => event.type === 'snapshot')
    expect(snapshots.map((event) => event.sub).sort()).toEqual([1, 2])
    expect(snapshots.find((event) => event.sub === 1)).toMatchObject({ snapshot: { status: 'completed', result: { url: '/x' } } })
    expect(snapshots.find((event) => event.sub === 2)).toMatchObject({ snapshot: { status: 'failed', error: 'out of memory' } })
  })

  it('suspend holds events until resume, then sends the newest state', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, {})
    await settle()
    tab.session.suspend()
    world.sockets.last.open()
    world.sockets.last.receive(progress(500))
    await settle()
    expect(tab.batches).toHaveLength(1)
    tab.session.resume()
    await settle()
    expect(tab.batches).toHaveLength(2)
    expect(snapshotsOf(tab.batches[1]?.events ?? [])[0]).toMatchObject({ progress: 0.5 })
  })
})

describe('TabSession: the bound on subscriptions', () => {
  it(`a tab holds at most ${MAX_SUBSCRIPTIONS_PER_TAB} subscriptions; the next is told why and the broker never hears of it`, async () => {
    setup()
    const tab = attach('tab-1')
    for (let subId = 1; subId <= MAX_SUBSCRIPTIONS_PER_TAB; subId++) tab.session.subscribe(subId, TASK, {})
    tab.session.subscribe(MAX_SUBSCRIPTIONS_PER_TAB + 1, OTHER, {})
    await settle()
    world.clock.advance(FRAME_MS)
    tab.ackAll()
    await settle()
    const refused = tab.batches.flatMap((batch) => batch.events).find((event) => event.sub === MAX_SUBSCRIPTIONS_PER_TAB + 1)
    expect(refused).toMatchObject({ type: 'snapshot', snapshot: { projectId: OTHER, status: 'idle', connection: 'closed' } })
    expect(refused?.type === 'snapshot' ? refused.snapshot.connectionError : null).toBe(
      `this tab holds ${MAX_SUBSCRIPTIONS_PER_TAB} tabcast subscriptions already (the limit): task ${OTHER} is not followed`,
    )
    expect(world.sockets.all.some((socket) => socket.url.includes(OTHER))).toBe(false)
    // Room again after an unsubscribe.
    tab.session.unsubscribe(1)
    tab.session.unsubscribe(MAX_SUBSCRIPTIONS_PER_TAB + 1)
    tab.session.subscribe(MAX_SUBSCRIPTIONS_PER_TAB + 2, OTHER, {})
    socketOf(TASK).open()
    expect(socketOf(OTHER)).toBeDefined()
  })
})

describe('TabSession: release', () => {
  it('a dead tab (its lock granted to the host) is released: subscriptions gone, socket closes after the linger', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, { linger: 200 })
    tab.session.subscribe(2, OTHER, { linger: 200 })
    await settle()
    // One handshake to a backend at a time: OTHER's socket comes once TASK's is open.
    socketOf(TASK).open()
    expect(world.sockets.count).toBe(2)
    world.gone.get('tab-1')?.()
    expect(tab.session.isReleased).toBe(true)
    expect(world.hub.stats().tabs).toBe(0)
    expect(world.broker.stats().tasks.map((task) => task.subscribers)).toEqual([0, 0])
    world.clock.advance(199)
    expect(world.sockets.openSockets).toHaveLength(2)
    world.clock.advance(1)
    expect(world.sockets.openSockets).toHaveLength(0)
  })

  it('releasing one tab leaves the others following, on the same socket', async () => {
    setup()
    const a = attach('tab-a')
    const b = attach('tab-b')
    a.session.subscribe(1, TASK, { linger: 200 })
    b.session.subscribe(1, TASK, { linger: 200 })
    await settle()
    const socket = world.sockets.last
    socket.open()
    world.gone.get('tab-a')?.()
    world.clock.advance(10_000)
    expect(world.sockets.count).toBe(1)
    expect(socket.isClosed).toBe(false)
    socket.receive(progress(300))
    await settle()
    expect(messagesOf(b.events)).toHaveLength(1)
    expect(a.batches).toHaveLength(1)
    expect(world.hub.stats()).toMatchObject({ tabs: 1, tabDetails: [{ tabId: 'tab-b', subscriptions: 1 }] })
  })

  it('a released session ignores new subscriptions', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.release()
    tab.session.subscribe(1, TASK, {})
    await settle()
    expect(world.sockets.count).toBe(0)
    expect(tab.batches).toHaveLength(0)
  })

  it('unsubscribe drops one subscription and its pending events', async () => {
    setup()
    const tab = attach('tab-1')
    tab.session.subscribe(1, TASK, { linger: 0 })
    tab.session.subscribe(2, OTHER, {})
    tab.session.unsubscribe(1)
    await settle()
    expect(tab.events.map((event) => event.sub)).toEqual([2])
    expect(world.sockets.all[0]?.isClosed).toBe(true)
    expect(tab.session.stats().subscriptions).toBe(1)
  })

  it('a tab whose port cannot post any more is released', async () => {
    setup()
    const tab = attach('tab-1', () => {
      throw new Error('port closed')
    })
    tab.session.subscribe(1, TASK, { linger: 0 })
    await settle()
    expect(tab.session.isReleased).toBe(true)
    expect(world.sockets.last.isClosed).toBe(true)
  })
})

describe('TabHub', () => {
  it('hello names the instance, protocol and mode', () => {
    setup()
    expect(world.hub.hello()).toEqual({ instanceId: 'worker-1', protocolVersion: 1, mode: 'shared-worker', modeReason: 'test' })
  })

  it('watches every tab by its id once it reports its lock held', () => {
    setup()
    attach('tab-1')
    attach('tab-2')
    expect([...world.gone.keys()]).toEqual(['tab-1', 'tab-2'])
  })

  it('does not watch a tab before its lock report, so a lock granted late does not release it early', () => {
    setup()
    const tab = attach('tab-1', undefined, false)
    tab.session.subscribe(1, TASK, {})
    // Watching now would be granted the free lock at once and release a live tab.
    world.clock.advance(LOCK_REPORT_TIMEOUT - 1)
    expect(world.gone.size).toBe(0)
    world.hub.lockHeld(tab.session)
    expect([...world.gone.keys()]).toEqual(['tab-1'])
    // The deadline was cancelled by the report: one watch, no second one later.
    world.clock.advance(60_000)
    expect(world.gone.size).toBe(1)
    expect(tab.session.isReleased).toBe(false)
    world.gone.get('tab-1')?.()
    expect(tab.session.isReleased).toBe(true)
  })

  it('watches a tab that never reports its lock (it died first) from the deadline on, so it is still released', () => {
    setup()
    const tab = attach('tab-1', undefined, false)
    tab.session.subscribe(1, TASK, {})
    world.clock.advance(LOCK_REPORT_TIMEOUT - 1)
    expect(world.gone.size).toBe(0)
    world.clock.advance(1)
    expect([...world.gone.keys()]).toEqual(['tab-1'])
    // Its lock is free (a dead document holds none): the watch is granted and the tab released.
    world.gone.get('tab-1')?.()
    expect(tab.session.isReleased).toBe(true)
    expect(world.hub.stats().tabs).toBe(0)
    // A report arriving late (it cannot, from a dead tab, but a slow one may) watches nothing twice.
    world.hub.lockHeld(tab.session)
    expect(world.gone.size).toBe(1)
  })

  it('a tab released before its report (bye) is never watched, and leaves no timer behind', () => {
    setup()
    const pending = world.clock.pendingCount
    const tab = attach('tab-1', undefined, false)
    expect(world.clock.pendingCount).toBe(pending + 1)
    tab.session.release()
    expect(world.clock.pendingCount).toBe(pending)
    world.clock.advance(LOCK_REPORT_TIMEOUT)
    world.hub.lockHeld(tab.session)
    expect(world.gone.size).toBe(0)
  })

  it('without a watcher (no Web Locks) a tab sets no deadline', () => {
    const env = fakeEnv()
    const broker = new Broker(env.env, { mode: 'per-tab', modeReason: 'test' }, 'worker-1')
    const hub = new TabHub(broker, null)
    const session = hub.attach('tab-1', () => {})
    expect(env.clock.pendingCount).toBe(0)
    hub.lockHeld(session)
    expect(session.isReleased).toBe(false)
    hub.close()
  })
})
