/**
 * Runs bench/server.ts (the reference backend's own benchmark) as a child process, so
 * its results land in the same report. It runs after the browser scenarios, never
 * beside them, so neither disturbs the other's timings.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { REPO_ROOT } from '../../tests/e2e/support/demo.js'
import type { ServerBenchMode } from './settings.js'

/**
 * The parts of bench/server.ts's JSON report shown here (its `BenchReport` has more).
 * Declared here rather than imported, so this file depends on the other benchmark's
 * output format only.
 */
export interface ServerBenchReport {
  quick: boolean
  scenarios: {
    subscribers: number
    compressionLabel: string
    connectionsHeld: number
    latencyMs: { p50: number; p99: number }
    messagesPerSecond: number
    wireBytesPerMessage: number
    memoryPerConnection: { afterFanout: { rssKiB: number } }
    server: { cpuPercent: number }
  }[]
  verdict: { note: string }
}

export interface ServerBenchResult {
  mode: ServerBenchMode
  /** The command, to run it alone. */
  command: string | null
  durationS: number | null
  report: ServerBenchReport | null
  error: string | null
}

const SCRIPT = join(REPO_ROOT, 'bench', 'server.ts')

export async function runServerBench(mode: ServerBenchMode, out: string, log: (line: string) => void): Promise<ServerBenchResult> {
  if (mode === 'skip') return { mode, command: null, durationS: null, report: null, error: null }
  if (!existsSync(SCRIPT)) return { mode, command: null, durationS: null, report: null, error: `${SCRIPT} does not exist` }
  // The Redis comparison bench/server.ts runs last by default has its own script (npm run bench:redis).
  const sizing = { full: [], short: ['--sizes', '1000', '--duration', '4'], quick: ['--quick'] }[mode]
  const args = [...sizing, '--skip-redis', '--out', out]
  const command = `npx tsx bench/server.ts ${[...sizing, '--skip-redis', '--out', relative(REPO_ROOT, out)].join(' ')}`
  const started = performance.now()
  log(`server benchmark: ${command}`)
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    const forward = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') log(`  [server] ${line}`)
    }
    child.stdout.on('data', forward)
    child.stderr.on('data', forward)
    child.on('error', () => resolve(null))
    child.on('exit', (exitCode) => resolve(exitCode))
  })
  const durationS = Math.round((performance.now() - started) / 100) / 10
  if (code !== 0) return { mode, command, durationS, report: null, error: `bench/server.ts exited with ${String(code)}` }
  try {
    return { mode, command, durationS, report: JSON.parse(readFileSync(out, 'utf8')) as ServerBenchReport, error: null }
  } catch (error) {
    return { mode, command, durationS, report: null, error: `could not read ${out}: ${error instanceof Error ? error.message : String(error)}` }
  }
}
