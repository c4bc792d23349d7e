/**
 * What `check-backend` found: one row per feature, and the two ways to print it (a
 * table for people, JSON for scripts).
 */

/**
 * - `PASS`: works as PROTOCOL.md describes;
 * - `WARN`: an optional part is missing or weak; tabcast still works, with the
 *   limitation the row names;
 * - `FAIL`: the guide's protocol or an extension the backend announces is broken;
 * - `SKIP`: not checked, and the row says why (no task, no restart command, …).
 */
export type Verdict = 'PASS' | 'WARN' | 'FAIL' | 'SKIP'

export interface CheckResult {
  feature: string
  verdict: Verdict
  /** In plain words: what was seen and what tabcast will do with this backend. */
  words: string
}

export interface CheckReport {
  /** The backend URL as given. */
  url: string
  taskId: string | null
  results: CheckResult[]
  counts: Record<Verdict, number>
  /** No FAIL. */
  ok: boolean
}

export function buildReport(url: string, taskId: string | null, results: CheckResult[]): CheckReport {
  const counts: Record<Verdict, number> = { PASS: 0, WARN: 0, FAIL: 0, SKIP: 0 }
  for (const result of results) counts[result.verdict]++
  return { url, taskId, results, counts, ok: counts.FAIL === 0 }
}

/** The table: feature, verdict, and the words wrapped to `width` columns. */
export function formatTable(report: CheckReport, width = 100): string {
  const featureWidth = Math.max('feature'.length, ...report.results.map((result) => result.feature.length))
  const indent = featureWidth + 2 + 4 + 2
  const wordsWidth = Math.max(30, width - indent)
  const lines = [
    `tabcast check-backend ${report.url}${report.taskId === null ? '' : ` (task ${report.taskId})`}`,
    '',
    `${'feature'.padEnd(featureWidth)}  ${'    '}  what tabcast will do`,
  ]
  for (const result of report.results) {
    const wrapped = wrap(result.words, wordsWidth)
    lines.push(`${result.feature.padEnd(featureWidth)}  ${result.verdict}  ${wrapped[0] ?? ''}`)
    for (const more of wrapped.slice(1)) lines.push(`${' '.repeat(indent)}${more}`)
  }
  const { PASS, WARN, FAIL, SKIP } = report.counts
  lines.push('', `${PASS} PASS, ${WARN} WARN, ${FAIL} FAIL, ${SKIP} SKIP`)
  return `${lines.join('\n')}\n`
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  if (line !== '') lines.push(line)
  return lines
}
