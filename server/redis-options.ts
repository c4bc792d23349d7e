/**
 * The Redis store's settings: its options, their validation (URL, key prefix), and the
 * ioredis client options derived from them. Kept apart from the store so that option
 * parsing (the server's `redis` option, the CLI's `--redis-url`) needs no Redis code.
 */
import type { RedisOptions } from 'ioredis'
import type { Logger } from './logger.js'

export interface RedisTaskStoreOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  url: string
  /**
   * The first segment of every key and channel, so several applications (or test
   * runs) can share one Redis.
   * @default "tabcast"
   */
  keyPrefix?: string
  /**
   * Where connection losses and recoveries are logged.
   * @default a console logger that prints warnings and errors
   */
  logger?: Logger
  /**
   * Whether `createRedisTaskStore` waits for both connections before it resolves (and
   * rejects when Redis cannot be reached within `connectTimeout`). Without waiting the
   * store is returned at once, reports itself unhealthy and refuses commands until
   * Redis answers.
   * @default true
   */
  waitForConnection?: boolean
  /**
   * How long the first connection may take, in milliseconds.
   * @default 10000
   */
  connectTimeout?: number
  /**
   * A command that gets no answer within this many milliseconds fails (Redis stalled).
   * @default 5000
   */
  commandTimeout?: number
  /**
   * The longest pause between reconnection attempts, in milliseconds (they start at
   * 50 ms and double).
   * @default 2000
   */
  maxReconnectDelay?: number
  /**
   * How many entries one XRANGE reads during a catch-up.
   * @default 1000
   */
  readBatch?: number
  /**
   * More ioredis options (`tls`, `password`, `family`, …), for both connections;
   * `connectionName` (default "tabcast") names them `<name>-commands` and
   * `<name>-subscriptions` in CLIENT LIST. The store's own settings (no offline queue, no automatic resending or
   * resubscribing) cannot be changed: they are what makes failures visible.
   */
  clientOptions?: Record<string, unknown>
  /**
   * Called when a listener throws. Listeners are the server's own fan-out, so this is
   * a bug report, not flow control.
   * @default logs it
   */
  onListenerError?: (error: unknown, taskId: string) => void
}

/** Checks a Redis URL and returns it trimmed; throws a TypeError naming the problem. */
export function validateRedisUrl(value: unknown, name = 'redis url'): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(`${name} must be a redis:// or rediss:// URL, got ${JSON.stringify(value) ?? String(value)}`)
  }
  const text = value.trim()
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TypeError(`${name} must be a redis:// or rediss:// URL, got ${JSON.stringify(text)}`)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new TypeError(`${name} must start with redis:// or rediss://, got ${JSON.stringify(`${url.protocol}//…`)}`)
  }
  return text
}

/** The URL without its password, for logs and `/healthz`. */
export function redactRedisUrl(text: string): string {
  try {
    const url = new URL(text)
    if (url.password !== '') url.password = '***'
    return url.toString()
  } catch {
    return '<invalid url>'
  }
}

const PREFIX_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/

/** Checks `keyPrefix` and returns it (default "tabcast"); throws a TypeError naming the problem. */
export function validateKeyPrefix(value: string | undefined): string {
  const prefix = value ?? 'tabcast'
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`keyPrefix must be 1–64 characters from A–Z a–z 0–9 _ . : -, got ${JSON.stringify(prefix)}`)
  }
  return prefix
}

export type ClientOptions = Omit<RedisOptions, 'replyMapping'>

/**
 * The ioredis options of both connections: the user's `clientOptions` with the store's
 * own failure settings on top (they are what makes failures visible, so they cannot be
 * overridden).
 */
export function clientOptionsFor(options: RedisTaskStoreOptions): { common: ClientOptions; name: string } {
  const maxDelay = options.maxReconnectDelay ?? 2000
  const common: ClientOptions = {
    ...(options.clientOptions as ClientOptions | undefined),
    connectTimeout: options.connectTimeout ?? 10_000,
    commandTimeout: options.commandTimeout ?? 5000,
    // Fail fast instead of queueing: a command issued while Redis is away is refused
    // at once, and one in flight when the connection drops is failed at once, so the
    // job API hears about it (and retries with the same publish id) instead of hanging,
    // and nothing is resent behind its back.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // The store resubscribes itself, so that it knows when the subscriptions are
    // active again and the catch-up can start.
    autoResubscribe: false,
    retryStrategy: (times: number) => Math.min(maxDelay, 50 * 2 ** Math.min(times - 1, 10)),
  }
  // Named in CLIENT LIST as <name>-commands and <name>-subscriptions.
  const name = typeof common.connectionName === 'string' && common.connectionName !== '' ? common.connectionName : 'tabcast'
  return { common, name }
}
