/** A promise with its resolve/reject exposed, for tests that control when things answer. */
export interface Deferred<T> {
  promise: Promise<T>
  resolve(value: T): void
  reject(error: unknown): void
}

export function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => {}
  let reject: (error: unknown) => void = () => {}
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Polls `check` on each macrotask turn until it passes (or the test times out). */
export async function until(check: () => boolean, what = 'condition'): Promise<void> {
  for (let turns = 0; !check(); turns++) {
    if (turns > 10_000) throw new Error(`gave up waiting for ${what}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/**
 * Runs the work already queued (port and bus deliveries, lock grants), turn by turn, so
 * that a check for "nothing happened" means it. No time passes on a fake clock.
 */
export async function quiesce(turns = 50): Promise<void> {
  for (let turn = 0; turn < turns; turn++) await new Promise((resolve) => setImmediate(resolve))
}
