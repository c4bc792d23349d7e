/**
 * The wire protocol between a tabcast client and a task backend, in one place.
 *
 * The message shapes are the design guide's (`connected | progress | error |
 * completed | pong` over `/api/v1/ws/projects/{task_id}/stream`, and the polling
 * response of `/api/v1/projects/{task_id}/status`). tabcast's extensions (`seq`,
 * `?since=`, `{"type":"ping"}`) are all optional, so a backend that only speaks the
 * guide still works. PROTOCOL.md describes the same in prose.
 *
 * Everything that arrives from the network passes through `parseServerMessage` or
 * `parseStatusResponse`. They never throw: they return either a typed value or a
 * `ProtocolError` that names the bad field and value, so the caller decides what a
 * bad message means (tabcast turns it into an error note on the task snapshot).
 */

export { PROTOCOL_VERSION } from './protocol-version.js'

// The guide types these bags as `Record<string, any>`; keeping that exact type lets code
// written against the guide's hook compile unchanged after switching the import.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type JsonRecord = Record<string, any>

/** Fields every server → client message may carry (the guide's flat `WebSocketMessage`). */
export interface MessageFields {
  project_id?: string
  task_name?: string
  /** 0.0 – 1.0 */
  progress?: number
  status?: string
  message?: string
  metadata?: JsonRecord
  error?: string
  details?: JsonRecord
  result?: JsonRecord
  timestamp?: string
  /**
   * tabcast extension: per-task sequence number (1, 2, 3, …) on every task message
   * (`progress`, `error`, `completed`). Absent on `connected` and `pong`.
   */
  seq?: number
  /**
   * tabcast extension, on `connected` only: the newest `seq` the server holds for the
   * task (0 when it holds none). A client whose own `seq` is higher knows the server
   * lost its history (an in-memory server restarted) and accepts the new numbering.
   */
  last_seq?: number
  /**
   * tabcast extension, on `connected` (and in the status response): an opaque id of the
   * server's numbering history for this task (`EPOCH_PATTERN`). It changes whenever the
   * server lost that history, so a client knows its `seq`s no longer compare.
   */
  epoch?: string
  /**
   * tabcast extension, on `connected` only: what the server supports (`SERVER_CAPABILITIES`;
   * unknown values are ignored). With `"pong"` the client expects a pong from the first ping.
   */
  capabilities?: string[]
}

export interface ConnectedMessage extends MessageFields {
  type: 'connected'
}
export interface ProgressMessage extends MessageFields {
  type: 'progress'
}
export interface ErrorMessage extends MessageFields {
  type: 'error'
}
export interface CompletedMessage extends MessageFields {
  type: 'completed'
}
export interface PongMessage extends MessageFields {
  type: 'pong'
}

/**
 * A message whose `type` this client does not know (a newer server's addition). It is
 * not bad input: it reaches `onMessage` with its fields as received and leaves the
 * task's state alone. The fields tabcast knows are still checked, so they keep their types.
 */
export interface UnknownMessage extends MessageFields {
  type: string
  [field: string]: unknown
}

/** The messages this client understands. */
export type KnownServerMessage = ConnectedMessage | ProgressMessage | ErrorMessage | CompletedMessage | PongMessage

/** A message the server sends on the task stream. */
export type ServerMessage = KnownServerMessage | UnknownMessage

/** The guide's name for a server message. */
export type WebSocketMessage = ServerMessage

export type ServerMessageType = KnownServerMessage['type']

export const SERVER_MESSAGE_TYPES: readonly ServerMessageType[] = ['connected', 'progress', 'error', 'completed', 'pong']

/** Messages that carry task state (and a `seq` when the server supports it). */
export type TaskMessage = ProgressMessage | ErrorMessage | CompletedMessage

export function isTaskMessage(message: ServerMessage): message is TaskMessage {
  return message.type === 'progress' || message.type === 'error' || message.type === 'completed'
}

/** Whether this client knows the message's type (see `UnknownMessage`). */
export function isKnownMessage(message: ServerMessage): message is KnownServerMessage {
  return (SERVER_MESSAGE_TYPES as readonly string[]).includes(message.type)
}

/** `epoch` values: 1–64 characters from `A–Z a–z 0–9 . _ -`. */
export const EPOCH_PATTERN = /^[A-Za-z0-9._-]{1,64}$/

/**
 * Capabilities a server may announce on `connected`:
 * - `pong`: it answers every `{"type":"ping"}` with `{"type":"pong"}`;
 * - `seq`, `since`, `epoch`, `auth`: it implements those extensions.
 */
export const SERVER_CAPABILITIES = ['pong', 'seq', 'since', 'epoch', 'auth'] as const
export type ServerCapability = (typeof SERVER_CAPABILITIES)[number]

/** Whether a `connected` message announces `capability`. */
export function hasCapability(message: ServerMessage, capability: ServerCapability): boolean {
  return message.type === 'connected' && (message.capabilities?.includes(capability) ?? false)
}

/**
 * An `error` message whose `details.scope` is `"connection"` is about this connection
 * (a malformed client message, a rate limit), not about the task: it does not fail the
 * task. Every other `error` message is the task's terminal failure.
 */
export function isConnectionScopedError(message: ServerMessage): boolean {
  return message.type === 'error' && message.details?.['scope'] === 'connection'
}

/** Status values of the polling endpoint, as the guide lists them. */
export type RemoteTaskStatus = 'running' | 'completed' | 'failed' | 'error'

export const REMOTE_TASK_STATUSES: readonly RemoteTaskStatus[] = ['running', 'completed', 'failed', 'error']

/** Body of `GET /api/v1/projects/{task_id}/status`. */
export interface StatusResponse {
  project_id: string
  status: RemoteTaskStatus
  /** 0.0 – 1.0 */
  progress: number
  message?: string
  task_name?: string
  result?: JsonRecord
  error?: string
  details?: JsonRecord
  /** tabcast extension: `seq` of the newest task message this status reflects. */
  seq?: number
  timestamp?: string
  /** tabcast extension: the server's numbering history (see `MessageFields.epoch`). */
  epoch?: string
}

/** Messages a client sends on the stream. Anything else is application data (`send()`). */
export interface PingMessage {
  type: 'ping'
}

/**
 * WebSocket close codes used by tabcast servers and understood by tabcast clients.
 * 1000–1015 are the standard codes; 4000–4999 are for applications.
 */
export const CloseCode = {
  /** The client is done with the task (it finished, or nobody follows it any more). */
  Normal: 1000,
  /** The server is shutting down or restarting: reconnect at once. */
  GoingAway: 1001,
  /**
   * The server is restarting (uvicorn and others send it on shutdown): reconnect at
   * once, as for 1001.
   */
  ServiceRestart: 1012,
  /**
   * Never sent: what a browser reports when a connection dropped without a close frame
   * or an upgrade was refused. tabcast clients use it for their own failed attempts.
   */
  Abnormal: 1006,
  /** `Origin` not allowed, or another policy violation: do not retry. */
  PolicyViolation: 1008,
  /** A client message exceeded the server's size limit. */
  MessageTooBig: 1009,
  /** The server is overloaded or its store is unavailable: retry with backoff. */
  TryAgainLater: 1013,
  /** The task id in the URL is not valid: do not retry. */
  InvalidTaskId: 4000,
  /**
   * No token, or an expired or invalid one: ask for a fresh token and retry once at
   * once, then with backoff.
   */
  Unauthenticated: 4401,
  /** The token is valid but does not allow this task: do not retry. */
  Forbidden: 4403,
  /** The server does not know this task and will not wait for it: do not retry. */
  TaskNotFound: 4004,
  /** The client sent messages faster than the server allows: retry with backoff. */
  RateLimited: 4008,
} as const

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]

/**
 * Whether a close with this code means retrying cannot help. Every code not listed
 * here (including 1006, an abnormal drop) is retried with backoff.
 */
export function isFatalCloseCode(code: number): boolean {
  return (
    code === CloseCode.PolicyViolation ||
    code === CloseCode.InvalidTaskId ||
    code === CloseCode.TaskNotFound ||
    code === CloseCode.Forbidden
  )
}

/** RFC 7230 token characters: the only ones a `Sec-WebSocket-Protocol` entry may hold. */
export const BEARER_TOKEN_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Longest bearer token a client sends (well under every server's header limits). */
export const MAX_BEARER_TOKEN_LENGTH = 4096
/** The subprotocol a client offers, and a server that accepts it selects. */
export const TABCAST_SUBPROTOCOL = 'tabcast'
/** Prefix of the subprotocol entry that carries the token: `tabcast.bearer.<token>`. */
export const BEARER_SUBPROTOCOL_PREFIX = 'tabcast.bearer.'

/**
 * Why a token cannot be sent, or null when it can. The message never contains the
 * token itself (tokens are never logged), only where the first bad character is.
 */
export function validateBearerToken(token: unknown): string | null {
  if (typeof token !== 'string') return `the token is ${describeValue(token)}, not a string`
  if (token === '') return 'the token is empty'
  if (token.length > MAX_BEARER_TOKEN_LENGTH) return `the token is ${token.length} characters long; the limit is ${MAX_BEARER_TOKEN_LENGTH}`
  if (!BEARER_TOKEN_PATTERN.test(token)) {
    const index = [...token].findIndex((char) => !BEARER_TOKEN_PATTERN.test(char))
    return (
      `the token has a character that is not an RFC 7230 token character at position ${index} ` +
      `(allowed: A–Z a–z 0–9 and ! # $ % & ' * + - . ^ _ \` | ~; base64url is fine, base64's / and = are not)`
    )
  }
  return null
}

/** Task ids: 1–128 characters from `A–Z a–z 0–9 _ - . : ~`, not starting with a dot. */
export const TASK_ID_PATTERN = /^(?!\.)[A-Za-z0-9_.:~-]{1,128}$/

export const MAX_TASK_ID_LENGTH = 128

/** Returns an error message naming the problem, or `null` when `taskId` is valid. */
export function validateTaskId(taskId: unknown): string | null {
  if (typeof taskId !== 'string') return `task id must be a string, got ${describeValue(taskId)}`
  if (taskId.length === 0) return 'task id is empty'
  if (taskId.length > MAX_TASK_ID_LENGTH) {
    return `task id is ${taskId.length} characters long; at most ${MAX_TASK_ID_LENGTH} are allowed`
  }
  if (!TASK_ID_PATTERN.test(taskId)) {
    return `task id ${JSON.stringify(taskId)} has characters outside A–Z a–z 0–9 _ - . : ~ (or starts with a dot)`
  }
  return null
}

export type ProtocolErrorCode =
  | 'not_json'
  | 'not_object'
  | 'missing_type'
  | 'bad_field'
  | 'too_large'
  | 'not_text'

/** Why a message from the network was rejected. `message` names the field and value. */
export interface ProtocolError {
  code: ProtocolErrorCode
  message: string
  field?: string
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: ProtocolError }

/** Server messages and status bodies larger than this are rejected unparsed (1 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

/**
 * Largest client → server message, in UTF-8 bytes (64 KiB): the client's `send()`
 * refuses larger ones and the server closes with `MessageTooBig` (1009). Counted in
 * bytes on both sides, so a message of 30,000 Korean characters (90,000 bytes) is
 * refused by the client instead of costing the socket.
 */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024

function fail(code: ProtocolErrorCode, message: string, field?: string): { ok: false; error: ProtocolError } {
  return { ok: false, error: field === undefined ? { code, message } : { code, message, field } }
}

/** A short, printable description of a value for error messages (never the whole value). */
export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value
    return `the string ${JSON.stringify(shown)}`
  }
  if (typeof value === 'number') return `the number ${String(value)}`
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

const STRING_FIELDS = ['project_id', 'task_name', 'status', 'message', 'error', 'timestamp'] as const
const RECORD_FIELDS = ['metadata', 'details', 'result'] as const

type FieldCheck = { ok: true } | { ok: false; error: ProtocolError }

function checkProgress(value: unknown): FieldCheck {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fail('bad_field', `progress must be a finite number from 0 to 1, got ${describeValue(value)}`, 'progress')
  }
  if (value < 0 || value > 1) {
    return fail('bad_field', `progress must be between 0 and 1, got ${String(value)}`, 'progress')
  }
  return { ok: true }
}

function checkSeq(value: unknown, field: string): FieldCheck {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    return fail('bad_field', `${field} must be a non-negative integer, got ${describeValue(value)}`, field)
  }
  return { ok: true }
}

function checkCommonFields(raw: Record<string, unknown>): FieldCheck {
  for (const field of STRING_FIELDS) {
    const value = raw[field]
    if (value !== undefined && value !== null && typeof value !== 'string') {
      return fail('bad_field', `${field} must be a string, got ${describeValue(value)}`, field)
    }
  }
  for (const field of RECORD_FIELDS) {
    const value = raw[field]
    if (value !== undefined && value !== null && !isPlainObject(value)) {
      return fail('bad_field', `${field} must be an object, got ${describeValue(value)}`, field)
    }
  }
  if (raw['progress'] !== undefined && raw['progress'] !== null) {
    const check = checkProgress(raw['progress'])
    if (!check.ok) return check
  }
  for (const field of ['seq', 'last_seq'] as const) {
    if (raw[field] !== undefined && raw[field] !== null) {
      const check = checkSeq(raw[field], field)
      if (!check.ok) return check
    }
  }
  const epoch = raw['epoch']
  if (epoch !== undefined && epoch !== null && (typeof epoch !== 'string' || !EPOCH_PATTERN.test(epoch))) {
    return fail('bad_field', `epoch must be 1–64 characters of A–Z a–z 0–9 . _ -, got ${describeValue(epoch)}`, 'epoch')
  }
  const capabilities = raw['capabilities']
  if (capabilities !== undefined && capabilities !== null) {
    if (!Array.isArray(capabilities)) {
      return fail('bad_field', `capabilities must be an array of strings, got ${describeValue(capabilities)}`, 'capabilities')
    }
    const bad: unknown = capabilities.find((value) => typeof value !== 'string')
    if (bad !== undefined) {
      return fail('bad_field', `capabilities must be an array of strings, it holds ${describeValue(bad)}`, 'capabilities')
    }
  }
  return { ok: true }
}

/** Copies the known fields, dropping `null`s (Python backends send `None` for absent values). */
function pickFields(raw: Record<string, unknown>): MessageFields {
  const out: Record<string, unknown> = {}
  for (const field of [...STRING_FIELDS, ...RECORD_FIELDS, 'progress', 'seq', 'last_seq', 'epoch', 'capabilities'] as const) {
    const value = raw[field]
    if (value !== undefined && value !== null) out[field] = value
  }
  return out as MessageFields
}

/** Size of `text` in UTF-8 bytes. */
export function utf8ByteLength(text: string): number {
  return new TextEncoder().encode(text).length
}

export interface ParseOptions {
  /**
   * Messages whose UTF-8 size exceeds this are rejected without parsing.
   * @default 1048576 (1 MiB)
   */
  maxBytes?: number
}

function parseJsonText(data: unknown, what: string, options: ParseOptions): ParseResult<unknown> {
  if (typeof data !== 'string') {
    return fail('not_text', `${what} must be text (JSON), got ${data instanceof ArrayBuffer || ArrayBuffer.isView(data) ? 'binary data' : describeValue(data)}`)
  }
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES
  // A UTF-16 unit is 1–3 UTF-8 bytes: only text that may be either side of the limit is
  // encoded to count, so a 50 MB frame is refused without a second copy of it.
  if (data.length > maxBytes) return fail('too_large', `${what} is at least ${data.length} bytes; the limit is ${maxBytes}`)
  const size = data.length * 3 > maxBytes ? utf8ByteLength(data) : data.length
  if (size > maxBytes) {
    return fail('too_large', `${what} is ${size} bytes; the limit is ${maxBytes}`)
  }
  try {
    return { ok: true, value: JSON.parse(data) as unknown }
  } catch {
    const start = data.trimStart().slice(0, 1)
    const hint = start === '<' ? ' (it looks like HTML, perhaps an error page)' : ''
    return fail('not_json', `${what} is not valid JSON${hint}: ${describeValue(data)}`)
  }
}

/**
 * Parses one WebSocket frame from the server. Accepts the text `pong` (what some
 * guide-era servers answer to a text `ping`) as a `pong` message.
 */
export function parseServerMessage(data: unknown, options: ParseOptions = {}): ParseResult<ServerMessage> {
  if (data === 'pong') return { ok: true, value: { type: 'pong' } }
  const parsed = parseJsonText(data, 'server message', options)
  if (!parsed.ok) return parsed
  return validateServerMessage(parsed.value)
}

/** Validates an already-decoded server message. */
export function validateServerMessage(raw: unknown): ParseResult<ServerMessage> {
  if (!isPlainObject(raw)) return fail('not_object', `server message must be a JSON object, got ${describeValue(raw)}`)
  const type = raw['type']
  if (type === undefined || type === null) return fail('missing_type', 'server message has no "type" field', 'type')
  if (typeof type !== 'string' || type === '') {
    return fail('bad_field', `server message type must be a non-empty string, got ${describeValue(type)}`, 'type')
  }
  const check = checkCommonFields(raw)
  if (!check.ok) return check
  if (!(SERVER_MESSAGE_TYPES as readonly string[]).includes(type)) {
    // A newer server's message type: passed on as received (see `UnknownMessage`), with
    // `null`s dropped as for every message.
    const value: UnknownMessage = { type }
    for (const [field, fieldValue] of Object.entries(raw)) if (fieldValue !== null && field !== 'type') value[field] = fieldValue
    return { ok: true, value }
  }
  return { ok: true, value: { ...pickFields(raw), type: type as ServerMessageType } }
}

/** Parses the body of the status endpoint. `contentType` improves the message for HTML pages. */
export function parseStatusResponse(
  body: unknown,
  options: ParseOptions & { contentType?: string | null } = {},
): ParseResult<StatusResponse> {
  if (options.contentType && /text\/html/i.test(options.contentType) && typeof body === 'string') {
    return fail('not_json', `status response is an HTML page, not JSON: ${describeValue(body)}`)
  }
  const parsed = parseJsonText(body, 'status response', options)
  if (!parsed.ok) return parsed
  return validateStatusResponse(parsed.value)
}

/** Validates an already-decoded status response. */
export function validateStatusResponse(raw: unknown): ParseResult<StatusResponse> {
  if (!isPlainObject(raw)) return fail('not_object', `status response must be a JSON object, got ${describeValue(raw)}`)
  const status = raw['status']
  if (status === undefined || status === null) return fail('bad_field', 'status response has no "status" field', 'status')
  if (typeof status !== 'string' || !(REMOTE_TASK_STATUSES as readonly string[]).includes(status)) {
    return fail(
      'bad_field',
      `status must be one of ${REMOTE_TASK_STATUSES.join(', ')}, got ${describeValue(status)}`,
      'status',
    )
  }
  const check = checkCommonFields(raw)
  if (!check.ok) return check
  const fields = pickFields(raw)
  // A finished task may omit progress; a running one without it is reported as 0.
  return {
    ok: true,
    value: {
      ...fields,
      project_id: fields.project_id ?? '',
      status: status as RemoteTaskStatus,
      progress: fields.progress ?? (status === 'completed' ? 1 : 0),
    },
  }
}

/**
 * `details.code` of a connection-scoped `error` (see `isConnectionScopedError`):
 * - `bad_request`: the client message was not text, not JSON, or not an object;
 * - `unsupported`: the server has no use for this kind of client message;
 * - `rate_limited`: the client sent messages faster than the server allows (the
 *   message was dropped; if it keeps up the server closes with `RateLimited`);
 * - `internal`: the server failed while handling the message.
 */
export type ConnectionErrorCode = 'bad_request' | 'unsupported' | 'rate_limited' | 'internal'

export const CONNECTION_ERROR_CODES: readonly ConnectionErrorCode[] = ['bad_request', 'unsupported', 'rate_limited', 'internal']

/**
 * A message a client sends on the stream: a keep-alive `ping`, or any other JSON
 * object, which is application data for the server (`send()` on the client side).
 */
export type ClientMessage = PingMessage | JsonRecord

export function isPingMessage(message: ClientMessage): message is PingMessage {
  return message['type'] === 'ping'
}

/**
 * Parses one WebSocket frame from a client (the server side of the edge). Accepts the
 * guide's text `ping` as `{ type: 'ping' }`; anything else must be a JSON object.
 */
export function parseClientMessage(data: unknown, options: ParseOptions = {}): ParseResult<ClientMessage> {
  if (typeof data === 'string' && data.trim() === 'ping') return { ok: true, value: { type: 'ping' } }
  const parsed = parseJsonText(data, 'client message', options)
  if (!parsed.ok) return parsed
  if (!isPlainObject(parsed.value)) {
    return fail('not_object', `client message must be a JSON object, got ${describeValue(parsed.value)}`)
  }
  return { ok: true, value: parsed.value }
}

/** Serialises a client message. */
export function encodeClientMessage(message: unknown): string {
  return JSON.stringify(message)
}
