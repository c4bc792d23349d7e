/**
 * The browser benchmark's report: per cell (N tabs × M tasks) and variant, medians
 * with min–max over the repetitions; tabcast-vs-baseline differences and ratios taken
 * pair by pair (the two runs of one repetition) and summarized the same way; the
 * goals of issue 7; and the renderings (a console table, Markdown for the README).
 */
import type { Variant } from '../pages/api.js'
import type { DemoPaintRun } from './demo-paint.js'
import type { BundleSizes } from './pages.js'
import type { ServerBenchResult } from './server-bench.js'
import type { Machine } from '../machine.js'
import type { BrowserBenchSettings } from './settings.js'
import { formatSpread, round, spread, type Spread } from './stats.js'
import type { LateJoinStages, UnitResult } from './unit.js'

export interface Environment extends Machine {
  chromium: string
  chromiumPath: string
  /** 1-, 5- and 15-minute load averages when the run started and ended: other work on the machine shows here. */
  loadAverage: { start: number[]; end: number[] }
}

export interface VariantSummary {
  runs: number
  errors: string[]
  /** Server sockets of the followed tasks once every tab was live, one value per run. */
  connections: number[]
  upgrades: number[]
  latencyP50Ms: Spread
  latencyP99Ms: Spread
  /** Server send → the page's message listener, before any rendering. */
  arrivalP50Ms: Spread
  arrivalP99Ms: Spread
  /** Server send → the DOM write of a state that includes the message. */
  writeP50Ms: Spread
  writeP99Ms: Spread
  latencySamples: number
  burst: {
    plannedMs: number
    publishMs: Spread
    drainMs: Spread
    /** Delivered / expected progress messages, summed over runs. */
    delivered: number
    expectedDeliveries: number
    terminalReceived: number
    terminalExpected: number
    rendersPerTabPerSecond: Spread
    framesPerTabPerSecond: Spread
    cpuMs: Spread
    /** The part of `cpuMs` spent on the SharedWorker's thread (the broker), tabcast only. */
    workerThreadCpuMs: Spread
    netCpuMs: Spread
    idleCpuMsPerSecond: Spread
    benchProcessCpuMs: Spread
    extraUpgrades: number
    latencyP50Ms: Spread
    latencyP99Ms: Spread
  }
  /** Medians over runs of each run's median join time. */
  lateJoinMs: Spread
  /** The same for each stage of a join (ms since navigation start; see `LateJoinStages`). */
  lateJoinStages: Record<keyof LateJoinStages, Spread>
  lateJoinLiveOnlyMs: Spread
  /** The floor: medians over runs of a static page's first paint, measured after each join (`staticSamples`). */
  lateJoinStaticMs: Spread
  reconnectMs: Spread
  reconnectTabsLive: number[]
  lost: number
  lostExpected: number
  pageErrors: string[]
}

export interface PairSummary {
  /** tabcast − baseline, ms. */
  latencyP50DiffMs: Spread
  latencyP99DiffMs: Spread
  /** tabcast ÷ baseline. */
  latencyP50Ratio: Spread
  latencyP99Ratio: Spread
  cpuRatio: Spread
  netCpuRatio: Spread
  lateJoinRatio: Spread
  reconnectDiffMs: Spread
}

export interface CellReport {
  tabs: number
  tasks: number
  expectedConnections: Record<Variant, number>
  tabcast: VariantSummary
  baseline: VariantSummary
  pairs: PairSummary
}

export interface Goal {
  name: string
  met: boolean | null
  detail: string
}

export interface BrowserBenchReport {
  benchmark: 'browser'
  quick: boolean
  date: string
  command: string
  durationS: number
  environment: Environment
  settings: BrowserBenchSettings
  sizes: BundleSizes | { error: string }
  cells: CellReport[]
  goals: Goal[]
  /** Paint latency on the demo's /test-websocket page, SharedWorker vs per-tab sockets. */
  demoPaint: DemoPaintSummary | null
  serverBench: ServerBenchResult
  units: UnitResult[]
  warmups: UnitResult[]
  demoPaintRuns: DemoPaintRun[]
}

/** One variant of the demo page over its runs: send → DOM change and send → paint, ms. */
export interface DemoPaintVariant {
  writeP50: Spread
  writeP99: Spread
  paintP50: Spread
  paintP99: Spread
  samples: number
  expectedSamples: number
  connections: number[]
}

export interface DemoPaintSummary {
  tabs: number
  intervalMs: number
  runs: number
  errors: string[]
  tabcast: DemoPaintVariant
  baseline: DemoPaintVariant
  /** tabcast − baseline, pair by pair (runs of the same repetition). */
  paintP50DiffMs: Spread
  paintP99DiffMs: Spread
  writeP50DiffMs: Spread
}

export interface RunData {
  settings: BrowserBenchSettings
  command: string
  durationS: number
  environment: Environment
  sizes: BundleSizes | { error: string }
  units: UnitResult[]
  warmups: UnitResult[]
  demoPaint: DemoPaintRun[]
  server: ServerBenchResult
}

function summarizeDemoPaint(runs: readonly DemoPaintRun[], settings: BrowserBenchSettings): DemoPaintSummary | null {
  if (runs.length === 0) return null
  const ok = runs.filter((run) => run.error === null)
  const of = (variant: DemoPaintRun['variant']): DemoPaintVariant => {
    const mine = ok.filter((run) => run.variant === variant)
    return {
      writeP50: spread(mine.map((run) => run.writeP50)),
      writeP99: spread(mine.map((run) => run.writeP99)),
      paintP50: spread(mine.map((run) => run.paintP50)),
      paintP99: spread(mine.map((run) => run.paintP99)),
      samples: mine.reduce((sum, run) => sum + run.samples, 0),
      expectedSamples: mine.reduce((sum, run) => sum + run.expectedSamples, 0),
      connections: mine.map((run) => run.connections),
    }
  }
  const pairs = [...new Set(ok.map((run) => run.repetition))].flatMap((repetition) => {
    const tc = ok.find((run) => run.repetition === repetition && run.variant === 'tabcast')
    const bl = ok.find((run) => run.repetition === repetition && run.variant === 'baseline')
    return tc && bl ? [{ tc, bl }] : []
  })
  return {
    tabs: settings.demoPaint.tabs,
    intervalMs: settings.demoPaint.intervalMs,
    runs: runs.length,
    errors: runs.flatMap((run) => (run.error === null ? [] : [`${run.variant} #${run.repetition + 1}: ${run.error}`])),
    tabcast: of('tabcast'),
    baseline: of('baseline'),
    paintP50DiffMs: spread(pairs.map(({ tc, bl }) => tc.paintP50 - bl.paintP50)),
    paintP99DiffMs: spread(pairs.map(({ tc, bl }) => tc.paintP99 - bl.paintP99)),
    writeP50DiffMs: spread(pairs.map(({ tc, bl }) => tc.writeP50 - bl.writeP50)),
  }
}

function median(values: readonly number[]): number {
  return spread(values).median
}

function summarizeVariant(runs: readonly UnitResult[]): VariantSummary {
  const ok = runs.filter((run) => run.error === null)
  const of = (pick: (run: UnitResult) => number): Spread => spread(ok.map(pick))
  return {
    runs: runs.length,
    errors: runs.flatMap((run) => (run.error === null ? [] : [run.error])),
    connections: runs.map((run) => run.connections.server),
    upgrades: runs.map((run) => run.connections.upgrades),
    latencyP50Ms: of((run) => run.latency.p50),
    latencyP99Ms: of((run) => run.latency.p99),
    arrivalP50Ms: of((run) => run.latency.arrivalP50),
    arrivalP99Ms: of((run) => run.latency.arrivalP99),
    writeP50Ms: of((run) => run.latency.writeP50),
    writeP99Ms: of((run) => run.latency.writeP99),
    latencySamples: ok.reduce((sum, run) => sum + run.latency.samples, 0),
    burst: {
      plannedMs: runs[0]?.burst.plannedMs ?? Number.NaN,
      publishMs: of((run) => run.burst.publishMs),
      drainMs: of((run) => run.burst.drainMs),
      delivered: ok.reduce((sum, run) => sum + run.burst.delivered, 0),
      expectedDeliveries: ok.reduce((sum, run) => sum + run.burst.expectedDeliveries, 0),
      terminalReceived: ok.reduce((sum, run) => sum + run.burst.terminalReceived, 0),
      terminalExpected: ok.reduce((sum, run) => sum + run.burst.terminalExpected, 0),
      rendersPerTabPerSecond: of((run) => run.burst.rendersPerTabPerSecond),
      framesPerTabPerSecond: of((run) => run.burst.framesPerTabPerSecond),
      cpuMs: of((run) => run.burst.cpu?.totalMs ?? Number.NaN),
      workerThreadCpuMs: of((run) => (run.variant === 'tabcast' ? (run.burst.cpu?.byThread[SHARED_WORKER_THREAD] ?? 0) : Number.NaN)),
      netCpuMs: of((run) => run.burst.netCpuMs),
      idleCpuMsPerSecond: of((run) => run.burst.idleCpuMsPerSecond),
      benchProcessCpuMs: of((run) => run.burst.benchProcessCpuMs),
      extraUpgrades: ok.reduce((sum, run) => sum + run.burst.extraUpgrades, 0),
      latencyP50Ms: of((run) => run.burst.latency.p50),
      latencyP99Ms: of((run) => run.burst.latency.p99),
    },
    lateJoinMs: of((run) => median(run.lateJoin.samples)),
    lateJoinStages: {
      script: of((run) => median(run.lateJoin.stages.map((stage) => stage.script))),
      ready: of((run) => median(run.lateJoin.stages.map((stage) => stage.ready))),
      wrote: of((run) => median(run.lateJoin.stages.map((stage) => stage.wrote))),
      painted: of((run) => median(run.lateJoin.stages.map((stage) => stage.painted))),
    },
    lateJoinLiveOnlyMs: of((run) => median(run.lateJoin.liveOnlySamples)),
    lateJoinStaticMs: of((run) => median(run.lateJoin.staticSamples)),
    reconnectMs: of((run) => run.reconnect.liveAfterRestartMs),
    reconnectTabsLive: runs.map((run) => run.reconnect.tabsLive),
    lost: ok.reduce((sum, run) => sum + run.reconnect.lost, 0),
    lostExpected: ok.reduce((sum, run) => sum + run.reconnect.expected, 0),
    pageErrors: runs.flatMap((run) => run.pageErrors),
  }
}

function summarizePairs(tabcast: readonly UnitResult[], baseline: readonly UnitResult[]): PairSummary {
  const pairs = tabcast.flatMap((t) => {
    const b = baseline.find((run) => run.repetition === t.repetition)
    return b && t.error === null && b.error === null ? [{ t, b }] : []
  })
  const of = (pick: (t: UnitResult, b: UnitResult) => number): Spread => spread(pairs.map(({ t, b }) => pick(t, b)))
  return {
    latencyP50DiffMs: of((t, b) => t.latency.p50 - b.latency.p50),
    latencyP99DiffMs: of((t, b) => t.latency.p99 - b.latency.p99),
    latencyP50Ratio: of((t, b) => t.latency.p50 / b.latency.p50),
    latencyP99Ratio: of((t, b) => t.latency.p99 / b.latency.p99),
    cpuRatio: of((t, b) => (t.burst.cpu?.totalMs ?? Number.NaN) / (b.burst.cpu?.totalMs ?? Number.NaN)),
    netCpuRatio: of((t, b) => t.burst.netCpuMs / b.burst.netCpuMs),
    lateJoinRatio: of((t, b) => median(t.lateJoin.samples) / median(b.lateJoin.samples)),
    reconnectDiffMs: of((t, b) => t.reconnect.liveAfterRestartMs - b.reconnect.liveAfterRestartMs),
  }
}

/** Chromium's name for a shared worker's thread, as /proc shows it (15 characters). */
const SHARED_WORKER_THREAD = 'SharedWorker th'

const SIZE_GOALS = { clientGzipBytes: 6000, workerGzipBytes: 10_000 }
/**
 * What the bench smoke test (and so CI) holds the bundles to while the goals above are
 * missed: today's sizes plus a few hundred bytes, so new weight is a decision someone
 * makes on purpose (raise the budget in the same change, and say why) rather than drift.
 * Raised on 2026-12-03 from 8,800 / 18,500 B for what an outside test found missing: the
 * bounds on followed tasks, subscriptions and once-handlers, one handshake at a time per
 * backend, the token wait named at connect timeout, the epoch in snapshots, and the tab's
 * retries (health check, no host at all): 8,795 / 19,013 B.
 */
export const SIZE_BUDGETS = { clientGzipBytes: 9200, workerGzipBytes: 19_500 }
const GOAL_TABS = 10
/** Issue 15: browser CPU at 10 tabs × 1 task under a burst, as a fraction of the baseline's. */
const CPU_GOAL_RATIO = 0.5
/** Issue 15: navigation start → first paint of the current progress in a late-joining tab. */
const LATE_JOIN_GOAL_MS = 50

function evaluateGoals(cells: readonly CellReport[], sizes: BundleSizes | { error: string }, demo: DemoPaintSummary | null): Goal[] {
  const goals: Goal[] = []
  const connectionsRight = cells.every(
    (cell) =>
      cell.tabcast.connections.every((count) => count === cell.expectedConnections.tabcast) &&
      cell.baseline.connections.every((count) => count === cell.expectedConnections.baseline),
  )
  goals.push({
    name: 'server sockets: tabcast = M, baseline = N·M',
    met: cells.length === 0 ? null : connectionsRight,
    detail: cells
      .map((cell) => `N=${cell.tabs} M=${cell.tasks}: ${cell.tabcast.connections.join('/')} vs ${cell.baseline.connections.join('/')}`)
      .join('; '),
  })
  const atGoal = cells.filter((cell) => cell.tabs === GOAL_TABS)
  if (atGoal.length === 0) {
    goals.push({ name: `latency and CPU at ${GOAL_TABS} tabs`, met: null, detail: `no cell with ${GOAL_TABS} tabs was run` })
  } else {
    const latencyMet = atGoal.every((cell) => cell.pairs.latencyP50DiffMs.median <= 1 && cell.pairs.latencyP99DiffMs.median <= 5)
    goals.push({
      name: `latency at ${GOAL_TABS} tabs: tabcast within 1 ms of the baseline at the median, 5 ms at p99`,
      met: latencyMet,
      detail: atGoal
        .map(
          (cell) =>
            `M=${cell.tasks}: Δp50 ${signed(cell.pairs.latencyP50DiffMs, ' ms')}, Δp99 ${signed(cell.pairs.latencyP99DiffMs, ' ms')}`,
        )
        .join('; '),
    })
    const cpuMet = atGoal.every((cell) => cell.pairs.cpuRatio.median <= (cell.tasks === 1 ? CPU_GOAL_RATIO : 1))
    goals.push({
      name: `browser CPU under a burst at ${GOAL_TABS} tabs: tabcast ≤ ${CPU_GOAL_RATIO}× the baseline with 1 task, ≤ 1× with more`,
      met: atGoal.some((cell) => cell.tasks === 1) ? cpuMet : null,
      detail: atGoal
        .map((cell) => `M=${cell.tasks}: ${formatSpread(cell.pairs.cpuRatio, 2, '×')} of the baseline, net of idle ${formatSpread(cell.pairs.netCpuRatio, 2, '×')}`)
        .join('; '),
    })
  }
  if (demo) {
    goals.push({
      name: `demo page (/test-websocket, ${demo.tabs} tabs): SharedWorker paint within 1 ms of per-tab sockets at the median, 5 ms at p99`,
      met: demo.paintP50DiffMs.n === 0 ? null : demo.paintP50DiffMs.median <= 1 && demo.paintP99DiffMs.median <= 5,
      detail: `Δp50 ${signed(demo.paintP50DiffMs, ' ms')}, Δp99 ${signed(demo.paintP99DiffMs, ' ms')}`,
    })
  }
  goals.push({
    name: `late join: tabcast paints the current progress < ${LATE_JOIN_GOAL_MS} ms after navigation starts`,
    met: cells.length === 0 ? null : cells.every((cell) => cell.tabcast.lateJoinMs.median < LATE_JOIN_GOAL_MS),
    detail: cells
      .map((cell) => `N=${cell.tabs} M=${cell.tasks}: ${formatSpread(cell.tabcast.lateJoinMs, 0, ' ms')} (a static page: ${cell.tabcast.lateJoinStaticMs.median.toFixed(0)} ms)`)
      .join('; '),
  })
  const terminalOk = cells.every((cell) =>
    (['tabcast', 'baseline'] as const).every((v) => cell[v].burst.terminalReceived === cell[v].burst.terminalExpected),
  )
  goals.push({ name: 'every terminal event reached every tab', met: cells.length === 0 ? null : terminalOk, detail: '' })
  const lostOk = cells.every((cell) => cell.tabcast.lost === 0 && cell.baseline.lost === 0)
  goals.push({
    name: 'no message lost over a server restart',
    met: cells.length === 0 ? null : lostOk,
    detail: cells.map((cell) => `N=${cell.tabs} M=${cell.tasks}: ${cell.tabcast.lost} vs ${cell.baseline.lost}`).join('; '),
  })
  if ('error' in sizes) {
    goals.push({ name: 'bundle sizes', met: null, detail: sizes.error })
  } else {
    goals.push({
      name: `tab-side bundle < ${SIZE_GOALS.clientGzipBytes / 1000} kB gzip`,
      met: sizes.client.gzipBytes < SIZE_GOALS.clientGzipBytes,
      detail: `${sizes.client.gzipBytes} B (plus ${sizes.clientLazy.gzipBytes} B loaded only without SharedWorker)`,
    })
    goals.push({
      name: `worker bundle < ${SIZE_GOALS.workerGzipBytes / 1000} kB gzip`,
      met: sizes.worker.gzipBytes < SIZE_GOALS.workerGzipBytes,
      detail: `${sizes.worker.gzipBytes} B`,
    })
  }
  return goals
}

export function summarizeRun(data: RunData): BrowserBenchReport {
  const demoPaint = summarizeDemoPaint(data.demoPaint, data.settings)
  const cells: CellReport[] = []
  for (const tabs of data.settings.tabs) {
    for (const tasks of data.settings.tasks) {
      const runs = (variant: Variant): UnitResult[] => data.units.filter((u) => u.tabs === tabs && u.tasks === tasks && u.variant === variant)
      cells.push({
        tabs,
        tasks,
        expectedConnections: { tabcast: tasks, baseline: tabs * tasks },
        tabcast: summarizeVariant(runs('tabcast')),
        baseline: summarizeVariant(runs('baseline')),
        pairs: summarizePairs(runs('tabcast'), runs('baseline')),
      })
    }
  }
  return {
    benchmark: 'browser',
    quick: data.settings.quick,
    date: new Date().toISOString(),
    command: data.command,
    durationS: data.durationS,
    environment: data.environment,
    settings: data.settings,
    sizes: data.sizes,
    cells,
    goals: evaluateGoals(cells, data.sizes, demoPaint),
    demoPaint,
    serverBench: data.server,
    units: data.units,
    warmups: data.warmups,
    demoPaintRuns: data.demoPaint,
  }
}

// ---------------------------------------------------------------- rendering

const s1 = (value: Spread, unit = ''): string => formatSpread(value, 1, unit)
const s2 = (value: Spread, unit = ''): string => formatSpread(value, 2, unit)
const s0 = (value: Spread, unit = ''): string => formatSpread(value, 0, unit)

function signed(value: Spread, unit: string): string {
  if (value.n === 0) return '–'
  const text = (n: number): string => `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(1)}`
  const main = `${text(value.median)}${unit}`
  return value.n === 1 || value.min === value.max ? main : `${main} (${text(value.min)} … ${text(value.max)})`
}

function perTask(value: Spread, tasks: number): Spread {
  return { median: value.median / tasks, min: value.min / tasks, max: value.max / tasks, n: value.n }
}

function percentOf(part: number, whole: number): string {
  if (whole === 0) return '–'
  return `${round((part / whole) * 100, 1)} %`
}

function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

function kb(bytes: number): string {
  return `${(bytes / 1000).toFixed(1)} kB`
}

function settingsLine(settings: BrowserBenchSettings): string {
  return (
    `${settings.repetitions} repetition${settings.repetitions === 1 ? '' : 's'} per cell after ${settings.warmups} warm-up pair${settings.warmups === 1 ? '' : 's'}; ` +
    `latency: progress every ${settings.latency.intervalMs} ms per task for ${settings.latency.durationMs / 1000} s; ` +
    `burst: ${settings.burst.ratePerTask.toLocaleString('en-US')} messages/s per task for ${settings.burst.minDurationMs / 1000}–${settings.burst.durationMs / 1000} s ` +
    `(at most ${settings.burst.deliveryBudget.toLocaleString('en-US')} deliveries per run); ` +
    `late join: ${settings.lateJoin.joins} tab${settings.lateJoin.joins === 1 ? '' : 's'} per run on tasks sending progress every ${settings.lateJoin.intervalMs} ms; ` +
    `reconnect: server down ${settings.reconnect.downtimeMs} ms with progress every ${settings.reconnect.intervalMs} ms` +
    `${settings.frameKeeper ? '; every tab renders like a visible window (frame keeper)' : '; no frame keeper'}`
  )
}

function renderDemoPaint(demo: DemoPaintSummary): string[] {
  const row = (name: string, v: DemoPaintVariant): string[] => [
    name,
    unique(v.connections),
    `${v.samples} / ${v.expectedSamples}`,
    s1(v.writeP50, ' ms'),
    s1(v.writeP99, ' ms'),
    s1(v.paintP50, ' ms'),
    s1(v.paintP99, ' ms'),
  ]
  return [
    `### The demo page: ${demo.tabs} tabs on /test-websocket, a progress step every ${demo.intervalMs} ms`,
    '',
    markdownTable(
      ['variant', 'server sockets', 'steps seen / sent (all tabs)', 'send → DOM change p50', 'p99', 'send → paint p50', 'p99'],
      [row('tabcast (`?mode=shared-worker`)', demo.tabcast), row('own socket per tab (`?mode=per-tab`)', demo.baseline)],
    ),
    '',
    `Δ (pair by pair): DOM change p50 ${signed(demo.writeP50DiffMs, ' ms')}, paint p50 ${signed(demo.paintP50DiffMs, ' ms')}, paint p99 ${signed(demo.paintP99DiffMs, ' ms')}. ` +
      'The same React page and `<ProgressBar>` in both; the baseline opens its own WebSocket in each tab. Stamped from an init script: the percent\'s DOM change, and the first rendering update after it (bench/browser/demo-paint.ts).' +
      (demo.errors.length > 0 ? ` Failed runs: ${demo.errors.join('; ')}.` : ''),
    '',
  ]
}

/** The Markdown section for the README. */
export function renderMarkdown(report: BrowserBenchReport): string {
  const env = report.environment
  const out: string[] = []
  out.push(`## Benchmark: what sharing saves`)
  out.push('')
  out.push(
    `\`${report.command}\` on ${report.date.slice(0, 10)}: ${env.cpus} CPUs (${env.cpuModel}), ${(env.memoryMiB / 1024).toFixed(1)} GiB, ` +
      `${env.os}, Node ${env.node}, Chromium ${env.chromium} (headless, one browser context), ${report.durationS} s in all; ` +
      `load average ${env.loadAverage.start.map((n) => n.toFixed(1)).join(' ')} at the start, ${env.loadAverage.end.map((n) => n.toFixed(1)).join(' ')} at the end.`,
  )
  out.push('')
  out.push(
    `**tabcast**: N tabs follow M tasks through the SharedWorker (one WebSocket per task); the first tab takes every message (an \`onMessage\` consumer), ` +
      `the others and the late joiners only draw (\`delivery: 'snapshots'\`, as a \`<ProgressBar>\`). **baseline**: N tabs each open their own WebSocket per task ` +
      `and write the DOM on every message. Both pages make the same DOM writes and stamp them when painted. ` +
      `Values are medians (min–max) over the repetitions; Δ and × compare the tabcast and baseline runs of the same repetition, pair by pair. ` +
      `${settingsLine(report.settings)}.`,
  )
  out.push('')
  out.push('### Server sockets and delivery latency (server send → tab paint)')
  out.push('')
  out.push(
    markdownTable(
      ['tabs', 'tasks', 'sockets tabcast / baseline', 'p50 tabcast', 'p50 baseline', 'Δ p50', 'p99 tabcast', 'p99 baseline', 'Δ p99', 'to onMessage p50 tc / bl'],
      report.cells.map((cell) => [
        String(cell.tabs),
        String(cell.tasks),
        `${unique(cell.tabcast.connections)} / ${unique(cell.baseline.connections)}`,
        s1(cell.tabcast.latencyP50Ms, ' ms'),
        s1(cell.baseline.latencyP50Ms, ' ms'),
        signed(cell.pairs.latencyP50DiffMs, ' ms'),
        s1(cell.tabcast.latencyP99Ms, ' ms'),
        s1(cell.baseline.latencyP99Ms, ' ms'),
        signed(cell.pairs.latencyP99DiffMs, ' ms'),
        `${s1(cell.tabcast.arrivalP50Ms)} / ${s1(cell.baseline.arrivalP50Ms)} ms`,
      ]),
    ),
  )
  out.push('')
  out.push(...renderBreakdown(report))
  out.push(`### Burst: ${report.settings.burst.ratePerTask.toLocaleString('en-US')} progress messages per second per task`)
  out.push('')
  out.push(
    markdownTable(
      [
        'tabs',
        'tasks',
        'burst',
        'delivered to onMessage tc / bl',
        'terminal tc / bl',
        'DOM writes/s per tab and task tc / bl',
        'painted frames/s per tab tc / bl',
        'browser CPU tabcast',
        'of which SharedWorker',
        'browser CPU baseline',
        'CPU ×',
        'CPU × net of idle',
        'server+driver CPU tc / bl',
      ],
      report.cells.map((cell) => [
        String(cell.tabs),
        String(cell.tasks),
        `${(cell.tabcast.burst.plannedMs / 1000).toFixed(2)} s`,
        `${percentOf(cell.tabcast.burst.delivered, cell.tabcast.burst.expectedDeliveries)} / ${percentOf(cell.baseline.burst.delivered, cell.baseline.burst.expectedDeliveries)}`,
        `${cell.tabcast.burst.terminalReceived}/${cell.tabcast.burst.terminalExpected} / ${cell.baseline.burst.terminalReceived}/${cell.baseline.burst.terminalExpected}`,
        `${s0(perTask(cell.tabcast.burst.rendersPerTabPerSecond, cell.tasks))} / ${s0(perTask(cell.baseline.burst.rendersPerTabPerSecond, cell.tasks))}`,
        `${s0(cell.tabcast.burst.framesPerTabPerSecond)} / ${s0(cell.baseline.burst.framesPerTabPerSecond)}`,
        s0(cell.tabcast.burst.cpuMs, ' ms'),
        s0(cell.tabcast.burst.workerThreadCpuMs, ' ms'),
        s0(cell.baseline.burst.cpuMs, ' ms'),
        s2(cell.pairs.cpuRatio, '×'),
        s2(cell.pairs.netCpuRatio, '×'),
        `${s0(cell.tabcast.burst.benchProcessCpuMs)} / ${s0(cell.baseline.burst.benchProcessCpuMs)} ms`,
      ]),
    ),
  )
  out.push('')
  if (report.demoPaint) out.push(...renderDemoPaint(report.demoPaint))
  out.push('### Late join and server restart')
  out.push('')
  out.push(
    markdownTable(
      [
        'tabs',
        'tasks',
        'late join tabcast',
        'late join baseline (server catch-up)',
        'late join baseline (live messages only)',
        'a static page paints (floor)',
        'live again after restart tabcast',
        'baseline',
        'messages lost tc / bl',
      ],
      report.cells.map((cell) => [
        String(cell.tabs),
        String(cell.tasks),
        s0(cell.tabcast.lateJoinMs, ' ms'),
        s0(cell.baseline.lateJoinMs, ' ms'),
        s0(cell.baseline.lateJoinLiveOnlyMs, ' ms'),
        s0(cell.tabcast.lateJoinStaticMs, ' ms'),
        s0(cell.tabcast.reconnectMs, ' ms'),
        s0(cell.baseline.reconnectMs, ' ms'),
        `${cell.tabcast.lost} / ${cell.baseline.lost} of ${cell.tabcast.lostExpected} / ${cell.baseline.lostExpected}`,
      ]),
    ),
  )
  out.push('')
  out.push('Late join: from the new tab\'s navigation start to its first paint of the current progress of every task. The floor is the same measure for bench/pages/static.html, whose progress is already in its HTML (no script runs before it can paint), opened after each tabcast join under the same load: no page paints earlier on this machine. Restart: from the server listening again to every tab painting "live"; both clients follow the same reconnect schedule (at once after "going away", then 2 s).')
  out.push('')
  if ('error' in report.sizes) {
    out.push(`### Size\n\nnot measured: ${report.sizes.error}`)
  } else {
    const sizes = report.sizes
    out.push(`### Size (minified, gzip level ${sizes.gzipLevel})`)
    out.push('')
    out.push(
      markdownTable(
        ['bundle', 'minified', 'gzip', 'goal', 'budget (CI)'],
        [
          ['tab side (`tabcast` client, loaded at start)', kb(sizes.client.bytes), kb(sizes.client.gzipBytes), `< ${kb(SIZE_GOALS.clientGzipBytes)}`, `≤ ${kb(SIZE_BUDGETS.clientGzipBytes)}`],
          ['tab side, loaded only without SharedWorker', kb(sizes.clientLazy.bytes), kb(sizes.clientLazy.gzipBytes), '', ''],
          ['SharedWorker', kb(sizes.worker.bytes), kb(sizes.worker.gzipBytes), `< ${kb(SIZE_GOALS.workerGzipBytes)}`, `≤ ${kb(SIZE_BUDGETS.workerGzipBytes)}`],
          ['`tabcast/react` with the client, React excluded', kb(sizes.react.bytes), kb(sizes.react.gzipBytes), '', ''],
        ],
      ),
    )
  }
  out.push('')
  out.push('### Goals')
  out.push('')
  for (const goal of report.goals) {
    const mark = goal.met === null ? 'not evaluated' : goal.met ? 'met' : '**missed**'
    out.push(`- ${goal.name}: ${mark}${goal.detail ? ` (${goal.detail})` : ''}`)
  }
  out.push('')
  out.push(renderServerMarkdown(report.serverBench))
  return `${out.join('\n')}\n`
}

/** Where the time of a delivery and of a late join goes, stage by stage. */
function renderBreakdown(report: BrowserBenchReport): string[] {
  const pair = (t: Spread, b: Spread): string => `${t.median.toFixed(1)} / ${b.median.toFixed(1)}`
  const stages = (v: VariantSummary): string => {
    const st = v.lateJoinStages
    const step = (to: Spread, from: Spread): string => (to.median - from.median).toFixed(0)
    return `${st.script.median.toFixed(0)} · ${step(st.ready, st.script)} · ${step(st.wrote, st.ready)} · ${step(st.painted, st.wrote)}`
  }
  return [
    '### Where the time goes',
    '',
    markdownTable(
      [
        'tabs',
        'tasks',
        'send → listener p50 tc / bl',
        'send → DOM write p50 tc / bl',
        'send → paint p50 tc / bl',
        'late join tabcast: load · handshake · first state written · painted',
        'late join baseline: load · sockets open · first state written · painted',
      ],
      report.cells.map((cell) => [
        String(cell.tabs),
        String(cell.tasks),
        `${pair(cell.tabcast.arrivalP50Ms, cell.baseline.arrivalP50Ms)} ms`,
        `${pair(cell.tabcast.writeP50Ms, cell.baseline.writeP50Ms)} ms`,
        `${pair(cell.tabcast.latencyP50Ms, cell.baseline.latencyP50Ms)} ms`,
        `${stages(cell.tabcast)} ms`,
        `${stages(cell.baseline)} ms`,
      ]),
    ),
    '',
    'Delivery: medians of the three stamps of every progress message (the listener is `onMessage`; tabcast\'s includes the hop from the SharedWorker). ' +
      'Late join, ms each: from navigation start to the bench code running (HTML and scripts), to the transport being up (tabcast: the handshake with the broker; ' +
      'baseline: its sockets open), to the current progress of every task written to the DOM, to that being painted.',
    '',
  ]
}

function unique(values: readonly number[]): string {
  const distinct = [...new Set(values)]
  return distinct.length === 0 ? '–' : distinct.join('/')
}

function renderServerMarkdown(server: ServerBenchResult): string {
  if (server.mode === 'skip') return '### Server benchmark\n\nskipped (`--server skip`).\n'
  if (server.report === null) return `### Server benchmark\n\nfailed: ${server.error ?? 'unknown error'}\n`
  const report = server.report
  const lines = [
    `### Server benchmark (\`${server.command ?? ''}\`, ${server.durationS ?? '?'} s${server.mode === 'full' ? '' : '; 10,000 subscribers: `npm run bench:server`'})`,
    '',
    markdownTable(
      ['subscribers', 'compression', 'held', 'p50', 'p99', 'msg/s', 'B/msg', 'RSS KiB/conn', 'server CPU'],
      report.scenarios.map((s) => [
        String(s.subscribers),
        s.compressionLabel,
        `${s.connectionsHeld}/${s.subscribers}`,
        `${s.latencyMs.p50.toFixed(2)} ms`,
        `${s.latencyMs.p99.toFixed(2)} ms`,
        String(s.messagesPerSecond),
        String(s.wireBytesPerMessage),
        s.memoryPerConnection.afterFanout.rssKiB.toFixed(1),
        `${s.server.cpuPercent} %`,
      ]),
    ),
    '',
    report.verdict.note,
  ]
  return `${lines.join('\n')}\n`
}

/** A compact table for the terminal. */
export function renderConsole(report: BrowserBenchReport): string {
  const env = report.environment
  const header = ['N', 'M', 'sockets tc/bl', 'p50 tc', 'p50 bl', 'Δp50', 'p99 tc', 'p99 bl', 'Δp99', 'CPU tc', 'CPU bl', 'CPU ×', 'join tc', 'join bl', 'restart tc', 'restart bl', 'lost']
  const rows = report.cells.map((cell) => [
    String(cell.tabs),
    String(cell.tasks),
    `${unique(cell.tabcast.connections)}/${unique(cell.baseline.connections)}`,
    cell.tabcast.latencyP50Ms.median.toFixed(1),
    cell.baseline.latencyP50Ms.median.toFixed(1),
    signed(cell.pairs.latencyP50DiffMs, '').split(' ')[0] ?? '',
    cell.tabcast.latencyP99Ms.median.toFixed(1),
    cell.baseline.latencyP99Ms.median.toFixed(1),
    signed(cell.pairs.latencyP99DiffMs, '').split(' ')[0] ?? '',
    cell.tabcast.burst.cpuMs.median.toFixed(0),
    cell.baseline.burst.cpuMs.median.toFixed(0),
    cell.pairs.cpuRatio.median.toFixed(2),
    cell.tabcast.lateJoinMs.median.toFixed(0),
    cell.baseline.lateJoinMs.median.toFixed(0),
    cell.tabcast.reconnectMs.median.toFixed(0),
    cell.baseline.reconnectMs.median.toFixed(0),
    `${cell.tabcast.lost}/${cell.baseline.lost}`,
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, column) => cell.padStart(widths[column] ?? 0)).join('  ')
  const out = [
    `${env.cpus} CPUs (${env.cpuModel}), Node ${env.node}, Chromium ${env.chromium}; medians over ${report.settings.repetitions} repetition(s); ms unless noted`,
    '',
    line(header),
    widths.map((width) => '-'.repeat(width)).join('  '),
    ...rows.map(line),
    '',
  ]
  for (const cell of report.cells) {
    const st = cell.tabcast.lateJoinStages
    out.push(
      `N=${cell.tabs} M=${cell.tasks}: send → listener / DOM write / paint p50 tc ${cell.tabcast.arrivalP50Ms.median.toFixed(1)} / ${cell.tabcast.writeP50Ms.median.toFixed(1)} / ${cell.tabcast.latencyP50Ms.median.toFixed(1)}, ` +
        `bl ${cell.baseline.arrivalP50Ms.median.toFixed(1)} / ${cell.baseline.writeP50Ms.median.toFixed(1)} / ${cell.baseline.latencyP50Ms.median.toFixed(1)}; ` +
        `join tc: load ${st.script.median.toFixed(0)}, handshake +${(st.ready.median - st.script.median).toFixed(0)}, ` +
        `state written +${(st.wrote.median - st.ready.median).toFixed(0)}, painted +${(st.painted.median - st.wrote.median).toFixed(0)}; ` +
        `a static page paints at ${cell.tabcast.lateJoinStaticMs.median.toFixed(0)}`,
    )
  }
  if (!('error' in report.sizes)) {
    out.push(
      `size (gzip): client ${report.sizes.client.gzipBytes} B (+${report.sizes.clientLazy.gzipBytes} B lazy), worker ${report.sizes.worker.gzipBytes} B, react layer + client ${report.sizes.react.gzipBytes} B`,
    )
  }
  for (const goal of report.goals) out.push(`${goal.met === null ? '?' : goal.met ? '✓' : '✗'} ${goal.name}${goal.detail ? `: ${goal.detail}` : ''}`)
  const errors = report.cells.flatMap((cell) => [...cell.tabcast.errors, ...cell.baseline.errors])
  if (errors.length > 0) out.push(`runs that broke off: ${errors.join('; ')}`)
  return out.join('\n')
}
