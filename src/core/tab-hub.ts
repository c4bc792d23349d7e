/**
 * The tabs a broker serves. Each tab gets a `TabSession`: its subscriptions, and an
 * outbox that turns the broker's events into batches posted to the tab without ever
 * waiting for it.
 *
 * Backpressure: a batch is acknowledged by the tab when it arrives. While a tab has
 * `inFlightLimit` batches unacknowledged (`MAX_IN_FLIGHT`, plus one for each of its
 * subscriptions beyond the first; it is frozen, hidden in a throttled state, or just
 * slow), new events wait in its outbox. There, snapshots are coalesced to the
 * newest one per subscription, and messages are bounded by kind (see `Outbox`): the
 * latest `pong`, `connected` and connection-scoped `error` per subscription, the first
 * terminal message always, and at most `OUTBOX_LIMIT` others, oldest dropped first. A
 * dead tab is released when its Web Lock is granted to the host (see `TabHub.attach`).
 *
 * Delivery modes (see `Delivery`): a `snapshots` subscription gets no messages, and
 * its snapshots leave at most once per `FRAME_MS` each (the first at once), unless the
 * change is urgent (`isUrgentChange`).
 */
import { PROTOCOL_VERSION } from '../protocol.js'
import type { BrokerStats, TabStats, TaskSnapshot } from '../types.js'
import { refusedSnapshot, type Broker } from './broker.js'
import { FRAME_MS, isUrgentChange } from './delivery.js'
import type { Clock, TimerHandle } from './env.js'
import {
  isAck,
  isTabReply,
  type Hello,
  type HostToTab,
  type TabRequestName,
  type TabRequests,
  type WireEvent,
  type WireTaskOptions,
} from './session-protocol.js'
import type { SendResult, TokenSource } from './task-channel.js'
import { OnceHost } from './once-host.js'
import { Outbox } from './outbox.js'
import type { TabWatcher } from './tab-lock.js'

/**
 * Unacknowledged batches a tab with one subscription may have; a tab with more gets one
 * more per extra subscription (see `TabSession.inFlightLimit`).
 */
export const MAX_IN_FLIGHT = 4
export const OUTBOX_LIMIT = 500
/**
 * Subscriptions one tab may hold on a host (one per hook, bar or `subscribe`; a page
 * needs far fewer). Past it a subscription gets a snapshot that says why it is not
 * followed, so a page that subscribes in a loop cannot fill the host's memory.
 */
export const MAX_SUBSCRIPTIONS_PER_TAB = 1000
/**
 * How long (ms) after hello a host waits for a tab's lock report (`SessionApi.locked`)
 * before it watches the tab's lock anyway. See `TabHub.attach`.
 */
export const LOCK_REPORT_TIMEOUT = 5000

interface PendingRequest {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
  timer: TimerHandle
}

export class TabSession {
  readonly tabId: string
  private readonly subscriptions = new Map<number, () => void>()
  private readonly outbox = new Outbox(OUTBOX_LIMIT)
  private readonly latest = new Map<number, TaskSnapshot>()
  private readonly dirty = new Set<number>()
  /** Subscriptions with `delivery: 'snapshots'`. */
  private readonly snapshotsOnly = new Set<number>()
  /**
   * The snapshot last posted per subscription and when it left: to tell an urgent change,
   * and to pace snapshot-only subscriptions one by one.
   */
  private readonly posted = new Map<number, { snapshot: TaskSnapshot; at: number }>()
  /** When the pending frame timer fires (clock time), to bring it forward for an earlier one. */
  private frameDueAt = Infinity
  private frameTimer: TimerHandle | null = null
  private inFlight = 0
  private lastAcked = 0
  private nextBatch = 1
  private scheduled = false
  private suspended = false
  private released = false
  private nextRequest = 1
  private readonly requests = new Map<number, PendingRequest>()
  private readonly hub: TabHub
  private readonly post: (message: HostToTab) => void

  constructor(hub: TabHub, tabId: string, post: (message: HostToTab) => void) {
    this.hub = hub
    this.tabId = tabId
    this.post = post
  }

  /** Idempotent: a tab that re-registers after a worker restart may repeat a `subId`. */
  subscribe(subId: number, projectId: string, options: WireTaskOptions, seed?: TaskSnapshot): void {
    if (this.released || this.subscriptions.has(subId)) return
    const { withAuth, ...taskOptions } = options
    if (this.subscriptions.size >= MAX_SUBSCRIPTIONS_PER_TAB) {
      const problem = `this tab holds ${MAX_SUBSCRIPTIONS_PER_TAB} tabcast subscriptions already (the limit): task ${projectId} is not followed`
      this.subscriptions.set(subId, () => {})
      this.latest.set(subId, refusedSnapshot(projectId, taskOptions, problem))
      this.dirty.add(subId)
      this.schedule()
      return
    }
    const snapshotsOnly = options.delivery === 'snapshots'
    if (snapshotsOnly) this.snapshotsOnly.add(subId)
    // The tab's auth function is asked through this session, with a deadline (never by Comlink).
    const auth: TokenSource | undefined = withAuth === true
      ? { id: this.tabId, get: (context, timeout) => this.request('token', [subId, context], timeout) }
      : undefined
    const unsubscribe = this.hub.broker.subscribe(projectId, taskOptions, (event) => {
      if (event.type === 'snapshot') {
        this.latest.set(subId, event.snapshot)
        this.dirty.add(subId)
      } else if (snapshotsOnly) {
        return
      } else {
        this.outbox.push({ sub: subId, type: 'message', message: event.message })
      }
      this.schedule()
    }, seed, auth)
    this.subscriptions.set(subId, unsubscribe)
  }

  unsubscribe(subId: number): void {
    this.subscriptions.get(subId)?.()
    this.subscriptions.delete(subId)
    this.latest.delete(subId)
    this.dirty.delete(subId)
    this.snapshotsOnly.delete(subId)
    this.posted.delete(subId)
  }

  send(projectId: string, options: WireTaskOptions, message: unknown): SendResult {
    const { withAuth: _withAuth, ...taskOptions } = options
    return this.hub.broker.send(projectId, taskOptions, message)
  }

  /** What the tab posted on its events port: an acknowledgement or an answer. Anything else is ignored. */
  receive(data: unknown): void {
    if (isAck(data)) {
      this.ack(data.id)
    } else if (isTabReply(data)) {
      const pending = this.requests.get(data.id)
      if (!pending) return
      this.requests.delete(data.id)
      this.hub.clock.clearTimeout(pending.timer)
      if (data.ok) pending.resolve(data.value)
      else pending.reject(new Error(data.error))
    }
  }

  /**
   * Asks the tab something. Rejects when the tab does not answer within `timeout` ms
   * (a frozen or closed tab never does), when it is suspended or released, or when its
   * handler failed; the caller may then ask another tab.
   */
  request<K extends TabRequestName>(name: K, args: TabRequests[K]['args'], timeout: number): Promise<TabRequests[K]['result']> {
    if (this.released) return Promise.reject(new Error(`tab ${this.tabId} is gone`))
    // A page in the back/forward cache runs no code: it could only time out.
    if (this.suspended) return Promise.reject(new Error(`tab ${this.tabId} is suspended`))
    const id = this.nextRequest++
    return new Promise((resolve, reject) => {
      const timer = this.hub.clock.setTimeout(() => {
        this.requests.delete(id)
        reject(new Error(`tab ${this.tabId} did not answer ${name} within ${timeout} ms`))
      }, timeout)
      this.requests.set(id, { resolve: resolve as (value: unknown) => void, reject, timer })
      try {
        this.post({ type: 'request', id, name, args } as HostToTab)
      } catch {
        this.release()
      }
    })
  }

  ack(id: number): void {
    // Ports deliver in order, so acks arrive in order: a repeated or stale one counts once.
    if (id >= this.nextBatch || id <= this.lastAcked) return
    this.lastAcked = id
    this.inFlight = Math.max(0, this.inFlight - 1)
    this.schedule()
  }

  /** The page went into the back/forward cache: hold events until it returns. */
  suspend(): void {
    this.suspended = true
  }

  resume(): void {
    this.suspended = false
    // Batches posted before the page was frozen may never be acknowledged: start afresh.
    this.inFlight = 0
    this.lastAcked = this.nextBatch - 1
    this.schedule()
  }

  /** The tab is gone: drop its subscriptions at once (their tasks linger, then close). */
  release(): void {
    if (this.released) return
    this.released = true
    for (const unsubscribe of this.subscriptions.values()) unsubscribe()
    this.subscriptions.clear()
    this.outbox.clear()
    this.latest.clear()
    this.dirty.clear()
    this.posted.clear()
    this.cancelFrame()
    for (const pending of this.requests.values()) {
      this.hub.clock.clearTimeout(pending.timer)
      pending.reject(new Error(`tab ${this.tabId} is gone`))
    }
    this.requests.clear()
    this.hub.forget(this)
  }

  get isReleased(): boolean {
    return this.released
  }

  stats(): TabStats {
    return { tabId: this.tabId, subscriptions: this.subscriptions.size, backlog: this.outbox.length + this.dirty.size }
  }

  private schedule(): void {
    if (this.scheduled || this.released) return
    this.scheduled = true
    // A microtask, not a timer: events of one socket message leave in one batch, at once.
    void Promise.resolve().then(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush(): void {
    if (this.released || this.suspended) return
    if (this.outbox.length === 0 && this.dirty.size === 0) return
    if (this.inFlight >= this.inFlightLimit()) {
      this.flushFirstStates()
      return
    }
    const now = this.hub.clock.now()
    // Only paced snapshots wait: a subscription's second one within a frame leaves when
    // its frame is over. Paced per subscription, not per tab: the tasks of one tab send
    // at their own times, and one task's snapshot must not hold another's for a frame.
    const wait = this.outbox.length > 0 ? 0 : this.pacedWait(now)
    if (wait > 0) {
      this.scheduleFrame(now + wait)
      return
    }
    this.cancelFrame()
    const events = this.outbox.take()
    // Snapshots after messages: a tab applies the messages, then shows the newest state.
    this.takeSnapshots(events, now, false)
    this.postBatch(events)
  }

  /**
   * Every socket message is a batch of its own, and the tasks of one tab send at the same
   * moments (a backend that reports all its jobs on one tick), so a tab with k tasks may
   * legitimately get k batches within one acknowledgement's round trip. With a fixed
   * limit, the k-th task's state waited for the tab's main thread to acknowledge, a
   * frame or more on a busy machine: the tail of the latency at 5 tabs × 5 tasks. Still
   * bounded: by the subscriptions the tab itself made, and a frozen tab's events then
   * coalesce in its outbox as before.
   */
  private inFlightLimit(): number {
    return MAX_IN_FLIGHT + Math.max(0, this.subscriptions.size - 1)
  }

  /** Moves the pending snapshots (only first ones with `firstOnly`) into `events`, noting what left and when. */
  private takeSnapshots(events: WireEvent[], now: number, firstOnly: boolean): void {
    for (const sub of this.dirty) {
      const snapshot = this.latest.get(sub)
      if (firstOnly && (!snapshot || this.posted.has(sub))) continue
      this.dirty.delete(sub)
      if (!snapshot) continue
      events.push({ sub, type: 'snapshot', snapshot })
      this.posted.set(sub, { snapshot, at: now })
    }
  }

  private postBatch(events: WireEvent[]): void {
    this.inFlight++
    try {
      this.post({ type: 'batch', id: this.nextBatch++, instanceId: this.hub.broker.instanceId, events })
    } catch {
      // A port that cannot post any more belongs to a tab that is gone.
      this.release()
    }
  }

  /**
   * Backpressure holds a busy tab's stream, never a new subscription's first state: a
   * late-joining tab subscribes to its tasks in one go while its main thread is still
   * loading the page and slow to acknowledge, and each first state must reach it at
   * once. So past the in-flight limit only first snapshots leave (the stream and later
   * states still wait for acknowledgements). Bounded: one batch per subscription the
   * tab itself made.
   */
  private flushFirstStates(): void {
    const events: WireEvent[] = []
    this.takeSnapshots(events, this.hub.clock.now(), true)
    if (events.length > 0) this.postBatch(events)
  }

  /**
   * How long (ms) the pending snapshots may wait: 0 when one must leave now (one of a
   * `messages` subscription, a first one, an urgent change, or a snapshot-only one whose
   * last left a frame ago or more), else until the earliest of their frames is over.
   */
  private pacedWait(now: number): number {
    let wait = Infinity
    for (const sub of this.dirty) {
      if (!this.snapshotsOnly.has(sub)) return 0
      const before = this.posted.get(sub)
      const after = this.latest.get(sub)
      if (!before || (after && isUrgentChange(before.snapshot, after))) return 0
      const left = before.at + FRAME_MS - now
      if (left <= 0) return 0
      wait = Math.min(wait, left)
    }
    return wait === Infinity ? 0 : wait
  }

  /** Flushes at `dueAt`, or earlier if a timer for an earlier moment is already set. */
  private scheduleFrame(dueAt: number): void {
    if (this.frameTimer !== null && this.frameDueAt <= dueAt) return
    this.cancelFrame()
    this.frameDueAt = dueAt
    this.frameTimer = this.hub.clock.setTimeout(() => {
      this.frameTimer = null
      this.frameDueAt = Infinity
      this.flush()
    }, dueAt - this.hub.clock.now())
  }

  private cancelFrame(): void {
    if (this.frameTimer === null) return
    this.hub.clock.clearTimeout(this.frameTimer)
    this.frameTimer = null
    this.frameDueAt = Infinity
  }
}

/**
 * The tabs one broker serves. Made by `createBrokerHost`, the one way every host (the
 * SharedWorker, a leader tab, a lone tab) wires a broker: environment signals reach it
 * here, tab deaths through their Web Locks (`attach`), and tabs through `createSessionApi(hub)`.
 */
export class TabHub {
  readonly broker: Broker
  readonly clock: Clock
  /** Once-handlers of this host's tabs: which tab runs a task's terminal side effect. */
  readonly once: OnceHost
  private readonly sessions = new Set<TabSession>()
  private readonly watch: TabWatcher | null
  /** Tabs not watched yet, with the deadline at which they will be (see `attach`). */
  private readonly unwatched = new Map<TabSession, TimerHandle>()
  private readonly stopSignals: () => void

  /** `watch` tells the hub when a tab is gone (its Web Lock); null where locks are missing. */
  constructor(broker: Broker, watch: TabWatcher | null) {
    this.broker = broker
    this.watch = watch
    this.clock = broker.env.clock
    this.once = new OnceHost(broker)
    // Environment signals reach every host here, whichever global fired them.
    this.stopSignals = broker.env.signals((signal) => {
      if (signal === 'online') broker.online()
    })
  }

  /**
   * Registers a tab. It is not watched yet: a tab says hello without waiting for its
   * lock (the grant takes a round trip through the browser, 10 ms or more, on a late
   * join's critical path), and a watch asked for before the tab holds the lock would be
   * granted at once and release a live tab. So the hub watches when the tab reports the
   * lock held (`lockHeld`, the session's `locked` call), which is exact.
   *
   * Bounded: a tab that dies before its report never sends it, so the hub also watches
   * at `LOCK_REPORT_TIMEOUT`. That late watch is correct too: the tab asks for its lock
   * in the same task as it sends hello, so by the deadline its request has long reached
   * the lock manager; the watch then queues behind the tab's hold if it is alive, and is granted
   * at once if it died (a dead document's requests are dropped). Waiting instead for
   * the lock report to ride on the tab's next call would never release a tab that dies
   * in between: it makes no next call.
   */
  attach(tabId: string, post: (message: HostToTab) => void): TabSession {
    const session = new TabSession(this, tabId, post)
    this.sessions.add(session)
    if (this.watch) this.unwatched.set(session, this.clock.setTimeout(() => this.lockHeld(session), LOCK_REPORT_TIMEOUT))
    return session
  }

  /** The tab holds its lock: watch it from now on (once; a released tab is not watched). */
  lockHeld(session: TabSession): void {
    if (this.watch && this.dropLockDeadline(session)) this.watch(session.tabId, () => session.release())
  }

  /** Cancels the tab's lock-report deadline; false when it had none (watched already, or released). */
  private dropLockDeadline(session: TabSession): boolean {
    const deadline = this.unwatched.get(session)
    if (deadline === undefined) return false
    this.clock.clearTimeout(deadline)
    this.unwatched.delete(session)
    return true
  }

  hello(): Hello {
    // Not `broker.stats()`: that walks every channel, and every joining tab says hello.
    const { mode, modeReason } = this.broker.info
    return { instanceId: this.broker.instanceId, protocolVersion: PROTOCOL_VERSION, mode, modeReason }
  }

  /** The registered tabs, e.g. to pick one that can answer a request. */
  liveTabs(): TabSession[] {
    return [...this.sessions].filter((session) => !session.isReleased)
  }

  forget(session: TabSession): void {
    this.sessions.delete(session)
    this.dropLockDeadline(session)
    this.once.release(session)
  }

  stats(): BrokerStats {
    const tabDetails = [...this.sessions].map((session) => session.stats())
    const core = this.broker.stats()
    // `subscribers` counts the tabs' subscriptions; the host's own following of a task for
    // its once-handlers is not one of them.
    const watched = this.once.watchedTasks()
    const tasks = core.tasks.map((task) => (watched.has(task.key) ? { ...task, subscribers: Math.max(0, task.subscribers - 1) } : task))
    return { ...core, tasks, tabs: tabDetails.length, tabDetails }
  }

  /** The host stops: every tab is released, every connection closed, no more signals. */
  close(): void {
    for (const session of [...this.sessions]) session.release()
    this.once.close()
    this.stopSignals()
    this.broker.close()
  }
}
