/**
 * Who may follow a task: the `authorize` hook, where its token comes from, and the
 * shipped scheme of signed per-task tokens (PROTOCOL.md, "Authorization").
 *
 * Tokens travel in headers only, never in URLs: on the stream as a second WebSocket
 * subprotocol `tabcast.bearer.<token>` (the only header a browser's `WebSocket` can
 * set), on HTTP as `Authorization: Bearer <token>`. Nothing here logs a token.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'

/** What a request wants to do with a task. */
export type AuthAction = 'stream' | 'status' | 'create'

/** What `authorize` is asked about. */
export interface AuthRequest {
  action: AuthAction
  /** The task id (for `create`: the id the new task will get). */
  taskId: string
  /** The bearer token the client sent, or `null` when it sent none. */
  token: string | null
  /** The page's `Origin`, or `null` for non-browser clients. */
  origin: string | null
  /** The HTTP request (the upgrade request for `stream`), for cookies or other headers. */
  request: IncomingMessage
}

/**
 * - `allow`: go on;
 * - `unauthenticated`: no token, or an expired or invalid one (close 4401 / HTTP 401;
 *   the client asks its app for a fresh token and retries);
 * - `forbidden`: a valid identity that may not see this task (close 4403 / HTTP 403;
 *   the client does not retry).
 */
export type AuthDecision = 'allow' | 'unauthenticated' | 'forbidden'

/**
 * Decides whether a request may use a task. Called for every stream, status read and
 * task creation, after the origin check and the task-id check. A throw or a rejected
 * promise is logged (without the token) and refused as a server error (close 1011 /
 * HTTP 500), never allowed.
 */
export type Authorize = (request: AuthRequest) => AuthDecision | Promise<AuthDecision>

/** The subprotocol a tabcast client offers first and the server selects. */
export const STREAM_SUBPROTOCOL = 'tabcast'

/** The prefix of the subprotocol that carries the token: `tabcast.bearer.<token>`. */
export const BEARER_SUBPROTOCOL_PREFIX = 'tabcast.bearer.'

/** RFC 7230 `token` characters: what a subprotocol name (and so a token) may hold. */
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * The token a stream request carries in `Sec-WebSocket-Protocol`, or `null`. A
 * repeated or malformed entry counts as none: the client then gets 4401, which names
 * the problem, instead of a guess.
 */
export function streamToken(headers: IncomingHttpHeaders): string | null {
  const header = headers['sec-websocket-protocol']
  if (typeof header !== 'string') return null
  const tokens = header
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith(BEARER_SUBPROTOCOL_PREFIX))
    .map((entry) => entry.slice(BEARER_SUBPROTOCOL_PREFIX.length))
  if (tokens.length !== 1) return null
  const token = tokens[0] as string
  return token !== '' && TOKEN_CHARS.test(token) ? token : null
}

/**
 * `ws`'s `handleProtocols`: selects `tabcast` when offered, never the bearer entry
 * (the selected protocol is echoed in the response, and a token has no business in a
 * response header). Without `tabcast` on offer nothing is selected.
 */
export function selectSubprotocol(protocols: Set<string>): string | false {
  return protocols.has(STREAM_SUBPROTOCOL) ? STREAM_SUBPROTOCOL : false
}

/** The token of `Authorization: Bearer <token>`, or `null`. */
export function bearerToken(headers: IncomingHttpHeaders): string | null {
  const header = headers.authorization
  if (typeof header !== 'string') return null
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header)
  return match?.[1] ?? null
}

// ---------------------------------------------------------------------------------
// Signed per-task tokens

/** What `verify` found. Only `valid` allows; `wrong_task` is a forbidden, the rest unauthenticated. */
export type TokenCheck = 'valid' | 'expired' | 'invalid' | 'wrong_task'

export interface TaskTokenOptions {
  /**
   * The HMAC-SHA256 key: at least 32 bytes, secret, the same on every server process
   * (and on the backend that issues tokens). `openssl rand -base64 32` makes one.
   * The CLI reads it from `TABCAST_AUTH_SECRET`.
   */
  secret: string | Buffer
  /**
   * How long a token is valid, in milliseconds.
   * @default 3600000 (one hour)
   */
  ttlMs?: number
  /**
   * The clock, in milliseconds since the epoch (tests replace it).
   * @default () => Date.now()
   */
  now?: () => number
}

export interface TaskTokens {
  /** A token for `taskId`, valid for `ttlMs` (or the given lifetime) from now. */
  sign(taskId: string, ttlMs?: number): string
  /** Checks a token against the task it is presented for. */
  verify(token: string, taskId: string): TokenCheck
  /**
   * An `authorize` hook built on these tokens: `stream` and `status` need a valid token
   * of that task (none, expired or malformed: `unauthenticated`; another task's:
   * `forbidden`); `create` is allowed (the new task's token is handed back by the
   * creating request).
   */
  authorize: Authorize
  /** The lifetime of a token, in milliseconds. */
  readonly ttlMs: number
}

const TOKEN_VERSION = 'v1'
const MIN_SECRET_BYTES = 32

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url')
}

/**
 * Signed per-task tokens: `v1.<b64url(taskId)>.<expiry, unix seconds>.<b64url(HMAC-SHA256(secret,
 * "v1.<b64url(taskId)>.<expiry>"))>`, base64url without padding. The task id is bound
 * in, so a token opens one task only; verification compares in constant time.
 */
export function createTaskTokens(options: TaskTokenOptions): TaskTokens {
  const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SECRET_BYTES) {
    const got = Buffer.isBuffer(secret) ? `${secret.length} bytes` : typeof options.secret
    throw new TypeError(`auth secret must be at least ${MIN_SECRET_BYTES} bytes (openssl rand -base64 32 makes one), got ${got}`)
  }
  const ttlMs = options.ttlMs ?? 60 * 60 * 1000
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs < 1000) {
    throw new TypeError(`auth ttlMs must be a number of milliseconds of at least 1000, got ${String(ttlMs)}`)
  }
  const now = options.now ?? (() => Date.now())
  const mac = (payload: string): Buffer => createHmac('sha256', secret).update(payload).digest()

  const sign = (taskId: string, lifetime: number = ttlMs): string => {
    const expires = Math.floor((now() + lifetime) / 1000)
    const payload = `${TOKEN_VERSION}.${base64url(taskId)}.${expires}`
    return `${payload}.${base64url(mac(payload))}`
  }

  const verify = (token: string, taskId: string): TokenCheck => {
    const parts = typeof token === 'string' ? token.split('.') : []
    if (parts.length !== 4) return 'invalid'
    const [version, encodedTask, expiresText, signature] = parts as [string, string, string, string]
    if (version !== TOKEN_VERSION || !/^\d{1,12}$/.test(expiresText)) return 'invalid'
    const expected = mac(`${version}.${encodedTask}.${expiresText}`)
    const given = Buffer.from(signature, 'base64url')
    // Lengths are public (always 32 bytes); only equal-length buffers reach the compare.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid'
    if (Number(expiresText) * 1000 <= now()) return 'expired'
    return Buffer.from(encodedTask, 'base64url').toString('utf8') === taskId ? 'valid' : 'wrong_task'
  }

  const authorize: Authorize = ({ action, taskId, token }) => {
    if (action === 'create') return 'allow'
    if (token === null) return 'unauthenticated'
    const check = verify(token, taskId)
    if (check === 'valid') return 'allow'
    return check === 'wrong_task' ? 'forbidden' : 'unauthenticated'
  }

  return { sign, verify, authorize, ttlMs }
}
