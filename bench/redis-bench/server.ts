/**
 * A server process of the Redis benchmark: one reference backend, on the in-memory store
 * or on Redis, that can also play the job and publish progress (stamped with the time of
 * the publish call, for the delivery latency).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createTabcastServer, silentLogger, type TabcastServer } from '../../server/index.js'
import { preciseNow, serveRequests } from './ipc.js'

export interface StartArgs {
  /** Absent: the in-memory store. */
  redis?: { url: string; keyPrefix: string }
}

export interface SteadyArgs {
  tasks: string[]
  durationMs: number
  intervalMs: number
}

export interface BurstArgs {
  tasks: string[]
  total: number
  concurrency: number
}

export interface PublishResult {
  published: number
  failed: number
  firstError: string | null
  startedAt: number
  elapsedMs: number
  cpuPercent: number
  eventLoopDelayP99Ms: number
}

let server: TabcastServer | null = null

function running(): TabcastServer {
  if (!server) throw new Error('not started')
  return server
}

async function measure(run: (report: (error: unknown) => void) => Promise<number>): Promise<PublishResult> {
  const cpuBefore = process.cpuUsage()
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  let failed = 0
  let firstError: string | null = null
  const startedAt = preciseNow()
  const published = await run((error) => {
    failed += 1
    firstError ??= error instanceof Error ? error.message : String(error)
  })
  const elapsedMs = preciseNow() - startedAt
  loopDelay.disable()
  const cpu = process.cpuUsage(cpuBefore)
  return {
    published,
    failed,
    firstError,
    startedAt,
    elapsedMs,
    cpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 1000) / 10,
    eventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
  }
}

serveRequests({
  async start(args: StartArgs) {
    server = createTabcastServer({
      logger: silentLogger,
      demo: false,
      // Every benchmark subscriber connects from 127.0.0.1.
      maxConnectionsPerAddress: false,
      maxPendingConnectionsPerAddress: false,
      ...(args.redis === undefined ? {} : { redis: { url: args.redis.url, keyPrefix: args.redis.keyPrefix } }),
    })
    const address = await server.listen(0, '127.0.0.1')
    // Warm up code paths (and, on Redis, wait for the store to connect).
    const deadline = Date.now() + 10_000
    for (;;) {
      try {
        await server.progress('bench_warmup', 0.5, 'warm-up')
        break
      } catch (error) {
        if (Date.now() > deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    return { port: address.port }
  },

  /** Each task publishes every `intervalMs` for `durationMs`, tasks spread over the interval. */
  steady(args: SteadyArgs): Promise<PublishResult> {
    const tabcast = running()
    return measure(async (report) => {
      const started = preciseNow()
      let published = 0
      const inFlight: Promise<unknown>[] = []
      await new Promise<void>((resolve) => {
        let finished = 0
        args.tasks.forEach((taskId, index) => {
          let step = 0
          const tick = (): void => {
            if (preciseNow() - started >= args.durationMs) {
              finished += 1
              if (finished === args.tasks.length) resolve()
              return
            }
            step += 1
            published += 1
            inFlight.push(tabcast.progress(taskId, 0.5, `step ${step}`, { metadata: { sent_at: preciseNow() } }).catch(report))
            setTimeout(tick, args.intervalMs)
          }
          setTimeout(tick, (args.intervalMs * index) / args.tasks.length)
        })
      })
      await Promise.all(inFlight)
      return published
    })
  },

  /** `total` messages over the tasks as fast as `concurrency` publishes in flight allow. */
  burst(args: BurstArgs): Promise<PublishResult> {
    const tabcast = running()
    return measure(async (report) => {
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < args.total) {
          const index = next++
          const taskId = args.tasks[index % args.tasks.length] as string
          await tabcast.progress(taskId, 0.5, `burst ${index}`, { metadata: { sent_at: preciseNow() } }).catch(report)
        }
      }
      await Promise.all(Array.from({ length: args.concurrency }, worker))
      return args.total
    })
  },

  async stop() {
    await server?.close()
    server = null
    setImmediate(() => process.exit(0))
    return {}
  },
})
