/** Small text helpers of the demo. */

/** `1 tab`, `3 tabs`, `0 sockets`. */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`
}

/** The inspector's headline: "3 tabs, 1 socket" (and ", 1 poller" while a task is polled). */
export function brokerHeadline(stats: { tabs: number; sockets: number; pollers: number }): string {
  const parts = [plural(stats.tabs, 'tab'), plural(stats.sockets, 'socket')]
  if (stats.pollers > 0) parts.push(plural(stats.pollers, 'poller'))
  return parts.join(', ')
}

/** Pretty JSON for display (always rendered as text). */
export function prettyJson(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? String(value)
  } catch {
    return String(value)
  }
}

/** A JSON value as a short display string: strings as-is, other values as JSON. */
export function displayValue(value: unknown): string {
  if (value === undefined || value === null) return '—'
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return prettyJson(value)
}

/** `120.5` seconds → `2:00.5`. */
export function formatDuration(seconds: unknown): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return displayValue(seconds)
  const minutes = Math.floor(seconds / 60)
  const rest = seconds - minutes * 60
  const restText = rest.toFixed(1).padStart(4, '0')
  // A no-break space keeps "(24.4 s)" on one line in narrow cards.
  return `${minutes}:${restText} (${seconds}\u00a0s)`
}

/** `0.97` → `97.0 %`. */
export function formatFraction(value: unknown): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return displayValue(value)
  return `${(value * 100).toFixed(1)} %`
}
