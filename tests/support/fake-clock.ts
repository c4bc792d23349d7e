/**
 * A deterministic clock for the broker core: timers run only when the test calls
 * `advance`, in due order (ties in the order they were set), and a timer set while
 * advancing runs in the same call when it falls due within the window.
 */
import type { Clock, TimerHandle } from '../../src/core/env.js'

interface Timer {
  id: number
  due: number
  callback: () => void
}

export class FakeClock implements Clock {
  private time: number
  private nextId = 1
  private readonly timers = new Map<number, Timer>()

  constructor(start = 1_700_000_000_000) {
    this.time = start
  }

  now(): number {
    return this.time
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.nextId++
    this.timers.set(id, { id, due: this.time + Math.max(0, ms), callback })
    return id
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number)
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.time + ms
    for (;;) {
      const next = this.nextDue()
      if (!next || next.due > target) break
      this.timers.delete(next.id)
      this.time = next.due
      next.callback()
    }
    this.time = target
  }

  /** Runs timers due now (delay 0), e.g. a deferred socket failure. */
  flush(): void {
    this.advance(0)
  }

  /** Delays (from now) of the pending timers, soonest first. */
  pendingDelays(): number[] {
    return [...this.timers.values()].sort(byDue).map((timer) => timer.due - this.time)
  }

  get pendingCount(): number {
    return this.timers.size
  }

  private nextDue(): Timer | undefined {
    return [...this.timers.values()].sort(byDue)[0]
  }
}

function byDue(a: Timer, b: Timer): number {
  return a.due - b.due || a.id - b.id
}
