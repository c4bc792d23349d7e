/**
 * `npm run bench:server`: how many subscribers the reference backend holds, how fast
 * it fans progress out to them, and what each connection costs in server memory.
 *
 *   npm run bench:server                  1,000 and 10,000 subscribers (under 2 minutes)
 *   npm run bench:server -- --quick       a few subscribers, a few seconds (smoke test)
 *   npm run bench:server -- --sizes 2000 --duration 5 --modes off --out /tmp/server.json
 *   npm run bench:server -- --skip-redis  without the Redis comparison that runs last
 *
 * Each scenario runs the server alone in a child process (so its memory is measured
 * apart from the clients) and the subscribers in one child per 5,000 sockets, all on
 * loopback. Subscribers are spread over tasks (10 per task by default: a task followed
 * from ten browsers); every task publishes one progress message per second, so every
 * subscriber receives one message per second. The server stamps each message with the
 * time it was published; the subscriber's receive time minus that stamp is the
 * delivery latency. Memory per connection is the server process's RSS (and V8 heap)
 * after a full GC with all subscribers connected, minus the same before any connected,
 * divided by the connections held. Each size runs without compression, with the
 * server's default permessage-deflate (only messages of 1 KiB or more are compressed,
 * so progress messages are not), and with deflate forced on every message (threshold
 * 0: the worst case for memory and CPU).
 *
 * The results go to a table on stdout and to bench-results/server.json.
 *
 * Then bench/redis.ts runs (same --quick): two server processes on Redis against the
 * in-memory single process, results in bench-results/redis.json.
 */
import { execFileSync, fork, spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { describeMachine, type Machine } from './machine.js'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { MemorySample, PublishResult } from './server-bench/backend-process.js'
import { ChildChannel } from './server-bench/ipc.js'
import type { ConnectResult, ReportResult } from './server-bench/subscribers-process.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..')
const BACKEND = resolve(HERE, 'server-bench/backend-process.ts')
const SUBSCRIBERS = resolve(HERE, 'server-bench/subscribers-process.ts')
const SOCKETS_PER_CLIENT_PROCESS = 5000
/** WebSocket handshakes each subscriber process keeps in flight while connecting. */
const CONNECT_CONCURRENCY = Number(process.env['BENCH_CONNECT_CONCURRENCY'] ?? 100)
/** File descriptors a process needs beyond its sockets (stdio, IPC, libuv, modules). */
const FD_HEADROOM = 256

type CompressionMode = 'off' | 'deflate-default' | 'deflate-all'

const COMPRESSION_LABEL: Record<CompressionMode, string> = {
  off: 'off',
  'deflate-default': 'deflate, threshold 1 KiB',
  'deflate-all': 'deflate, every message',
}

interface Settings {
  quick: boolean
  sizes: number[]
  durationS: number
  perTask: number
  out: string
  modes: CompressionMode[]
  /** Leave out the Redis comparison (bench/redis.ts). */
  skipRedis: boolean
}

export interface MemoryPerConnection {
  rssKiB: number
  heapKiB: number
  externalKiB: number
}

export interface ScenarioResult {
  name: string
  subscribers: number
  tasks: number
  subscribersPerTask: number
  compression: CompressionMode
  compressionLabel: string
  clientProcesses: number
  connectionsHeld: number
  connectFailed: number
  firstConnectError: string | null
  connectSeconds: number
  compressionNegotiated: number
  durationS: number
  published: number
  expectedDeliveries: number
  delivered: number
  dropped: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
  messagesPerSecond: number
  wireBytesPerMessage: number
  server: { cpuPercent: number; eventLoopDelayP99Ms: number; gcPauseMaxMs: number; gcPauseTotalMs: number }
  /** CPU used by the subscriber processes together, in % of one core: they share the machine with the server. */
  subscribersCpuPercent: number
  memoryPerConnection: { afterConnect: MemoryPerConnection; afterFanout: MemoryPerConnection }
}

export interface BenchReport {
  benchmark: 'server'
  quick: boolean
  date: string
  environment: Machine & {
    fdSoftLimit: number
    fdHardLimit: number
    /** 1-minute load average before and after the run: other work on the machine skews latency. */
    loadAverage: { before: number; after: number }
  }
  settings: { sizes: number[]; durationS: number; subscribersPerTask: number }
  target: { subscribers: number; p99Ms: number; memoryPerConnectionKiB: number }
  scenarios: ScenarioResult[]
  verdict: { scenario: string | null; held: boolean; p99: boolean; memory: boolean; met: boolean; note: string }
}

function readSettings(): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      duration: { type: 'string' },
      'per-task': { type: 'string' },
      modes: { type: 'string' },
      out: { type: 'string' },
      'skip-redis': { type: 'boolean', default: false },
    },
    strict: true,
  })
  const quick = values.quick ?? false
  const sizes = (values.sizes ?? (quick ? '24' : '1000,10000')).split(',').map((size) => Number(size.trim()))
  if (sizes.some((size) => !Number.isInteger(size) || size < 1)) throw new Error(`--sizes must be positive integers, got ${values.sizes ?? ''}`)
  const durationS = Number(values.duration ?? (quick ? 1.5 : 6))
  if (!(durationS > 0)) throw new Error(`--duration must be a positive number of seconds, got ${values.duration ?? ''}`)
  const perTask = Number(values['per-task'] ?? (quick ? 4 : 10))
  if (!Number.isInteger(perTask) || perTask < 1) throw new Error(`--per-task must be a positive integer, got ${values['per-task'] ?? ''}`)
  const modes = (values.modes ?? 'off,deflate-default,deflate-all').split(',').map((mode) => mode.trim()) as CompressionMode[]
  for (const mode of modes) {
    if (!(mode in COMPRESSION_LABEL)) throw new Error(`--modes takes off, deflate-default and deflate-all, got ${JSON.stringify(mode)}`)
  }
  return {
    quick,
    sizes,
    durationS,
    perTask,
    out: resolve(values.out ?? resolve(ROOT, 'bench-results/server.json')),
    modes,
    skipRedis: values['skip-redis'] ?? false,
  }
}

function fdLimits(): { soft: number; hard: number } {
  const read = (flag: string): number => {
    const text = execFileSync('/bin/sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim()
    return text === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(text)
  }
  return { soft: read('-Sn'), hard: read('-Hn') }
}

const children = new Set<ChildChannel>()

/**
 * Starts a child on tsx. Node raises its own soft limit on open files to the hard limit
 * at startup, so a child can hold as many sockets as `ulimit -Hn` allows; a scenario
 * that needs more is refused up front with that limit in the message.
 */
function startChild(name: string, file: string, sockets: number, limits: { soft: number; hard: number }): ChildChannel {
  const needed = sockets + FD_HEADROOM
  if (needed > limits.hard) {
    throw new Error(`${name} needs ${needed} file descriptors but the hard limit (ulimit -Hn) is ${limits.hard}; raise it or lower --sizes`)
  }
  const child = fork(file, [], { execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: ROOT })
  const channel = new ChildChannel(name, child)
  children.add(channel)
  void channel.exited.then(() => children.delete(channel))
  return channel
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index] ?? Number.NaN
}

function perConnection(after: MemorySample, before: MemorySample, connections: number): MemoryPerConnection {
  const kib = (bytes: number): number => Math.round((bytes / Math.max(1, connections) / 1024) * 10) / 10
  return {
    rssKiB: kib(after.rss - before.rss),
    heapKiB: kib(after.heapUsed - before.heapUsed),
    externalKiB: kib(after.external - before.external),
  }
}

const round = (value: number, digits = 2): number => Math.round(value * 10 ** digits) / 10 ** digits

async function runScenario(size: number, mode: CompressionMode, settings: Settings, limits: { soft: number; hard: number }): Promise<ScenarioResult> {
  const name = `${size} subscribers, compression ${COMPRESSION_LABEL[mode]}`
  const tasks = Math.max(1, Math.ceil(size / settings.perTask))
  const taskIds = Array.from({ length: tasks }, (_, index) => `bench_task_${String(index).padStart(5, '0')}`)
  const subscriberTasks = Array.from({ length: size }, (_, index) => taskIds[index % tasks] as string)
  const clientProcesses = Math.ceil(size / SOCKETS_PER_CLIENT_PROCESS)

  const backend = startChild('backend', BACKEND, size, limits)
  const clients: ChildChannel[] = []
  try {
    const compression = mode === 'off' ? false : { threshold: mode === 'deflate-all' ? 0 : 1024 }
    const started = await backend.call<{ port: number; baseline: MemorySample }>('start', { compression })
    const base = `ws://127.0.0.1:${started.port}`

    const connectStart = performance.now()
    for (let i = 0; i < clientProcesses; i += 1) clients.push(startChild(`subscribers-${i + 1}`, SUBSCRIBERS, SOCKETS_PER_CLIENT_PROCESS, limits))
    const shares = clients.map((_, i) => subscriberTasks.filter((__, index) => index % clientProcesses === i))
    const connects = await Promise.all(
      clients.map((client, i) =>
        client.call<ConnectResult>('connect', { base, taskIds: shares[i], concurrency: CONNECT_CONCURRENCY, offerCompression: mode !== 'off' }),
      ),
    )
    const connectSeconds = (performance.now() - connectStart) / 1000
    const held = connects.reduce((sum, result) => sum + result.connected, 0)
    const afterConnect = await backend.call<{ memory: MemorySample; connections: number }>('measure')

    // One second of fan-out first, not measured: the first messages pay for JIT
    // compilation in both processes, which is not what a long-running server sees.
    // (Skipped by --quick, whose figures are not meant to be read.)
    if (!settings.quick) await backend.call<PublishResult>('publish', { tasks: taskIds, durationMs: 1000, intervalMs: 1000 })
    await Promise.all(clients.map((client) => client.call('resetCounters')))
    const publish = await backend.call<PublishResult>('publish', { tasks: taskIds, durationMs: settings.durationS * 1000, intervalMs: 1000 })
    const afterFanout = await backend.call<{ memory: MemorySample; connections: number }>('measure')
    // Every subscriber of a task gets each of its messages: deliveries = published × subscribers per task.
    const expected = Math.round((publish.published / tasks) * held)
    const shareExpected = connects.map((result) => Math.round((publish.published / tasks) * result.connected))
    await Promise.all(clients.map((client, i) => client.call('drain', { expected: shareExpected[i], timeoutMs: 10_000 })))
    const reports = await Promise.all(clients.map((client) => client.call<ReportResult>('report')))

    const all = new Float64Array(reports.reduce((sum, report) => sum + report.latencies.length, 0))
    let offset = 0
    for (const report of reports) {
      all.set(report.latencies, offset)
      offset += report.latencies.length
    }
    all.sort()
    const delivered = reports.reduce((sum, report) => sum + report.received, 0)
    const wireBytes = reports.reduce((sum, report) => sum + report.wireBytes, 0)
    const elapsedS = publish.elapsedMs / 1000

    return {
      name,
      subscribers: size,
      tasks,
      subscribersPerTask: settings.perTask,
      compression: mode,
      compressionLabel: COMPRESSION_LABEL[mode],
      clientProcesses,
      connectionsHeld: afterFanout.connections,
      connectFailed: connects.reduce((sum, result) => sum + result.failed, 0),
      firstConnectError: connects.find((result) => result.firstError !== null)?.firstError ?? null,
      connectSeconds: round(connectSeconds, 1),
      compressionNegotiated: connects.reduce((sum, result) => sum + result.compressionNegotiated, 0),
      durationS: round(elapsedS, 2),
      published: publish.published,
      expectedDeliveries: expected,
      delivered,
      dropped: reports.reduce((sum, report) => sum + report.dropped, 0),
      latencyMs: {
        p50: round(percentile(all, 50), 2),
        p90: round(percentile(all, 90), 2),
        p99: round(percentile(all, 99), 2),
        max: round(all.length === 0 ? Number.NaN : (all[all.length - 1] ?? Number.NaN), 2),
      },
      messagesPerSecond: Math.round(delivered / elapsedS),
      wireBytesPerMessage: delivered === 0 ? 0 : Math.round(wireBytes / delivered),
      server: {
        cpuPercent: round(((publish.cpuUserMs + publish.cpuSystemMs) / publish.elapsedMs) * 100, 1),
        eventLoopDelayP99Ms: round(publish.eventLoopDelayP99Ms, 2),
        gcPauseMaxMs: publish.gc.maxMs,
        gcPauseTotalMs: publish.gc.totalMs,
      },
      subscribersCpuPercent: round((reports.reduce((sum, report) => sum + report.cpuMs, 0) / Math.max(...reports.map((report) => report.elapsedMs))) * 100, 1),
      memoryPerConnection: {
        afterConnect: perConnection(afterConnect.memory, started.baseline, afterConnect.connections),
        afterFanout: perConnection(afterFanout.memory, started.baseline, afterFanout.connections),
      },
    }
  } finally {
    await Promise.all(clients.map((client) => client.call('close').catch(() => undefined)))
    await backend.call('stop').catch(() => undefined)
    await Promise.all([backend, ...clients].map((child) => Promise.race([child.exited, new Promise((r) => setTimeout(r, 3000))])))
    for (const child of [backend, ...clients]) child.kill()
  }
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width)
}

function printTable(report: BenchReport): void {
  const header = ['subscribers', 'compression', 'held', 'p50 ms', 'p99 ms', 'msg/s', 'B/msg', 'RSS KiB/conn', 'heap KiB/conn', 'server CPU', 'GC max ms', 'clients CPU']
  const rows = report.scenarios.map((s) => [
    String(s.subscribers),
    s.compressionLabel,
    `${s.connectionsHeld}/${s.subscribers}`,
    s.latencyMs.p50.toFixed(2),
    s.latencyMs.p99.toFixed(2),
    String(s.messagesPerSecond),
    String(s.wireBytesPerMessage),
    s.memoryPerConnection.afterFanout.rssKiB.toFixed(1),
    s.memoryPerConnection.afterFanout.heapKiB.toFixed(1),
    `${s.server.cpuPercent}%`,
    s.server.gcPauseMaxMs.toFixed(1),
    `${s.subscribersCpuPercent}%`,
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, column) => pad(cell, widths[column] ?? 0, column !== 1)).join('  ')
  console.log(`\n${line(header)}\n${widths.map((width) => '-'.repeat(width)).join('  ')}`)
  for (const row of rows) console.log(line(row))
  const load = report.environment.loadAverage
  console.log(`\n${report.verdict.note}`)
  console.log(`load average (1 min) ${load.before} before, ${load.after} after, on ${report.environment.cpus} CPUs`)
}

function verdict(scenarios: ScenarioResult[], target: BenchReport['target']): BenchReport['verdict'] {
  const candidates = scenarios.filter((s) => s.compression === 'off')
  const scenario = candidates.reduce<ScenarioResult | null>((best, s) => (best === null || s.subscribers > best.subscribers ? s : best), null)
  if (scenario === null) return { scenario: null, held: false, p99: false, memory: false, met: false, note: 'no uncompressed scenario ran' }
  const held = scenario.connectionsHeld === scenario.subscribers && scenario.subscribers >= target.subscribers
  const p99 = scenario.latencyMs.p99 < target.p99Ms
  const memory = scenario.memoryPerConnection.afterFanout.rssKiB < target.memoryPerConnectionKiB
  const met = held && p99 && memory
  const note =
    `target (${target.subscribers} subscribers held, p99 < ${target.p99Ms} ms, < ${target.memoryPerConnectionKiB} KiB RSS per connection, no compression): ` +
    `${met ? 'met' : 'not met'} by "${scenario.name}": held ${scenario.connectionsHeld}/${scenario.subscribers}${scenario.subscribers < target.subscribers ? ' (a smaller size than the target)' : ''}, ` +
    `p99 ${scenario.latencyMs.p99} ms, ${scenario.memoryPerConnection.afterFanout.rssKiB} KiB RSS per connection`
  return { scenario: scenario.name, held, p99, memory, met, note }
}

async function main(): Promise<void> {
  const settings = readSettings()
  const limits = fdLimits()
  const loadBefore = round(loadavg()[0] ?? 0)
  // The benchmark must end by itself even if a child hangs.
  const watchdog = setTimeout(
    () => {
      console.error('bench:server: gave up after the time limit; killing its child processes')
      for (const child of children) child.kill()
      process.exit(1)
    },
    (settings.quick ? 90 : 600) * 1000,
  )
  watchdog.unref()

  console.log(
    `bench:server: sizes ${settings.sizes.join(', ')}; ${settings.perTask} subscribers per task; ${settings.durationS} s of fan-out per scenario; ` +
      `file descriptors ${limits.soft} (hard ${limits.hard})`,
  )
  const scenarios: ScenarioResult[] = []
  for (const size of settings.sizes) {
    for (const mode of settings.modes) {
      process.stdout.write(`  ${size} subscribers, compression ${COMPRESSION_LABEL[mode]} … `)
      const result = await runScenario(size, mode, settings, limits)
      scenarios.push(result)
      console.log(
        `held ${result.connectionsHeld}/${size} (connected in ${result.connectSeconds} s), p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, ` +
          `${result.memoryPerConnection.afterFanout.rssKiB} KiB RSS/conn`,
      )
    }
  }
  const target = { subscribers: 10_000, p99Ms: 100, memoryPerConnectionKiB: 30 }
  const report: BenchReport = {
    benchmark: 'server',
    quick: settings.quick,
    date: new Date().toISOString(),
    environment: {
      ...describeMachine(),
      fdSoftLimit: limits.soft,
      fdHardLimit: limits.hard,
      loadAverage: { before: loadBefore, after: round(loadavg()[0] ?? 0) },
    },
    settings: { sizes: settings.sizes, durationS: settings.durationS, subscribersPerTask: settings.perTask },
    target,
    scenarios,
    verdict: verdict(scenarios, target),
  }
  printTable(report)
  mkdirSync(dirname(settings.out), { recursive: true })
  writeFileSync(settings.out, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`wrote ${settings.out}`)
  clearTimeout(watchdog)
  if (!settings.skipRedis) await runRedisBench(settings.quick)
}

/** bench/redis.ts in its own process: two server processes on Redis vs the in-memory single process. */
function runRedisBench(quick: boolean): Promise<void> {
  console.log('\nbench:server: the Redis comparison (bench/redis.ts; --skip-redis leaves it out)')
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(HERE, 'redis.ts'), ...(quick ? ['--quick'] : [])], { stdio: 'inherit', cwd: ROOT })
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? done() : reject(new Error(`bench/redis.ts exited with code ${String(code)}`))))
  })
}

main().catch((error: unknown) => {
  console.error('bench:server failed:', error)
  for (const child of children) child.kill()
  process.exit(1)
})
