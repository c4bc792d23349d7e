/** What a benchmark run measures and for how long. */

/**
 * How bench/server.ts runs: `full` is its own default (1,000 and 10,000 subscribers,
 * about three minutes on a small machine), `short` only 1,000 subscribers with 4 s of
 * fan-out (under a minute), `quick` its smoke-test sizes, `skip` not at all.
 */
export type ServerBenchMode = 'full' | 'short' | 'quick' | 'skip'

export interface BrowserBenchSettings {
  quick: boolean
  /** Tabs per scenario (N). */
  tabs: number[]
  /** Tasks every tab follows (M). */
  tasks: number[]
  /** Measured repetitions of every (N, M, variant); each pairs a tabcast run with a baseline run. */
  repetitions: number
  /** Unmeasured runs of both variants before the first measured one. */
  warmups: number
  latency: {
    /** One progress message per task every this many ms. */
    intervalMs: number
    durationMs: number
  }
  burst: {
    ratePerTask: number
    /** The longest burst; larger cells get shorter ones (see `burstDurationMs`). */
    durationMs: number
    /** The shortest burst. */
    minDurationMs: number
    /**
     * Deliveries (messages × tabs × tasks) a burst is sized to at most, so that the
     * baseline's N·M sockets at 1,000 messages per second each stay within what a small
     * machine can take in a few seconds. Both variants of a cell get the same burst.
     */
    deliveryBudget: number
    /** How long to wait for every tab to show the end of the task. */
    drainTimeoutMs: number
    /** How long the tabs' idle CPU is sampled before the burst, to be subtracted from it. */
    idleSampleMs: number
  }
  lateJoin: {
    /** Tabs opened, one after another, on the running tasks. */
    joins: number
    /** The running tasks send progress this often (ms); a tab without catch-up waits for the next one. */
    intervalMs: number
  }
  reconnect: {
    /** Progress interval (ms) while the server restarts; messages keep coming while it is down. */
    intervalMs: number
    /** How long the server stays down. */
    downtimeMs: number
    /** How long to wait for every tab to be live again. */
    timeoutMs: number
  }
  /** Paint latency on the demo's /test-websocket page (bench/browser/demo-paint.ts). */
  demoPaint: {
    tabs: number
    /** One progress step (one whole percent) this often, ms. */
    intervalMs: number
    /** Steps per run (at most 99: each is one percent). */
    steps: number
    /** Runs of each variant, alternating which goes first; 0 skips the phase. */
    repetitions: number
  }
  /**
   * Give every tab the frame keeper (bench/pages/style.css), so each renders like a
   * visible window: headless Chromium otherwise paints all but the front window at
   * about one frame per second.
   */
  frameKeeper: boolean
  /** How to run bench/server.ts for the same report. */
  server: ServerBenchMode
  /** Where browser.json, browser.md (and server.json) go. */
  outDir: string
}

export function defaultSettings(quick: boolean, outDir: string): BrowserBenchSettings {
  if (quick) {
    return {
      quick,
      tabs: [1, 2],
      tasks: [1, 2],
      repetitions: 1,
      warmups: 0,
      latency: { intervalMs: 40, durationMs: 400 },
      burst: { ratePerTask: 200, durationMs: 300, minDurationMs: 100, deliveryBudget: 1000, drainTimeoutMs: 20_000, idleSampleMs: 300 },
      lateJoin: { joins: 1, intervalMs: 300 },
      reconnect: { intervalMs: 50, downtimeMs: 200, timeoutMs: 15_000 },
      demoPaint: { tabs: 2, intervalMs: 20, steps: 30, repetitions: 1 },
      frameKeeper: true,
      server: 'skip',
      outDir,
    }
  }
  return {
    quick,
    tabs: [1, 5, 10, 20],
    tasks: [1, 5],
    repetitions: 3,
    warmups: 1,
    latency: { intervalMs: 40, durationMs: 1500 },
    burst: { ratePerTask: 1000, durationMs: 2000, minDurationMs: 250, deliveryBudget: 12_000, drainTimeoutMs: 60_000, idleSampleMs: 500 },
    lateJoin: { joins: 2, intervalMs: 500 },
    reconnect: { intervalMs: 50, downtimeMs: 300, timeoutMs: 20_000 },
    // As issue 15 measured it: 2 tabs, a step every 20 ms.
    demoPaint: { tabs: 2, intervalMs: 20, steps: 99, repetitions: 5 },
    frameKeeper: true,
    server: 'short',
    outDir,
  }
}

/** How long a cell's burst lasts: `deliveryBudget` spread over its tabs and tasks, within the bounds. */
export function burstDurationMs(settings: BrowserBenchSettings, tabs: number, tasks: number): number {
  const { ratePerTask, durationMs, minDurationMs, deliveryBudget } = settings.burst
  const fit = (deliveryBudget / (tabs * tasks * ratePerTask)) * 1000
  return Math.round(Math.min(durationMs, Math.max(minDurationMs, fit)))
}
