/**
 * The message of anything thrown, for error texts that cross a boundary as data
 * (a snapshot's `connectionError`, a reply to the other side of a port, a log line).
 */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
