/**
 * Per-connection limit on client messages: a token bucket, plus a count of messages
 * rejected in a row that decides when a client is flooding rather than bursting.
 */

export interface RateLimitOptions {
  /**
   * Sustained client messages per second a connection may send.
   * @default 10
   */
  perSecond?: number
  /**
   * Messages a connection may send at once before the sustained rate applies.
   * @default 20
   */
  burst?: number
  /**
   * After this many messages rejected in a row, the socket is closed with
   * `CloseCode.RateLimited` (4008). The first rejected message of a run is answered
   * with a connection-scoped `rate_limited` error; the rest are dropped silently, so a
   * flood never doubles into a flood of replies.
   * @default 20
   */
  closeAfter?: number
}

export type RateDecision = 'accept' | 'reject-first' | 'reject' | 'close'

export class RateLimiter {
  private tokens: number
  private lastRefill: number
  private rejectedInARow = 0

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly closeAfter: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst
    this.lastRefill = now()
  }

  /** Called once per received client message. */
  take(): RateDecision {
    const now = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.perSecond)
    this.lastRefill = now
    if (this.tokens >= 1) {
      this.tokens -= 1
      this.rejectedInARow = 0
      return 'accept'
    }
    this.rejectedInARow += 1
    if (this.rejectedInARow >= this.closeAfter) return 'close'
    return this.rejectedInARow === 1 ? 'reject-first' : 'reject'
  }
}
