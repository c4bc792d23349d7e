/**
 * Public types of once-handlers (`client.once`, `onCompletedOnce`, `onErrorOnce`): a
 * side effect of a task's completion or failure that runs in one tab of the browser.
 */
import type { TaskOptions } from './types.js'

/**
 * Once-handlers one tab may have registered at a time (a page needs a few). Past it
 * `client.once` throws a RangeError, and a host refuses the registration, so a page that
 * registers in a loop cannot fill the host's memory or time.
 */
export const MAX_ONCE_HANDLERS_PER_TAB = 1000

/** The terminal event a once-handler follows. */
export type OnceEventName = 'completed' | 'failed'

/** Where a task's once-effect ran, as every tab that registered for it learns. */
export interface OnceOutcome {
  /** The event whose handlers ran. */
  event: OnceEventName
  /** The handlers ran in this tab. */
  ranHere: boolean
  /** The tab id of the tab that ran them; null when not known (reported by a tab after its broker restarted). */
  ranIn: string | null
}

/** Options of `client.once`: the task's options plus how the once-effect is run. */
export interface OnceOptions extends TaskOptions {
  /**
   * How long (ms) the broker waits for the chosen tab to acknowledge that the handler
   * ran before it asks another tab. A tab that closes or crashes is noticed at once
   * (Web Locks); this deadline covers a tab that is frozen or not answering. The tab
   * starts the handler only within the first half of it, so a late tab does not run it
   * after another did.
   * @default 5000
   */
  ackTimeout?: number
  /**
   * Called in each tab that registered this handler once the effect is settled: it ran
   * here or in another tab (`ranIn`), or the task ended with the other event (then
   * `event` is that event and `ranIn` is null). A handler registered after that is told
   * at once. Useful to show "notified in another tab".
   * @default undefined
   */
  onSettled?(outcome: OnceOutcome): void
}
