/**
 * The tabs a broker serves. Each tab gets a `TabSession`: its subscriptions, and an
 * outbox that turns the broker's events into batches posted to the tab without ever
 * waiting for it.
 *
 * Backpressure: a batch is acknowledged by the tab when it arrives. While a tab has
 * `MAX_IN_FLIGHT` batches unacknowledged (it is frozen, hidden in a throttled state,
 * or just slow), new events wait in its outbox. There, snapshots are coalesced to the
 * newest one per subscription and, past `OUTBOX_LIMIT`, the oldest `progress`
 * messages are dropped; `connected`, `error` and `completed` never are. A dead tab is
 * released when its Web Lock is granted to the host (see `watchTab`).
 */
import type { ServerMessage } from '../protocol.js'
import { PROTOCOL_VERSION } from '../protocol.js'
import type { BrokerStats, TabStats, TaskOptions, TaskSnapshot } from '../types.js'
import type { Broker } from './broker.js'
import type { SendResult } from './task-channel.js'

export type WireEvent =
  | { sub: number; type: 'message'; message: ServerMessage }
  | { sub: number; type: 'snapshot'; snapshot: TaskSnapshot }

/** Host → tab. */
export interface Batch {
  type: 'batch'
  id: number
  instanceId: string
  events: WireEvent[]
}

/** Tab → host. */
export interface Ack {
  type: 'ack'
  id: number
}

export interface Hello {
  instanceId: string
  protocolVersion: number
  mode: BrokerStats['mode']
  modeReason: string
}

export const MAX_IN_FLIGHT = 4
export const OUTBOX_LIMIT = 500

export { tabLockName } from './tab-lock.js'

/**
 * Calls `onGone` when the tab that holds `tabLockName(tabId)` is gone: the lock is
 * granted to the host exactly then, crashes included.
 */
export type TabWatcher = (tabId: string, onGone: () => void) => void

export class TabSession {
  readonly tabId: string
  private readonly subscriptions = new Map<number, () => void>()
  private readonly messages: WireEvent[] = []
  private readonly latest = new Map<number, TaskSnapshot>()
  private readonly dirty = new Set<number>()
  private inFlight = 0
  private lastAcked = 0
  private nextBatch = 1
  private scheduled = false
  private suspended = false
  private released = false
  private readonly hub: TabHub
  private readonly post: (batch: Batch) => void

  constructor(hub: TabHub, tabId: string, post: (batch: Batch) => void) {
    this.hub = hub
    this.tabId = tabId
    this.post = post
  }

  /** Idempotent: a tab that re-registers after a worker restart may repeat a `subId`. */
  subscribe(subId: number, projectId: string, options: TaskOptions, seed?: TaskSnapshot): void {
    if (this.released || this.subscriptions.has(subId)) return
    const unsubscribe = this.hub.broker.subscribe(projectId, options, (event) => {
      if (event.type === 'snapshot') {
        this.latest.set(subId, event.snapshot)
        this.dirty.add(subId)
      } else {
        this.enqueueMessage({ sub: subId, type: 'message', message: event.message })
      }
      this.schedule()
    }, seed)
    this.subscriptions.set(subId, unsubscribe)
  }

  unsubscribe(subId: number): void {
    this.subscriptions.get(subId)?.()
    this.subscriptions.delete(subId)
    this.latest.delete(subId)
    this.dirty.delete(subId)
  }

  send(projectId: string, options: TaskOptions, message: unknown): SendResult {
    return this.hub.broker.send(projectId, options, message)
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
    this.messages.length = 0
    this.latest.clear()
    this.dirty.clear()
    this.hub.forget(this)
  }

  get isReleased(): boolean {
    return this.released
  }

  stats(): TabStats {
    return { tabId: this.tabId, subscriptions: this.subscriptions.size, backlog: this.messages.length + this.dirty.size }
  }

  private enqueueMessage(event: WireEvent): void {
    this.messages.push(event)
    if (this.messages.length <= OUTBOX_LIMIT) return
    // Over the limit only a stuck tab gets here; a progress step it missed is
    // superseded by the snapshot it will receive anyway.
    const index = this.messages.findIndex((queued) => queued.type === 'message' && queued.message.type === 'progress')
    if (index >= 0) this.messages.splice(index, 1)
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
    if (this.released || this.suspended || this.inFlight >= MAX_IN_FLIGHT) return
    if (this.messages.length === 0 && this.dirty.size === 0) return
    const events: WireEvent[] = this.messages.splice(0)
    // Snapshots after messages: a tab applies the messages, then shows the newest state.
    for (const sub of this.dirty) {
      const snapshot = this.latest.get(sub)
      if (snapshot) events.push({ sub, type: 'snapshot', snapshot })
    }
    this.dirty.clear()
    this.inFlight++
    try {
      this.post({ type: 'batch', id: this.nextBatch++, instanceId: this.hub.broker.instanceId, events })
    } catch {
      // A port that cannot post any more belongs to a tab that is gone.
      this.release()
    }
  }
}

export class TabHub {
  readonly broker: Broker
  private readonly sessions = new Set<TabSession>()
  private readonly watch: TabWatcher | null

  constructor(broker: Broker, watch: TabWatcher | null) {
    this.broker = broker
    this.watch = watch
  }

  /** Registers a tab. The tab must already hold its lock, or the watcher would release it at once. */
  attach(tabId: string, post: (batch: Batch) => void): TabSession {
    const session = new TabSession(this, tabId, post)
    this.sessions.add(session)
    this.watch?.(tabId, () => session.release())
    return session
  }

  hello(): Hello {
    const stats = this.broker.stats()
    return { instanceId: this.broker.instanceId, protocolVersion: PROTOCOL_VERSION, mode: stats.mode, modeReason: stats.modeReason }
  }

  forget(session: TabSession): void {
    this.sessions.delete(session)
  }

  stats(): BrokerStats {
    const tabDetails = [...this.sessions].map((session) => session.stats())
    return { ...this.broker.stats(), tabs: tabDetails.length, tabDetails }
  }
}
