/**
 * The default `TaskStore`: everything in this process's memory.
 *
 * One server process only, and tasks are lost when the process exits. To keep tasks
 * across a server restart inside one process (tests do this), hand the same instance
 * to the new server.
 *
 * Epochs: a random id per store instance (so per process start), plus a counter per
 * task record created, so a task that expired and starts again also gets a new epoch.
 */
import { randomBytes } from 'node:crypto'
import type { TaskMessage } from '../src/protocol.js'
import { messageBytes, TASK_OVERHEAD_BYTES, TaskBudget } from './task-budget.js'
import type {
  AppendOptions,
  AppendResult,
  CreateResult,
  CreateTaskInit,
  ExpiryOptions,
  HistoryRead,
  LeaseRenewal,
  StoreHealth,
  TaskListener,
  TaskMessageInput,
  TaskState,
  TaskStore,
  Unsubscribe,
} from './store.js'
import { PUBLISH_ID_WINDOW } from './store.js'

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

/** The counted bytes of an entry's history messages, oldest first (see `TaskBudget`). */
interface HistoryBytes {
  sizes: number[]
  total: number
}

interface Entry {
  state: TaskState
  /** The newest `historyLimit` messages, oldest first. */
  history: TaskMessage[]
  expiresAt: number
  /** Recent publish ids and what each appended, oldest first (at most `PUBLISH_ID_WINDOW`). */
  published: Map<string, TaskMessage>
}

export class MemoryTaskStore implements TaskStore {
  private readonly tasks = new Map<string, Entry>()
  private readonly listeners = new Map<string, Set<TaskListener>>()
  /** The count and byte caps; kept beside the entries so the entries stay as they are. */
  private readonly budget: TaskBudget
  private readonly historyBytes = new WeakMap<Entry, HistoryBytes>()
  private readonly now: () => number
  private readonly onListenerError: (error: unknown, taskId: string) => void
  private sweeper: ReturnType<typeof setInterval> | null
  /** This store's share of every epoch: new with every store, so with every process. */
  private readonly instance = randomBytes(9).toString('base64url')
  private records = 0

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
    const entry = this.newEntry(taskId, init.taskName, options)
    this.tasks.set(taskId, entry)
    const full = this.admit(taskId)
    if (full) return Promise.reject(full)
    return Promise.resolve({ created: true, state: entry.state })
  }

  append(taskId: string, input: TaskMessageInput, options: AppendOptions): Promise<AppendResult> {
    let entry = this.live(taskId)
    if (options.ifLeaseExpired) {
      if (!entry) return Promise.resolve({ ok: false, reason: 'lease_active', state: null })
      const lease = entry.state.leaseExpiresAt
      if (entry.state.status === 'running' && (lease === undefined || lease > this.now())) {
        return Promise.resolve({ ok: false, reason: 'lease_active', state: entry.state })
      }
    }
    const applied = options.publishId === undefined ? undefined : entry?.published.get(options.publishId)
    if (entry && applied) return Promise.resolve({ ok: true, message: applied, state: entry.state, duplicate: true })
    if (!entry) {
      entry = this.newEntry(taskId, input.task_name, options)
      this.tasks.set(taskId, entry)
      const full = this.admit(taskId)
      if (full) return Promise.reject(full)
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
    if (state.status !== 'running') delete state.leaseExpiresAt
    else if (options.leaseMs !== undefined) state.leaseExpiresAt = this.now() + options.leaseMs
    entry.state = state
    if (options.publishId !== undefined) {
      entry.published.set(options.publishId, message)
      // Maps iterate in insertion order: the first key is the oldest.
      if (entry.published.size > PUBLISH_ID_WINDOW) entry.published.delete(entry.published.keys().next().value as string)
    }
    entry.history.push(message)
    this.account(taskId, entry, message, options.historyLimit)
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

  renewLease(taskId: string, renewal: LeaseRenewal): Promise<TaskState | null> {
    const entry = this.live(taskId)
    if (!entry) return Promise.resolve(null)
    if (entry.state.status !== 'running') return Promise.resolve(entry.state)
    entry.state = { ...entry.state, leaseExpiresAt: this.now() + renewal.leaseMs }
    entry.expiresAt = Math.max(entry.expiresAt, this.now() + renewal.expireAfterMs)
    return Promise.resolve(entry.state)
  }

  expiredLeases(limit: number): Promise<string[]> {
    const now = this.now()
    const expired: string[] = []
    for (const [taskId, entry] of this.tasks) {
      if (expired.length >= limit) break
      const lease = entry.state.leaseExpiresAt
      if (entry.state.status === 'running' && lease !== undefined && lease <= now && entry.expiresAt > now) expired.push(taskId)
    }
    return Promise.resolve(expired)
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

  private newEntry(taskId: string, taskName: string | undefined, options: ExpiryOptions): Entry {
    const now = new Date(this.now()).toISOString()
    this.records += 1
    const epoch = `${this.instance}.${this.records}`
    const state: TaskState = { taskId, status: 'running', progress: 0, lastSeq: 0, createdAt: now, updatedAt: now, epoch }
    if (taskName !== undefined) state.taskName = taskName
    if (options.leaseMs !== undefined) state.leaseExpiresAt = this.now() + options.leaseMs
    return { state, history: [], expiresAt: this.now() + options.expireAfterMs, published: new Map() }
  }

  private sweep(): void {
    const now = this.now()
    for (const [taskId, entry] of this.tasks) {
      if (entry.expiresAt <= now) this.drop(taskId)
    }
  }

  /**
   * Counts a task just added to `tasks`, dropping the finished tasks evicted for it.
   * Returns the `TaskStoreFullError` (and takes the task out again) when it does not fit.
   */
  private admit(taskId: string): Error | null {
    let evicted: string[]
    try {
      try {
        evicted = this.budget.admit(taskId, TASK_OVERHEAD_BYTES)
      } catch {
        // Expired tasks still count until swept; sweep now rather than refuse for them.
        this.sweep()
        evicted = this.budget.admit(taskId, TASK_OVERHEAD_BYTES)
      }
    } catch (error) {
      this.tasks.delete(taskId)
      return error as Error
    }
    for (const id of evicted) this.tasks.delete(id)
    return null
  }

  /**
   * Trims the history to `historyLimit` and recounts the task after an append. Finished
   * tasks are evicted first; a running task still over the byte cap then gives up its
   * oldest history (only `since` replays reach back less far).
   */
  private account(taskId: string, entry: Entry, message: TaskMessage, historyLimit: number): void {
    let counted = this.historyBytes.get(entry)
    if (counted === undefined) {
      counted = { sizes: entry.history.slice(0, -1).map(messageBytes), total: 0 }
      counted.total = counted.sizes.reduce((sum, bytes) => sum + bytes, 0)
      this.historyBytes.set(entry, counted)
    }
    const size = messageBytes(message)
    counted.sizes.push(size)
    counted.total += size
    const trim = (count: number): void => {
      entry.history.splice(0, count)
      for (const bytes of counted.sizes.splice(0, count)) counted.total -= bytes
    }
    if (entry.history.length > historyLimit) trim(entry.history.length - historyLimit)
    const finished = entry.state.status !== 'running'
    // The latest message is held twice: in the history and as the state's `latest`.
    const bytes = (): number => TASK_OVERHEAD_BYTES + size + counted.total
    for (const evicted of this.budget.resize(taskId, bytes(), finished)) this.tasks.delete(evicted)
    let excess = this.budget.overBy()
    if (excess === 0) return
    let count = 0
    while (excess > 0 && count < entry.history.length - 1) {
      excess -= counted.sizes[count] ?? 0
      count += 1
    }
    trim(count)
    this.budget.resize(taskId, bytes(), finished)
  }

  private drop(taskId: string): void {
    this.tasks.delete(taskId)
    this.budget.remove(taskId)
  }
}
