/** Small statistics for the benchmark: percentiles, and "median (min–max)" over repetitions. */

/** Nearest-rank percentile of unsorted values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = Float64Array.from(values).sort()
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index] ?? Number.NaN
}

export interface Spread {
  median: number
  min: number
  max: number
  /** How many repetitions had a value. */
  n: number
}

/** Median with min and max over the finite values; NaN fields when there are none. */
export function spread(values: readonly number[]): Spread {
  const finite = values.filter((value) => Number.isFinite(value))
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 }
  const sorted = finite.slice().sort((a, b) => a - b)
  const middle = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, n: finite.length }
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

/** "1.23 (1.10–1.40)", or "1.23" when every repetition agreed or there was one; "–" for none. */
export function formatSpread(value: Spread, digits = 1, unit = ''): string {
  if (value.n === 0) return '–'
  const text = (n: number): string => n.toFixed(digits)
  const main = `${text(value.median)}${unit}`
  if (value.n === 1 || text(value.min) === text(value.max)) return main
  return `${main} (${text(value.min)}–${text(value.max)})`
}
