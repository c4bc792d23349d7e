/**
 * tabcast: follow server tasks from every tab over one shared connection per task.
 * This entry is framework-agnostic; the React hook and component live in `tabcast/react`.
 *
 * Every public name is listed here on purpose (tests/unit/public-api.test.ts holds the
 * list): what is not exported is internal and may change in any release.
 */

// The client: creating it, the page's shared default, and its types.
export { createTabcastClient, getTabcastClient, configureTabcast } from './client/index.js'
export type { ClientMode, ClientOptions, TabcastBrowserClient } from './client/index.js'
export type {
  AuthContext,
  AuthFunction,
  AuthReason,
  BrokerMode,
  BrokerStats,
  ConnectionState,
  CredentialsMode,
  ResolvedTaskOptions,
  SubscribeOptions,
  TabStats,
  TabcastClient,
  TaskListener,
  TaskOptions,
  TaskSnapshot,
  TaskStats,
  TaskStatus,
} from './types.js'
// Once-handlers: `client.once`, `onCompletedOnce`, `onErrorOnce`.
export type { OnceEventName, OnceOptions, OnceOutcome } from './once-types.js'

// Options: the defaults, how values are resolved and merged, the idle snapshot.
export { DEFAULT_OPTIONS, initialSnapshot, mergeOptions, resolveOptions } from './options.js'
export { reconnectDelay } from './core/backoff.js'

// Backends, endpoints and the task key.
export { DEFAULT_BACKEND_URL, createTaskUrl, resolveBackend, statusUrl, streamUrl, taskKey } from './endpoints.js'
export type { Backend, BackendResult, TaskKeyParts } from './endpoints.js'

// The wire protocol (PROTOCOL.md), for backends and tools that speak it.
export {
  CONNECTION_ERROR_CODES,
  CloseCode,
  DEFAULT_MAX_MESSAGE_BYTES,
  EPOCH_PATTERN,
  MAX_CLIENT_MESSAGE_BYTES,
  MAX_TASK_ID_LENGTH,
  PROTOCOL_VERSION,
  REMOTE_TASK_STATUSES,
  SERVER_CAPABILITIES,
  SERVER_MESSAGE_TYPES,
  TASK_ID_PATTERN,
  encodeClientMessage,
  hasCapability,
  isConnectionScopedError,
  isFatalCloseCode,
  isKnownMessage,
  isPingMessage,
  isTaskMessage,
  parseClientMessage,
  parseServerMessage,
  parseStatusResponse,
  validateServerMessage,
  validateBearerToken,
  validateStatusResponse,
  validateTaskId,
} from './protocol.js'
export type {
  ClientMessage,
  CompletedMessage,
  ConnectedMessage,
  ConnectionErrorCode,
  ErrorMessage,
  JsonRecord,
  KnownServerMessage,
  MessageFields,
  ParseOptions,
  ParseResult,
  PingMessage,
  PongMessage,
  ProgressMessage,
  ProtocolError,
  ProtocolErrorCode,
  RemoteTaskStatus,
  ServerCapability,
  ServerMessage,
  ServerMessageType,
  StatusResponse,
  TaskMessage,
  UnknownMessage,
  WebSocketMessage,
} from './protocol.js'
