/**
 * When a tab hands its pending snapshots to its listeners (and so, through React,
 * to the DOM).
 *
 * - **Idle → at once.** The first snapshot after a quiet frame is flushed in the very
 *   task that received it, so it reaches the DOM in the frame in which a page with its
 *   own socket would paint the same message. Waiting for the next animation frame
 *   instead costs a frame whenever the port hop ends after that frame's animation
 *   callbacks have run.
 * - **Busy → once per frame.** A flush opens a frame window: snapshots arriving before
 *   the next frame are coalesced to the newest one and flushed in that frame, which
 *   opens the next window. A frame that finds nothing pending closes the window, so
 *   the next snapshot is flushed at once again. A burst therefore costs one render per
 *   painted frame, never one per message.
 * - **Urgent → at once, always.** A change of status to a terminal one, or of the
 *   connection state, is flushed at once even inside a window: a hidden tab gets no
 *   animation frames and its timers are throttled to once a second (once a minute
 *   after five minutes), and `onCompleted` or a title saying "done" must not wait for
 *   either. Intermediate progress in a hidden tab may wait (see `scheduleFrame`).
 */
export class FlushSchedule {
  private windowOpen = false
  private readonly flush: () => boolean
  private readonly scheduleFrame: (callback: () => void) => void

  /**
   * @param flush Hands every pending snapshot to its listeners; returns whether there was any.
   * @param scheduleFrame Runs a callback at the next animation frame (with a fallback for
   *   hidden pages, which get none).
   */
  constructor(flush: () => boolean, scheduleFrame: (callback: () => void) => void) {
    this.flush = flush
    this.scheduleFrame = scheduleFrame
  }

  /** Snapshots are pending. `urgent`: one of them must not wait for a frame. */
  pending(urgent: boolean): void {
    if (urgent || !this.windowOpen) this.flush()
    this.openWindow()
  }

  private openWindow(): void {
    if (this.windowOpen) return
    this.windowOpen = true
    this.scheduleFrame(() => {
      this.windowOpen = false
      if (this.flush()) this.openWindow()
    })
  }
}
