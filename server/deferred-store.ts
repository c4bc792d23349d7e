/**
 * A `TaskStore` whose real store is still being opened: every call waits for it. This
 * lets `createTabcastServer({ redis })` stay synchronous while the Redis store loads
 * its client library with a dynamic `import()`. If opening fails, every call rejects
 * with that failure and `health()` reports it.
 */
import type { Logger } from './logger.js'
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

export class DeferredTaskStore implements TaskStore {
  private store: TaskStore | null = null
  private failure: Error | null = null
  private closed = false
  private readonly opened: Promise<TaskStore>

  constructor(
    private readonly kind: string,
    opening: Promise<TaskStore>,
    logger: Logger,
  ) {
    this.opened = opening.then(
      (store) => {
        this.store = store
        // Closed while it was opening: nobody else will close it.
        if (this.closed) void store.close()
        return store
      },
      (error: unknown) => {
        this.failure = error instanceof Error ? error : new Error(String(error))
        logger.error(`the ${kind} task store could not be opened`, { error: this.failure.message })
        throw this.failure
      },
    )
    // Callers see the failure through their own calls; this copy must not be unhandled.
    this.opened.catch(() => {})
  }

  create(taskId: string, init: CreateTaskInit, options: ExpiryOptions): Promise<CreateResult> {
    return this.opened.then((store) => store.create(taskId, init, options))
  }

  append(taskId: string, message: TaskMessageInput, options: AppendOptions): Promise<AppendResult> {
    return this.opened.then((store) => store.append(taskId, message, options))
  }

  get(taskId: string): Promise<TaskState | null> {
    return this.opened.then((store) => store.get(taskId))
  }

  readSince(taskId: string, since: number): Promise<HistoryRead> {
    return this.opened.then((store) => store.readSince(taskId, since))
  }

  subscribe(taskId: string, listener: TaskListener): Promise<Unsubscribe> {
    return this.opened.then((store) => store.subscribe(taskId, listener))
  }

  /** A real store without leases just reports the state: there is no lease to renew. */
  renewLease(taskId: string, renewal: LeaseRenewal): Promise<TaskState | null> {
    return this.opened.then((store) => (store.renewLease ? store.renewLease(taskId, renewal) : store.get(taskId)))
  }

  expiredLeases(limit: number): Promise<string[]> {
    return this.opened.then((store) => (store.expiredLeases ? store.expiredLeases(limit) : []))
  }

  health(): Promise<StoreHealth> {
    if (this.store !== null) return this.store.health()
    if (this.failure !== null) return Promise.resolve({ ok: false, kind: this.kind, detail: this.failure.message })
    return Promise.resolve({ ok: false, kind: this.kind, detail: 'the store is being opened' })
  }

  async close(): Promise<void> {
    this.closed = true
    const store = this.store ?? (await this.opened.catch(() => null))
    await store?.close()
  }
}
