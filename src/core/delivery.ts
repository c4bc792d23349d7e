/**
 * Delivery modes: what a host sends a tab for each of its subscriptions.
 *
 * - `messages`: every server message (for `onMessage`/`onProgress`), plus snapshots;
 * - `snapshots`: snapshots only, at most one per frame (`FRAME_MS`), except that a
 *   change no tab may wait for (`isUrgentChange`) leaves at once.
 *
 * A `<ProgressBar>` draws at most one state per frame, so a tab whose subscriptions
 * only draw need not deserialise and dispatch every message of a 1,000 messages per
 * second task: that work was most of the browser's CPU under a burst.
 */
import type { TaskSnapshot } from '../types.js'

export type Delivery = 'messages' | 'snapshots'

/** Snapshot-only subscriptions get at most one snapshot per this many ms (a 60 Hz frame). */
export const FRAME_MS = 16

/**
 * A change that reaches the tab at once, whatever its delivery mode and however busy
 * the frame: the task finished (`completed`/`failed`), or the connection changed
 * (connected, lost, an error). A hidden tab gets no animation frames and its timers
 * are throttled, and `onCompleted` must wait for neither.
 */
export function isUrgentChange(before: TaskSnapshot, after: TaskSnapshot): boolean {
  const finished = after.status === 'completed' || after.status === 'failed'
  return (finished && after.status !== before.status) || after.connection !== before.connection || after.connectionError !== before.connectionError
}
