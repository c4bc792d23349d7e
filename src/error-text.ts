/**
 * The message of anything thrown, for error texts that cross a boundary as data
 * (a snapshot's `connectionError`, a reply to the other side of a port, a log line).
 */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Reports an error thrown by user code (a listener, a callback) like an uncaught one,
 * without stopping the caller: `reportError` where the platform has it, else a throw
 * from a fresh task.
 */
export function reportError(error: unknown): void {
  const report = (globalThis as { reportError?: (error: unknown) => void }).reportError
  if (report) report(error)
  else setTimeout(() => {
    throw error
  })
}
