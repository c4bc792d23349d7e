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
 * - expiry is a time-to-live set on every write (EXPIRE), not a sweep the server runs;
 * - a running task holds a lease that every publish (and `renewLease`) extends; the
 *   server fails a task whose lease ran out with a conditional append
 *   (`ifLeaseExpired`), which the store checks and applies atomically, so that among
 *   several processes exactly one fails it;
 * - a publish may carry a publish id, and a store applies each id once (a retry of a
 *   publish that was applied gets the first result back).
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
  /**
   * The id of the task's numbering history (PROTOCOL.md, "Epochs"): it changes whenever
   * the task's record is (re)created, so a client that sees another epoch knows the
   * `seq`s it remembers mean nothing any more. Absent from stores that do not track it.
   */
  epoch?: string
  /**
   * When the running task's lease runs out, in milliseconds since the Unix epoch on the
   * store's clock. Absent once the task ended, and for tasks without a lease.
   */
  leaseExpiresAt?: number
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
  /**
   * Gives a task that is running after this write a lease of this many milliseconds
   * from now (on the store's clock). Undefined leaves the lease as it was.
   */
  leaseMs?: number
}

export interface AppendOptions extends ExpiryOptions {
  /** How many of the newest messages the history keeps for `since` replay. */
  historyLimit: number
  /**
   * Identifies this publish across retries: a store that already applied a publish
   * with this id (among the task's last `PUBLISH_ID_WINDOW`) appends nothing and
   * answers with the message it appended then (`duplicate: true`).
   */
  publishId?: string
  /**
   * Append only if the task is running and its lease has run out (checked and applied
   * atomically): how the server fails a task whose job stopped reporting.
   */
  ifLeaseExpired?: boolean
}

/**
 * How many recent publish ids per task a store remembers to recognise a retried
 * publish. A job retries one publish at a time, so a retry follows its first try
 * within a few appends; the window leaves room for other publishers of the same task
 * appending in between.
 */
export const PUBLISH_ID_WINDOW = 256

export type CreateResult = { created: true; state: TaskState } | { created: false; state: TaskState }

export type AppendResult =
  /** Appended, or (`duplicate`) appended already by an earlier try with the same publish id. */
  | { ok: true; message: TaskMessage; state: TaskState; duplicate?: true }
  /** The task already ended (`completed` or `error`): nothing was appended. */
  | { ok: false; reason: 'finished'; state: TaskState }
  /**
   * With `ifLeaseExpired`: the lease has not run out (it was renewed meanwhile), the
   * task has no lease, or it does not exist (`state` null). Nothing was appended.
   */
  | { ok: false; reason: 'lease_active'; state: TaskState | null }

export interface LeaseRenewal {
  /** The new lease, in milliseconds from now. */
  leaseMs: number
  /** The task's time-to-live from now (a heartbeat keeps a running task alive). */
  expireAfterMs: number
}

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
  /**
   * Renews a running task's lease (the job API's `heartbeat`). Returns the state after
   * it: a finished task is returned unchanged, an unknown one as `null`. Optional: a
   * store without leases leaves it out, and the server then fails no task for silence.
   */
  renewLease?(taskId: string, renewal: LeaseRenewal): Promise<TaskState | null>
  /**
   * Up to `limit` ids of running tasks whose lease has run out, for the server to fail
   * with `ifLeaseExpired`. Optional, with `renewLease`.
   */
  expiredLeases?(limit: number): Promise<string[]>
  health(): Promise<StoreHealth>
  /** Releases timers and connections. A server closes only a store it created itself. */
  close(): Promise<void>
}
