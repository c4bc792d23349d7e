/**
 * What a bench page exposes on `window.tabcastBench`, shared by the pages (which
 * implement it) and the driver in Node (which reads it through `page.evaluate`).
 * Types only: nothing here runs.
 */

export type Variant = 'tabcast' | 'baseline'

/**
 * What a tabcast tab asks of the broker: every message (a page with an `onMessage`
 * consumer), or snapshots only (a page that only draws, like a `<ProgressBar>`). The
 * baseline always handles every message.
 */
export type Delivery = 'messages' | 'snapshots'

/** What one tab knows about one task it follows. */
export interface TaskProbeReport {
  taskId: string
  /** Connection state last painted: connecting | live | reconnecting | polling | closed. */
  connection: string
  status: string
  /** Newest task `seq` painted (0 before any). */
  paintedSeq: number
  /** Messages handed to the page's message listener, by `type`. */
  messages: Record<string, number>
  /** `completed`/`error` messages received. */
  terminal: number
  /** DOM writes for this task (snapshot-listener calls, or one per message in the baseline). */
  renders: number
  /** Paint times (epoch ms) at which the connection state was painted, in order. */
  connectionLog: { state: string; at: number }[]
  /** `seq` of the newest painted state and when it was painted (epoch ms), one entry per frame. */
  paints: { seq: number; at: number }[]
  /** `seq` of each newer state written to the DOM and when (epoch ms), one entry per write that moved it. */
  writes: { seq: number; at: number }[]
}

/**
 * Moments of a page's start, ms since its navigation started (the first time each
 * happened): `script` the bench page's code began to run; `follow` it asked to follow
 * its tasks; `ready` the transport was up (tabcast: the client's handshake with its
 * broker is done; baseline: every task's socket is open).
 */
export type PageMarks = Partial<Record<'script' | 'follow' | 'ready', number>>

export interface PageReport {
  variant: Variant
  /** `performance.timeOrigin`: when the tab's navigation started (epoch ms). */
  timeOrigin: number
  visibility: DocumentVisibilityState
  tasks: TaskProbeReport[]
  /** What this tab asked for (the last `follow`). */
  delivery: Delivery
  /** Arrival latencies (message listener call − server `sentAt`, ms), one per progress message received. */
  arrivals: number[]
  marks: PageMarks
  /** Frames that painted at least one change. */
  paintedFrames: number
  /** Uncaught errors and rejections seen by the page. */
  errors: string[]
}

export interface BenchPageApi {
  readonly variant: Variant
  /**
   * Starts following the tasks on the backend (`host:port`). Follows nothing else
   * afterwards. `delivery` (tabcast) defaults to the address's `delivery`, else `messages`.
   */
  follow(taskIds: readonly string[], backendUrl: string, delivery?: Delivery): void
  /** Stops following everything. */
  unfollow(): void
  /** Clears counters, latencies and logs (not the connection state, nor the errors). */
  reset(): void
  /** Everything measured since the last `reset()`. */
  report(options?: { latencies?: boolean; paints?: boolean }): PageReport
  /** `seq`s in `from..to` (inclusive) that never reached the message listener for this task. */
  missing(taskId: string, from: number, to: number): number
  /** The page's clock, for calibration: `performance.timeOrigin + performance.now()`. */
  now(): number
}

declare global {
  interface Window {
    tabcastBench?: BenchPageApi
    /** bench/pages/static.html: its first paint, ms since its navigation started. */
    staticPaintedAt?: number
  }
}
