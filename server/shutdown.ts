/**
 * Graceful stop on SIGINT/SIGTERM for the command-line entry points (the server CLI
 * and the demo's `npm start`): close everything, then exit; a second, deliberate
 * signal exits at once.
 */

/**
 * A signal repeated within this many ms is the same one delivered twice (a
 * process-group kill plus tsx relaying it to its child), not a user insisting.
 */
const REPEAT_WINDOW_MS = 500

export interface SignalStopOptions {
  /** Prefix of every line printed, e.g. `tabcast server`. */
  label: string
  /** What stopping does, for the first line, e.g. `closing connections (going away)`. */
  action: string
  /** Closes everything; the process exits when it settles. */
  close: () => Promise<unknown>
}

export function stopOnSignals({ label, action, close }: SignalStopOptions): void {
  let stoppingSince: number | null = null
  const stop = (signal: string): void => {
    if (stoppingSince !== null) {
      if (Date.now() - stoppingSince < REPEAT_WINDOW_MS) return
      console.log(`${label}: ${signal} again, exiting now`)
      process.exit(1)
    }
    stoppingSince = Date.now()
    console.log(`${label}: ${signal}, ${action}…`)
    close().then(
      () => {
        console.log(`${label}: stopped`)
        process.exit(0)
      },
      (error: unknown) => {
        console.error(`${label}: failed to stop cleanly`, error)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}
