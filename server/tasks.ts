/**
 * The job-facing API: what code doing the real work calls to report on a task. Every
 * call becomes one numbered message in the store, which fans it out to subscribers.
 */
import { randomUUID } from 'node:crypto'
import { describeValue, validateTaskId, type JsonRecord, type TaskMessage } from '../src/protocol.js'
import type { TaskMessageInput, TaskState, TaskStore } from './store.js'

export type TaskUpdateErrorCode = 'invalid_task_id' | 'invalid_argument' | 'task_exists' | 'task_finished'

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
  now: () => number
}

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export class TaskPublisher {
  constructor(
    private readonly store: TaskStore,
    private readonly settings: TaskPublisherSettings,
  ) {}

  /**
   * Registers a task before its first message, so the status endpoint answers
   * `running` for it at once. Rejects with `task_exists` if the id is taken.
   */
  async createTask(options: CreateTaskOptions = {}): Promise<TaskState> {
    const taskId = options.taskId ?? `task_${randomUUID().replaceAll('-', '')}`
    this.checkTaskId(taskId)
    if (options.taskName !== undefined && typeof options.taskName !== 'string') {
      throw new TaskUpdateError('invalid_argument', `taskName must be a string, got ${describeValue(options.taskName)}`, taskId)
    }
    const init = options.taskName === undefined ? {} : { taskName: options.taskName }
    const result = await this.store.create(taskId, init, { expireAfterMs: this.settings.staleTaskTimeout })
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

  private async append(taskId: string, input: TaskMessageInput, terminal: boolean): Promise<TaskMessage> {
    // `type` and `project_id` first: the order the guide's examples show, easy to scan in logs.
    const { type, ...fields } = input
    const message: TaskMessageInput = {
      type,
      project_id: taskId,
      ...fields,
      timestamp: new Date(this.settings.now()).toISOString(),
    }
    const result = await this.store.append(taskId, message, {
      historyLimit: this.settings.historyLimit,
      expireAfterMs: terminal ? this.settings.retention : this.settings.staleTaskTimeout,
    })
    if (!result.ok) {
      throw new TaskUpdateError(
        'task_finished',
        `task ${taskId} already ${result.state.status}; a ${input.type} message cannot follow`,
        taskId,
      )
    }
    return result.message
  }

  private checkTaskId(taskId: string): void {
    const problem = validateTaskId(taskId)
    if (problem !== null) throw new TaskUpdateError('invalid_task_id', problem, undefined)
  }
}
