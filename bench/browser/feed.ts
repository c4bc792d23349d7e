/**
 * Job code for the benchmark: publishes a task's progress through the reference
 * server's job API, stamping every message with the time it was sent
 * (`metadata.sentAt`, epoch ms with sub-millisecond resolution: the browser stamps
 * its paints on the same clock), at a steady rate or in a burst.
 */
import type { TabcastServer } from 'tabcast/server'

/** Epoch milliseconds with sub-millisecond resolution. */
export const clock = (): number => performance.timeOrigin + performance.now()

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** One task's messages, sent in order (each waits for the previous one's append). */
export class TaskFeed {
  readonly taskId: string
  /** `seq` of the newest message published. */
  lastSeq = 0
  /** Progress messages published. */
  published = 0
  /** When each progress message was sent (bench clock, epoch ms), by `seq`. */
  readonly sentAt = new Map<number, number>()
  readonly failures: string[] = []
  private readonly jobs: TabcastServer
  private chain: Promise<void> = Promise.resolve()
  private step = 0

  constructor(jobs: TabcastServer, taskId: string) {
    this.jobs = jobs
    this.taskId = taskId
  }

  create(): Promise<void> {
    return this.enqueue(async () => {
      await this.jobs.createTask({ taskId: this.taskId, taskName: 'bench' })
    })
  }

  /** Queues the next progress step. */
  progress(): Promise<void> {
    return this.enqueue(async () => {
      this.step++
      const sentAt = clock()
      const message = await this.jobs.progress(this.taskId, Math.min(0.99, this.step / 5000), `step ${this.step}`, { metadata: { sentAt } })
      this.lastSeq = message.seq ?? this.lastSeq
      if (message.seq !== undefined) this.sentAt.set(message.seq, sentAt)
      this.published++
    })
  }

  complete(): Promise<void> {
    return this.enqueue(async () => {
      const message = await this.jobs.complete(this.taskId, { steps: this.step })
      this.lastSeq = message.seq ?? this.lastSeq
    })
  }

  /** Resolves when everything queued so far was published. */
  settled(): Promise<void> {
    return this.chain
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(work).catch((error: unknown) => {
      this.failures.push(error instanceof Error ? error.message : String(error))
    })
    return this.chain
  }
}

export interface Periodic {
  stop(): Promise<void>
}

/**
 * Publishes one progress message per task every `intervalMs`, each task at its own
 * random phase (so messages do not line up with the browser's frames), on a schedule
 * that does not drift.
 */
export function publishPeriodically(feeds: readonly TaskFeed[], intervalMs: number): Periodic {
  let stopped = false
  const timers = new Set<ReturnType<typeof setTimeout>>()
  for (const feed of feeds) {
    const start = performance.now() + Math.random() * intervalMs
    let tick = 0
    const next = (): void => {
      if (stopped) return
      const timer = setTimeout(
        () => {
          timers.delete(timer)
          if (stopped) return
          void feed.progress()
          tick++
          next()
        },
        Math.max(0, start + tick * intervalMs - performance.now()),
      )
      timers.add(timer)
    }
    next()
  }
  return {
    async stop() {
      stopped = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      await Promise.all(feeds.map((feed) => feed.settled()))
    },
  }
}

/**
 * Publishes `ratePerTask` messages per second per task for `durationMs`, spread evenly
 * (the loop wakes every millisecond and sends what is due). Returns how long it took.
 */
export async function publishBurst(feeds: readonly TaskFeed[], ratePerTask: number, durationMs: number): Promise<number> {
  const total = Math.max(1, Math.round((ratePerTask * durationMs) / 1000))
  const start = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor((ratePerTask * (performance.now() - start)) / 1000) + 1)
    for (; sent < due; sent++) for (const feed of feeds) void feed.progress()
    if (sent < total) await sleep(1)
  }
  await Promise.all(feeds.map((feed) => feed.settled()))
  return performance.now() - start
}
