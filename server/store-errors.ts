/**
 * Errors any `TaskStore` may reject with, kept apart from the stores themselves so that
 * code handling them (the HTTP routes, the job API's retries) does not import a
 * particular store's module.
 */

/**
 * Thrown (as a rejected promise) when a store cannot reach its backing service (Redis
 * away, say). Nothing was written unless `maybeApplied` is true: then the connection
 * was lost after the command was sent and before the answer came, so it may or may not
 * have been applied. Retrying a publish is safe either way: publishes carry a publish
 * id, and a store applies each id once.
 */
export class TaskStoreUnavailableError extends Error {
  override readonly name = 'TaskStoreUnavailableError'
  readonly code = 'store_unavailable'
  constructor(
    message: string,
    readonly maybeApplied: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
