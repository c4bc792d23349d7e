/**
 * Public types of the tab-side client: what a task looks like to a UI, the options of
 * a subscription, and the client interface the React layer is built on.
 */
import type { OnceEventName, OnceOptions } from './once-types.js'
import type { JsonRecord, ServerMessage } from './protocol.js'

/** What the task itself is doing, as far as the client knows. */
export type TaskStatus = 'idle' | 'running' | 'completed' | 'failed'

/**
 * How the client is currently following the task.
 * - `connecting`: the first WebSocket attempt is under way;
 * - `live`: the WebSocket is open;
 * - `reconnecting`: the socket dropped and a retry is scheduled or under way;
 * - `polling`: reconnects were exhausted and the status endpoint is polled instead;
 * - `closed`: nothing is being followed (the task ended, the client gave up, or the
 *   subscription target is invalid).
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'closed'

/** Everything a UI needs to show one task. Snapshots are immutable; a new object means a change. */
export interface TaskSnapshot {
  /** The task id this snapshot describes. */
  projectId: string
  status: TaskStatus
  /** 0 – 1. Never goes backwards while the task runs. */
  progress: number
  /** The latest human-readable message from the server. */
  message: string | null
  taskName: string | null
  /** The `result` of the `completed` message. */
  result: JsonRecord | null
  /** The task's failure (`error` message or a failed status), or a fatal problem following it. */
  error: string | null
  details: JsonRecord | null
  connection: ConnectionState
  /** Reconnect attempts since the socket was last live. */
  reconnectAttempts: number
  /** The effective `maxReconnectAttempts`, for "reconnecting 2/5" displays. */
  maxReconnectAttempts: number
  /** `connection === 'live'` (the guide's `isConnected`). */
  isConnected: boolean
  /** `connection === 'polling'` (the guide's `isFallback`). */
  isFallback: boolean
  /** `seq` of the newest task message applied, when the server sends `seq`. */
  seq: number | null
  /**
   * The server's numbering history `seq` belongs to (the protocol's `epoch`), once the
   * server has named one. A new broker seeded from this snapshot (a new leader tab, a
   * restarted worker) needs it to notice a server that restarted meanwhile.
   */
  epoch: string | null
  /** When the newest message or status reached the broker (ms since epoch). */
  lastMessageAt: number | null
  /**
   * Set while the running task has had no update for `staleAfter` ms: the time of its
   * last update (ms since epoch). Null otherwise. The task has not failed.
   */
  stalledSince: number | null
  /**
   * The latest problem with the connection or the data (a message that failed
   * validation, a poll that got a 500 or an HTML page, a refused socket). It does not
   * mean the task failed; it is cleared when a good message or status arrives.
   */
  connectionError: string | null
}

/**
 * Options of a subscription. Names and defaults of the first five are the design
 * guide's. Two subscriptions of the same task on the same backend share one
 * connection; where their options differ, the most demanding value wins (see
 * `mergeOptions`).
 */
export interface TaskOptions {
  /**
   * The backend: `host:port` (ws/http, or wss/https on an https page), `http(s)://…`
   * or `ws(s)://…`, optionally with a path prefix.
   * @default 'localhost:8000'
   */
  backendUrl?: string
  /**
   * Reconnect with exponential backoff when the socket drops.
   * @default true
   */
  autoReconnect?: boolean
  /**
   * Reconnect attempts before falling back to polling (or giving up).
   * @default 5
   */
  maxReconnectAttempts?: number
  /**
   * Poll the status endpoint once reconnects are exhausted.
   * @default true
   */
  pollingFallback?: boolean
  /**
   * Milliseconds between polls of the status endpoint.
   * @default 2000
   */
  pollingInterval?: number
  /**
   * Milliseconds between keep-alive `{"type":"ping"}` messages.
   * @default 30000
   */
  pingInterval?: number
  /**
   * After the server has answered one ping, a pong missing for this long means the
   * connection is dead (half-open) and is replaced.
   * @default 10000
   */
  pongTimeout?: number
  /**
   * First reconnect delay; reconnect attempt n (1, 2, 3, …) waits
   * `min(reconnectBaseDelay · 2^(n−1), reconnectMaxDelay)`: 1, 2, 4, 8, 16 s.
   * @default 1000
   */
  reconnectBaseDelay?: number
  /**
   * Upper bound of a reconnect delay.
   * @default 30000
   */
  reconnectMaxDelay?: number
  /**
   * Random spread of each reconnect delay, as a fraction (0.2 = ±20 %). Off by
   * default so the guide's 1, 2, 4, 8, 16 s schedule holds exactly.
   * @default 0
   */
  reconnectJitter?: number
  /**
   * While polling, try the WebSocket again this often (ms) and switch back when it
   * opens. 0 disables.
   * @default 30000
   */
  socketRetryInterval?: number
  /**
   * A socket that has not opened after this long (ms) counts as a failed attempt. It runs
   * from the asking for a token (with `auth`) and from the start of the socket's
   * handshake: tabcast starts one handshake per backend at a time, as browsers do, so
   * a socket waiting behind another is not timed out for it.
   * @default 10000
   */
  connectTimeout?: number
  /**
   * A status request with no answer after this long (ms) counts as a failed poll.
   * @default 10000
   */
  requestTimeout?: number
  /**
   * How long (ms) a task's connection stays open after its last subscriber leaves,
   * so a remount or a quick reload reuses it.
   * @default 3000
   */
  linger?: number
  /**
   * A running task with no task message (or, while polling, no change in its status)
   * for this long (ms) is shown as stalled: the snapshot's `stalledSince` is set and
   * the ProgressBar shows "No update for 45 s". The task is not failed; the server
   * decides that. 0 disables.
   * @default 30000
   */
  staleAfter?: number
  /**
   * Returns the bearer token for this task (PROTOCOL.md, "Authorization"), or null to
   * follow without one. Called in a tab of the task before each connect, reconnect and
   * status read, so it may fetch a fresh token each time (it may be async). The
   * function stays in the tab: the shared connection asks a live tab for a token, with
   * a deadline, and another tab when one does not answer. Tokens must be made of
   * RFC 7230 token characters (base64url, `.`, `-`, `_`, `~`, …). Not part of the task
   * key: set `authScope` when two identities may follow the same task in one browser.
   * @default undefined (no token: the guide's behaviour)
   */
  auth?: AuthFunction
  /**
   * Whose view of the task this is (e.g. a user id). Part of the task key: two
   * subscriptions with different scopes never share a connection or a snapshot.
   * @default '' (the one anonymous identity)
   */
  authScope?: string
  /**
   * `fetch` credentials of status reads: `'include'` sends cookies to a backend on
   * another origin (the backend must answer with `Access-Control-Allow-Credentials`).
   * @default 'same-origin'
   */
  credentials?: CredentialsMode
}

/** Why a token is asked for: before a first connect, a reconnect, a status read, or after a 4401 / 401. */
export type AuthReason = 'connect' | 'reconnect' | 'status' | 'refresh'

/** What the `auth` function is told. */
export interface AuthContext {
  projectId: string
  /** The subscription's `backendUrl`, as given. */
  backendUrl: string
  reason: AuthReason
}

/** The `auth` option: a token for the task, or null for none; may be async. */
export type AuthFunction = (context: AuthContext) => string | null | Promise<string | null>

/** `fetch`'s `credentials` for status reads. */
export type CredentialsMode = 'omit' | 'same-origin' | 'include'

/**
 * Options with every default filled in: data only (`auth`, a function, stays in the
 * tab and is never part of a key).
 */
export type ResolvedTaskOptions = Required<Omit<TaskOptions, 'auth'>>

/** Options of one subscription: the task's options, and what this subscriber needs of it. */
export interface SubscribeOptions extends TaskOptions {
  /**
   * What the broker sends this subscription: `'messages'`, every server message (for a
   * `message` listener) and snapshots; `'snapshots'`, only snapshots, at most one per
   * frame, with a finished task or a changed connection at once. A tab whose
   * subscriptions only draw snapshots skips the work of every message.
   * @default 'messages' when the listener has a `message` callback, else 'snapshots'
   */
  delivery?: 'messages' | 'snapshots'
}

/** Receives a task's updates. Both members are optional. */
export interface TaskListener {
  /**
   * Called with each new snapshot: at once when the tab is idle, coalesced to one per
   * animation frame while it is busy; a finished task or a changed connection at once.
   */
  snapshot?: (snapshot: TaskSnapshot) => void
  /** Called with every server message of the task, in order (the guide's `onMessage`). */
  message?: (message: ServerMessage) => void
}

/** Per-task diagnostics from `stats()`. */
export interface TaskStats {
  key: string
  projectId: string
  backend: string
  connection: ConnectionState
  status: TaskStatus
  transport: 'websocket' | 'polling' | 'none'
  reconnectAttempts: number
  subscribers: number
  messagesIn: number
  messagesOut: number
  /** Messages queued by `send()` while the socket is down. */
  queued: number
  seq: number | null
}

export interface TabStats {
  tabId: string
  subscriptions: number
  /** Messages waiting for the tab to acknowledge earlier ones. */
  backlog: number
}

/** How the broker is hosted in this browser. */
export type BrokerMode = 'shared-worker' | 'leader' | 'per-tab'

export interface BrokerStats {
  mode: BrokerMode
  /** Why this mode was chosen, e.g. "SharedWorker unavailable: …". */
  modeReason: string
  instanceId: string
  protocolVersion: number
  tabs: number
  sockets: number
  pollers: number
  tasks: TaskStats[]
  tabDetails: TabStats[]
}

/**
 * The tab-side client. `subscribe`/`getSnapshot` fit React's `useSyncExternalStore`
 * directly: `getSnapshot` returns the same object until something changes.
 */
export interface TabcastClient {
  /** Follows a task; returns the function that stops following it. Never throws. */
  subscribe(projectId: string, listener: TaskListener, options?: SubscribeOptions): () => void
  /** The current snapshot of a task (an idle one before anything is known). */
  getSnapshot(projectId: string, options?: TaskOptions): TaskSnapshot
  /** Sends an application message on the task's socket, queued while it is down. */
  send(projectId: string, message: unknown, options?: TaskOptions): Promise<void>
  /** Diagnostics of the broker shared by this browser's tabs. */
  stats(): Promise<BrokerStats>
  /**
   * Runs `handler` in exactly one tab of this browser when the task ends with `event`
   * (`'completed'`: the task's `result`; `'failed'`: its error text), for side effects
   * that must not repeat per tab (a notification, a download). The broker picks one tab
   * that registered a handler (visible and focused first), and another if that tab
   * closes or does not acknowledge. Follows the task by itself. Returns the function
   * that removes the handler. Never throws.
   */
  once(projectId: string, event: 'completed', handler: (result: JsonRecord) => void, options?: OnceOptions): () => void
  once(projectId: string, event: 'failed', handler: (error: string) => void, options?: OnceOptions): () => void
  once(projectId: string, event: OnceEventName, handler: (value: never) => void, options?: OnceOptions): () => void
}
