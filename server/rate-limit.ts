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

export interface CreateRateLimitOptions {
  /**
   * Sustained task creations per minute one client address may make.
   * @default 30
   */
  perMinute?: number
  /**
   * Creations an address may make at once before the sustained rate applies.
   * @default 10
   */
  burst?: number
}

/**
 * One token bucket per client address (task creation). The table of addresses is
 * bounded: past `maxAddresses` the least recently seen one is forgotten, which at worst
 * gives that address a fresh burst; memory never grows with the number of attackers.
 */
export class AddressRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly maxAddresses = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token for `address`: 0 when allowed, otherwise the seconds until the next token. */
  take(address: string): number {
    const now = this.now()
    const bucket = this.buckets.get(address) ?? { tokens: this.burst, at: now }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 60_000) * this.perMinute)
    bucket.at = now
    // Re-inserted so that the Map's order is least recently seen first.
    this.buckets.delete(address)
    this.buckets.set(address, bucket)
    if (this.buckets.size > this.maxAddresses) {
      const oldest = this.buckets.keys().next().value
      if (oldest !== undefined) this.buckets.delete(oldest)
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil(((1 - bucket.tokens) * 60) / this.perMinute))
  }
}

/**
 * How many of something each client address holds, within a cap: the stream sockets of
 * `maxConnectionsPerAddress`, the half-open connections of `maxPendingConnectionsPerAddress`.
 */
export class AddressCounts {
  private readonly counts = new Map<string, number>()

  constructor(private readonly cap: number) {}

  /** Counts one more for `address`; false, counting nothing, when it holds `cap` already. */
  take(address: string): boolean {
    const count = this.counts.get(address) ?? 0
    if (count >= this.cap) return false
    this.counts.set(address, count + 1)
    return true
  }

  /** One fewer for `address`. */
  give(address: string): void {
    const count = this.counts.get(address) ?? 0
    if (count <= 1) this.counts.delete(address)
    else this.counts.set(address, count - 1)
  }
}
