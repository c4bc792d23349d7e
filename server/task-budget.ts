/**
 * The memory bound of a store that keeps tasks in this process: a cap on the number of
 * tasks and on their bytes, whatever their state. Finished tasks are evicted oldest
 * first (by the time they finished) to make room; running tasks are never evicted,
 * so when only running tasks are left a new task is refused instead.
 *
 * Bytes are the JSON text of what a task holds (its history messages and its latest
 * message), plus a fixed overhead per task: an estimate that is proportional to the
 * real heap use (measured in PROTOCOL.md, "Limits"), cheap to keep up to date.
 */
import type { TaskMessage } from '../src/protocol.js'

/** Counted for every task on top of its messages: the state object, map entries, ids. */
export const TASK_OVERHEAD_BYTES = 512

/** A new task was refused because the store is full of running tasks. */
export class TaskStoreFullError extends Error {
  override readonly name = 'TaskStoreFullError'
  readonly code = 'store_full'
  constructor(
    readonly taskId: string,
    message: string,
  ) {
    super(message)
  }
}

/** The bytes a message is counted for. */
export function messageBytes(message: TaskMessage): number {
  return JSON.stringify(message).length
}

export class TaskBudget {
  private readonly sizes = new Map<string, number>()
  /** Finished tasks, in the order they finished: the eviction order. */
  private readonly finished = new Set<string>()
  private total = 0

  constructor(
    readonly maxTasks: number,
    readonly maxBytes: number,
  ) {}

  get bytes(): number {
    return this.total
  }

  get count(): number {
    return this.sizes.size
  }

  /**
   * Makes room for a new task of `bytes` and counts it. Returns the finished tasks
   * evicted for it (the caller drops them); throws `TaskStoreFullError` when even
   * without every finished task it would not fit.
   */
  admit(taskId: string, bytes: number): string[] {
    const evicted = this.evictFor(1, bytes)
    if (this.sizes.size + 1 > this.maxTasks || this.total + bytes > this.maxBytes) {
      throw new TaskStoreFullError(
        taskId,
        `the task store is full (${this.sizes.size} running tasks, ${this.total} of ${this.maxBytes} bytes); task ${taskId} was not created`,
      )
    }
    this.sizes.set(taskId, bytes)
    this.total += bytes
    return evicted
  }

  /**
   * A counted task changed size (or finished). Returns finished tasks evicted to keep
   * the total under `maxBytes`; `overBy()` tells what is still over after that.
   */
  resize(taskId: string, bytes: number, finished: boolean): string[] {
    const previous = this.sizes.get(taskId)
    if (previous === undefined) return []
    this.sizes.set(taskId, bytes)
    this.total += bytes - previous
    if (finished) this.finished.add(taskId)
    return this.evictFor(0, 0, taskId)
  }

  /** Bytes over the cap (0 when within). */
  overBy(): number {
    return Math.max(0, this.total - this.maxBytes)
  }

  /** Stops counting a task (it expired or was dropped). */
  remove(taskId: string): void {
    const size = this.sizes.get(taskId)
    if (size === undefined) return
    this.sizes.delete(taskId)
    this.finished.delete(taskId)
    this.total -= size
  }

  private evictFor(extraTasks: number, extraBytes: number, keep?: string): string[] {
    const evicted: string[] = []
    for (const taskId of this.finished) {
      if (this.sizes.size + extraTasks <= this.maxTasks && this.total + extraBytes <= this.maxBytes) break
      if (taskId === keep) continue
      this.remove(taskId)
      evicted.push(taskId)
    }
    return evicted
  }
}
