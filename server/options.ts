/**
 * Options of `createTabcastServer`, their defaults, and their validation. Options are
 * checked once, at construction, with messages that name the option and the value.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http'
import type { PerMessageDeflateOptions } from 'ws'
import { MAX_CLIENT_MESSAGE_BYTES, type JsonRecord, type ServerMessage } from '../src/protocol.js'
import { createTaskTokens, type Authorize, type TaskTokenOptions, type TaskTokens } from './auth.js'
import { createConsoleLogger, type Logger } from './logger.js'
import { createOriginCheck, isLocalhostOrigin, type AllowedOrigins, type OriginCheck } from './origin.js'
import type { CreateRateLimitOptions, RateLimitOptions } from './rate-limit.js'
import { validateRedisUrl, type RedisTaskStoreOptions } from './redis-store.js'
import type { TaskStore } from './store.js'

/** The connection a client message arrived on, as `onClientMessage` sees it. */
export interface ClientConnection {
  /** Unique per server process. */
  readonly id: number
  readonly taskId: string
  /** The page's origin, absent for non-browser clients. */
  readonly origin: string | undefined
  readonly remoteAddress: string | undefined
  /** Sends a message to this connection only (for example an acknowledgement). */
  send(message: ServerMessage): void
}

/**
 * Receives application messages clients send on a task stream (anything but `ping`).
 * A throw or a rejected promise is logged and answered with a connection-scoped
 * `internal` error; it never closes the socket.
 */
export type ClientMessageHandler = (taskId: string, message: JsonRecord, connection: ClientConnection) => void | Promise<void>

/**
 * permessage-deflate settings. Context takeover is always off in both directions, so a
 * connection holds no compression state between messages (the zlib stream is reset,
 * not kept with history); the window and memory level bound what one reset stream
 * holds. See PROTOCOL.md, "Compression", for what this costs and saves.
 */
export interface CompressionOptions {
  /**
   * Messages smaller than this many bytes are sent uncompressed. Progress messages are
   * a few hundred bytes, so with the default only large results are compressed.
   * @default 1024
   */
  threshold?: number
  /**
   * zlib compression level, 1 (fastest) to 9 (smallest).
   * @default 3
   */
  level?: number
  /**
   * zlib memLevel, 1 – 9: memory of the compressor's hash tables (2^(memLevel+9) bytes).
   * @default 4
   */
  memLevel?: number
  /**
   * The server's LZ77 window, 9 – 15 bits (2^(bits+2) bytes of compressor memory).
   * Sent to the client as `server_max_window_bits`.
   * @default 11
   */
  serverMaxWindowBits?: number
  /**
   * How many compression jobs may run at once on the libuv thread pool (ws's limit
   * against the zlib memory fragmentation it documents).
   * @default 10
   */
  concurrencyLimit?: number
}

export interface DemoOptions {
  /**
   * How many demo tasks may run at once; further `POST /api/v1/projects` requests get 503.
   * @default 100
   */
  maxRunningTasks?: number
  /**
   * The longest demo task a request may ask for (`steps × stepMs`), in milliseconds;
   * longer ones get 400, so a few requests cannot hold every running slot for hours.
   * @default 600000 (ten minutes)
   */
  maxDurationMs?: number
}

/** Signed per-task tokens (see `createTaskTokens`): the secret and the tokens' lifetime. */
export type AuthOptions = Omit<TaskTokenOptions, 'now'>

/**
 * Caps on the tasks the default in-memory store holds, whatever their state. When a
 * new task would pass a cap, finished tasks are evicted, oldest first; when only
 * running tasks are left, the new task is refused (`TaskStoreFullError`, HTTP 503).
 */
export interface TaskLimits {
  /**
   * Tasks held at most.
   * @default 10000
   */
  maxTasks?: number
  /**
   * Bytes of task state and history held at most (counted as the JSON text of each
   * message and state). A running task that grows the total past it loses its oldest
   * history messages instead (only `?since=` replays reach back less far).
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number
}

export interface TabcastServerOptions {
  /**
   * An existing HTTP server to attach to instead of calling `listen()`. The tabcast
   * routes are served on it; its other requests and upgrades are left to their
   * owners. `close()` then detaches without closing that server.
   * @default undefined (the tabcast server creates its own on `listen()`)
   */
  server?: HttpServer
  /**
   * A path prefix for every route, for mounting behind a proxy path
   * (`"/tabcast"` serves `/tabcast/api/v1/…`). Clients use it as the path of their
   * `backendUrl`.
   * @default ""
   */
  basePath?: string
  /**
   * Origins whose pages may open streams and call the HTTP endpoints: exact origins
   * (`["https://studio.example.com"]`), `"*"` for any, or a predicate. Requests
   * without an `Origin` header (non-browser clients) are always allowed. A refused
   * WebSocket upgrade gets HTTP 403 (browsers report close code 1006); a refused
   * HTTP request gets 403.
   * @default pages on localhost, 127.0.0.1 or [::1], http or https, any port
   */
  allowedOrigins?: AllowedOrigins
  /**
   * Signed per-task tokens: `{ secret }` (at least 32 bytes; the CLI reads
   * `TABCAST_AUTH_SECRET`) turns them on. Then streams and status reads need a token of
   * their task (see `authorize`), `POST /api/v1/projects` returns one with the task,
   * and `server.taskToken(taskId)` issues one for a real job.
   * @default undefined (no tokens: anyone who knows a task id can follow it)
   */
  auth?: AuthOptions
  /**
   * Decides whether a request may use a task (the stream, the status endpoint, task
   * creation); see `Authorize`. Refusals close the stream with 4401 / 4403 (after
   * accepting the upgrade, so browsers can read the code) or answer 401 / 403.
   * @default the signed-token check when `auth` is set, otherwise everything is allowed
   */
  authorize?: Authorize
  /**
   * The client address that per-address limits count by. Behind a reverse proxy every
   * request comes from the proxy: return the address it forwards (the last hop of
   * `X-Forwarded-For` you trust) instead.
   * @default (request) => request.socket.remoteAddress
   */
  clientAddress?: (request: IncomingMessage) => string | undefined
  /**
   * Open streams (and upgrades being authorized) one client address may hold, or
   * `false` for no cap. Further upgrades are refused with HTTP 429 (browsers see close
   * code 1006 and retry with backoff).
   * @default 256
   */
  maxConnectionsPerAddress?: number | false
  /**
   * On the server `listen()` starts: connections one TCP peer address may hold before
   * their request's headers are complete (slow or silent clients), or `false` for no cap.
   * Past it a new connection is closed at once. Streams and requests in progress do not
   * count, so a proxy in front is not limited by it. (On your own server, set Node's
   * `headersTimeout` and a limit of your own.)
   * @default 64
   */
  maxPendingConnectionsPerAddress?: number | false
  /**
   * How long a stream on a task the server does not know may wait for it, in
   * milliseconds, or `false` to wait forever. When nothing has created or published the
   * task by then, the socket is closed with `CloseCode.TaskNotFound` (4004).
   * @default 600000 (ten minutes)
   */
  unknownTaskTimeout?: number | false
  /**
   * Caps on the tasks held by the default in-memory store (not used with `store` or
   * `redis`: configure those stores themselves).
   * @default { maxTasks: 10000, maxBytes: 64 MiB }
   */
  taskLimits?: TaskLimits
  /**
   * Rate limit on `POST /api/v1/projects` per client address, or `false` for none.
   * Requests over it get 429 with `Retry-After`.
   * @default { perMinute: 30, burst: 10 }
   */
  createRateLimit?: CreateRateLimitOptions | false
  /**
   * Whether `/healthz` tells more than ok / not ok: the store's kind and state, the
   * connection count. Those help an operator and help an attacker, so they are off
   * unless the endpoint is reachable only by operators.
   * @default false
   */
  healthDetails?: boolean
  /**
   * Whether a stream may be opened for a task the server does not know (yet). A tab may
   * start following a task before the job creates it, so this is on by default; when
   * off, such sockets are closed with `CloseCode.TaskNotFound` (4004).
   * @default true
   */
  allowUnknownTasks?: boolean
  /**
   * The largest client message accepted, in bytes. Larger ones close the socket with
   * 1009 (message too big).
   * @default 65536
   */
  maxMessageBytes?: number
  /**
   * The rate limit on client messages, per connection, or `false` for none.
   * @default { perSecond: 10, burst: 20, closeAfter: 20 }
   */
  rateLimit?: RateLimitOptions | false
  /**
   * How many of a task's newest messages are kept for `?since=` replay.
   * @default 1000
   */
  historyLimit?: number
  /**
   * How long a finished task (completed or failed) is kept, in milliseconds, so late
   * subscribers and pollers still get its final state.
   * @default 3600000 (one hour)
   */
  retention?: number
  /**
   * How long a running task that reports nothing is kept, in milliseconds. Every
   * message restarts this clock; it frees the memory of jobs that died silently.
   * @default 86400000 (one day)
   */
  staleTaskTimeout?: number
  /**
   * The lease of a running task, in milliseconds, or `false` for none: a task that gets
   * no publish and no `heartbeat()` for this long is failed with
   * `the job stopped reporting (no update for 60 s)` (`details.code: "job_stale"`),
   * which every subscriber and poller sees. Works across processes on Redis.
   * @default 60000
   */
  staleAfter?: number | false
  /**
   * How long the job API retries a publish (and `heartbeat()`) that fails because the
   * task store is unavailable, in milliseconds; 0 for no retries. Retries keep the call
   * order per task and are safe (publish ids); past this time the call rejects.
   * @default 15000
   */
  publishRetryFor?: number
  /**
   * How often the server sends a protocol-level ping to every socket, in milliseconds,
   * or `false` for never. A socket that has not answered the previous ping by the next
   * one is terminated.
   * @default 30000
   */
  heartbeatInterval?: number | false
  /**
   * permessage-deflate: `false` to refuse it, `true` for the bounded defaults, or
   * settings. Clients that do not offer it get uncompressed frames either way.
   * @default false
   */
  compression?: boolean | CompressionOptions
  /**
   * A socket whose unsent data exceeds this many bytes is closed with
   * `CloseCode.TryAgainLater` (1013): a client that cannot keep up reconnects and gets
   * the current state instead of an ever-growing backlog.
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number
  /**
   * How long `close()` waits for clients to answer the going-away close frame before
   * it drops their sockets, in milliseconds.
   * @default 2000
   */
  closeTimeout?: number
  /**
   * Where tasks are kept. Pass the same store to a new server to keep tasks across a
   * server restart. A store passed here is not closed by `close()`.
   * @default a new MemoryTaskStore
   */
  store?: TaskStore
  /**
   * Keep tasks in Redis (a `redis://` URL, or settings), so that several server
   * processes serve the same tasks: see docs/redis.md. Needs the optional `ioredis`
   * package. The server opens the store (in the background: `/healthz` answers 503
   * until Redis is reached) and closes it on `close()`. Not with `store`.
   * @default undefined (tasks are kept in this process's memory)
   */
  redis?: string | Omit<RedisTaskStoreOptions, 'waitForConnection'>
  /**
   * Handles application messages clients send on a stream. Without it, such messages
   * are answered with a connection-scoped `unsupported` error.
   * @default undefined
   */
  onClientMessage?: ClientMessageHandler
  /**
   * Whether `POST /api/v1/projects` starts demo "audio generation" tasks, or their
   * limits. The CLI turns it on with `--demo` or `TABCAST_DEMO=1`; `npm start` does.
   * Anyone the origin check (and `authorize`) admits can create tasks with it, so keep
   * it off when the server runs real jobs.
   * @default false
   */
  demo?: boolean | DemoOptions
  /**
   * Where the server logs connection problems and failures.
   * @default a console logger that prints warnings and errors
   */
  logger?: Logger
}

export interface ResolvedServerOptions {
  server: HttpServer | undefined
  basePath: string
  originCheck: OriginCheck
  /** Whether allowed cross-origin requests may carry credentials (not with `"*"`). */
  corsCredentials: boolean
  authorize: Authorize | null
  tokens: TaskTokens | null
  clientAddress: (request: IncomingMessage) => string | undefined
  maxConnectionsPerAddress: number | false
  maxPendingConnectionsPerAddress: number | false
  unknownTaskTimeout: number | false
  taskLimits: Required<TaskLimits>
  createRateLimit: Required<CreateRateLimitOptions> | false
  healthDetails: boolean
  allowUnknownTasks: boolean
  maxMessageBytes: number
  rateLimit: Required<RateLimitOptions> | false
  historyLimit: number
  retention: number
  staleTaskTimeout: number
  staleAfter: number | false
  publishRetryFor: number
  heartbeatInterval: number | false
  perMessageDeflate: false | PerMessageDeflateOptions
  maxBufferedBytes: number
  closeTimeout: number
  store: TaskStore | undefined
  redis: RedisTaskStoreOptions | undefined
  onClientMessage: ClientMessageHandler | undefined
  demo: Required<DemoOptions> | false
  logger: Logger
}

function resolveDemo(option: boolean | DemoOptions | undefined): Required<DemoOptions> | false {
  if (option === undefined || option === false) return false
  const demo = option === true ? {} : option
  return {
    maxRunningTasks: positiveInteger('demo.maxRunningTasks', demo.maxRunningTasks ?? 100),
    maxDurationMs: positiveNumber('demo.maxDurationMs', demo.maxDurationMs ?? 10 * 60 * 1000),
  }
}

function resolveAuth(options: TabcastServerOptions): { authorize: Authorize | null; tokens: TaskTokens | null } {
  if (options.authorize !== undefined && typeof options.authorize !== 'function') {
    throw new TypeError(`authorize must be a function, got ${typeof options.authorize}`)
  }
  const auth = options.auth
  if (auth !== undefined && (typeof auth !== 'object' || auth === null)) {
    throw new TypeError(`auth must be an object with a secret, got ${auth === null ? 'null' : typeof auth}`)
  }
  const tokens = auth === undefined ? null : createTaskTokens(auth)
  return { authorize: options.authorize ?? tokens?.authorize ?? null, tokens }
}

function optionalTimeout(name: string, value: number | false | undefined, fallback: number): number | false {
  if (value === false) return false
  return positiveNumber(name, value ?? fallback)
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive integer, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

function positiveNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive number, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

function nonNegativeNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a number of milliseconds, 0 or more, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

function resolveCompression(option: boolean | CompressionOptions | undefined): false | PerMessageDeflateOptions {
  if (option === undefined || option === false) return false
  const settings = option === true ? {} : option
  const threshold = settings.threshold ?? 1024
  if (typeof threshold !== 'number' || !Number.isInteger(threshold) || threshold < 0) {
    throw new TypeError(`compression.threshold must be a non-negative integer, got ${String(threshold)}`)
  }
  const level = integerIn('compression.level', settings.level ?? 3, 1, 9)
  const memLevel = integerIn('compression.memLevel', settings.memLevel ?? 4, 1, 9)
  const windowBits = integerIn('compression.serverMaxWindowBits', settings.serverMaxWindowBits ?? 11, 9, 15)
  const concurrencyLimit = positiveInteger('compression.concurrencyLimit', settings.concurrencyLimit ?? 10)
  return {
    threshold,
    concurrencyLimit,
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: windowBits,
    // The client's window is left to the client: demanding a size the client did not
    // offer makes ws refuse the handshake, and some browsers do not offer one.
    zlibDeflateOptions: { level, memLevel },
  }
}

/** Normalises `basePath`: `""` or `/segment[/segment…]` without a trailing slash. */
function resolveBasePath(value: unknown): string {
  if (value === undefined) return ''
  if (typeof value !== 'string') throw new TypeError(`basePath must be a string, got ${typeof value}`)
  const trimmed = value.replace(/\/+$/, '')
  if (trimmed === '') return ''
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(trimmed)) {
    throw new TypeError(`basePath must look like "/prefix" (letters, digits, . _ ~ -), got ${JSON.stringify(value)}`)
  }
  return trimmed
}

function resolveRedis(options: TabcastServerOptions): RedisTaskStoreOptions | undefined {
  const redis = options.redis
  if (redis === undefined) return undefined
  if (options.store !== undefined) throw new TypeError('pass either store or redis, not both')
  if (typeof redis === 'string') return { url: validateRedisUrl(redis, 'redis') }
  if (typeof redis !== 'object' || redis === null) throw new TypeError(`redis must be a URL or an object with a url, got ${typeof redis}`)
  return { ...redis, url: validateRedisUrl(redis.url, 'redis.url') }
}

export function resolveServerOptions(options: TabcastServerOptions): ResolvedServerOptions {
  const allowed = options.allowedOrigins ?? isLocalhostOrigin
  if (allowed !== '*' && typeof allowed !== 'function' && !Array.isArray(allowed)) {
    throw new TypeError('allowedOrigins must be "*", an array of origins or a function')
  }
  let rateLimit: Required<RateLimitOptions> | false = false
  if (options.rateLimit !== false) {
    const limit = options.rateLimit ?? {}
    rateLimit = {
      perSecond: positiveNumber('rateLimit.perSecond', limit.perSecond ?? 10),
      burst: positiveInteger('rateLimit.burst', limit.burst ?? 20),
      closeAfter: positiveInteger('rateLimit.closeAfter', limit.closeAfter ?? 20),
    }
  }
  const heartbeat = options.heartbeatInterval ?? 30_000
  const perAddress = options.maxConnectionsPerAddress ?? 256
  const pendingPerAddress = options.maxPendingConnectionsPerAddress ?? 64
  const createLimit: CreateRateLimitOptions = options.createRateLimit === false ? {} : (options.createRateLimit ?? {})
  const limits = options.taskLimits ?? {}
  if (options.clientAddress !== undefined && typeof options.clientAddress !== 'function') {
    throw new TypeError(`clientAddress must be a function, got ${typeof options.clientAddress}`)
  }
  return {
    server: options.server,
    basePath: resolveBasePath(options.basePath),
    originCheck: createOriginCheck(allowed),
    // With "*" any site could read answers sent with its visitors' cookies.
    corsCredentials: allowed !== '*',
    ...resolveAuth(options),
    clientAddress: options.clientAddress ?? ((request) => request.socket.remoteAddress),
    maxConnectionsPerAddress: perAddress === false ? false : positiveInteger('maxConnectionsPerAddress', perAddress),
    maxPendingConnectionsPerAddress: pendingPerAddress === false ? false : positiveInteger('maxPendingConnectionsPerAddress', pendingPerAddress),
    unknownTaskTimeout: optionalTimeout('unknownTaskTimeout', options.unknownTaskTimeout, 10 * 60 * 1000),
    taskLimits: {
      maxTasks: positiveInteger('taskLimits.maxTasks', limits.maxTasks ?? 10_000),
      maxBytes: positiveInteger('taskLimits.maxBytes', limits.maxBytes ?? 64 * 1024 * 1024),
    },
    createRateLimit:
      options.createRateLimit === false
        ? false
        : {
            perMinute: positiveNumber('createRateLimit.perMinute', createLimit.perMinute ?? 30),
            burst: positiveInteger('createRateLimit.burst', createLimit.burst ?? 10),
          },
    healthDetails: options.healthDetails ?? false,
    allowUnknownTasks: options.allowUnknownTasks ?? true,
    maxMessageBytes: positiveInteger('maxMessageBytes', options.maxMessageBytes ?? MAX_CLIENT_MESSAGE_BYTES),
    rateLimit,
    historyLimit: positiveInteger('historyLimit', options.historyLimit ?? 1000),
    retention: positiveNumber('retention', options.retention ?? 60 * 60 * 1000),
    staleTaskTimeout: positiveNumber('staleTaskTimeout', options.staleTaskTimeout ?? 24 * 60 * 60 * 1000),
    staleAfter: options.staleAfter === false ? false : positiveNumber('staleAfter', options.staleAfter ?? 60_000),
    publishRetryFor: nonNegativeNumber('publishRetryFor', options.publishRetryFor ?? 15_000),
    heartbeatInterval: heartbeat === false ? false : positiveNumber('heartbeatInterval', heartbeat),
    perMessageDeflate: resolveCompression(options.compression),
    maxBufferedBytes: positiveInteger('maxBufferedBytes', options.maxBufferedBytes ?? 1024 * 1024),
    closeTimeout: positiveNumber('closeTimeout', options.closeTimeout ?? 2000),
    store: options.store,
    redis: resolveRedis(options),
    onClientMessage: options.onClientMessage,
    demo: resolveDemo(options.demo),
    logger: options.logger ?? createConsoleLogger('warn'),
  }
}
