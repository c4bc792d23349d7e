/**
 * `npm run bench:redis`: the reference backend scaled out on Redis, against the
 * in-memory single process, in the same run.
 *
 *   npm run bench:redis                    100 tasks × 10 subscribers, 5 s steady + a 20,000-message burst (about 1 minute)
 *   npm run bench:redis -- --quick         a few tasks and subscribers, a few seconds (smoke test)
 *   npm run bench:redis -- --aof           also Redis with the append-only file fsynced on every write
 *   npm run bench:redis -- --tasks 200 --per-task 5 --interval 50 --duration 10 --burst 50000 --out /tmp/redis.json
 *
 * Scenarios (each server is its own child process; the subscribers are one more):
 * - memory: one server on the in-memory store; the job publishes in it and the
 *   subscribers are connected to it.
 * - redis: two servers on one redis-server (started here on a free port, no
 *   persistence); the job publishes through the first, the subscribers are connected to
 *   the second, so every message crosses Redis (Lua append + PUBLISH, then pub/sub).
 * - redis-aof (with --aof): the same with `appendfsync always` (a write is on disk
 *   before Redis acknowledges it).
 *
 * Two phases per scenario: steady (every task publishes one progress message every
 * --interval ms for --duration s: the delivery latency at a given load), and burst
 * (--burst messages spread over the tasks, 64 publishes in flight: the throughput end to
 * end). Each message carries the time of the publish call; latency is its receive time
 * in the subscriber process minus that. Every socket checks that seq strictly increases.
 *
 * The results go to a table on stdout and to bench-results/redis.json.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { describeMachine, type Machine } from './machine.js'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { findRedisServer, RedisServer } from '../tests/support/redis-server.js'
import { Child } from './redis-bench/ipc.js'
import type { PublishResult } from './redis-bench/server.js'
import type { SubscribersReport } from './redis-bench/subscribers.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..')
const SERVER = resolve(HERE, 'redis-bench/server.ts')
const SUBSCRIBERS = resolve(HERE, 'redis-bench/subscribers.ts')
const BURST_CONCURRENCY = 64

type ScenarioName = 'memory' | 'redis' | 'redis-aof'

interface Settings {
  quick: boolean
  tasks: number
  perTask: number
  intervalMs: number
  durationS: number
  burst: number
  aof: boolean
  out: string
}

export interface PhaseResult {
  published: number
  publishFailed: number
  expectedDeliveries: number
  delivered: number
  outOfOrder: number
  dropped: number
  /** Deliveries per second, from the first publish to the last delivery. */
  deliveredPerSecond: number
  /** Publishes acknowledged per second (burst: how fast the job could go). */
  publishedPerSecond: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
  publisherCpuPercent: number
  publisherEventLoopDelayP99Ms: number
}

export interface ScenarioResult {
  scenario: ScenarioName
  description: string
  processes: number
  subscribers: number
  tasks: number
  steady: PhaseResult
  burst: PhaseResult
}

export interface RedisBenchReport {
  benchmark: 'redis'
  quick: boolean
  date: string
  environment: Machine & {
    redis: string | null
    /** 1-minute load average before and after: other work on the machine skews latency. */
    loadAverage: { before: number; after: number }
  }
  settings: Omit<Settings, 'out' | 'quick'> & { burstConcurrency: number }
  scenarios: ScenarioResult[]
}

function readSettings(): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      aof: { type: 'boolean', default: false },
      tasks: { type: 'string' },
      'per-task': { type: 'string' },
      interval: { type: 'string' },
      duration: { type: 'string' },
      burst: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  })
  const quick = values.quick ?? false
  const integer = (name: string, text: string | undefined, fallback: number): number => {
    const value = Number(text ?? fallback)
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, got ${text ?? ''}`)
    return value
  }
  const durationS = Number(values.duration ?? (quick ? 1.5 : 5))
  if (!(durationS > 0)) throw new Error(`--duration must be a positive number of seconds, got ${values.duration ?? ''}`)
  return {
    quick,
    tasks: integer('tasks', values.tasks, quick ? 10 : 100),
    perTask: integer('per-task', values['per-task'], quick ? 4 : 10),
    intervalMs: integer('interval', values.interval, 100),
    durationS,
    burst: integer('burst', values.burst, quick ? 2000 : 20_000),
    aof: values.aof ?? false,
    out: resolve(values.out ?? resolve(ROOT, 'bench-results/redis.json')),
  }
}

const children = new Set<Child>()

function startChild(name: string, file: string): Child {
  const child = new Child(name, file, ROOT)
  children.add(child)
  void child.exited.then(() => children.delete(child))
  return child
}

const round = (value: number, digits = 2): number => Math.round(value * 10 ** digits) / 10 ** digits

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index] ?? Number.NaN
}

async function phase(
  publisher: Child,
  subscribers: Child,
  held: number,
  settings: Settings,
  command: 'steady' | 'burst',
  args: unknown,
): Promise<PhaseResult> {
  await subscribers.call('reset')
  const publish = await publisher.call<PublishResult>(command, args)
  const ok = publish.published - publish.failed
  const expected = Math.round((ok / settings.tasks) * held)
  await subscribers.call('drain', { expected, timeoutMs: 10_000 })
  const report = await subscribers.call<SubscribersReport>('report')
  const latencies = Float64Array.from(report.latencies).sort()
  const spanS = Math.max(report.lastReceivedAt - publish.startedAt, publish.elapsedMs) / 1000
  if (publish.firstError !== null) console.warn(`    ${publish.failed} publishes failed, first: ${publish.firstError}`)
  return {
    published: publish.published,
    publishFailed: publish.failed,
    expectedDeliveries: expected,
    delivered: report.received,
    outOfOrder: report.outOfOrder,
    dropped: report.dropped,
    deliveredPerSecond: Math.round(report.received / spanS),
    publishedPerSecond: Math.round(ok / (publish.elapsedMs / 1000)),
    latencyMs: {
      p50: round(percentile(latencies, 50)),
      p90: round(percentile(latencies, 90)),
      p99: round(percentile(latencies, 99)),
      max: round(latencies.length === 0 ? Number.NaN : (latencies[latencies.length - 1] ?? Number.NaN)),
    },
    publisherCpuPercent: publish.cpuPercent,
    publisherEventLoopDelayP99Ms: round(publish.eventLoopDelayP99Ms),
  }
}

async function runScenario(scenario: ScenarioName, settings: Settings, redisUrl: string | null): Promise<ScenarioResult> {
  const taskIds = Array.from({ length: settings.tasks }, (_, index) => `bench_${scenario}_${String(index).padStart(5, '0')}`)
  const subscriberTasks = Array.from({ length: settings.tasks * settings.perTask }, (_, index) => taskIds[index % settings.tasks] as string)
  const redis = scenario === 'memory' || redisUrl === null ? undefined : { url: redisUrl, keyPrefix: `bench-${scenario}-${process.pid}` }
  const started: Child[] = []
  try {
    const publisher = startChild(`${scenario} server 1`, SERVER)
    started.push(publisher)
    let { port } = await publisher.call<{ port: number }>('start', redis === undefined ? {} : { redis })
    if (redis !== undefined) {
      // The subscribers follow on another process than the job's: every message crosses Redis.
      const follower = startChild(`${scenario} server 2`, SERVER)
      started.push(follower)
      port = (await follower.call<{ port: number }>('start', { redis })).port
    }
    const subscribers = startChild(`${scenario} subscribers`, SUBSCRIBERS)
    started.push(subscribers)
    const connected = await subscribers.call<{ connected: number; failed: number }>('connect', {
      base: `ws://127.0.0.1:${port}`,
      taskIds: subscriberTasks,
      concurrency: 50,
    })
    if (connected.failed > 0) console.warn(`    ${connected.failed} subscribers failed to connect`)
    // Warm-up, not measured: JIT, socket buffers, Redis script cache.
    await phase(publisher, subscribers, connected.connected, settings, 'burst', { tasks: taskIds, total: settings.tasks * 20, concurrency: BURST_CONCURRENCY })

    const steady = await phase(publisher, subscribers, connected.connected, settings, 'steady', {
      tasks: taskIds,
      durationMs: settings.durationS * 1000,
      intervalMs: settings.intervalMs,
    })
    const burst = await phase(publisher, subscribers, connected.connected, settings, 'burst', {
      tasks: taskIds,
      total: settings.burst,
      concurrency: BURST_CONCURRENCY,
    })
    return {
      scenario,
      description:
        scenario === 'memory'
          ? 'in-memory store, one process (job and subscribers on it)'
          : `Redis${scenario === 'redis-aof' ? ' with AOF appendfsync always' : ' (no persistence)'}, two processes (job on one, subscribers on the other)`,
      processes: redis === undefined ? 1 : 2,
      subscribers: connected.connected,
      tasks: settings.tasks,
      steady,
      burst,
    }
  } finally {
    const [first, second, subscribers] = [started[0], started[1], started[started.length - 1]]
    if (subscribers !== undefined && subscribers !== first && subscribers !== second) await subscribers.call('close').catch(() => undefined)
    for (const server of [first, second]) if (server !== undefined && server !== subscribers) await server.call('stop').catch(() => undefined)
    for (const child of started) {
      await Promise.race([child.exited, new Promise((done) => setTimeout(done, 3000))])
      child.kill()
    }
  }
}

function printTable(report: RedisBenchReport): void {
  const header = ['scenario', 'phase', 'published', 'delivered', 'in order', 'deliveries/s', 'publishes/s', 'p50 ms', 'p99 ms', 'max ms']
  const rows: string[][] = []
  for (const s of report.scenarios) {
    for (const [name, p] of [['steady', s.steady], ['burst', s.burst]] as const) {
      rows.push([
        s.scenario,
        name,
        String(p.published - p.publishFailed),
        `${p.delivered}/${p.expectedDeliveries}`,
        p.outOfOrder === 0 ? 'yes' : `${p.outOfOrder} not`,
        String(p.deliveredPerSecond),
        String(p.publishedPerSecond),
        p.latencyMs.p50.toFixed(2),
        p.latencyMs.p99.toFixed(2),
        p.latencyMs.max.toFixed(2),
      ])
    }
  }
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, column) => (column < 2 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ')
  console.log(`\n${line(header)}\n${widths.map((width) => '-'.repeat(width)).join('  ')}`)
  for (const row of rows) console.log(line(row))
}

async function main(): Promise<void> {
  const settings = readSettings()
  const watchdog = setTimeout(
    () => {
      console.error('bench:redis: gave up after the time limit; killing its child processes')
      for (const child of children) child.kill()
      process.exit(1)
    },
    (settings.quick ? 120 : 900) * 1000,
  )
  watchdog.unref()

  const loadBefore = round(loadavg()[0] ?? 0)
  const binary = findRedisServer()
  const scenarios: ScenarioName[] = ['memory']
  if (binary === null) console.warn('bench:redis: no redis-server binary (apt-get install redis-server): only the in-memory scenario runs')
  else scenarios.push('redis', ...(settings.aof ? (['redis-aof'] as const) : []))
  console.log(
    `bench:redis: ${settings.tasks} tasks × ${settings.perTask} subscribers; steady ${settings.durationS} s at one message per task every ${settings.intervalMs} ms; ` +
      `burst ${settings.burst} messages, ${BURST_CONCURRENCY} in flight`,
  )
  const results: ScenarioResult[] = []
  let redisVersion: string | null = null
  for (const scenario of scenarios) {
    process.stdout.write(`  ${scenario} … `)
    const redis = scenario === 'memory' ? null : await RedisServer.start({ persistent: scenario === 'redis-aof' })
    try {
      if (redis !== null && binary !== null) redisVersion ??= execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim()
      const result = await runScenario(scenario, settings, redis?.url ?? null)
      results.push(result)
      console.log(
        `steady p50 ${result.steady.latencyMs.p50} ms, p99 ${result.steady.latencyMs.p99} ms; burst ${result.burst.deliveredPerSecond} deliveries/s, ` +
          `${result.burst.publishedPerSecond} publishes/s`,
      )
    } finally {
      await redis?.stop()
    }
  }
  const report: RedisBenchReport = {
    benchmark: 'redis',
    quick: settings.quick,
    date: new Date().toISOString(),
    environment: {
      ...describeMachine(),
      redis: redisVersion,
      loadAverage: { before: loadBefore, after: round(loadavg()[0] ?? 0) },
    },
    settings: {
      tasks: settings.tasks,
      perTask: settings.perTask,
      intervalMs: settings.intervalMs,
      durationS: settings.durationS,
      burst: settings.burst,
      aof: settings.aof,
      burstConcurrency: BURST_CONCURRENCY,
    },
    scenarios: results,
  }
  printTable(report)
  console.log(`\nload average (1 min) ${report.environment.loadAverage.before} before, ${report.environment.loadAverage.after} after, on ${report.environment.cpus} CPUs`)
  mkdirSync(dirname(settings.out), { recursive: true })
  writeFileSync(settings.out, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`wrote ${settings.out}`)
  clearTimeout(watchdog)
}

main().catch((error: unknown) => {
  console.error('bench:redis failed:', error)
  for (const child of children) child.kill()
  process.exit(1)
})
