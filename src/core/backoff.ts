/**
 * The guide's reconnect schedule: attempt n (1-based) waits
 * `min(base · 2^(n-1), cap)`: 1, 2, 4, 8, 16 s with the defaults.
 */
export function reconnectDelay(attempt: number, base: number, cap: number, jitter = 0, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1)
  const delay = Math.min(base * 2 ** exponent, cap)
  if (jitter <= 0) return delay
  // Spread reconnects of many clients after a server restart, within ±jitter of the delay.
  const spread = delay * jitter * (random() * 2 - 1)
  return Math.max(0, Math.round(delay + spread))
}
