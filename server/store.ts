/**
 * Where tasks live: the storage interface of the reference server.
 *
 * The interface is shaped after what a shared store can do atomically, so that a
 * Redis Streams implementation (several server processes serving one task) drops in
 * without touching the stream or HTTP code:
 * - `append` assigns the per-task `seq` and updates the current state in one step
 *   (XADD with MAXLEN plus a state hash, in one Lua script), and refuses to append
 *   after a terminal message;
 * - `readSince` reads the bounded history (XRANGE from `since + 1`);
 * - `subscribe` delivers messages appended by *any* process (XREAD BLOCK or pub/sub)
 *   and resolves only once the subscription is active, so a reader that subscribes
 *   first and reads history second never misses a message between the two;
 * - expiry is a time-to-live set on every write (EXPIRE), not a sweep the server runs.
 *
 * Every method is async so that network-backed stores fit; the memory store resolves
 * at once.
 */
import type { JsonRecord, TaskMessage } from '../src/protocol.js'

/** The life of a task as the server records it. Mirrors the status endpoint's values. */
export type TaskLifecycle = 'running' | 'completed' | 'failed'

/** A task message before the store numbers it: everything but `seq`. */
export type TaskMessageInput = Omit<TaskMessage, 'seq' | 'last_seq'>

/** The current state of one task: what the status endpoint reports. */
export interface TaskState {
  taskId: string
  status: TaskLifecycle
  /** 0 – 1: the latest reported progress; 1 once completed. */
  progress: number
  taskName?: string
  /** The latest human-readable progress message. */
  message?: string
  /** The `result` of the `completed` message. */
  result?: JsonRecord
  /** The `error` of the terminal `error` message. */
  error?: string
  details?: JsonRecord
  /** `seq` of the newest message; 0 before the first. */
  lastSeq: number
  /**
   * The newest task message. A subscriber that cannot be given a replay gets this as
   * the task's current state (it carries the latest progress, message and task name,
   * or the terminal result).
   */
  latest?: TaskMessage
  /** ISO 8601. */
  createdAt: string
  /** ISO 8601, the time of the newest message (or of creation). */
  updatedAt: string
}

export interface CreateTaskInit {
  taskName?: string
}

export interface ExpiryOptions {
  /**
   * How long the task is kept after this write (milliseconds). Every write sets it
   * again, so a running task lives while it reports, and a finished one lives for the
   * server's `retention`.
   */
  expireAfterMs: number
}

export interface AppendOptions extends ExpiryOptions {
  /** How many of the newest messages the history keeps for `since` replay. */
  historyLimit: number
}

export type CreateResult = { created: true; state: TaskState } | { created: false; state: TaskState }

export type AppendResult =
  | { ok: true; message: TaskMessage; state: TaskState }
  /** The task already ended (`completed` or `error`): nothing was appended. */
  | { ok: false; reason: 'finished'; state: TaskState }

export interface HistoryRead {
  /** Held messages with `seq > since`, oldest first. */
  messages: TaskMessage[]
  /**
   * Whether `messages` is every message after `since`: false when the history was
   * trimmed past `since + 1` (or the task is unknown), so the reader must fall back
   * to the current state.
   */
  complete: boolean
}

export type TaskListener = (message: TaskMessage) => void
export type Unsubscribe = () => void

export interface StoreHealth {
  ok: boolean
  /** What kind of store this is (`"memory"`, `"redis"`, …), for `/healthz`. */
  kind: string
  /** Why it is not ok, or other facts worth showing. */
  detail?: string
}

export interface TaskStore {
  /** Creates the task unless it exists. Never overwrites an existing task. */
  create(taskId: string, init: CreateTaskInit, options: ExpiryOptions): Promise<CreateResult>
  /**
   * Appends one message: gives it the next `seq`, updates the state and notifies
   * subscribers. Appending to an unknown task creates it (job code may report
   * progress without creating the task first). A message without `task_name`
   * inherits the task's name. After a terminal message nothing more is appended.
   */
  append(taskId: string, message: TaskMessageInput, options: AppendOptions): Promise<AppendResult>
  /** The current state, or `null` for an unknown (or expired) task. */
  get(taskId: string): Promise<TaskState | null>
  /** Held messages after `since`. See `HistoryRead.complete`. */
  readSince(taskId: string, since: number): Promise<HistoryRead>
  /**
   * Calls `listener` with every message appended to the task from now on, in `seq`
   * order. Resolves once the subscription is active. Subscribing to a task that does
   * not exist yet is allowed.
   */
  subscribe(taskId: string, listener: TaskListener): Promise<Unsubscribe>
  health(): Promise<StoreHealth>
  /** Releases timers and connections. A server closes only a store it created itself. */
  close(): Promise<void>
}
