/**
 * Leases: a running task whose job stopped reporting is failed instead of looking
 * alive forever.
 *
 * Every publish (and the job API's `heartbeat`) gives the task a lease of `staleAfter`
 * ms. Each server process looks for expired leases every `leaseCheckInterval` and fails
 * those tasks with a conditional append that the store checks and applies atomically
 * (`ifLeaseExpired`): with several processes on one Redis each may find the same task,
 * and exactly one appends the failure. A process that died mid-job thus has its tasks
 * failed by the others, and subscribers and pollers everywhere see the `error`.
 */
import type { Logger } from './logger.js'
import { errorText } from './store-errors.js'
import type { TaskStore } from './store.js'
import type { TaskPublisher } from './tasks.js'

/** How many expired tasks one check fails at most; the rest wait for the next check. */
export const LEASE_CHECK_BATCH = 100

/**
 * How often a process looks for expired leases: a tenth of `staleAfter`, from 50 ms to
 * 1 s. A task is failed at most this long after its lease ran out; with the default
 * `staleAfter` of 60 s that is one cheap query (one ZRANGEBYSCORE on Redis) a second.
 */
export function leaseCheckInterval(staleAfter: number): number {
  return Math.min(1000, Math.max(50, Math.round(staleAfter / 10)))
}

/** "60 s", "1.5 s", "0.3 s": how long the job was silent, in the error it gets. */
function seconds(ms: number): string {
  const value = ms / 1000
  return `${Number.isInteger(value) ? value : Number(value.toFixed(1))} s`
}

/** The `error` text of a task failed by its lease (PROTOCOL.md, "Leases"). */
export function staleErrorText(staleAfter: number): string {
  return `the job stopped reporting (no update for ${seconds(staleAfter)})`
}

/** `details.code` of a task failed by its lease. */
export const JOB_STALE_CODE = 'job_stale'

export interface LeaseMonitorOptions {
  staleAfter: number
  logger: Logger
  /** @default leaseCheckInterval(staleAfter) */
  interval?: number
}

export class LeaseMonitor {
  private timer: ReturnType<typeof setInterval> | null = null
  private checking: Promise<number> | null = null
  private readonly interval: number

  constructor(
    private readonly store: TaskStore,
    private readonly publisher: TaskPublisher,
    private readonly options: LeaseMonitorOptions,
  ) {
    this.interval = options.interval ?? leaseCheckInterval(options.staleAfter)
  }

  /** Whether the store keeps leases at all (a custom store may not). */
  get supported(): boolean {
    return this.store.expiredLeases !== undefined
  }

  start(): void {
    if (this.timer !== null || !this.supported) return
    this.timer = setInterval(() => void this.check(), this.interval)
    // Checks serve the tasks; they must not keep a process alive on their own.
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /**
   * Fails every task whose lease has run out (up to `LEASE_CHECK_BATCH`); resolves with
   * how many this process failed. A check that is still running is joined, not doubled.
   */
  check(): Promise<number> {
    this.checking ??= this.run().finally(() => {
      this.checking = null
    })
    return this.checking
  }

  private async run(): Promise<number> {
    const { store, publisher, options } = this
    let expired: string[]
    try {
      expired = (await store.expiredLeases?.(LEASE_CHECK_BATCH)) ?? []
    } catch (error) {
      // The store is away: the next check tries again, and the leases wait in the store.
      options.logger.debug('could not look for expired leases', { error: errorText(error) })
      return 0
    }
    let failed = 0
    for (const taskId of expired) {
      try {
        const message = await publisher.failExpired(taskId, {
          type: 'error',
          status: 'failed',
          error: staleErrorText(options.staleAfter),
          details: { code: JOB_STALE_CODE },
        })
        if (message === null) continue
        failed += 1
        options.logger.warn('failed a task whose job stopped reporting', { task: taskId, staleAfter: options.staleAfter, seq: message.seq })
      } catch (error) {
        options.logger.debug('could not fail a task with an expired lease', { task: taskId, error: errorText(error) })
      }
    }
    return failed
  }
}
