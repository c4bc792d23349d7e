import { describe, expect, it } from 'vitest'
import { reconnectDelay } from 'tabcast'

describe('reconnectDelay', () => {
  it("follows the guide's schedule: 1, 2, 4, 8, 16 s", () => {
    expect([1, 2, 3, 4, 5].map((attempt) => reconnectDelay(attempt, 1000, 30_000))).toEqual([1000, 2000, 4000, 8000, 16_000])
  })

  it('caps at the maximum delay', () => {
    expect([6, 7, 20, 100].map((attempt) => reconnectDelay(attempt, 1000, 30_000))).toEqual([30_000, 30_000, 30_000, 30_000])
    expect(reconnectDelay(3, 1000, 2500)).toBe(2500)
  })

  it('treats attempt 0 or below as the first attempt', () => {
    expect(reconnectDelay(0, 1000, 30_000)).toBe(1000)
    expect(reconnectDelay(-3, 1000, 30_000)).toBe(1000)
  })

  it('a huge attempt number stays at the cap, not Infinity or NaN', () => {
    expect(reconnectDelay(5000, 1000, 30_000)).toBe(30_000)
  })

  it('never calls random without jitter', () => {
    let calls = 0
    reconnectDelay(2, 1000, 30_000, 0, () => {
      calls++
      return 0.9
    })
    expect(calls).toBe(0)
  })

  it('spreads within ±jitter of the delay, at both ends of random', () => {
    expect(reconnectDelay(2, 1000, 30_000, 0.2, () => 0)).toBe(1600)
    expect(reconnectDelay(2, 1000, 30_000, 0.2, () => 0.5)).toBe(2000)
    const high = reconnectDelay(2, 1000, 30_000, 0.2, () => 0.999_999)
    expect(high).toBeLessThanOrEqual(2400)
    expect(high).toBeGreaterThanOrEqual(2399)
  })

  it('jitter applies to the capped delay and never goes below 0', () => {
    expect(reconnectDelay(10, 1000, 30_000, 0.5, () => 0)).toBe(15_000)
    expect(reconnectDelay(1, 1000, 30_000, 1, () => 0)).toBe(0)
  })

  it('stays inside its bounds for many random values', () => {
    for (let i = 0; i < 200; i++) {
      const r = i / 200
      const delay = reconnectDelay(3, 1000, 30_000, 0.25, () => r)
      expect(delay).toBeGreaterThanOrEqual(3000)
      expect(delay).toBeLessThanOrEqual(5000)
    }
  })
})
