/**
 * Option defaults, validation and the rule for two subscriptions of one task with
 * different options.
 */
import { DEFAULT_BACKEND_URL } from './defaults.js'
import type { CredentialsMode, ResolvedTaskOptions, TaskOptions, TaskSnapshot } from './types.js'

export const DEFAULT_OPTIONS: Readonly<ResolvedTaskOptions> = Object.freeze({
  backendUrl: DEFAULT_BACKEND_URL,
  autoReconnect: true,
  maxReconnectAttempts: 5,
  pollingFallback: true,
  pollingInterval: 2000,
  pingInterval: 30_000,
  pongTimeout: 10_000,
  reconnectBaseDelay: 1000,
  reconnectMaxDelay: 30_000,
  reconnectJitter: 0,
  socketRetryInterval: 30_000,
  connectTimeout: 10_000,
  requestTimeout: 10_000,
  linger: 3000,
  staleAfter: 30_000,
  authScope: '',
  credentials: 'same-origin',
})

const CREDENTIALS: readonly CredentialsMode[] = ['omit', 'same-origin', 'include']

const NUMERIC_BOUNDS: Record<
  Exclude<keyof ResolvedTaskOptions, 'backendUrl' | 'autoReconnect' | 'pollingFallback' | 'authScope' | 'credentials'>,
  readonly [min: number, max: number]
> = {
  maxReconnectAttempts: [0, 1000],
  pollingInterval: [10, 3_600_000],
  pingInterval: [0, 3_600_000],
  pongTimeout: [10, 3_600_000],
  reconnectBaseDelay: [0, 3_600_000],
  reconnectMaxDelay: [0, 3_600_000],
  reconnectJitter: [0, 1],
  socketRetryInterval: [0, 3_600_000],
  connectTimeout: [10, 3_600_000],
  requestTimeout: [10, 3_600_000],
  linger: [0, 3_600_000],
  staleAfter: [0, 86_400_000],
}

/**
 * Fills in defaults. Values of the wrong type or out of range fall back to the
 * default (an option typo must not stop progress from showing); `undefined` means
 * "not given".
 */
export function resolveOptions(options: TaskOptions = {}): ResolvedTaskOptions {
  const out: ResolvedTaskOptions = { ...DEFAULT_OPTIONS }
  if (typeof options.backendUrl === 'string') out.backendUrl = options.backendUrl
  if (typeof options.autoReconnect === 'boolean') out.autoReconnect = options.autoReconnect
  if (typeof options.pollingFallback === 'boolean') out.pollingFallback = options.pollingFallback
  if (typeof options.authScope === 'string') out.authScope = options.authScope
  if (CREDENTIALS.includes(options.credentials as CredentialsMode)) out.credentials = options.credentials as CredentialsMode
  for (const key of Object.keys(NUMERIC_BOUNDS) as (keyof typeof NUMERIC_BOUNDS)[]) {
    const value = options[key]
    const [min, max] = NUMERIC_BOUNDS[key]
    if (typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max) out[key] = value
  }
  return out
}

/**
 * Two subscriptions of one task share one connection, so their options are merged:
 * the most demanding value wins. Whatever one subscriber asks for in order to keep
 * following the task (reconnecting, more attempts, polling, faster polls and pings,
 * shorter timeouts, a longer linger) it gets, and the others see the same results.
 */
export function mergeOptions(a: ResolvedTaskOptions, b: ResolvedTaskOptions): ResolvedTaskOptions {
  const minPositive = (x: number, y: number): number => (x === 0 ? y : y === 0 ? x : Math.min(x, y))
  return {
    backendUrl: a.backendUrl,
    autoReconnect: a.autoReconnect || b.autoReconnect,
    maxReconnectAttempts: Math.max(a.maxReconnectAttempts, b.maxReconnectAttempts),
    pollingFallback: a.pollingFallback || b.pollingFallback,
    pollingInterval: Math.min(a.pollingInterval, b.pollingInterval),
    pingInterval: minPositive(a.pingInterval, b.pingInterval),
    pongTimeout: Math.min(a.pongTimeout, b.pongTimeout),
    reconnectBaseDelay: Math.min(a.reconnectBaseDelay, b.reconnectBaseDelay),
    reconnectMaxDelay: Math.min(a.reconnectMaxDelay, b.reconnectMaxDelay),
    reconnectJitter: Math.max(a.reconnectJitter, b.reconnectJitter),
    socketRetryInterval: minPositive(a.socketRetryInterval, b.socketRetryInterval),
    connectTimeout: Math.min(a.connectTimeout, b.connectTimeout),
    requestTimeout: Math.min(a.requestTimeout, b.requestTimeout),
    linger: Math.max(a.linger, b.linger),
    staleAfter: minPositive(a.staleAfter, b.staleAfter),
    // One channel is one scope (it is part of the key).
    authScope: a.authScope,
    // Whoever needs cookies on status reads gets them: 'include' > 'same-origin' > 'omit'.
    credentials: CREDENTIALS[Math.max(CREDENTIALS.indexOf(a.credentials), CREDENTIALS.indexOf(b.credentials))] ?? a.credentials,
  }
}

/** The snapshot of a task before anything is known about it. Pure: safe during SSR. */
export function initialSnapshot(projectId: string, options: TaskOptions = {}): TaskSnapshot {
  return {
    projectId,
    status: 'idle',
    progress: 0,
    message: null,
    taskName: null,
    result: null,
    error: null,
    details: null,
    connection: 'connecting',
    reconnectAttempts: 0,
    maxReconnectAttempts: resolveOptions(options).maxReconnectAttempts,
    isConnected: false,
    isFallback: false,
    seq: null,
    epoch: null,
    lastMessageAt: null,
    stalledSince: null,
    connectionError: null,
  }
}
