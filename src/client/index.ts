/**
 * Creating the tab client: which broker host this page uses, and the page-wide default.
 */
import type { AuthFunction, BrokerMode, TabcastClient } from '../types.js'
import type { LocksLike } from '../core/tab-lock.js'
import type { LeaderElection, VisibilitySource } from './leader-link.js'
import { createSharedWorkerLink } from './shared-worker-link.js'
import type * as Fallbacks from './fallbacks.js'
import type { BrokerLink } from './link.js'
import { TabClient, type LinkFactory, type PresenceSource, type PageEventsLike } from './tab-client.js'

export type ClientMode = 'auto' | BrokerMode

export interface ClientOptions {
  /**
   * Where the broker runs. `auto` uses the SharedWorker; where it is missing, blocked
   * or does not answer, a leader tab elected with Web Locks runs the broker for the
   * others over BroadcastChannel; without those, each tab runs its own (unshared).
   * @default 'auto'
   */
  mode?: ClientMode
  /**
   * Deadline (ms) for the broker's first answer; past it the next mode is tried.
   * @default 5000
   */
  handshakeTimeout?: number
  /**
   * Deadline (ms) for every other call to the broker.
   * @default 5000
   */
  callTimeout?: number
  /**
   * How often (ms) a tab with subscriptions checks that its broker is alive.
   * @default 10000
   */
  healthInterval?: number
  /**
   * Leader mode: how long (ms) a leader tab may be hidden before it hands leadership
   * to a visible tab (hidden pages' timers are throttled). 0 keeps the leader.
   * @default 5000
   */
  leaderHandoverDelay?: number
  /**
   * The `auth` function of every subscription that gives none of its own (see
   * `TaskOptions.auth`): e.g. one function that returns the signed-in user's token.
   * @default undefined (no token)
   */
  auth?: AuthFunction
}

function documentVisibility(): VisibilitySource | null {
  if (typeof document === 'undefined') return null
  return {
    isVisible: () => document.visibilityState !== 'hidden',
    onChange: (listener) => document.addEventListener('visibilitychange', listener),
  }
}

/**
 * The page's visibility and focus, for choosing which tab runs a once-handler: a
 * visible, focused tab is where the user looks.
 */
function documentPresence(): PresenceSource | null {
  if (typeof document === 'undefined') return null
  return {
    current: () => ({
      visible: document.visibilityState !== 'hidden',
      focused: typeof document.hasFocus === 'function' && document.hasFocus(),
    }),
    onChange: (listener) => {
      document.addEventListener('visibilitychange', listener)
      if (typeof window !== 'undefined') {
        window.addEventListener('focus', listener)
        window.addEventListener('blur', listener)
      }
    },
  }
}

/** The tab client plus what mode it ended up in. */
export interface TabcastBrowserClient extends TabcastClient {
  /** This tab's id, as the broker knows it (e.g. `OnceOutcome.ranIn`). */
  readonly tabId: string
  mode(): Promise<{ mode: BrokerMode; modeReason: string; instanceId: string; protocolVersion: number }>
}

// The fallbacks carry the whole broker core into the page; they are loaded only when
// the SharedWorker cannot be used, so the common case ships just the tab client.
const loadFallbacks = (): Promise<typeof Fallbacks> => import('./fallbacks.js')

async function perTabLink(failures: readonly string[]): Promise<BrokerLink> {
  const reason = failures.length > 0 ? failures.join('; ') : 'per-tab mode was requested'
  const { createLocalLink, globalEnv } = await loadFallbacks()
  return createLocalLink(globalEnv(), 'per-tab', reason)
}

function scheduleFrame(callback: () => void): void {
  let ran = false
  const run = (): void => {
    if (ran) return
    ran = true
    callback()
  }
  if (typeof requestAnimationFrame === 'function') requestAnimationFrame(run)
  // Hidden tabs get no animation frames; their state must still be current when shown.
  setTimeout(run, 100)
}

function newTabId(): string {
  const crypto = globalThis.crypto as Crypto | undefined
  if (crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`
}

/** Creates a client for this page. Most apps use the shared default, `getTabcastClient()`. */
export function createTabcastClient(options: ClientOptions = {}): TabcastBrowserClient {
  const mode = options.mode ?? 'auto'
  const g = globalThis as { navigator?: { locks?: LocksLike }; addEventListener?: PageEventsLike['addEventListener'] }
  const tabId = newTabId()
  let election: LeaderElection | null = null
  const leaderLink: LinkFactory = async (failures) => {
    const locks = g.navigator?.locks
    if (!locks) throw new Error('leader mode unavailable: this browser has no Web Locks')
    if (typeof BroadcastChannel === 'undefined') throw new Error('leader mode unavailable: this browser has no BroadcastChannel')
    const { BUS_NAME, LeaderElection, createLeaderLink, globalEnv } = await loadFallbacks()
    // One election per tab, kept across re-registrations: leadership is the tab's, not the link's.
    election ??= new LeaderElection({
      env: globalEnv(),
      locks,
      createBus: () => new BroadcastChannel(BUS_NAME),
      tabId,
      reason: failures.length > 0 ? failures.join('; ') : 'leader mode was requested',
      visibility: documentVisibility(),
      ...(options.leaderHandoverDelay === undefined ? {} : { handoverDelay: options.leaderHandoverDelay }),
    })
    return createLeaderLink(election)
  }
  const sharedWorkerLink: LinkFactory = () => createSharedWorkerLink()
  const links: LinkFactory[] = {
    auto: [sharedWorkerLink, leaderLink, perTabLink],
    'shared-worker': [sharedWorkerLink],
    leader: [leaderLink],
    'per-tab': [perTabLink],
  }[mode]
  return new TabClient({
    links,
    tabId,
    locks: g.navigator?.locks ?? null,
    pageEvents: typeof g.addEventListener === 'function' && typeof window !== 'undefined' ? window : null,
    scheduleFrame,
    presence: documentPresence(),
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    ...(options.handshakeTimeout === undefined ? {} : { handshakeTimeout: options.handshakeTimeout }),
    ...(options.callTimeout === undefined ? {} : { callTimeout: options.callTimeout }),
    ...(options.healthInterval === undefined ? {} : { healthInterval: options.healthInterval }),
    ...(options.auth === undefined ? {} : { auth: options.auth }),
  })
}

interface DefaultClientSlot {
  client: TabcastBrowserClient | null
  options: ClientOptions
}

// Kept on the global object, not in module state: a dev server that hot-reloads this
// module (or two copies of tabcast in one bundle) must not give the page a second
// client, which would register the tab with the broker twice.
const SLOT = Symbol.for('tabcast.defaultClient')

function slot(): DefaultClientSlot {
  const holder = globalThis as { [SLOT]?: DefaultClientSlot }
  holder[SLOT] ??= { client: null, options: {} }
  return holder[SLOT]
}

/** Sets the options of the default client; call before anything subscribes. */
export function configureTabcast(options: ClientOptions): void {
  const current = slot()
  if (current.client) throw new Error('tabcast: configureTabcast() must be called before the first subscription')
  current.options = options
}

/**
 * The page's shared client, created on first use. Creating it touches no browser
 * API; the worker starts with the first subscription.
 */
export function getTabcastClient(): TabcastBrowserClient {
  const current = slot()
  current.client ??= createTabcastClient(current.options)
  return current.client
}

export { TabClient } from './tab-client.js'
