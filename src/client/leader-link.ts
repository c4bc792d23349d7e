/**
 * Leader mode: where SharedWorker is missing or blocked, the tabs of one origin elect
 * a leader with Web Locks. The leader runs the same broker core (`Broker` + `TabHub`)
 * in its page; the other tabs reach it over a `BroadcastChannel`. So the browser
 * still holds one connection per task.
 *
 * Election: every tab asks for the lock `tabcast:leader:v<protocol>`. Whoever holds it
 * leads until its document dies (closed, crashed, navigated away); the lock then
 * passes to the next tab in line, which announces itself, and every tab registers
 * again with its subscriptions and last snapshots, so the new leader resumes each
 * task from the last `seq` the tabs saw (no step the server still holds is lost,
 * and progress never goes backwards).
 *
 * Hidden leaders hand over: browsers throttle the timers of hidden pages (Chrome runs
 * them once a minute after five minutes hidden), which would delay pings, backoff and
 * polls for every tab. A leader hidden for `handoverDelay` asks which tabs are
 * visible and hands the lock to the first that answers, which takes it with
 * `steal`; the old leader closes its connections and queues up as a follower.
 */
import { Broker } from '../core/broker.js'
import type { BrokerEnv } from '../core/env.js'
import { TabHub, tabLockName, type Batch, type Hello, type TabSession, type TabWatcher } from '../core/tab-hub.js'
import { PROTOCOL_VERSION } from '../protocol.js'
import type { TaskOptions, TaskSnapshot } from '../types.js'
import type { BrokerLink } from './link.js'

export interface BusLike {
  postMessage(message: unknown): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  close(): void
}

export interface ElectionLocks {
  request(name: string, options: { ifAvailable?: boolean; steal?: boolean }, callback: (lock: unknown) => unknown): Promise<unknown>
}

/** The page's visibility, injected so tests can hide a tab. */
export interface VisibilitySource {
  isVisible(): boolean
  onChange(listener: () => void): void
}

export const LEADER_LOCK = `tabcast:leader:v${PROTOCOL_VERSION}`
export const BUS_NAME = `tabcast:bus:v${PROTOCOL_VERSION}`

type Method = 'hello' | 'subscribe' | 'unsubscribe' | 'send' | 'stats' | 'ping' | 'suspend' | 'resume' | 'bye'

type BusMessage =
  | { kind: 'call'; from: string; callId: number; method: Method; args: unknown[] }
  | { kind: 'reply'; to: string; callId: number; ok: true; value: unknown }
  | { kind: 'reply'; to: string; callId: number; ok: false; error: string }
  | { kind: 'batch'; to: string; batch: Batch }
  | { kind: 'ack'; from: string; id: number }
  | { kind: 'leader'; instanceId: string }
  | { kind: 'who-is-visible'; from: string }
  | { kind: 'visible'; to: string; from: string }
  | { kind: 'handover'; to: string }

function isBusMessage(data: unknown): data is BusMessage {
  return typeof data === 'object' && data !== null && typeof (data as { kind?: unknown }).kind === 'string'
}

export interface ElectionConfig {
  env: BrokerEnv
  locks: ElectionLocks
  createBus: () => BusLike
  tabId: string
  /** Why leader mode was chosen (e.g. why SharedWorker could not be used). */
  reason: string
  visibility?: VisibilitySource | null
  /** How long (ms) a leader may stay hidden before it hands over to a visible tab. 0 disables. @default 5000 */
  handoverDelay?: number
}

/**
 * This tab's part in the election: follower or leader, and the leader's hub when it
 * leads. One per tab client; links are views over it.
 */
export class LeaderElection {
  private hub: TabHub | null = null
  private readonly followers = new Map<string, TabSession>()
  private readonly bus: BusLike
  private readonly config: ElectionConfig
  private readonly resetListeners = new Set<(reason: string) => void>()
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  private batchHandler: ((batch: Batch) => void) | null = null
  private nextCall = 1
  private decided: Promise<void>
  private handoverTimer: unknown = null
  private handoverOffered = false

  constructor(config: ElectionConfig) {
    this.config = config
    this.bus = config.createBus()
    this.bus.addEventListener('message', (event) => {
      if (isBusMessage(event.data)) this.onBus(event.data)
    })
    this.decided = this.elect()
    config.visibility?.onChange(() => this.onVisibilityChange())
  }

  get isLeader(): boolean {
    return this.hub !== null
  }

  /** Resolves once this tab knows whether it leads. */
  ready(): Promise<void> {
    return this.decided
  }

  leaderHub(): TabHub | null {
    return this.hub
  }

  onReset(listener: (reason: string) => void): () => void {
    this.resetListeners.add(listener)
    return () => this.resetListeners.delete(listener)
  }

  setBatchHandler(handler: ((batch: Batch) => void) | null): void {
    this.batchHandler = handler
  }

  /** Sends a call to the leader over the bus; the tab client puts a deadline on it. */
  call(method: Method, args: unknown[]): Promise<unknown> {
    const callId = this.nextCall++
    return new Promise((resolve, reject) => {
      this.pending.set(callId, { resolve, reject })
      this.bus.postMessage({ kind: 'call', from: this.config.tabId, callId, method, args } satisfies BusMessage)
    })
  }

  ack(id: number): void {
    this.bus.postMessage({ kind: 'ack', from: this.config.tabId, id } satisfies BusMessage)
  }

  private async elect(): Promise<void> {
    const { locks } = this.config
    const acquired = await new Promise<boolean>((resolve) => {
      locks
        .request(LEADER_LOCK, { ifAvailable: true }, (lock) => {
          resolve(lock !== null)
          return lock === null ? undefined : new Promise(() => {})
        })
        // Rejected when another tab steals the lock (a handover), or when the request failed.
        .catch(() => (this.hub ? this.stepDown() : resolve(false)))
    })
    if (acquired) {
      this.lead()
      return
    }
    this.waitInLine()
  }

  /** Queue for the lock: it is granted when the current leader's document is gone. */
  private waitInLine(): void {
    this.config.locks
      .request(LEADER_LOCK, {}, () => {
        this.lead()
        this.emitReset('the leader tab went away; this tab leads now')
        return new Promise(() => {})
      })
      .catch(() => {
        if (this.hub) this.stepDown()
      })
  }

  /** Takes the lock from a hidden leader that offered it to this (visible) tab. */
  private takeOver(): void {
    if (this.hub) return
    this.config.locks
      .request(LEADER_LOCK, { steal: true }, () => {
        this.lead()
        this.emitReset('a hidden leader handed over to this visible tab')
        return new Promise(() => {})
      })
      .catch(() => {
        if (this.hub) this.stepDown()
      })
  }

  /** Another tab took the lock: stop serving, close this broker's connections, follow. */
  private stepDown(): void {
    const hub = this.hub
    if (!hub) return
    this.hub = null
    this.clearHandover()
    for (const session of this.followers.values()) session.release()
    this.followers.clear()
    hub.broker.close()
    this.emitReset('this tab handed leadership over')
    this.waitInLine()
  }

  private onVisibilityChange(): void {
    const visibility = this.config.visibility
    if (!this.hub || !visibility) return
    if (visibility.isVisible()) {
      this.clearHandover()
      return
    }
    const delay = this.config.handoverDelay ?? 5000
    if (delay <= 0 || this.handoverTimer !== null) return
    this.handoverTimer = this.config.env.clock.setTimeout(() => {
      this.handoverTimer = null
      if (!this.hub || visibility.isVisible()) return
      this.handoverOffered = true
      this.bus.postMessage({ kind: 'who-is-visible', from: this.config.tabId } satisfies BusMessage)
    }, delay)
  }

  private clearHandover(): void {
    if (this.handoverTimer !== null) this.config.env.clock.clearTimeout(this.handoverTimer)
    this.handoverTimer = null
    this.handoverOffered = false
  }

  private lead(): void {
    const { env, locks, reason } = this.config
    // The tab lock of a follower is granted to the leader when that follower is gone.
    const watch: TabWatcher = (tabId, onGone) => {
      void locks.request(tabLockName(tabId), {}, () => onGone())
    }
    this.hub = new TabHub(new Broker(env, { mode: 'leader', modeReason: reason }), watch)
    for (const call of this.pending.values()) call.reject(new Error('this tab became the leader'))
    this.pending.clear()
    this.bus.postMessage({ kind: 'leader', instanceId: this.hub.broker.instanceId } satisfies BusMessage)
  }

  private emitReset(reason: string): void {
    for (const listener of [...this.resetListeners]) listener(reason)
  }

  private onBus(message: BusMessage): void {
    switch (message.kind) {
      case 'leader':
        if (this.hub?.broker.instanceId !== message.instanceId) this.emitReset('a new leader tab took over')
        return
      case 'reply': {
        if (message.to !== this.config.tabId) return
        const call = this.pending.get(message.callId)
        if (!call) return
        this.pending.delete(message.callId)
        if (message.ok) call.resolve(message.value)
        else call.reject(new Error(message.error))
        return
      }
      case 'batch':
        if (message.to === this.config.tabId) this.batchHandler?.(message.batch)
        return
      case 'ack':
        this.followers.get(message.from)?.ack(message.id)
        return
      case 'call':
        if (this.hub) this.serve(this.hub, message)
        return
      case 'who-is-visible':
        if (!this.hub && this.config.visibility?.isVisible()) {
          this.bus.postMessage({ kind: 'visible', to: message.from, from: this.config.tabId } satisfies BusMessage)
        }
        return
      case 'visible':
        // The first visible tab to answer gets the lock; later answers find the offer taken.
        if (message.to === this.config.tabId && this.hub && this.handoverOffered) {
          this.handoverOffered = false
          this.bus.postMessage({ kind: 'handover', to: message.from } satisfies BusMessage)
        }
        return
      case 'handover':
        if (message.to === this.config.tabId) this.takeOver()
        return
    }
  }

  /** Leader side: runs a follower's call against the hub and replies. */
  private serve(hub: TabHub, call: Extract<BusMessage, { kind: 'call' }>): void {
    const reply = (result: { ok: true; value: unknown } | { ok: false; error: string }): void => {
      this.bus.postMessage({ kind: 'reply', to: call.from, callId: call.callId, ...result } as BusMessage)
    }
    try {
      reply({ ok: true, value: this.run(hub, call.from, call.method, call.args) })
    } catch (error) {
      reply({ ok: false, error: error instanceof Error ? error.message : String(error) })
    }
  }

  private run(hub: TabHub, from: string, method: Method, args: unknown[]): unknown {
    if (method === 'hello') {
      this.followers.get(from)?.release()
      const session = hub.attach(from, (batch) => this.bus.postMessage({ kind: 'batch', to: from, batch } satisfies BusMessage))
      this.followers.set(from, session)
      return hub.hello()
    }
    if (method === 'stats') return hub.stats()
    if (method === 'ping') return hub.broker.instanceId
    const session = this.followers.get(from)
    if (!session || session.isReleased) throw new Error('tabcast: call hello() before subscribing (the tab was released)')
    switch (method) {
      case 'subscribe':
        session.subscribe(args[0] as number, args[1] as string, (args[2] ?? {}) as TaskOptions, (args[3] ?? undefined) as TaskSnapshot | undefined)
        return undefined
      case 'unsubscribe':
        session.unsubscribe(args[0] as number)
        return undefined
      case 'send':
        return session.send(args[0] as string, (args[1] ?? {}) as TaskOptions, args[2])
      case 'suspend':
        session.suspend()
        return undefined
      case 'resume':
        session.resume()
        return undefined
      case 'bye':
        session.release()
        this.followers.delete(from)
        return undefined
    }
  }
}

/** A link through the election: local calls when this tab leads, bus calls when it follows. */
export function createLeaderLink(election: LeaderElection): BrokerLink {
  let local: TabSession | null = null
  let unsubscribeReset: (() => void) | null = null
  const remote = async <T>(method: Method, args: unknown[]): Promise<T> => (await election.call(method, args)) as T
  const session = (): TabSession => {
    if (!local || local.isReleased) throw new Error('tabcast: call hello() first')
    return local
  }

  return {
    async hello(tabId, onBatch): Promise<Hello> {
      await election.ready()
      const hub = election.leaderHub()
      if (hub) {
        local?.release()
        const attached = hub.attach(tabId, (batch) =>
          queueMicrotask(() => {
            attached.ack(batch.id)
            onBatch(batch)
          }),
        )
        local = attached
        return hub.hello()
      }
      election.setBatchHandler((batch) => {
        election.ack(batch.id)
        onBatch(batch)
      })
      return remote<Hello>('hello', [tabId])
    },
    subscribe: async (subId, projectId, options, seed) => {
      if (election.isLeader) session().subscribe(subId, projectId, options, seed)
      else await remote('subscribe', [subId, projectId, options, seed])
    },
    unsubscribe: async (subId) => {
      if (election.isLeader) local?.unsubscribe(subId)
      else await remote('unsubscribe', [subId])
    },
    send: async (projectId, options, message) =>
      election.isLeader ? session().send(projectId, options, message) : remote('send', [projectId, options, message]),
    stats: async () => (election.isLeader ? (election.leaderHub() as TabHub).stats() : remote('stats', [])),
    ping: async () => (election.isLeader ? (election.leaderHub() as TabHub).broker.instanceId : remote<string>('ping', [])),
    suspend: async () => {
      if (election.isLeader) local?.suspend()
      else await remote('suspend', [])
    },
    resume: async () => {
      if (election.isLeader) local?.resume()
      else await remote('resume', [])
    },
    bye: async () => {
      if (election.isLeader) local?.release()
      else await remote('bye', [])
    },
    onReset(listener) {
      unsubscribeReset?.()
      unsubscribeReset = election.onReset(listener)
    },
    keepOnFailure: true,
    dispose() {
      unsubscribeReset?.()
      unsubscribeReset = null
      election.setBatchHandler(null)
      local?.release()
      local = null
    },
  }
}
