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
import { createBrokerHost } from '../core/broker-host.js'
import type { BrokerEnv } from '../core/env.js'
import { createSessionApi, invokeSession, isSessionMethod } from '../core/session-api.js'
import type { EventsPort, Hello, RemoteSession, SessionApi, SessionMethod, TabEventsPort } from '../core/session-protocol.js'
import type { TabHub } from '../core/tab-hub.js'
import type { LocksLike } from '../core/tab-lock.js'
import { errorText } from '../error-text.js'
import { PROTOCOL_VERSION } from '../protocol-version.js'
import { inPageTransport } from './in-page.js'
import type { BrokerLink } from './link.js'
import { createSessionLink, type SessionTransport } from './session-link.js'

export interface BusLike {
  postMessage(message: unknown): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  close(): void
}

/** The page's visibility, injected so tests can hide a tab. */
export interface VisibilitySource {
  isVisible(): boolean
  onChange(listener: () => void): void
}

export const LEADER_LOCK = `tabcast:leader:v${PROTOCOL_VERSION}`
export const BUS_NAME = `tabcast:bus:v${PROTOCOL_VERSION}`

/**
 * What travels on the bus. Session calls carry `SessionApi` calls by name, except
 * `hello`, whose events port cannot cross a `BroadcastChannel`: the leader makes the
 * follower's port itself, out of `events` (host → tab) and `events-up` (tab → host).
 */
type BusMessage =
  | { kind: 'call'; from: string; callId: number; method: SessionMethod; args: unknown[] }
  | { kind: 'reply'; to: string; callId: number; ok: true; value: unknown }
  | { kind: 'reply'; to: string; callId: number; ok: false; error: string }
  | { kind: 'events'; to: string; data: unknown }
  | { kind: 'events-up'; from: string; data: unknown }
  | { kind: 'leader'; instanceId: string }
  | { kind: 'who-is-visible'; from: string }
  | { kind: 'visible'; to: string; from: string }
  | { kind: 'handover'; to: string }

function isBusMessage(data: unknown): data is BusMessage {
  return typeof data === 'object' && data !== null && typeof (data as { kind?: unknown }).kind === 'string'
}

type Listener = (event: { data: unknown }) => void

/** One end of a follower's events port, carried over the bus. */
class BusPort implements EventsPort, TabEventsPort {
  private listener: Listener | null = null
  private closed = false
  private readonly send: (data: unknown) => void

  constructor(send: (data: unknown) => void) {
    this.send = send
  }

  postMessage(message: unknown): void {
    if (!this.closed) this.send(message)
  }

  addEventListener(_type: 'message', listener: Listener): void {
    this.listener = listener
  }

  dispatch(data: unknown): void {
    if (!this.closed) this.listener?.({ data })
  }

  close(): void {
    this.closed = true
  }
}

/** What the leader keeps per follower: its session API and the host end of its events port. */
interface Follower {
  api: SessionApi
  port: BusPort | null
}

export interface ElectionConfig {
  env: BrokerEnv
  locks: LocksLike
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
  private readonly followers = new Map<string, Follower>()
  private readonly bus: BusLike
  private readonly config: ElectionConfig
  private readonly resetListeners = new Set<(reason: string) => void>()
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  /** This tab's end of its events port while it follows. */
  private events: BusPort | null = null
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

  /** A new events port of this (follower) tab, replacing the previous one. */
  openEvents(): TabEventsPort {
    this.events?.close()
    const tabId = this.config.tabId
    this.events = new BusPort((data) => this.bus.postMessage({ kind: 'events-up', from: tabId, data } satisfies BusMessage))
    return this.events
  }

  /** Sends a call to the leader over the bus; the tab client puts a deadline on it. */
  call(method: SessionMethod, args: unknown[]): Promise<unknown> {
    const callId = this.nextCall++
    return new Promise((resolve, reject) => {
      this.pending.set(callId, { resolve, reject })
      this.bus.postMessage({ kind: 'call', from: this.config.tabId, callId, method, args } satisfies BusMessage)
    })
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
    this.followers.clear()
    // Releases every tab of this hub (followers and this tab's own registration) and closes its connections.
    hub.close()
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
    this.hub = createBrokerHost({ env, mode: 'leader', modeReason: reason, locks })
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
      case 'events':
        if (message.to === this.config.tabId) this.events?.dispatch(message.data)
        return
      case 'events-up':
        this.followers.get(message.from)?.port?.dispatch(message.data)
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

  /** Leader side: runs a follower's call on its session API and replies. */
  private serve(hub: TabHub, call: Extract<BusMessage, { kind: 'call' }>): void {
    const reply = (result: { ok: true; value: unknown } | { ok: false; error: string }): void => {
      this.bus.postMessage({ kind: 'reply', to: call.from, callId: call.callId, ...result } satisfies BusMessage)
    }
    try {
      reply({ ok: true, value: this.run(hub, call.from, call.method, call.args) })
    } catch (error) {
      reply({ ok: false, error: errorText(error) })
    }
  }

  private run(hub: TabHub, from: string, method: unknown, args: unknown[]): unknown {
    if (!isSessionMethod(method)) throw new Error(`tabcast: unknown call ${JSON.stringify(method)}`)
    let follower = this.followers.get(from)
    if (!follower) {
      follower = { api: createSessionApi(hub), port: null }
      this.followers.set(from, follower)
    }
    if (method === 'hello') {
      const [tabId, protocolVersion] = args
      if (tabId !== from) throw new Error('tabcast: hello() from another tab id than the caller')
      const port = new BusPort((data) => this.bus.postMessage({ kind: 'events', to: from, data } satisfies BusMessage))
      const hello = follower.api.hello(from, port, protocolVersion as number)
      follower.port?.close()
      follower.port = port
      return hello
    }
    const value = invokeSession(follower.api, method, args)
    if (method === 'bye') this.followers.delete(from)
    return value
  }
}

/** A transport over the bus to the leader tab's session API for this (follower) tab. */
function busTransport(election: LeaderElection): SessionTransport {
  const call = async <K extends SessionMethod>(method: K, args: unknown[]): Promise<ReturnType<SessionApi[K]>> =>
    (await election.call(method, args)) as ReturnType<SessionApi[K]>
  const remote: Omit<RemoteSession, 'hello'> = {
    locked: () => call('locked', []),
    subscribe: (...args) => call('subscribe', args),
    unsubscribe: (...args) => call('unsubscribe', args),
    send: (...args) => call('send', args),
    stats: () => call('stats', []),
    ping: () => call('ping', []),
    suspend: () => call('suspend', []),
    resume: () => call('resume', []),
    bye: () => call('bye', []),
    registerOnce: (...args) => call('registerOnce', args),
    unregisterOnce: (...args) => call('unregisterOnce', args),
    setPresence: (...args) => call('setPresence', args),
  }
  return {
    connect(tabId, protocolVersion, serve) {
      serve(election.openEvents())
      return call('hello', [tabId, protocolVersion])
    },
    remote,
  }
}

/**
 * A link through the election, decided at `hello`: the leader tab registers with its
 * own hub in the page, a follower over the bus. When leadership changes, the election
 * resets the link and the tab registers again, on whichever side it is then.
 */
export function createLeaderLink(election: LeaderElection): BrokerLink {
  let link: BrokerLink | null = null
  /** The inner link of the last hello, once the election is decided; null before hello and after dispose. */
  let ready: Promise<BrokerLink> | null = null
  let unsubscribeReset: (() => void) | null = null
  // Calls made right behind hello (the tab does not wait for its answer) wait for the
  // same decision; promise reactions run in order, and both transports send at once, so
  // they reach the host after hello, as on a port.
  const via = <T>(call: (inner: BrokerLink) => Promise<T>): Promise<T> =>
    ready
      ? ready.then(() => {
          if (!link) throw new Error('tabcast: call hello() first')
          return call(link)
        })
      : Promise.reject(new Error('tabcast: call hello() first'))
  return {
    hello(tabId, tab): Promise<Hello> {
      const inner = election.ready().then(() => {
        if (ready !== inner) throw new Error('tabcast: this link was disposed or greeted again')
        link?.dispose()
        const hub = election.leaderHub()
        link = createSessionLink(hub ? inPageTransport(hub) : busTransport(election))
        return link
      })
      ready = inner
      return inner.then((created) => created.hello(tabId, tab))
    },
    locked: () => via((inner) => inner.locked()),
    subscribe: (subId, projectId, options, seed) => via((inner) => inner.subscribe(subId, projectId, options, seed)),
    unsubscribe: (subId) => via((inner) => inner.unsubscribe(subId)),
    send: (projectId, options, message) => via((inner) => inner.send(projectId, options, message)),
    stats: () => via((inner) => inner.stats()),
    ping: () => via((inner) => inner.ping()),
    suspend: () => via((inner) => inner.suspend()),
    resume: () => via((inner) => inner.resume()),
    bye: () => via((inner) => inner.bye()),
    registerOnce: (regId, projectId, event, options, once) => via((inner) => inner.registerOnce(regId, projectId, event, options, once)),
    unregisterOnce: (regId) => via((inner) => inner.unregisterOnce(regId)),
    setPresence: (presence) => via((inner) => inner.setPresence(presence)),
    onReset(listener) {
      unsubscribeReset?.()
      unsubscribeReset = election.onReset(listener)
    },
    keepOnFailure: true,
    dispose() {
      unsubscribeReset?.()
      unsubscribeReset = null
      ready = null
      link?.dispose()
      link = null
    },
  }
}
