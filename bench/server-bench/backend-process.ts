/**
 * The benchmark's server process: the reference backend alone in its process, so its
 * memory can be measured without the subscribers' memory mixed in. Run with
 * `--expose-gc` so measurements are taken after a full collection.
 */
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { createTabcastServer, silentLogger, type TabcastServer } from '../../server/index.js'
import { preciseNow, serveRequests } from './ipc.js'

export interface MemorySample {
  rss: number
  heapUsed: number
  external: number
  arrayBuffers: number
}

export interface StartArgs {
  compression: false | { threshold: number }
}

export interface PublishArgs {
  tasks: string[]
  durationMs: number
  intervalMs: number
}

export interface PublishResult {
  published: number
  framesSent: number
  elapsedMs: number
  cpuUserMs: number
  cpuSystemMs: number
  eventLoopDelayP99Ms: number
  /** Garbage-collection pauses of the server during the fan-out. */
  gc: { count: number; totalMs: number; maxMs: number }
}

let server: TabcastServer | null = null

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run the backend process with --expose-gc')
  gc()
  gc()
}

function memory(): MemorySample {
  collect()
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage()
  return { rss, heapUsed, external, arrayBuffers }
}

serveRequests({
  async start(args: StartArgs) {
    server = createTabcastServer({
      logger: silentLogger,
      demo: false,
      // Every benchmark subscriber connects from 127.0.0.1.
      maxConnectionsPerAddress: false,
      // 10,000 clients on one address connect in bursts: none may be turned away half-open.
      maxPendingConnectionsPerAddress: false,
      // Subscribers never write, so the limit never matters; it stays on as in production.
      compression: args.compression === false ? false : { threshold: args.compression.threshold },
    })
    const address = await server.listen(0, '127.0.0.1')
    // Warm up code paths and allocator pools once, so they are not billed to connections.
    await server.progress('bench_warmup', 0.5, 'warm-up')
    return { port: address.port, baseline: memory() }
  },

  measure() {
    if (!server) throw new Error('not started')
    return { memory: memory(), connections: server.stats().connections }
  },

  async publish(args: PublishArgs): Promise<PublishResult> {
    const running = server
    if (!running) throw new Error('not started')
    const sentBefore = running.stats().messagesSent
    const cpuBefore = process.cpuUsage()
    const loopDelay = monitorEventLoopDelay({ resolution: 10 })
    loopDelay.enable()
    const gc = { count: 0, totalMs: 0, maxMs: 0 }
    const gcObserver = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        gc.count += 1
        gc.totalMs += entry.duration
        gc.maxMs = Math.max(gc.maxMs, entry.duration)
      }
    })
    gcObserver.observe({ entryTypes: ['gc'] })
    const started = preciseNow()
    let published = 0
    const timers: ReturnType<typeof setTimeout>[] = []
    await new Promise<void>((resolve) => {
      let finished = 0
      args.tasks.forEach((taskId, index) => {
        // Tasks are spread evenly over the interval, as independent jobs would be.
        const offset = (args.intervalMs * index) / args.tasks.length
        let step = 0
        const tick = (): void => {
          if (preciseNow() - started >= args.durationMs) {
            finished += 1
            if (finished === args.tasks.length) resolve()
            return
          }
          step += 1
          published += 1
          void running.progress(taskId, Math.min(1, step / 1000), `TTS 생성 중... (시도 1/5) step ${step}`, {
            metadata: { sent_at: preciseNow() },
          })
          timers.push(setTimeout(tick, args.intervalMs))
        }
        timers.push(setTimeout(tick, offset))
      })
    })
    for (const timer of timers) clearTimeout(timer)
    loopDelay.disable()
    gcObserver.disconnect()
    const cpu = process.cpuUsage(cpuBefore)
    return {
      published,
      framesSent: running.stats().messagesSent - sentBefore,
      elapsedMs: preciseNow() - started,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      eventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      gc: { count: gc.count, totalMs: Math.round(gc.totalMs * 10) / 10, maxMs: Math.round(gc.maxMs * 10) / 10 },
    }
  },

  async stop() {
    await server?.close()
    server = null
    setImmediate(() => process.exit(0))
    return {}
  },
})
