/**
 * The default `TaskStore`: everything in this process's memory.
 *
 * One server process only, and tasks are lost when the process exits. To keep tasks
 * across a server restart inside one process (tests do this), hand the same instance
 * to the new server.
 */
import type { TaskMessage } from '../src/protocol.js'
import type {
  AppendOptions,
  AppendResult,
  CreateResult,
  CreateTaskInit,
  ExpiryOptions,
  HistoryRead,
  StoreHealth,
  TaskListener,
  TaskMessageInput,
  TaskState,
  TaskStore,
  Unsubscribe,
} from './store.js'
import { messageBytes, TASK_OVERHEAD_BYTES, TaskBudget } from './task-budget.js'

export interface MemoryTaskStoreOptions {
  /**
   * The clock, in milliseconds since the epoch. Replace it to test expiry without waiting.
   * @default () => Date.now()
   */
  now?: () => number
  /**
   * How often expired tasks are swept from memory (milliseconds). Expired tasks are
   * also dropped whenever they are looked up, so this only bounds memory.
   * @default 60000
   */
  sweepInterval?: number
  /**
   * Called when a subscriber throws. Subscribers are the server's own fan-out, so this
   * is a bug report, not flow control.
   * @default logs with console.error
   */
  onListenerError?: (error: unknown, taskId: string) => void
  /**
   * Tasks held at most, whatever their state: finished ones are evicted oldest first to
   * make room, and a new task is refused (`TaskStoreFullError`) when only running ones
   * are left.
   * @default 10000
   */
  maxTasks?: number
  /**
   * Bytes held at most (the JSON text of every task's messages, plus 512 per task),
   * with the same eviction; a running task that passes it loses its oldest history.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number
}

interface Entry {
  state: TaskState
  /** The newest `historyLimit` messages, oldest first. */
  history: TaskMessage[]
  /** The counted bytes of each history message (see `TaskBudget`). */
  historySizes: number[]
  historyBytes: number
  expiresAt: number
}

export class MemoryTaskStore implements TaskStore {
  private readonly tasks = new Map<string, Entry>()
  private readonly listeners = new Map<string, Set<TaskListener>>()
  private readonly now: () => number
  private readonly onListenerError: (error: unknown, taskId: string) => void
  private sweeper: ReturnType<typeof setInterval> | null
  private readonly budget: TaskBudget

  constructor(options: MemoryTaskStoreOptions = {}) {
    const sweepInterval = options.sweepInterval ?? 60_000
    if (!Number.isFinite(sweepInterval) || sweepInterval <= 0) {
      throw new RangeError(`sweepInterval must be a positive number of milliseconds, got ${String(sweepInterval)}`)
    }
    this.now = options.now ?? (() => Date.now())
    this.budget = new TaskBudget(options.maxTasks ?? 10_000, options.maxBytes ?? 64 * 1024 * 1024)
    this.onListenerError =
      options.onListenerError ??
      ((error, taskId) => {
        console.error(`tabcast memory store: a subscriber of task ${taskId} threw`, error)
      })
    this.sweeper = setInterval(() => this.sweep(), sweepInterval)
    // The sweeper only bounds memory; it must not keep a process alive on its own.
    this.sweeper.unref()
  }

  create(taskId: string, init: CreateTaskInit, options: ExpiryOptions): Promise<CreateResult> {
    const existing = this.live(taskId)
    if (existing) return Promise.resolve({ created: false, state: existing.state })
    try {
      this.admit(taskId)
    } catch (error) {
      return Promise.reject(error as Error)
    }
    const entry = this.newEntry(taskId, init.taskName, options.expireAfterMs)
    this.tasks.set(taskId, entry)
    return Promise.resolve({ created: true, state: entry.state })
  }

  append(taskId: string, input: TaskMessageInput, options: AppendOptions): Promise<AppendResult> {
    let entry = this.live(taskId)
    if (!entry) {
      try {
        this.admit(taskId)
      } catch (error) {
        return Promise.reject(error as Error)
      }
      entry = this.newEntry(taskId, input.task_name, options.expireAfterMs)
      this.tasks.set(taskId, entry)
    }
    const previous = entry.state
    if (previous.status !== 'running') return Promise.resolve({ ok: false, reason: 'finished', state: previous })

    const timestamp = input.timestamp ?? new Date(this.now()).toISOString()
    const taskName = input.task_name ?? previous.taskName
    const message = Object.freeze({
      ...input,
      ...(taskName === undefined ? {} : { task_name: taskName }),
      timestamp,
      seq: previous.lastSeq + 1,
    }) as TaskMessage

    const state: TaskState = { ...previous, lastSeq: message.seq ?? 0, latest: message, updatedAt: timestamp }
    if (taskName !== undefined) state.taskName = taskName
    if (message.type === 'progress') {
      if (message.progress !== undefined) state.progress = message.progress
      if (message.message !== undefined) state.message = message.message
    } else if (message.type === 'completed') {
      state.status = 'completed'
      state.progress = 1
      if (message.message !== undefined) state.message = message.message
      if (message.result !== undefined) state.result = message.result
    } else {
      state.status = 'failed'
      if (message.error !== undefined) state.error = message.error
      if (message.details !== undefined) state.details = message.details
    }
    entry.state = state
    entry.history.push(message)
    const size = messageBytes(message)
    entry.historySizes.push(size)
    entry.historyBytes += size
    if (entry.history.length > options.historyLimit) {
      this.trimHistory(entry, entry.history.length - options.historyLimit)
    }
    this.account(taskId, entry)
    entry.expiresAt = this.now() + options.expireAfterMs

    const listeners = this.listeners.get(taskId)
    if (listeners) {
      // A copy, so a listener that unsubscribes (or subscribes) while being called
      // does not change who receives this message.
      for (const listener of [...listeners]) {
        try {
          listener(message)
        } catch (error) {
          this.onListenerError(error, taskId)
        }
      }
    }
    return Promise.resolve({ ok: true, message, state })
  }

  get(taskId: string): Promise<TaskState | null> {
    return Promise.resolve(this.live(taskId)?.state ?? null)
  }

  readSince(taskId: string, since: number): Promise<HistoryRead> {
    const entry = this.live(taskId)
    if (!entry) return Promise.resolve({ messages: [], complete: false })
    if (since >= entry.state.lastSeq) return Promise.resolve({ messages: [], complete: true })
    const oldest = entry.history[0]?.seq
    const complete = oldest !== undefined && oldest <= since + 1
    const messages = entry.history.filter((message) => (message.seq ?? 0) > since)
    return Promise.resolve({ messages, complete })
  }

  subscribe(taskId: string, listener: TaskListener): Promise<Unsubscribe> {
    let set = this.listeners.get(taskId)
    if (!set) {
      set = new Set()
      this.listeners.set(taskId, set)
    }
    set.add(listener)
    return Promise.resolve(() => {
      const current = this.listeners.get(taskId)
      if (!current) return
      current.delete(listener)
      if (current.size === 0) this.listeners.delete(taskId)
    })
  }

  health(): Promise<StoreHealth> {
    return Promise.resolve({ ok: true, kind: 'memory', detail: `${this.tasks.size} tasks held, about ${this.budget.bytes} bytes` })
  }

  close(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.sweeper = null
    return Promise.resolve()
  }

  /** The entry, unless it has expired (then it is dropped). */
  private live(taskId: string): Entry | undefined {
    const entry = this.tasks.get(taskId)
    if (!entry) return undefined
    if (entry.expiresAt <= this.now()) {
      this.drop(taskId)
      return undefined
    }
    return entry
  }

  private newEntry(taskId: string, taskName: string | undefined, expireAfterMs: number): Entry {
    const now = new Date(this.now()).toISOString()
    const state: TaskState = { taskId, status: 'running', progress: 0, lastSeq: 0, createdAt: now, updatedAt: now }
    if (taskName !== undefined) state.taskName = taskName
    return { state, history: [], historySizes: [], historyBytes: 0, expiresAt: this.now() + expireAfterMs }
  }

  /** Counts a new task, dropping the finished tasks evicted for it; throws `TaskStoreFullError`. */
  private admit(taskId: string): void {
    let evicted: string[]
    try {
      evicted = this.budget.admit(taskId, TASK_OVERHEAD_BYTES)
    } catch {
      // Expired tasks still count until swept; sweep now rather than refuse for them.
      this.sweep()
      evicted = this.budget.admit(taskId, TASK_OVERHEAD_BYTES)
    }
    for (const id of evicted) this.tasks.delete(id)
  }

  /**
   * Recounts a task after an append. Finished tasks are evicted first; a running task
   * still over the byte cap then gives up its oldest history (only replays suffer).
   */
  private account(taskId: string, entry: Entry): void {
    const finished = entry.state.status !== 'running'
    const size = (): number => TASK_OVERHEAD_BYTES + (entry.state.latest ? messageBytes(entry.state.latest) : 0) + entry.historyBytes
    for (const evicted of this.budget.resize(taskId, size(), finished)) this.tasks.delete(evicted)
    let excess = this.budget.overBy()
    if (excess === 0) return
    let count = 0
    while (excess > 0 && count < entry.history.length - 1) {
      excess -= entry.historySizes[count] ?? 0
      count += 1
    }
    this.trimHistory(entry, count)
    this.budget.resize(taskId, size(), finished)
  }

  private trimHistory(entry: Entry, count: number): void {
    entry.history.splice(0, count)
    for (const bytes of entry.historySizes.splice(0, count)) entry.historyBytes -= bytes
  }

  private drop(taskId: string): void {
    this.tasks.delete(taskId)
    this.budget.remove(taskId)
  }

  private sweep(): void {
    const now = this.now()
    for (const [taskId, entry] of this.tasks) {
      if (entry.expiresAt <= now) this.drop(taskId)
    }
  }
}
