/**
 * The tab side of tabcast: implements `TabcastClient` over a `BrokerLink`.
 *
 * - Subscriptions are kept here too, so the tab can register them again on another
 *   link (after a worker restart, a failed handshake, or a return from bfcache).
 *   Subscribing is idempotent on the host.
 * - Messages reach `listener.message` at once, every one, in order; snapshots are
 *   flushed at once when the tab is idle and coalesced to one notification per
 *   animation frame while it is busy, so a burst of progress cannot make a page
 *   render more often than it paints (see `flushSoon`).
 * - Every call to the host has a deadline: a host that stops answering is replaced
 *   by the next candidate link (SharedWorker → in-page broker).
 * - Once-handlers (`once`) live in `OnceHandlers`; they are registered again on every
 *   new link, like subscriptions, with the tasks this tab knows to be done.
 */
import type { Batch, Hello, TabRequestHandlers, WireTaskOptions } from '../core/session-protocol.js'
import { isUrgentChange } from '../core/delivery.js'
import type { OnceEvent, TabPresence } from '../core/once-coordinator.js'
import { tabLockName, type LocksLike } from '../core/tab-lock.js'
import { errorText, reportError } from '../error-text.js'
import { initialSnapshot } from '../options.js'
import { taskKey } from '../task-key.js'
import type { AuthContext, AuthFunction, BrokerStats, SubscribeOptions, TabcastClient, TaskListener, TaskOptions, TaskSnapshot } from '../types.js'
import { MAX_ONCE_HANDLERS_PER_TAB, type OnceOptions } from '../once-types.js'
import type { BrokerLink } from './link.js'
import { OnceHandlers, splitOnceOptions, type LocalOnce } from './once-handlers.js'

/** Creates a link; `failures` lists why earlier candidates were given up, for `stats().modeReason`. */
export type LinkFactory = (failures: readonly string[]) => BrokerLink | Promise<BrokerLink>

/** How visible the page is, for choosing the tab that runs a once-handler. */
export interface PresenceSource {
  current(): TabPresence
  onChange(listener: () => void): void
}

export interface PageEventsLike {
  addEventListener(type: 'pagehide' | 'pageshow', listener: (event: { persisted?: boolean }) => void): void
}

export interface TabClientConfig {
  /** Candidate links, best first. */
  links: readonly LinkFactory[]
  tabId: string
  /** Web Locks of the page, to tell the host when this tab is gone. */
  locks?: LocksLike | null
  /** Where `pagehide`/`pageshow` are heard (the window). */
  pageEvents?: PageEventsLike | null
  /** Runs a callback before the next paint (pages that get no frames need a fallback). */
  scheduleFrame: (callback: () => void) => void
  setTimeout: (callback: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
  /** The clock. @default Date.now */
  now?: () => number
  /** Deadline of the first handshake with a host. @default 5000 */
  handshakeTimeout?: number
  /** Deadline of every other call. @default 5000 */
  callTimeout?: number
  /** How often a subscribed tab checks that its host is alive and the same. @default 10000 */
  healthInterval?: number
  /** The `auth` of subscriptions that have none of their own. @default undefined */
  auth?: AuthFunction
  /** The page's visibility and focus; without it the tab counts as hidden. @default null */
  presence?: PresenceSource | null
}

interface LocalSubscription {
  id: number
  projectId: string
  options: SubscribeOptions
  listener: TaskListener
  key: string
}

interface Active {
  link: BrokerLink
  hello: Hello
}

export class TabClient implements TabcastClient {
  private readonly config: TabClientConfig
  private readonly subscriptions = new Map<number, LocalSubscription>()
  private readonly snapshots = new Map<string, TaskSnapshot>()
  private readonly pending = new Map<string, TaskSnapshot>()
  private nextId = 1
  private factoryIndex = 0
  private readonly failures: string[] = []
  private active: Promise<Active> | null = null
  private current: Active | null = null
  /** The link whose hello is under way, and that hello: its batches count already (they may overtake hello's answer). */
  private connecting: { link: BrokerLink; greeting: Promise<Hello> } | null = null
  /** The link each subscription and once-handler was last registered on, so none is registered twice. */
  private readonly registeredOn = new Map<number, BrokerLink>()
  /** A flush opened a frame window: snapshots wait for that frame (see `flushSoon`). */
  private windowOpen = false
  private healthTimer: unknown = null
  /** Resolves true once this document holds its tab lock; false without Web Locks or when the request failed. */
  private lockHeld: Promise<boolean> | null = null
  /** Re-registrations in quick succession, to back off from a host that keeps failing. */
  private quickRetries = 0
  private lastReestablish = -Infinity
  /** A health check failed and the same kind of host was tried again; a second failure moves on. */
  private healthRetried = false
  /** No kind of host could be reached: all are tried again from the first after a growing delay. */
  private brokerRetries = 0
  private brokerRetryTimer: unknown = null
  /** How this tab answers its host's requests (`TabRequests`). */
  private readonly requests: TabRequestHandlers = {
    ping: () => this.config.tabId,
    token: (subId, context) => this.token(subId, context),
    runOnce: (request) => this.onceHandlers.run(request),
    onceSettled: (notice) => this.onceHandlers.settled(notice),
  }
  private readonly onceHandlers: OnceHandlers

  constructor(config: TabClientConfig) {
    this.config = config
    this.onceHandlers = new OnceHandlers(config.tabId, () => (config.now ?? Date.now)(), reportError)
    config.presence?.onChange(() => {
      const link = this.current?.link
      if (link && this.onceHandlers.size > 0) this.sendPresence(link)
    })
    config.pageEvents?.addEventListener('pagehide', (event) => {
      const link = this.current?.link
      if (!link) return
      // A page kept in bfcache may come back: pause its events. Otherwise say goodbye now,
      // so the host releases this tab without waiting for the lock.
      void (event.persisted ? link.suspend() : link.bye()).catch(() => {})
    })
    config.pageEvents?.addEventListener('pageshow', (event) => {
      if (!event.persisted || !this.current) return
      // WebKit releases a page's locks when it enters bfcache, so the host may have let
      // this tab go: register again, with every subscription.
      this.lockHeld = null
      this.reestablish('the page returned from the back/forward cache', false)
    })
  }

  subscribe(projectId: string, listener: TaskListener, options: SubscribeOptions = {}): () => void {
    // The host sends only what this listener uses (see `Delivery`).
    const delivery = options.delivery ?? (listener.message ? 'messages' : 'snapshots')
    const subscription: LocalSubscription = {
      id: this.nextId++,
      projectId,
      options: { ...options, delivery },
      listener,
      key: taskKey(projectId, options),
    }
    this.subscriptions.set(subscription.id, subscription)
    // A hello under way (another subscription started it): this one goes right behind it too.
    if (this.connecting) this.register(this.connecting.link, subscription, this.connecting.greeting)
    void this.connect().then(
      (active) => {
        if (this.subscriptions.has(subscription.id)) this.register(active.link, subscription)
      },
      // No host could be reached: show it on the snapshots instead of leaving them "connecting".
      (error: unknown) => this.showFailure(errorText(error)),
    )
    this.armHealthCheck()
    return () => {
      if (!this.subscriptions.delete(subscription.id)) return
      this.unregister(subscription.id, (link) => link.unsubscribe(subscription.id), 'unsubscribe')
    }
  }

  /**
   * The host asks for a token for subscription `subId`: its `auth` function, or that of
   * another subscription of the same task in this tab (the first may have just left).
   */
  private token(subId: number, context: AuthContext): string | null | Promise<string | null> {
    // Subscriptions and once-registrations share one id sequence; a task followed only
    // through `once` is asked by the host's once-watcher with a registration id.
    const asked = this.subscriptions.get(subId) ?? this.onceHandlers.get(subId)
    let auth = asked ? this.authOf(asked.options) : undefined
    if (!auth) {
      const key = asked?.key ?? taskKey(context.projectId, { backendUrl: context.backendUrl })
      for (const entry of [...this.subscriptions.values(), ...this.onceHandlers.all()]) {
        if (entry.key === key) auth ??= this.authOf(entry.options)
      }
    }
    if (!auth) throw new Error(`tab ${this.config.tabId} has no auth function for task ${context.projectId}`)
    return auth(context)
  }

  private authOf(options: TaskOptions): AuthFunction | undefined {
    return typeof options.auth === 'function' ? options.auth : this.config.auth
  }

  /** The options as they cross to the host: the `auth` function stays here, a flag goes instead. */
  private wire(options: TaskOptions): WireTaskOptions {
    const { auth: _auth, ...data } = options
    return this.authOf(options) ? { ...data, withAuth: true } : data
  }

  once(projectId: string, event: OnceEvent, handler: (value: never) => void, options: OnceOptions = {}): () => void {
    const { task, ackTimeout, onSettled } = splitOnceOptions(options)
    const registration: LocalOnce = { id: this.nextId++, projectId, event, options: task, ackTimeout, handler, onSettled, key: taskKey(projectId, task) }
    // This tab already saw the effect done (it ran here, or another tab ran it): nothing to
    // run, and `onSettled` hears it as it would from the host (asynchronously).
    const done = this.onceHandlers.doneOutcome(registration.key)
    if (done) {
      if (onSettled) {
        queueMicrotask(() => {
          try {
            onSettled({ ...done, ranHere: done.ranIn === this.config.tabId })
          } catch (error) {
            reportError(error)
          }
        })
      }
      return () => {}
    }
    if (this.onceHandlers.size >= MAX_ONCE_HANDLERS_PER_TAB) {
      throw new RangeError(`tabcast: this tab has ${MAX_ONCE_HANDLERS_PER_TAB} once-handlers registered already (the limit); remove some before adding more`)
    }
    this.onceHandlers.add(registration)
    if (this.connecting) {
      this.sendPresence(this.connecting.link, this.connecting.greeting)
      this.registerOnce(this.connecting.link, registration, this.connecting.greeting)
    }
    void this.connect().then(
      (active) => {
        if (this.onceHandlers.get(registration.id) === registration && this.registeredOn.get(registration.id) !== active.link) {
          this.sendPresence(active.link)
          this.registerOnce(active.link, registration)
        }
      },
      (error: unknown) => this.showFailure(errorText(error)),
    )
    this.armHealthCheck()
    return () => {
      if (!this.onceHandlers.remove(registration.id)) return
      this.unregister(registration.id, (link) => link.unregisterOnce(registration.id), 'unregisterOnce')
    }
  }

  getSnapshot(projectId: string, options?: TaskOptions): TaskSnapshot {
    const key = taskKey(projectId, options)
    let snapshot = this.snapshots.get(key)
    if (!snapshot) {
      snapshot = initialSnapshot(projectId, options)
      this.snapshots.set(key, snapshot)
    }
    return snapshot
  }

  async send(projectId: string, message: unknown, options: TaskOptions = {}): Promise<void> {
    const active = await this.connect()
    const result = await this.call(active.link.send(projectId, this.wire(options), message), 'send')
    if (!result.ok) throw new Error(`tabcast: ${result.error}`)
  }

  async stats(): Promise<BrokerStats> {
    const active = await this.connect()
    return this.call(active.link.stats(), 'stats')
  }

  /** This tab's id, as its host knows it. */
  get tabId(): string {
    return this.config.tabId
  }

  /** The mode this tab ended up in, once connected. */
  async mode(): Promise<Hello> {
    return (await this.connect()).hello
  }

  /** A link this tab uses: the current one, or the one whose hello is under way. */
  private isLive(link: BrokerLink): boolean {
    return this.current?.link === link || this.connecting?.link === link
  }

  /**
   * Takes a subscription or once-handler off the link it was registered on, if that
   * link is still in use (possibly right behind a hello under way); one never
   * registered (dropped before its turn came) has nothing to take off.
   */
  private unregister(id: number, call: (link: BrokerLink) => Promise<void>, what: string): void {
    const link = this.registeredOn.get(id)
    this.registeredOn.delete(id)
    if (!link || !this.isLive(link)) return
    const handshake = this.connecting?.link === link ? this.connecting.greeting : undefined
    void this.pipelined(call(link), what, handshake).catch(() => {})
  }

  private connect(): Promise<Active> {
    return this.active ?? this.track(this.establish())
  }

  /** Makes `attempt` the tab's connection; when no host at all can be reached, all are tried again later. */
  private track(attempt: Promise<Active>): Promise<Active> {
    this.active = attempt
    attempt.then(
      () => {
        if (this.active === attempt) this.brokerRetries = 0
      },
      () => {
        if (this.active === attempt) this.retryLater()
      },
    )
    return attempt
  }

  /**
   * Every kind of host failed (the worker, a leader, even the in-page broker, whose code
   * may have failed to load): try them all again after 5 s, doubling up to a minute, so a
   * passing failure does not leave the tab closed for its whole life.
   */
  private retryLater(): void {
    if (this.brokerRetryTimer !== null) return
    const delay = Math.min(5000 * 2 ** this.brokerRetries, 60_000)
    this.brokerRetries++
    this.brokerRetryTimer = this.config.setTimeout(() => {
      this.brokerRetryTimer = null
      this.active = null
      this.factoryIndex = 0
      this.failures.length = 0
      // Nothing followed: the next subscription connects.
      if (this.subscriptions.size > 0 || this.onceHandlers.size > 0) this.connect().catch((error: unknown) => this.showFailure(errorText(error)))
    }, delay)
  }

  /**
   * Tries the candidate links in order until one completes the handshake. A late join
   * waits for nothing it need not: the tab lock is asked for right after hello and not
   * awaited (the host watches this tab once `locked` says it is held, see
   * `TabHub.attach`), and the subscriptions and once-handlers follow hello at once,
   * without waiting for its answer: every transport delivers a tab's calls in order and
   * hello is synchronous on the host. When hello fails, the calls behind it fail with it (the host refuses calls
   * before hello) and are registered again on the next link.
   */
  private async establish(): Promise<Active> {
    for (;;) {
      const factory = this.config.links[this.factoryIndex]
      if (!factory) throw new Error(`tabcast: no broker could be reached (${this.failures.join('; ')})`)
      let link: BrokerLink | null = null
      try {
        // A link made at once (the SharedWorker's) says hello in this very task: awaiting
        // it would wait for the rest of the page's task (a React commit, module code).
        const made = factory(this.failures)
        link = isPromiseLike(made) ? await made : made
        const created = link
        // A new hello replaces whatever this link registered before (a factory may hand out the same link again).
        for (const [id, on] of this.registeredOn) if (on === created) this.registeredOn.delete(id)
        const greeting = this.call(
          created.hello(this.config.tabId, { batch: (batch) => this.onBatch(created, batch), requests: this.requests }),
          'the handshake',
          this.config.handshakeTimeout ?? 5000,
        )
        this.connecting = { link: created, greeting }
        for (const subscription of this.subscriptions.values()) this.register(created, subscription, greeting)
        this.registerAllOnce(created, greeting)
        // Asked for in the same task as hello, after it: the request costs the page's
        // main thread time that the handshake need not wait for.
        void this.holdLock().then((held) => {
          if (held && this.isLive(created)) this.call(created.locked(), 'locked').catch(() => {})
        })
        const hello = await greeting
        const active = { link: created, hello }
        this.current = active
        this.connecting = null
        created.onReset?.((reason) => {
          if (this.current?.link === created) this.reestablish(reason, false)
        })
        return active
      } catch (error) {
        if (this.connecting?.link === link) this.connecting = null
        link?.dispose()
        this.failures.push(errorText(error))
        this.factoryIndex++
      }
    }
  }

  /** Holds this tab's lock for the life of the document, so the host learns when it dies. */
  private holdLock(): Promise<boolean> {
    const locks = this.config.locks
    if (!locks) return Promise.resolve(false)
    this.lockHeld ??= new Promise<boolean>((resolve) => {
      locks
        .request(tabLockName(this.config.tabId), { ifAvailable: true }, (lock) => {
          resolve(true)
          // Null means this document already holds it (a re-registration): nothing to keep.
          return lock ? new Promise(() => {}) : undefined
        })
        // Not held: say nothing, and the host watches at its deadline (see `TabHub.attach`).
        .catch(() => resolve(false))
    })
    return this.lockHeld
  }

  private call<T>(promise: Promise<T>, what: string, ms = this.config.callTimeout ?? 5000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.config.setTimeout(() => reject(new Error(`the tabcast broker did not answer ${what} within ${ms} ms`)), ms)
      promise.then(
        (value) => {
          this.config.clearTimeout(timer)
          resolve(value)
        },
        (error: unknown) => {
          this.config.clearTimeout(timer)
          reject(error instanceof Error ? error : new Error(String(error)))
        },
      )
    })
  }

  /**
   * Registers one subscription on a link (once per link), with the last snapshot this
   * tab saw as its seed. `handshake`: the hello this call is sent right behind.
   */
  private register(link: BrokerLink, subscription: LocalSubscription, handshake?: Promise<unknown>): void {
    if (this.registeredOn.get(subscription.id) === link) return
    this.registeredOn.set(subscription.id, link)
    const last = this.snapshots.get(subscription.key)
    const seed = last && (last.status !== 'idle' || last.seq !== null) ? last : undefined
    this.pipelined(link.subscribe(subscription.id, subscription.projectId, this.wire(subscription.options), seed), 'subscribe', handshake).catch(
      (error: unknown) => this.onLinkFailure(link, error),
    )
  }

  /**
   * A call sent behind a hello still unanswered: its deadline starts once hello is
   * answered (until then hello's own deadline covers a silent host), and when hello
   * fails it fails with hello's error.
   */
  private pipelined<T>(sent: Promise<T>, what: string, handshake?: Promise<unknown>): Promise<T> {
    if (!handshake) return this.call(sent, what)
    // Its own outcome may never be looked at (hello failed first): not an unhandled rejection.
    sent.catch(() => {})
    return handshake.then(() => this.call(sent, what))
  }

  /**
   * Registers every once-handler on a new link. Tasks this tab knows to be done go
   * first (id -1, nothing to run): a new host (a restarted worker, a new leader) knows
   * nothing, and must not run them again in a tab that registers later.
   */
  private registerAllOnce(link: BrokerLink, handshake: Promise<unknown>): void {
    for (const [, done] of this.onceHandlers.knownDone()) {
      const known = { done: true, ...(done.outcome.ranIn === null ? {} : { ranIn: done.outcome.ranIn }) }
      this.pipelined(link.registerOnce(-1, done.projectId, done.event, withoutAuth(done.options), known), 'registerOnce', handshake).catch(() => {})
    }
    const handlers = this.onceHandlers.all()
    if (handlers.length === 0) return
    this.sendPresence(link, handshake)
    for (const registration of handlers) this.registerOnce(link, registration, handshake)
  }

  private registerOnce(link: BrokerLink, registration: LocalOnce, handshake?: Promise<unknown>): void {
    // Once ids and subscription ids come from one counter, so they share `registeredOn`.
    if (this.registeredOn.get(registration.id) === link) return
    this.registeredOn.set(registration.id, link)
    const once = { ...(registration.ackTimeout === undefined ? {} : { ackTimeout: registration.ackTimeout }) }
    this.pipelined(link.registerOnce(registration.id, registration.projectId, registration.event, this.wire(registration.options), once), 'registerOnce', handshake).then(
      (state) => {
        if (state.state === 'done') this.onceHandlers.registeredDone(registration.id, state)
      },
      (error: unknown) => this.onLinkFailure(link, error),
    )
  }

  private sendPresence(link: BrokerLink, handshake?: Promise<unknown>): void {
    const presence = this.config.presence?.current() ?? { visible: false, focused: false }
    this.pipelined(link.setPresence(presence), 'setPresence', handshake).catch(() => {})
  }

  private onLinkFailure(link: BrokerLink, error: unknown): void {
    // A late failure of a link already replaced says nothing about the current one.
    if (this.current?.link !== link) return
    this.reestablish(errorText(error), !link.keepOnFailure)
  }

  /** Registers again on the same kind of link, or on the next one when `giveUpCurrent`. */
  private reestablish(reason: string, giveUpCurrent: boolean): void {
    const previous = this.current
    if (!previous) return
    this.current = null
    // A host that is only slow (a busy worker) gets to this goodbye later and releases
    // the old session, so its subscriptions do not keep sockets open beside the new ones.
    previous.link.bye().catch(() => {})
    previous.link.dispose()
    if (giveUpCurrent) {
      this.failures.push(reason)
      this.factoryIndex++
    }
    // A host that fails again right after each registration must not get a tight loop of them.
    const now = (this.config.now ?? Date.now)()
    this.quickRetries = now - this.lastReestablish < 2000 ? this.quickRetries + 1 : 0
    this.lastReestablish = now
    const delay = this.quickRetries === 0 ? 0 : Math.min(100 * 2 ** (this.quickRetries - 1), 5000)
    const waited = delay === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.config.setTimeout(resolve, delay))
    this.track(waited.then(() => this.establish())).catch((error: unknown) => this.showFailure(errorText(error)))
  }

  private showFailure(reason: string): void {
    for (const subscription of this.subscriptions.values()) {
      const snapshot = { ...this.getSnapshot(subscription.projectId, subscription.options), connection: 'closed' as const, connectionError: reason }
      this.pending.set(subscription.key, Object.freeze(snapshot))
    }
    if (this.pending.size > 0) this.flushSoon(true)
  }

  private onBatch(link: BrokerLink, batch: Batch): void {
    // The first batch may come before hello's answer: they travel on different ports.
    if (!this.isLive(link)) return
    let urgent = false
    for (const event of batch.events) {
      const subscription = this.subscriptions.get(event.sub)
      if (!subscription) continue
      if (event.type === 'message') {
        try {
          subscription.listener.message?.(event.message)
        } catch (error) {
          // A listener's bug stays in the listener; report it without losing later messages.
          reportError(error)
        }
      } else {
        const before = this.pending.get(subscription.key) ?? this.snapshots.get(subscription.key)
        if (!before || isUrgentChange(before, event.snapshot)) urgent = true
        this.pending.set(subscription.key, event.snapshot)
      }
    }
    if (this.pending.size > 0) this.flushSoon(urgent)
  }

  /**
   * Hands pending snapshots to the listeners (and so, through React, to the DOM):
   * - idle, at once: the first snapshot after a quiet frame is flushed in the task that
   *   received it, so it reaches the DOM in the frame in which a page with its own
   *   socket would paint the same message (waiting for the next animation frame instead
   *   loses a frame whenever the port hop ends after that frame's callbacks ran);
   * - busy, once per frame: a flush opens a frame window; snapshots arriving before the
   *   next frame are coalesced to the newest and flushed in that frame, which opens the
   *   next window. A frame with nothing to flush closes it. A burst costs one render per
   *   painted frame, never one per message;
   * - urgent, at once always (see `isUrgentChange`): a hidden tab gets no animation frames and
   *   its timers run once a second (once a minute after five minutes), and `onCompleted`
   *   must wait for neither. Intermediate progress in a hidden tab may wait.
   */
  private flushSoon(urgent: boolean): void {
    if (urgent || !this.windowOpen) this.flush()
    if (this.windowOpen) return
    this.windowOpen = true
    this.config.scheduleFrame(() => {
      this.windowOpen = false
      if (this.pending.size > 0) this.flushSoon(false)
    })
  }

  private flush(): void {
    const changed = [...this.pending]
    this.pending.clear()
    for (const [key, snapshot] of changed) this.snapshots.set(key, snapshot)
    for (const subscription of [...this.subscriptions.values()]) {
      const snapshot = changed.find(([key]) => key === subscription.key)?.[1]
      if (!snapshot) continue
      try {
        subscription.listener.snapshot?.(snapshot)
      } catch (error) {
        reportError(error)
      }
    }
    this.pruneSnapshots()
  }

  private pruneSnapshots(): void {
    if (this.snapshots.size <= 500) return
    const followed = new Set([...this.subscriptions.values()].map((subscription) => subscription.key))
    for (const key of this.snapshots.keys()) if (!followed.has(key)) this.snapshots.delete(key)
  }

  private armHealthCheck(): void {
    if (this.healthTimer !== null) return
    const interval = this.config.healthInterval ?? 10_000
    if (interval <= 0) return
    const tick = (): void => {
      this.healthTimer = null
      const active = this.current
      if (this.subscriptions.size === 0) return
      this.armHealthCheck()
      if (!active) return
      this.call(active.link.ping(), 'a health check').then(
        (instanceId) => {
          this.healthRetried = false
          // Another instance answering on the same port: the worker restarted and knows nothing of us.
          if (instanceId !== active.hello.instanceId && this.current === active) this.reestablish('the broker restarted', false)
        },
        (error: unknown) => {
          if (this.current !== active) return
          // One missed check may be a host busy for a while (a long task, a paused debugger):
          // register again with the same kind of host first (it answers the new hello once
          // free, or the handshake's deadline moves on). Only a second miss in a row gives it up.
          if (this.healthRetried) {
            this.onLinkFailure(active.link, error)
            return
          }
          this.healthRetried = true
          this.reestablish(errorText(error), false)
        },
      )
    }
    this.healthTimer = this.config.setTimeout(tick, interval)
  }
}

function isPromiseLike<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown }).then === 'function'
}

/** Options that cross to the host: a function cannot be cloned, and `auth` stays in the tab. */
function withoutAuth<T extends TaskOptions>(options: T): Omit<T, 'auth'> {
  const { auth: _auth, ...data } = options
  return data
}
