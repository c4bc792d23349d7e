/**
 * The whole browser benchmark: builds and serves the bench pages, starts the reference
 * backend (the e2e harness's, in this process, on 127.0.0.1 and a free port) and one
 * Chromium, measures the bundle sizes, then runs every cell of the matrix (N tabs × M
 * tasks) as pairs of a tabcast run and a baseline run, warm-ups first, the order of
 * the two alternating from one repetition to the next. The server benchmark runs last.
 */
import { mkdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { describeMachine } from '../machine.js'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { startBackend, type E2eBackend } from '../../tests/e2e/support/backend.js'
import { CHROMIUM_ARGS, findChromium } from '../../tests/e2e/support/chromium.js'
import type { Variant } from '../pages/api.js'
import { runDemoPaint, type DemoPaintRun } from './demo-paint.js'
import { buildAndServePages, measureBundleSizes, type BundleSizes, type ServedPages } from './pages.js'
import { summarizeRun, type BrowserBenchReport } from './report.js'
import { runServerBench } from './server-bench.js'
import type { BrowserBenchSettings } from './settings.js'
import { runUnit, type UnitContext, type UnitResult } from './unit.js'

export interface RunOptions {
  /** The command line, for the report. */
  command: string
  log?: (line: string) => void
}

async function launchBrowser(): Promise<{ browser: Browser; path: string }> {
  const { path, source } = findChromium()
  try {
    return { browser: await chromium.launch({ executablePath: path, args: [...CHROMIUM_ARGS] }), path }
  } catch (error) {
    throw new Error(`Chromium at ${path} (from ${source}) did not start: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
}

function describeUnit(result: UnitResult): string {
  if (result.error !== null) return `error: ${result.error}`
  const b = result.burst
  return (
    `conns ${result.connections.server}/${result.connections.expected}, ` +
    `latency p50 ${result.latency.p50.toFixed(1)} p99 ${result.latency.p99.toFixed(1)} ms (to onMessage p50 ${result.latency.arrivalP50.toFixed(1)}), ` +
    `burst CPU ${b.cpu?.totalMs ?? '–'} ms (net ${b.netCpuMs}), ${b.delivered}/${b.expectedDeliveries} delivered, ` +
    `join ${result.lateJoin.samples.join('/')} ms (a static page ${result.lateJoin.staticSamples.join('/')} ms), reconnect ${result.reconnect.liveAfterRestartMs} ms, lost ${result.reconnect.lost}`
  )
}

/** Runs the benchmark and returns its report (the caller prints and writes it). */
export async function runBrowserBench(settings: BrowserBenchSettings, options: RunOptions): Promise<BrowserBenchReport> {
  const log = options.log ?? ((line: string) => console.log(line))
  const started = performance.now()
  const loadAtStart = loadavg()
  mkdirSync(settings.outDir, { recursive: true })

  let pages: ServedPages | null = null
  let browser: Browser | null = null
  let backend: E2eBackend | null = null
  const units: UnitResult[] = []
  const warmups: UnitResult[] = []
  let demoPaint: DemoPaintRun[] = []
  let sizes: BundleSizes | { error: string }
  let chromiumVersion: string
  let chromiumPath: string
  try {
    log('building the bench pages and the size probes …')
    sizes = await measureBundleSizes().catch((error: unknown) => ({ error: error instanceof Error ? error.message : String(error) }))
    const [served, launched, started_] = await Promise.all([buildAndServePages(), launchBrowser(), startBackend({ demo: false })])
    pages = served
    browser = launched.browser
    chromiumPath = launched.path
    chromiumVersion = browser.version()
    backend = started_
    log(`Chromium ${chromiumVersion}; ${describeMachine().cpus} CPUs; pages at ${pages.origin}; backend at ${backend.backendUrl}`)

    let taskCounter = 0
    const runId = Date.now().toString(36)
    const context: UnitContext = {
      browser,
      origin: pages.origin,
      backend,
      settings,
      nextTaskId: (phase) => `bench_${runId}_${phase}_${++taskCounter}`,
    }
    const first = { tabs: settings.tabs[0] ?? 1, tasks: settings.tasks[0] ?? 1 }
    for (let i = 0; i < settings.warmups; i++) {
      for (const variant of ['tabcast', 'baseline'] as const) {
        const result = await runUnit(context, variant, first.tabs, first.tasks, i, true)
        warmups.push(result)
        log(`  warm-up ${variant} N=${first.tabs} M=${first.tasks}: ${describeUnit(result)}`)
      }
    }
    for (const tabs of settings.tabs) {
      for (const tasks of settings.tasks) {
        for (let repetition = 0; repetition < settings.repetitions; repetition++) {
          // Alternate which variant goes first, so drift over the run favours neither.
          const order: Variant[] = repetition % 2 === 0 ? ['tabcast', 'baseline'] : ['baseline', 'tabcast']
          for (const variant of order) {
            const unitStart = performance.now()
            const result = await runUnit(context, variant, tabs, tasks, repetition, false)
            units.push(result)
            log(`  N=${tabs} M=${tasks} #${repetition + 1} ${variant.padEnd(8)} ${((performance.now() - unitStart) / 1000).toFixed(1)} s: ${describeUnit(result)}`)
          }
        }
      }
    }
    if (settings.demoPaint.repetitions > 0) {
      log(`demo page: ${settings.demoPaint.tabs} tabs on /test-websocket, a step every ${settings.demoPaint.intervalMs} ms …`)
      demoPaint = await runDemoPaint(browser, backend, settings.demoPaint, () => context.nextTaskId('demo'), log)
    }
  } finally {
    await Promise.allSettled([browser?.close(), pages?.close(), backend?.close()])
  }

  const server = await runServerBench(settings.server, join(settings.outDir, 'server.json'), log)
  const loadAtEnd = loadavg()
  return summarizeRun({
    settings,
    command: options.command,
    durationS: Math.round((performance.now() - started) / 100) / 10,
    environment: {
      ...describeMachine(),
      chromium: chromiumVersion,
      chromiumPath,
      loadAverage: { start: loadAtStart.map((n) => Math.round(n * 100) / 100), end: loadAtEnd.map((n) => Math.round(n * 100) / 100) },
    },
    sizes,
    units,
    warmups,
    demoPaint,
    server,
  })
}
