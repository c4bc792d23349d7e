/**
 * `npm run bench`: what sharing saves, measured side by side in one run (issue 7).
 *
 *   npm run bench                          N = 1, 5, 10, 20 tabs × M = 1, 5 tasks, 3 repetitions, the demo page's
 *                                          paint (5 repetitions), then bench/server.ts at 1,000 subscribers
 *                                          (about sixteen minutes on two loaded CPUs)
 *   npm run bench -- --demo-repetitions 0  skip the demo page (bench/browser/demo-paint.ts)
 *   npm run bench -- --quick               tiny sizes, a minute or so (the smoke test runs this)
 *   npm run bench -- --tabs 10 --tasks 1 --repetitions 5 --server full   (full | short | quick | skip)
 *   npm run bench -- --no-frame-keeper     let headless Chromium throttle the windows behind the front one
 *
 * Real Chromium (playwright-core, one browser context per run) against the reference
 * server in this process, on loopback. Each cell of the matrix runs a tabcast run and
 * a baseline run (every tab opens its own WebSocket) per repetition; see
 * bench/browser/unit.ts for the phases. Results: a table on stdout,
 * bench-results/browser.json (everything, raw runs included) and bench-results/browser.md
 * (the tables for the README). Everything stops by itself; a watchdog ends a run that
 * hangs.
 */
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { REPO_ROOT } from '../tests/e2e/support/demo.js'
import { renderConsole, renderMarkdown } from './browser/report.js'
import { runBrowserBench } from './browser/run.js'
import { defaultSettings, type BrowserBenchSettings, type ServerBenchMode } from './browser/settings.js'

function positiveIntegers(name: string, text: string): number[] {
  const values = text.split(',').map((part) => Number(part.trim()))
  if (values.length === 0 || values.some((value) => !Number.isInteger(value) || value < 1)) {
    throw new Error(`--${name} must be a comma-separated list of positive integers, got ${JSON.stringify(text)}`)
  }
  return values
}

function readSettings(argv: string[]): BrowserBenchSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      tabs: { type: 'string' },
      tasks: { type: 'string' },
      repetitions: { type: 'string' },
      warmups: { type: 'string' },
      server: { type: 'string' },
      out: { type: 'string' },
      'no-frame-keeper': { type: 'boolean', default: false },
      'demo-repetitions': { type: 'string' },
    },
    strict: true,
  })
  const settings = defaultSettings(values.quick ?? false, resolve(values.out ?? join(REPO_ROOT, 'bench-results')))
  if (values.tabs !== undefined) settings.tabs = positiveIntegers('tabs', values.tabs)
  if (values.tasks !== undefined) settings.tasks = positiveIntegers('tasks', values.tasks)
  if (values.repetitions !== undefined) settings.repetitions = positiveIntegers('repetitions', values.repetitions)[0] ?? 1
  if (values.warmups !== undefined) {
    const warmups = Number(values.warmups)
    if (!Number.isInteger(warmups) || warmups < 0) throw new Error(`--warmups must be a whole number, got ${values.warmups}`)
    settings.warmups = warmups
  }
  if (values.server !== undefined) {
    if (!['full', 'short', 'quick', 'skip'].includes(values.server)) throw new Error(`--server must be full, short, quick or skip, got ${values.server}`)
    settings.server = values.server as ServerBenchMode
  }
  if (values['no-frame-keeper']) settings.frameKeeper = false
  if (values['demo-repetitions'] !== undefined) {
    const repetitions = Number(values['demo-repetitions'])
    if (!Number.isInteger(repetitions) || repetitions < 0) throw new Error(`--demo-repetitions must be a whole number, got ${values['demo-repetitions']}`)
    settings.demoPaint.repetitions = repetitions
  }
  return settings
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const settings = readSettings(argv)
  const command = ['npm run bench', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ')
  // The run must end by itself even if something hangs.
  const watchdog = setTimeout(
    () => {
      console.error('bench: gave up after the time limit')
      process.exit(1)
    },
    (settings.quick ? 5 : 30) * 60 * 1000,
  )
  watchdog.unref()
  const report = await runBrowserBench(settings, { command })
  const json = join(settings.outDir, 'browser.json')
  const markdown = join(settings.outDir, 'browser.md')
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`)
  writeFileSync(markdown, renderMarkdown(report))
  console.log(`\n${renderConsole(report)}\n\nwrote ${json} and ${markdown}`)
  clearTimeout(watchdog)
}

main().catch((error: unknown) => {
  console.error('bench failed:', error)
  process.exit(1)
})
