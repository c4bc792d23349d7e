import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { initialSnapshot, type BrokerStats, type ServerMessage, type TaskSnapshot } from 'tabcast'
import type { BrokerLink, TabEndpoint } from '../../src/client/link.js'
import { TabClient, type LinkFactory } from '../../src/client/tab-client.js'
import type { Batch, Hello, WireEvent } from '../../src/core/session-protocol.js'
import type { SendResult } from '../../src/core/task-channel.js'
import type { LocksLike } from '../../src/core/tab-lock.js'
import type { SubscribeOptions } from '../../src/types.js'
import { FakeClock } from '../support/fake-clock.js'
import { deferred } from '../support/deferred.js'
import { settle } from '../support/fake-fetch.js'

const TASK = 'mix_7'

/** A broker link the test drives: it records calls and pushes batches. */
class FakeLink implements BrokerLink {
  readonly hellos: string[] = []
  readonly subscribed: number[] = []
  readonly seeds = new Map<number, TaskSnapshot | undefined>()
  readonly unsubscribed: number[] = []
  disposed = false
  saidBye = false
  onBatch: ((batch: Batch) => void) | null = null
  tab: TabEndpoint | null = null
  /** Resolves hello; `null` makes it never answer. */
  helloAnswer: Hello | null
  pingAnswer: () => Promise<string>
  sendAnswer: SendResult = { ok: true, queued: false }
  readonly options = new Map<number, SubscribeOptions>()
  private nextBatch = 1

  constructor(instanceId = 'worker-1') {
    this.helloAnswer = { instanceId, protocolVersion: 1, mode: 'shared-worker', modeReason: 'test' }
    this.pingAnswer = () => Promise.resolve(instanceId)
  }

  /** Every call, in the order the host would see them. */
  readonly sent: string[] = []
  /** Settles hello; set by the test for a hello it answers later. */
  helloReply: Promise<Hello> | null = null

  hello(tabId: string, tab: TabEndpoint): Promise<Hello> {
    this.sent.push('hello')
    this.hellos.push(tabId)
    this.tab = tab
    this.onBatch = (batch) => tab.batch(batch)
    if (this.helloReply) return this.helloReply
    return this.helloAnswer ? Promise.resolve(this.helloAnswer) : new Promise(() => {})
  }
  locked(): Promise<void> {
    this.sent.push('locked')
    return Promise.resolve()
  }
  subscribe(subId: number, _projectId: string, options: SubscribeOptions, seed?: TaskSnapshot): Promise<void> {
    this.sent.push(`subscribe ${subId}`)
    this.subscribed.push(subId)
    this.seeds.set(subId, seed)
    this.options.set(subId, options)
    return Promise.resolve()
  }
  unsubscribe(subId: number): Promise<void> {
    this.unsubscribed.push(subId)
    return Promise.resolve()
  }
  send(): Promise<SendResult> {
    return Promise.resolve(this.sendAnswer)
  }
  stats(): Promise<BrokerStats> {
    return Promise.reject(new Error('not in this fake'))
  }
  ping(): Promise<string> {
    return this.pingAnswer()
  }
  suspend(): Promise<void> {
    return Promise.resolve()
  }
  resume(): Promise<void> {
    return Promise.resolve()
  }
  bye(): Promise<void> {
    this.saidBye = true
    return Promise.resolve()
  }
  registerOnce(): Promise<{ state: 'pending' }> {
    return Promise.resolve({ state: 'pending' })
  }
  unregisterOnce(): Promise<void> {
    return Promise.resolve()
  }
  setPresence(): Promise<void> {
    return Promise.resolve()
  }
  dispose(): void {
    this.disposed = true
  }

  /** Subscriptions the host holds for this tab right now. */
  get active(): number[] {
    const held = new Set<number>()
    // Replays calls in order: that is what the host sees.
    for (const call of this.calls) {
      if (call.kind === 'sub') held.add(call.id)
      else held.delete(call.id)
    }
    return [...held]
  }

  private get calls(): { kind: 'sub' | 'unsub'; id: number }[] {
    return this.log
  }
  readonly log: { kind: 'sub' | 'unsub'; id: number }[] = []

  push(...events: WireEvent[]): void {
    if (!this.onBatch) throw new Error('hello() was not called')
    this.onBatch({ type: 'batch', id: this.nextBatch++, instanceId: this.helloAnswer?.instanceId ?? '?', events })
  }
}

/** Records subscribe/unsubscribe order in `log` as well. */
function loggingLink(instanceId?: string): FakeLink {
  const link = new FakeLink(instanceId)
  const subscribe = link.subscribe.bind(link)
  const unsubscribe = link.unsubscribe.bind(link)
  link.subscribe = (subId, projectId, options, seed) => {
    link.log.push({ kind: 'sub', id: subId })
    return subscribe(subId, projectId, options, seed)
  }
  link.unsubscribe = (subId: number) => {
    link.log.push({ kind: 'unsub', id: subId })
    return unsubscribe(subId)
  }
  return link
}

let clock: FakeClock
let frames: (() => void)[]
let links: FakeLink[]
let factoryCalls: (readonly string[])[]

beforeEach(() => {
  clock = new FakeClock()
  frames = []
  links = []
  factoryCalls = []
  vi.stubGlobal('reportError', vi.fn())
})

afterEach(() => {
  vi.unstubAllGlobals()
})

function factory(make: () => FakeLink = () => loggingLink()): LinkFactory {
  return (failures) => {
    factoryCalls.push([...failures])
    const link = make()
    links.push(link)
    return link
  }
}

/** Links made so far stay `before` until `ms` from now, when one more is made. */
async function expectNewLinkAt(ms: number, before: number): Promise<void> {
  expect(links).toHaveLength(before)
  clock.advance(ms - 1)
  await settle()
  expect(links).toHaveLength(before)
  clock.advance(1)
  await settle()
  expect(links).toHaveLength(before + 1)
}

function client(factories: LinkFactory[] = [factory()], extra: { healthInterval?: number; handshakeTimeout?: number } = {}): TabClient {
  return new TabClient({
    links: factories,
    tabId: 'tab-1',
    scheduleFrame: (callback) => frames.push(callback),
    setTimeout: (callback, ms) => clock.setTimeout(callback, ms),
    clearTimeout: (handle) => clock.clearTimeout(handle),
    healthInterval: extra.healthInterval ?? 0,
    ...(extra.handshakeTimeout === undefined ? {} : { handshakeTimeout: extra.handshakeTimeout }),
  })
}

function runFrames(): void {
  for (const frame of frames.splice(0)) frame()
}

function link(index = 0): FakeLink {
  const found = links[index]
  if (!found) throw new Error(`link ${index} was not created`)
  return found
}

const snap = (progress: number, extra: Partial<TaskSnapshot> = {}): TaskSnapshot =>
  Object.freeze({ ...initialSnapshot(TASK), status: 'running', progress, connection: 'live', isConnected: true, ...extra })

const msg = (seq: number): ServerMessage => ({ type: 'progress', progress: seq / 10, seq })

describe('TabClient: delivery', () => {
  it('delivers messages at once and in order; a snapshot at once when the tab is idle, later ones in the next frame', async () => {
    const tab = client()
    const messages: ServerMessage[] = []
    const snapshots: TaskSnapshot[] = []
    tab.subscribe(TASK, { message: (m) => messages.push(m), snapshot: (s) => snapshots.push(s) })
    await settle()
    const sub = link().subscribed[0] ?? -1
    link().push({ sub, type: 'message', message: msg(1) }, { sub, type: 'message', message: msg(2) }, { sub, type: 'snapshot', snapshot: snap(0.2) })
    expect(messages.map((m) => m.seq)).toEqual([1, 2])
    // Idle: flushed in the task that received it, so it paints in the frame an own socket would.
    expect(snapshots).toEqual([snap(0.2)])
    link().push({ sub, type: 'message', message: msg(3) }, { sub, type: 'snapshot', snapshot: snap(0.3) })
    expect(messages.map((m) => m.seq)).toEqual([1, 2, 3])
    expect(snapshots).toEqual([snap(0.2)])
    runFrames()
    expect(snapshots).toEqual([snap(0.2), snap(0.3)])
  })

  it('coalesces the snapshots of a busy frame to one notification, with the newest', async () => {
    const tab = client()
    const snapshots: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (s) => snapshots.push(s) })
    await settle()
    const sub = link().subscribed[0] ?? -1
    const newest = snap(0.9)
    link().push({ sub, type: 'snapshot', snapshot: snap(0.1) })
    link().push({ sub, type: 'snapshot', snapshot: snap(0.5) })
    link().push({ sub, type: 'snapshot', snapshot: snap(0.7) })
    link().push({ sub, type: 'snapshot', snapshot: newest })
    expect(frames).toHaveLength(1)
    expect(snapshots).toEqual([snap(0.1)])
    runFrames()
    expect(snapshots).toEqual([snap(0.1), newest])
    expect(tab.getSnapshot(TASK)).toBe(newest)
    // That frame flushed something, so the window stays open for one more frame.
    expect(frames).toHaveLength(1)
    runFrames()
    expect(snapshots).toHaveLength(2)
    // A frame with nothing to flush closes the window: the next snapshot goes at once.
    expect(frames).toHaveLength(0)
    link().push({ sub, type: 'snapshot', snapshot: snap(0.95) })
    expect(snapshots).toEqual([snap(0.1), newest, snap(0.95)])
  })

  it('a burst costs one notification per frame, however many snapshots arrive', async () => {
    const tab = client()
    let notified = 0
    tab.subscribe(TASK, { snapshot: () => notified++ })
    await settle()
    const sub = link().subscribed[0] ?? -1
    for (let frame = 0; frame < 10; frame++) {
      for (let step = 1; step <= 20; step++) link().push({ sub, type: 'snapshot', snapshot: snap((frame * 20 + step) / 1000) })
      runFrames()
    }
    // The first snapshot at once, then one per frame.
    expect(notified).toBe(11)
  })

  it('a finished task or a changed connection is flushed at once, even inside a busy frame (hidden tabs get no frames)', async () => {
    const tab = client()
    const snapshots: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (s) => snapshots.push(s) })
    await settle()
    const sub = link().subscribed[0] ?? -1
    link().push({ sub, type: 'snapshot', snapshot: snap(0.1) })
    link().push({ sub, type: 'snapshot', snapshot: snap(0.2) })
    expect(snapshots).toHaveLength(1)
    // No frame ever runs from here on, as in a hidden tab.
    link().push({ sub, type: 'snapshot', snapshot: snap(0.3, { connection: 'reconnecting', isConnected: false }) })
    expect(snapshots.at(-1)?.connection).toBe('reconnecting')
    link().push({ sub, type: 'snapshot', snapshot: snap(0.4, { connection: 'reconnecting', isConnected: false }) })
    expect(snapshots).toHaveLength(2)
    const done = snap(1, { status: 'completed', result: { ok: true } })
    link().push({ sub, type: 'snapshot', snapshot: done })
    expect(snapshots.at(-1)).toBe(done)
    expect(tab.getSnapshot(TASK)).toBe(done)
  })

  it('two spellings of one backend are one task: one cached snapshot, delivered to both subscriptions', async () => {
    const tab = client()
    const bare: TaskSnapshot[] = []
    const full: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (s) => bare.push(s) }, { backendUrl: 'localhost:8000' })
    tab.subscribe(TASK, { snapshot: (s) => full.push(s) }, { backendUrl: 'http://localhost:8000/' })
    await settle()
    const newest = snap(0.5)
    link().push({ sub: 1, type: 'snapshot', snapshot: newest })
    runFrames()
    expect(bare).toEqual([newest])
    expect(full).toEqual([newest])
    expect(tab.getSnapshot(TASK, { backendUrl: 'http://localhost:8000' })).toBe(newest)
    expect(tab.getSnapshot(TASK)).toBe(newest)
  })

  it('asks the host for every message only when the listener takes them; an explicit delivery wins', async () => {
    const tab = client()
    tab.subscribe(TASK, { snapshot: () => {} })
    tab.subscribe(TASK, { snapshot: () => {}, message: () => {} })
    tab.subscribe(TASK, { message: () => {} }, { delivery: 'snapshots', backendUrl: 'localhost:8000' })
    await settle()
    expect([1, 2, 3].map((id) => link().options.get(id)?.delivery)).toEqual(['snapshots', 'messages', 'snapshots'])
    expect(link().options.get(3)?.backendUrl).toBe('localhost:8000')
  })

  it('says hello and subscribes at once, without waiting for the tab lock, and reports the lock once it is held', async () => {
    let grant: (() => void) | null = null
    const locks: LocksLike = {
      request: (_name, _options, callback) =>
        new Promise((resolve) => {
          grant = () => resolve(callback({}))
        }),
    }
    const tab = new TabClient({
      links: [factory()],
      tabId: 'tab-1',
      locks,
      scheduleFrame: (callback) => frames.push(callback),
      setTimeout: (callback, ms) => clock.setTimeout(callback, ms),
      clearTimeout: (handle) => clock.clearTimeout(handle),
      healthInterval: 0,
    })
    tab.subscribe(TASK, {})
    await settle()
    // The grant takes a round trip through the browser (10 ms and more on a late join):
    // the host hears hello and the subscription meanwhile, and watches the tab only
    // once it says its lock is held (see TabHub.attach).
    expect(link().sent).toEqual(['hello', 'subscribe 1'])
    if (!grant) throw new Error('the tab lock was not requested')
    ;(grant as () => void)()
    await settle()
    expect(link().sent).toEqual(['hello', 'subscribe 1', 'locked'])
  })

  it('a link made at once says hello inside subscribe(), not on a later turn, and later subscriptions follow it at once', () => {
    const tab = client()
    tab.subscribe(TASK, {})
    // Nothing awaited: the rest of the page's task (a React commit, module code) does not delay the handshake.
    expect(link().sent).toEqual(['hello', 'subscribe 1'])
    tab.subscribe('other', {}, { backendUrl: 'h:1' })
    expect(link().sent).toEqual(['hello', 'subscribe 1', 'subscribe 2'])
  })

  it('a tab without Web Locks never reports a lock', async () => {
    const tab = client()
    tab.subscribe(TASK, {})
    await settle()
    expect(link().sent).toEqual(['hello', 'subscribe 1'])
  })

  it('delivers a batch that overtakes the answer to hello (events travel on another port)', async () => {
    const answer = deferred<Hello>()
    const tab = client([factory(() => {
      const l = loggingLink()
      l.helloReply = answer.promise
      return l
    })])
    const snapshots: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (s) => snapshots.push(s) })
    await settle()
    expect(link().sent).toEqual(['hello', 'subscribe 1'])
    link().push({ sub: 1, type: 'snapshot', snapshot: snap(0.4) })
    expect(snapshots).toEqual([snap(0.4)])
    answer.resolve({ instanceId: 'worker-1', protocolVersion: 1, mode: 'shared-worker', modeReason: 'test' })
    await settle()
    expect(link().sent).toEqual(['hello', 'subscribe 1'])
  })

  it('getSnapshot keeps its identity until a new snapshot is flushed', async () => {
    const tab = client()
    const initial = tab.getSnapshot(TASK)
    expect(initial).toEqual(initialSnapshot(TASK))
    expect(tab.getSnapshot(TASK)).toBe(initial)
    tab.subscribe(TASK, {})
    await settle()
    expect(tab.getSnapshot(TASK)).toBe(initial)
    const first = snap(0.3)
    link().push({ sub: link().subscribed[0] ?? -1, type: 'snapshot', snapshot: first })
    expect(tab.getSnapshot(TASK)).toBe(first)
    const next = snap(0.4)
    link().push({ sub: link().subscribed[0] ?? -1, type: 'snapshot', snapshot: next })
    expect(tab.getSnapshot(TASK)).toBe(first)
    runFrames()
    expect(tab.getSnapshot(TASK)).toBe(next)
    expect(tab.getSnapshot(TASK)).toBe(next)
  })

  it('two subscriptions of one task both hear every message and the snapshot', async () => {
    const tab = client()
    const a: ServerMessage[] = []
    const b: TaskSnapshot[] = []
    tab.subscribe(TASK, { message: (m) => a.push(m) })
    tab.subscribe(TASK, { snapshot: (s) => b.push(s) })
    await settle()
    expect(link().active.sort()).toEqual([1, 2])
    link().push({ sub: 1, type: 'message', message: msg(1) }, { sub: 1, type: 'snapshot', snapshot: snap(0.1) })
    runFrames()
    expect(a).toHaveLength(1)
    expect(b).toEqual([snap(0.1)])
  })

  it('a listener that throws is reported and does not stop the others', async () => {
    const tab = client()
    const boom = new Error('listener bug')
    const seen: string[] = []
    tab.subscribe(TASK, {
      message: () => {
        throw boom
      },
      snapshot: () => {
        throw boom
      },
    })
    tab.subscribe(TASK, { message: (m) => seen.push(`m${m.seq}`), snapshot: (s) => seen.push(`s${s.progress}`) })
    await settle()
    link().push(
      { sub: 1, type: 'message', message: msg(1) },
      { sub: 2, type: 'message', message: msg(1) },
      { sub: 1, type: 'message', message: msg(2) },
      { sub: 2, type: 'message', message: msg(2) },
      { sub: 1, type: 'snapshot', snapshot: snap(0.2) },
    )
    runFrames()
    expect(seen).toEqual(['m1', 'm2', 's0.2'])
    expect(globalThis.reportError).toHaveBeenCalledWith(boom)
    expect(vi.mocked(globalThis.reportError).mock.calls).toHaveLength(3)
  })

  it('events for a subscription that was dropped are ignored', async () => {
    const tab = client()
    const seen: ServerMessage[] = []
    const stop = tab.subscribe(TASK, { message: (m) => seen.push(m) })
    await settle()
    stop()
    stop()
    await settle()
    expect(link().unsubscribed).toEqual([1])
    link().push({ sub: 1, type: 'message', message: msg(1) })
    expect(seen).toEqual([])
  })
})

describe('TabClient: subscriptions on the host', () => {
  it('registers each subscription once the handshake is done', async () => {
    const tab = client()
    tab.subscribe(TASK, {})
    tab.subscribe('other', {}, { backendUrl: 'h:1' })
    await settle()
    expect(link().hellos).toEqual(['tab-1'])
    expect(link().active.sort()).toEqual([1, 2])
    expect(factoryCalls).toHaveLength(1)
  })

  it('a subscription dropped before the handshake ends is never left on the host', async () => {
    const tab = client()
    const stop = tab.subscribe(TASK, {})
    stop()
    tab.subscribe('kept', {})
    await settle()
    expect(link().active).toEqual([2])
  })

  it('a subscription dropped in the same turn it was made, on a live link, is never left on the host', async () => {
    const tab = client()
    tab.subscribe('kept', {})
    await settle()
    const stop = tab.subscribe(TASK, {})
    stop()
    await settle()
    expect(link().active).toEqual([1])
  })

  it('send() resolves when the broker accepted it and rejects with its reason', async () => {
    const tab = client()
    tab.subscribe(TASK, {})
    await expect(tab.send(TASK, { action: 'pause' })).resolves.toBeUndefined()
    link().sendAnswer = { ok: false, error: 'send queue is full (100 messages wait for the connection)' }
    await expect(tab.send(TASK, 'x')).rejects.toThrow('tabcast: send queue is full')
  })
})

describe('TabClient: falling back and recovering', () => {
  it('a handshake that times out falls back to the next link factory, with the reason', async () => {
    const silent = factory(() => {
      const l = loggingLink()
      l.helloAnswer = null
      return l
    })
    const tab = client([silent, factory()], { handshakeTimeout: 3000 })
    const seen: ServerMessage[] = []
    tab.subscribe(TASK, { message: (m) => seen.push(m) })
    await settle()
    await expectNewLinkAt(3000, 1)
    expect(link(0).disposed).toBe(true)
    expect(factoryCalls[1]).toEqual(['the tabcast broker did not answer the handshake within 3000 ms'])
    expect(link(1).active).toEqual([1])
    await expect(tab.mode()).resolves.toMatchObject({ mode: 'shared-worker' })
    // Batches from the abandoned link are not trusted any more.
    link(1).push({ sub: 1, type: 'message', message: msg(1) })
    expect(seen).toHaveLength(1)
  })

  it('subscriptions sent behind a hello that fails are registered on the next link, each once', async () => {
    const refused = deferred<Hello>()
    const refusing = factory(() => {
      const l = loggingLink()
      l.helloReply = refused.promise
      return l
    })
    const tab = client([refusing, factory()])
    tab.subscribe(TASK, {})
    tab.subscribe('other', {}, { backendUrl: 'h:1' })
    await settle()
    // Pipelined: both went out behind hello, before its answer.
    expect(link(0).sent).toEqual(['hello', 'subscribe 1', 'subscribe 2'])
    const third = tab.subscribe('third', {})
    refused.reject(new Error('tabcast protocol mismatch: the tab speaks version 1, the host 2'))
    await settle()
    expect(link(0).disposed).toBe(true)
    expect(factoryCalls[1]).toEqual(['tabcast protocol mismatch: the tab speaks version 1, the host 2'])
    // No duplicate (the subscribe() that started the connection registers too), none lost.
    expect(link(1).sent).toEqual(['hello', 'subscribe 1', 'subscribe 2', 'subscribe 3'])
    third()
    await settle()
    expect(link(1).active.sort()).toEqual([1, 2])
    await expect(tab.mode()).resolves.toMatchObject({ mode: 'shared-worker' })
  })

  it('a pipelined subscription gets its own deadline only once hello is answered', async () => {
    const answer = deferred<Hello>()
    const tab = client([factory(() => {
      const l = loggingLink()
      l.helloReply = answer.promise
      // The host never answers the subscription.
      l.subscribe = (subId) => {
        l.sent.push(`subscribe ${subId}`)
        return new Promise(() => {})
      }
      return l
    }), factory()], { handshakeTimeout: 5000 })
    tab.subscribe(TASK, {})
    await settle()
    clock.advance(4000)
    answer.resolve({ instanceId: 'worker-1', protocolVersion: 1, mode: 'shared-worker', modeReason: 'test' })
    await settle()
    // 5000 ms after it was sent, but only 1000 ms after hello was answered: not given up.
    clock.advance(1000)
    await settle()
    expect(links).toHaveLength(1)
    clock.advance(4000)
    await settle()
    // Its own deadline (callTimeout, 5000 ms after hello's answer) passed: the next link takes over.
    expect(link(0).disposed).toBe(true)
    expect(links).toHaveLength(2)
    expect(link(1).sent).toEqual(['hello', 'subscribe 1'])
  })

  it('a factory that throws is skipped with its reason', async () => {
    const broken: LinkFactory = (failures) => {
      factoryCalls.push([...failures])
      throw new Error('SharedWorker unavailable: this browser has no SharedWorker')
    }
    const tab = client([broken, factory()])
    tab.subscribe(TASK, {})
    await settle()
    expect(factoryCalls[1]).toEqual(['SharedWorker unavailable: this browser has no SharedWorker'])
    expect(link(0).active).toEqual([1])
  })

  it('when no link works, every followed task shows closed with the reasons', async () => {
    const tab = client([
      () => {
        throw new Error('no SharedWorker')
      },
    ])
    const snapshots: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (s) => snapshots.push(s) })
    await expect(tab.stats()).rejects.toThrow('tabcast: no broker could be reached (no SharedWorker)')
    await settle()
    runFrames()
    expect(snapshots).toHaveLength(1)
    expect(snapshots[0]).toMatchObject({ projectId: TASK, connection: 'closed', isConnected: false })
    expect(snapshots[0]?.connectionError).toBe('tabcast: no broker could be reached (no SharedWorker)')
    expect(tab.getSnapshot(TASK)).toBe(snapshots[0])
  })

  it('when no link works, all are tried again after 5 s (then 10 s, …), and the tab recovers', async () => {
    let fail = true
    const working = factory()
    const tab = client([
      (failures) => {
        if (fail) throw new Error('the worker script failed to load')
        return working(failures)
      },
    ])
    const snapshots: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (s) => snapshots.push(s) })
    await settle()
    runFrames()
    expect(snapshots.at(-1)?.connectionError).toBe('tabcast: no broker could be reached (the worker script failed to load)')
    clock.advance(5000)
    await settle()
    expect(links).toHaveLength(0)
    fail = false
    await expectNewLinkAt(10_000, 0)
    expect(link(0).active).toEqual([1])
    expect(factoryCalls).toEqual([[]])
  })

  it('when the fallback link fails too after a switch, every followed task shows closed', async () => {
    const silent = (): FakeLink => {
      const l = loggingLink()
      l.pingAnswer = () => new Promise(() => {})
      return l
    }
    const tab = client([factory(silent)], { healthInterval: 1000 })
    const snapshots: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (s) => snapshots.push(s) })
    await settle()
    // The first miss tries the same kind of host again; the second moves on, and there is no next.
    clock.advance(6000)
    await settle()
    clock.advance(6000)
    await settle()
    clock.advance(100)
    await settle()
    runFrames()
    expect(snapshots[snapshots.length - 1]).toMatchObject({ connection: 'closed' })
    expect(snapshots[snapshots.length - 1]?.connectionError).toMatch(/no broker could be reached \(the tabcast broker did not answer a health check/)
  })

  it('a health check that sees another instance id registers every subscription again', async () => {
    let instance = 'worker-1'
    const tab = client([factory(() => loggingLink(instance))], { healthInterval: 1000 })
    tab.subscribe(TASK, {})
    tab.subscribe('other', {})
    await settle()
    expect(link(0).seeds.get(1)).toBeUndefined()
    const seen = snap(0.4, { seq: 4 })
    link(0).push({ sub: 1, type: 'snapshot', snapshot: seen })
    runFrames()
    clock.advance(1000)
    await settle()
    expect(links).toHaveLength(1)
    // The worker restarted: same port, new instance that knows nothing of this tab.
    instance = 'worker-2'
    link(0).pingAnswer = () => Promise.resolve('worker-2')
    clock.advance(1000)
    await settle()
    expect(links).toHaveLength(2)
    expect(link(0).disposed).toBe(true)
    expect(link(1).hellos).toEqual(['tab-1'])
    expect(link(1).active.sort()).toEqual([1, 2])
    // The new instance resumes from what this tab last showed; a task it never saw gets no seed.
    expect(link(1).seeds.get(1)).toBe(seen)
    expect(link(1).seeds.get(2)).toBeUndefined()
    // Same factory again: a restart is not a reason to give up the SharedWorker.
    expect(factoryCalls[1]).toEqual([])
  })

  it('a health check that gets no answer tries the same kind of host once more, then moves on to the next', async () => {
    const first = factory(() => {
      const l = loggingLink()
      l.pingAnswer = () => new Promise(() => {})
      return l
    })
    const tab = client([first, factory()], { healthInterval: 1000 })
    tab.subscribe(TASK, {})
    await settle()
    clock.advance(1000)
    clock.advance(5000)
    await settle()
    // A busy worker: registered again on a new link of the same kind, and the old session told goodbye.
    expect(links).toHaveLength(2)
    expect(factoryCalls[1]).toEqual([])
    expect(link(0)).toMatchObject({ saidBye: true, disposed: true })
    expect(link(1).active).toEqual([1])
    clock.advance(1000)
    clock.advance(5000)
    await settle()
    // Two re-registrations within 2 s (of real time): the second waits 100 ms.
    clock.advance(100)
    await settle()
    expect(links).toHaveLength(3)
    expect(factoryCalls[2]).toEqual(['the tabcast broker did not answer a health check within 5000 ms'])
    expect(link(2).active).toEqual([1])
  })

  it('a health check answered in between resets the count of misses', async () => {
    let silent = true
    const tab = client([factory(() => {
      const l = loggingLink()
      l.pingAnswer = () => (silent ? new Promise(() => {}) : Promise.resolve('worker-1'))
      return l
    }), factory()], { healthInterval: 1000 })
    tab.subscribe(TASK, {})
    await settle()
    clock.advance(6000)
    await settle()
    silent = false
    clock.advance(1000)
    await settle()
    silent = true
    clock.advance(6000)
    await settle()
    clock.advance(100)
    await settle()
    // Two misses, but not in a row: still the first kind of host.
    expect(factoryCalls.map((failures) => failures.length)).toEqual([0, 0, 0])
  })

  it('no health checks once nothing is followed', async () => {
    const tab = client([factory()], { healthInterval: 1000 })
    const stop = tab.subscribe(TASK, {})
    await settle()
    stop()
    clock.advance(10_000)
    await settle()
    expect(clock.pendingCount).toBe(0)
  })
})
