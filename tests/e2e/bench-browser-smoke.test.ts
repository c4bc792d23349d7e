/**
 * Keeps `npm run bench` from rotting: runs the browser benchmark's command with tiny
 * sizes (real Chromium, the reference server, both variants) and checks that the
 * reports it writes are well formed and that the server counted the sockets sharing
 * promises: one per task for tabcast, one per tab and task for the baseline. Those
 * counts are deterministic; no timing is asserted (the figures of a tiny run on a busy
 * machine mean nothing).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SIZE_BUDGETS, type BrowserBenchReport } from '../../bench/browser/report.js'
import { REPO_ROOT } from './support/demo.js'

const dir = mkdtempSync(join(tmpdir(), 'tabcast-bench-browser-'))
const TABS = [1, 3]
const TASKS = [1, 2]

afterAll(() => rmSync(dir, { recursive: true, force: true }))

function runQuick(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = ['--import', 'tsx', join(REPO_ROOT, 'bench/browser.ts'), '--quick', '--tabs', TABS.join(','), '--tasks', TASKS.join(','), '--out', dir]
  return new Promise((done) => {
    const child = execFile(process.execPath, args, { cwd: REPO_ROOT, timeout: 230_000 }, (error, stdout, stderr) =>
      done({ code: error ? (child.exitCode ?? 1) : 0, stdout, stderr }),
    )
  })
}

describe('npm run bench -- --quick', () => {
  it('runs both variants in every cell and reports M sockets for tabcast, N·M for the baseline', { timeout: 240_000 }, async () => {
    const run = await runQuick()
    expect(run.stderr, run.stderr).not.toMatch(/bench failed|Error/)
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('sockets tc/bl')

    const report = JSON.parse(readFileSync(join(dir, 'browser.json'), 'utf8')) as BrowserBenchReport
    expect(report).toMatchObject({ benchmark: 'browser', quick: true })
    const repetitions = report.settings.repetitions
    expect(report.environment.cpus).toBeGreaterThan(0)
    expect(report.environment.chromium).toMatch(/^\d+\./)
    expect(report.cells.map((cell) => [cell.tabs, cell.tasks])).toEqual(TABS.flatMap((tabs) => TASKS.map((tasks) => [tabs, tasks])))
    expect(report.units).toHaveLength(TABS.length * TASKS.length * repetitions * 2)

    for (const cell of report.cells) {
      const name = `N=${cell.tabs} M=${cell.tasks}`
      expect(cell.tabcast.errors, name).toEqual([])
      expect(cell.baseline.errors, name).toEqual([])
      expect(cell.tabcast.pageErrors, name).toEqual([])
      expect(cell.baseline.pageErrors, name).toEqual([])
      expect(cell.expectedConnections).toEqual({ tabcast: cell.tasks, baseline: cell.tabs * cell.tasks })
      expect(cell.tabcast.connections, name).toEqual(Array(repetitions).fill(cell.tasks))
      expect(cell.baseline.connections, name).toEqual(Array(repetitions).fill(cell.tabs * cell.tasks))
      // No socket came and went besides the counted ones.
      expect(cell.tabcast.upgrades, name).toEqual(Array(repetitions).fill(cell.tasks))
      expect(cell.baseline.upgrades, name).toEqual(Array(repetitions).fill(cell.tabs * cell.tasks))
      for (const variant of [cell.tabcast, cell.baseline]) {
        expect(variant.latencySamples, name).toBeGreaterThan(0)
        expect(variant.latencyP50Ms.n, name).toBe(repetitions)
        expect(variant.burst.expectedDeliveries, name).toBeGreaterThan(0)
        expect(variant.burst.terminalExpected, name).toBe(cell.tabs * cell.tasks * repetitions)
        expect(variant.lateJoinMs.n, name).toBe(repetitions)
        expect(variant.lateJoinStaticMs.n, name).toBe(repetitions)
        expect(variant.lateJoinStaticMs.median, name).toBeGreaterThan(0)
        expect(variant.reconnectMs.n, name).toBe(repetitions)
      }
      expect(cell.baseline.lateJoinLiveOnlyMs.n, name).toBe(repetitions)
      expect(cell.pairs.latencyP50DiffMs.n, name).toBe(repetitions)
    }

    expect(report.sizes).not.toHaveProperty('error')
    if (!('error' in report.sizes)) {
      expect(report.sizes.client.gzipBytes).toBeGreaterThan(0)
      expect(report.sizes.worker.gzipBytes).toBeGreaterThan(0)
      expect(report.sizes.worker.files.map((file) => file.file).join(' ')).toMatch(/broker\.worker/)
      // Sizes are deterministic for a lockfile: growth past the budget is a decision to make
      // on purpose, in the same change as the budget (see SIZE_BUDGETS).
      expect(report.sizes.client.gzipBytes).toBeLessThanOrEqual(SIZE_BUDGETS.clientGzipBytes)
      expect(report.sizes.worker.gzipBytes).toBeLessThanOrEqual(SIZE_BUDGETS.workerGzipBytes)
    }
    expect(report.goals.find((goal) => goal.name.startsWith('server sockets'))?.met).toBe(true)

    // The demo page phase: the real /test-websocket page, one socket through the
    // SharedWorker against one per tab, and every tab painted steps of the task.
    const demo = report.demoPaint
    expect(demo?.errors).toEqual([])
    expect(demo?.tabcast.connections).toEqual([1])
    expect(demo?.baseline.connections).toEqual([report.settings.demoPaint.tabs])
    expect(demo?.tabcast.samples).toBeGreaterThan(0)
    expect(demo?.baseline.samples).toBeGreaterThan(0)
    expect(demo?.paintP50DiffMs.n).toBe(1)

    const markdown = readFileSync(join(dir, 'browser.md'), 'utf8')
    expect(markdown).toContain('| tabs | tasks | sockets tabcast / baseline |')
    expect(markdown).toContain('`npm run bench -- --quick')
  })
})
