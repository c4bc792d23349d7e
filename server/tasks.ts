/**
 * The job-facing API: what code doing the real work calls to report on a task. Every
 * call becomes one numbered message in the store, which fans it out to subscribers.
 *
 * Publishes survive short store outages: each carries a publish id, and one that fails
 * with `TaskStoreUnavailableError` is tried again with the same id (so a first try that
 * was applied after all is not appended twice) with a growing pause, for up to
 * `publishRetryFor` ms. Publishes to one task go to the store one after another, in
 * call order, so a retry never lets a later message overtake it. Every publish also
 * renews the task's lease (see lease.ts).
 */
import { randomUUID } from 'node:crypto'
import { describeValue, validateTaskId, type JsonRecord, type TaskMessage } from '../src/protocol.js'
import { errorText, TaskStoreUnavailableError } from './store-errors.js'
import type { TaskMessageInput, TaskState, TaskStore } from './store.js'

export type TaskUpdateErrorCode = 'invalid_task_id' | 'invalid_argument' | 'task_exists' | 'task_finished' | 'task_not_found'

/** Thrown (as a rejected promise) by the job API when a call cannot be carried out. */
export class TaskUpdateError extends Error {
  override readonly name = 'TaskUpdateError'
  constructor(
    readonly code: TaskUpdateErrorCode,
    message: string,
    readonly taskId: string | undefined,
  ) {
    super(message)
  }
}

export interface CreateTaskOptions {
  /**
   * The id to use (see `validateTaskId` for the rules).
   * @default a random `task_…` id
   */
  taskId?: string
  /**
   * Shown by clients as the task's name (the guide's `task_name`, e.g. "오디오 생성").
   * @default none
   */
  taskName?: string
}

export interface ProgressExtra {
  /**
   * Overrides the task's name from this message on.
   * @default the name given to createTask
   */
  taskName?: string
  /**
   * Free-form data for the UI (the guide's `metadata`).
   * @default none
   */
  metadata?: JsonRecord
}

export interface CompleteExtra {
  /**
   * A closing human-readable message.
   * @default none (clients keep the last progress message)
   */
  message?: string
  /**
   * Free-form data for the UI.
   * @default none
   */
  metadata?: JsonRecord
}

export interface TaskPublisherSettings {
  historyLimit: number
  retention: number
  staleTaskTimeout: number
  /** The lease a publish gives a running task (ms), or `false` for none. */
  staleAfter: number | false
  /** How long a publish is retried while the store is unavailable (ms); 0 for never. */
  publishRetryFor: number
  now: () => number
}

/** The first pause before retrying a publish; each further pause doubles, up to `RETRY_MAX_DELAY_MS`. */
export const RETRY_FIRST_DELAY_MS = 50
/** The longest pause between two tries of one publish. */
export const RETRY_MAX_DELAY_MS = 1000

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export class TaskPublisher {
  /** Per task, the end of its queue of publishes (removed when the queue drains). */
  private readonly queues = new Map<string, Promise<unknown>>()
  /** Pending retry pauses, ended by `close()`. */
  private readonly pauses = new Set<() => void>()
  private closed = false

  constructor(
    private readonly store: TaskStore,
    private readonly settings: TaskPublisherSettings,
  ) {}

  /** Stops retrying: publishes waiting for a retry reject at once. */
  close(): void {
    this.closed = true
    for (const stop of [...this.pauses]) stop()
  }

  /**
   * Registers a task before its first message, so the status endpoint answers
   * `running` for it at once. Rejects with `task_exists` if the id is taken. Its lease
   * starts now: publish or `heartbeat` within `staleAfter`, or it is failed as stopped.
   */
  async createTask(options: CreateTaskOptions = {}): Promise<TaskState> {
    const taskId = options.taskId ?? `task_${randomUUID().replaceAll('-', '')}`
    this.checkTaskId(taskId)
    if (options.taskName !== undefined && typeof options.taskName !== 'string') {
      throw new TaskUpdateError('invalid_argument', `taskName must be a string, got ${describeValue(options.taskName)}`, taskId)
    }
    const init = options.taskName === undefined ? {} : { taskName: options.taskName }
    // Not retried: a retry of a create that was applied could not tell "mine" from "taken".
    const result = await this.store.create(taskId, init, { expireAfterMs: this.settings.staleTaskTimeout, ...this.lease() })
    if (!result.created) throw new TaskUpdateError('task_exists', `task ${taskId} already exists`, taskId)
    return result.state
  }

  /** Reports progress: `fraction` from 0 to 1 and a human-readable message. */
  async progress(taskId: string, fraction: number, message: string, extra: ProgressExtra = {}): Promise<TaskMessage> {
    this.checkTaskId(taskId)
    if (typeof fraction !== 'number' || !Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
      throw new TaskUpdateError('invalid_argument', `progress must be a number from 0 to 1, got ${describeValue(fraction)}`, taskId)
    }
    if (typeof message !== 'string') {
      throw new TaskUpdateError('invalid_argument', `message must be a string, got ${describeValue(message)}`, taskId)
    }
    const input: TaskMessageInput = { type: 'progress', status: 'running', progress: fraction, message }
    if (extra.taskName !== undefined) input.task_name = extra.taskName
    if (extra.metadata !== undefined) input.metadata = extra.metadata
    return this.append(taskId, input, false)
  }

  /** Ends the task successfully with its result (the guide's `completed` message). */
  async complete(taskId: string, result: JsonRecord, extra: CompleteExtra = {}): Promise<TaskMessage> {
    this.checkTaskId(taskId)
    if (!isRecord(result)) {
      throw new TaskUpdateError('invalid_argument', `result must be an object, got ${describeValue(result)}`, taskId)
    }
    const input: TaskMessageInput = { type: 'completed', status: 'completed', progress: 1, result }
    if (extra.message !== undefined) input.message = extra.message
    if (extra.metadata !== undefined) input.metadata = extra.metadata
    return this.append(taskId, input, true)
  }

  /** Ends the task with a failure (the guide's `error` message). */
  async fail(taskId: string, error: string | Error, details?: JsonRecord): Promise<TaskMessage> {
    this.checkTaskId(taskId)
    const text = error instanceof Error ? error.message : error
    if (typeof text !== 'string') {
      throw new TaskUpdateError('invalid_argument', `error must be a string or an Error, got ${describeValue(error)}`, taskId)
    }
    if (details !== undefined && !isRecord(details)) {
      throw new TaskUpdateError('invalid_argument', `details must be an object, got ${describeValue(details)}`, taskId)
    }
    const input: TaskMessageInput = { type: 'error', status: 'failed', error: text }
    if (details !== undefined) input.details = details
    return this.append(taskId, input, true)
  }

  /**
   * Tells the server the job is alive without publishing anything: renews the task's
   * lease (and its time-to-live), so a job with long silent phases is not failed as
   * stopped. Retried like a publish. Rejects with `task_not_found` for an unknown task
   * and `task_finished` for one that ended.
   */
  async heartbeat(taskId: string): Promise<void> {
    this.checkTaskId(taskId)
    const store = this.store
    const staleAfter = this.settings.staleAfter
    const state = await this.retrying(`renew the lease of task ${taskId}`, () =>
      store.renewLease && staleAfter !== false
        ? store.renewLease(taskId, { leaseMs: staleAfter, expireAfterMs: this.settings.staleTaskTimeout })
        : store.get(taskId),
    )
    if (state === null) throw new TaskUpdateError('task_not_found', `task ${taskId} not found`, taskId)
    if (state.status !== 'running') throw new TaskUpdateError('task_finished', `task ${taskId} already ${state.status}`, taskId)
  }

  /**
   * Fails the task with `input` if its lease has run out (the store checks and appends
   * atomically, so among several processes one succeeds). Resolves with the appended
   * message, or null when there was nothing to fail.
   */
  async failExpired(taskId: string, input: Omit<TaskMessageInput, 'timestamp'>): Promise<TaskMessage | null> {
    const result = await this.store.append(taskId, this.stamp(taskId, input), {
      historyLimit: this.settings.historyLimit,
      expireAfterMs: this.settings.retention,
      ifLeaseExpired: true,
    })
    return result.ok && !result.duplicate ? result.message : null
  }

  private async append(taskId: string, input: TaskMessageInput, terminal: boolean): Promise<TaskMessage> {
    const message = this.stamp(taskId, input)
    const options = {
      historyLimit: this.settings.historyLimit,
      expireAfterMs: terminal ? this.settings.retention : this.settings.staleTaskTimeout,
      publishId: randomUUID(),
      ...this.lease(),
    }
    const result = await this.inOrder(taskId, () =>
      this.retrying(`publish a ${input.type} message to task ${taskId}`, () => this.store.append(taskId, message, options)),
    )
    if (!result.ok) {
      throw new TaskUpdateError(
        'task_finished',
        `task ${taskId} already ${result.state?.status ?? 'ended'}; a ${input.type} message cannot follow`,
        taskId,
      )
    }
    return result.message
  }

  /** The message as stored: `type` and `project_id` first (the guide's order, easy to scan in logs), stamped now. */
  private stamp(taskId: string, input: Omit<TaskMessageInput, 'timestamp'>): TaskMessageInput {
    const { type, ...fields } = input
    return { type, project_id: taskId, ...fields, timestamp: new Date(this.settings.now()).toISOString() }
  }

  private lease(): { leaseMs?: number } {
    return this.settings.staleAfter === false ? {} : { leaseMs: this.settings.staleAfter }
  }

  /** Runs `publish` after every earlier publish to the task has settled. */
  private inOrder<T>(taskId: string, publish: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(taskId) ?? Promise.resolve()
    const run = previous.then(publish, publish)
    const tail = run.catch(() => {})
    this.queues.set(taskId, tail)
    void tail.then(() => {
      if (this.queues.get(taskId) === tail) this.queues.delete(taskId)
    })
    return run
  }

  /**
   * Calls `attempt` until it succeeds, retrying `TaskStoreUnavailableError` with a
   * doubling pause until `publishRetryFor` has passed; then rejects with the last error,
   * saying how long it tried. Other errors reject at once.
   */
  private async retrying<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    const started = this.settings.now()
    let delay = RETRY_FIRST_DELAY_MS
    // Any try that may have been applied makes the whole call "maybe applied".
    let maybeApplied = false
    for (let tries = 1; ; tries += 1) {
      try {
        return await attempt()
      } catch (error) {
        if (!(error instanceof TaskStoreUnavailableError)) throw error
        maybeApplied ||= error.maybeApplied
        const waited = this.settings.now() - started
        if (this.closed || waited + delay > this.settings.publishRetryFor) {
          if (tries === 1) throw error
          const outcome = maybeApplied ? 'an earlier try may have been applied' : 'nothing was written'
          throw new TaskStoreUnavailableError(
            `could not ${what}: the task store stayed unavailable for ${waited} ms (${tries} tries; ${outcome}): ${errorText(error)}`,
            maybeApplied,
            { cause: error },
          )
        }
        await this.pause(delay)
        delay = Math.min(delay * 2, RETRY_MAX_DELAY_MS)
      }
    }
  }

  /** Waits `ms` between two tries; `close()` ends the wait early. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.pauses.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.pauses.add(done)
    })
  }

  private checkTaskId(taskId: string): void {
    const problem = validateTaskId(taskId)
    if (problem !== null) throw new TaskUpdateError('invalid_task_id', problem, undefined)
  }
}
