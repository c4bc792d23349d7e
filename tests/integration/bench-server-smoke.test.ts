/**
 * Keeps `npm run bench:server` from rotting: runs its quick mode (a few subscribers,
 * a second or two of fan-out) and checks the report is well formed. No timing is
 * asserted; the figures of a quick run on a busy CI machine mean nothing.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import type { BenchReport } from '../../bench/server.js'

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const dir = mkdtempSync(join(tmpdir(), 'tabcast-bench-'))

afterAll(() => rmSync(dir, { recursive: true, force: true }))

function runQuick(out: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench/server.ts'), '--quick', '--skip-redis', '--out', out],
      { cwd: ROOT, timeout: 110_000 },
      (error, stdout, stderr) => done({ code: error ? (child.exitCode ?? 1) : 0, stdout, stderr }),
    )
  })
}

describe('bench:server --quick', () => {
  it('runs every scenario to the end and writes a well-formed report', { timeout: 120_000 }, async () => {
    const out = join(dir, 'server.json')
    const run = await runQuick(out)
    expect(run.stderr).not.toMatch(/failed|Error/)
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('p99 ms')

    const report = JSON.parse(readFileSync(out, 'utf8')) as BenchReport
    expect(report).toMatchObject({ benchmark: 'server', quick: true })
    expect(report.environment.fdSoftLimit).toBeGreaterThan(0)
    expect(report.scenarios.map((scenario) => scenario.compression)).toEqual(['off', 'deflate-default', 'deflate-all'])
    for (const scenario of report.scenarios) {
      expect(scenario.connectionsHeld, scenario.name).toBe(scenario.subscribers)
      expect(scenario.connectFailed, scenario.name).toBe(0)
      expect(scenario.dropped, scenario.name).toBe(0)
      expect(scenario.published, scenario.name).toBeGreaterThan(0)
      expect(scenario.delivered, scenario.name).toBe(scenario.expectedDeliveries)
      for (const value of [scenario.latencyMs.p50, scenario.latencyMs.p99, scenario.messagesPerSecond, scenario.wireBytesPerMessage]) {
        expect(Number.isFinite(value), scenario.name).toBe(true)
      }
      expect(scenario.latencyMs.p50).toBeLessThanOrEqual(scenario.latencyMs.p99)
      expect(Number.isFinite(scenario.memoryPerConnection.afterFanout.rssKiB)).toBe(true)
      expect(scenario.compressionNegotiated).toBe(scenario.compression === 'off' ? 0 : scenario.subscribers)
    }
    expect(typeof report.verdict.note).toBe('string')
  })
})
