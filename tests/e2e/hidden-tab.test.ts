/**
 * Issue 15, "Hidden tabs without timers": a tab in the background gets no animation
 * frames, and Chrome runs its timers once a second (once a minute after five
 * minutes). The completion of a task, and the snapshot that carries it, must reach a
 * hidden tab's listeners (and so its ProgressBar and `onCompleted`) without waiting
 * for either.
 *
 * Headless Chromium keeps every page visible (no CDP command hides one: window
 * minimising, background targets and focus emulation all leave `visibilityState`
 * "visible"), so the page emulates being hidden from an init script, in the harshest
 * form a real browser may reach: `visibilityState` "hidden", a `visibilitychange`
 * event, no animation frames, and no timer callbacks at all until it is shown again.
 * Port and WebSocket events run as in a real hidden tab. If the client needed a frame
 * or a timer to show the completion, the page would never show it while hidden.
 */
import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { expectEveryTab, openTabs, readBar, readResult, testPageUrl, uniqueTaskId } from './support/tabs.js'

const env = setUpE2eEnvironment()

interface HiddenControl {
  hide(): void
  show(): void
  state(): { hidden: boolean; heldFrames: number; heldTimers: number }
}

declare global {
  interface Window {
    hiddenControl?: HiddenControl
  }
}

/** Runs in the page before any of its scripts: holds frames and timers while "hidden". */
function emulateHiding(): void {
  let hidden = false
  const frames: FrameRequestCallback[] = []
  const timers = new Map<number, () => void>()
  let nextTimer = -1
  const nativeFrame = window.requestAnimationFrame.bind(window)
  const nativeSetTimeout = window.setTimeout.bind(window)
  const nativeSetInterval = window.setInterval.bind(window)
  const nativeClearTimeout = window.clearTimeout.bind(window)
  const nativeClearInterval = window.clearInterval.bind(window)
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') })
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden })
  const hold = (callback: () => void): number => {
    const id = nextTimer--
    timers.set(id, callback)
    return id
  }
  // A callback queued while the page was visible that comes due while it is hidden is
  // held too: nothing of the page's own frames or timers runs while it is hidden.
  const guard =
    (callback: () => void): (() => void) =>
    () => {
      if (hidden) hold(callback)
      else callback()
    }
  window.requestAnimationFrame = (callback) => {
    if (hidden) {
      frames.push(callback)
      return 0
    }
    return nativeFrame((time) => {
      if (hidden) frames.push(callback)
      else callback(time)
    })
  }
  window.setTimeout = ((handler: TimerHandler, ms?: number, ...args: unknown[]) => {
    if (typeof handler !== 'function') throw new Error('string timers are not emulated')
    const run = (): void => (handler as (...a: unknown[]) => void)(...args)
    return hidden ? hold(run) : nativeSetTimeout(guard(run), ms)
  }) as typeof window.setTimeout
  window.setInterval = ((handler: TimerHandler, ms?: number, ...args: unknown[]) => {
    if (typeof handler !== 'function') throw new Error('string timers are not emulated')
    const run = (): void => (handler as (...a: unknown[]) => void)(...args)
    // Hidden: the interval is held as one pending run; shown again, it starts afresh.
    if (!hidden) return nativeSetInterval(() => (hidden ? undefined : run()), ms)
    const id = nextTimer--
    timers.set(id, () => {
      timers.delete(id)
      nativeSetInterval(run, ms)
    })
    return id
  }) as typeof window.setInterval
  const clear =
    (native: (id?: number) => void) =>
    (id?: number): void => {
      if (typeof id === 'number' && id < 0) timers.delete(id)
      else native(id)
    }
  window.clearTimeout = clear(nativeClearTimeout) as typeof window.clearTimeout
  window.clearInterval = clear(nativeClearInterval) as typeof window.clearInterval
  window.hiddenControl = {
    hide() {
      hidden = true
      document.dispatchEvent(new Event('visibilitychange'))
    },
    show() {
      hidden = false
      document.dispatchEvent(new Event('visibilitychange'))
      for (const callback of frames.splice(0)) nativeFrame(callback)
      for (const [id, callback] of [...timers]) {
        timers.delete(id)
        nativeSetTimeout(callback, 0)
      }
    },
    state: () => ({ hidden, heldFrames: frames.length, heldTimers: timers.size }),
  }
}

const control = (page: Page): Promise<ReturnType<HiddenControl['state']>> =>
  page.evaluate(() => {
    if (!window.hiddenControl) throw new Error('the hiding emulation is not installed')
    return window.hiddenControl.state()
  })

describe('a hidden tab', () => {
  it('shows the completion and calls onCompleted while hidden, with no frame and no timer', async () => {
    const taskId = uniqueTaskId('hidden')
    const { server } = env.backend
    await server.createTask({ taskId, taskName: 'hidden tab' })
    await env.context.addInitScript(emulateHiding)
    const [visible, background] = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, env.backend.backendUrl), 2)
    if (!visible || !background) throw new Error('two tabs were not opened')
    await expectEveryTab([visible, background], { connection: 'live' })
    await server.progress(taskId, 0.3, 'step 1')
    await expectEveryTab([visible, background], { status: 'running', percent: 30 })

    await background.evaluate(() => window.hiddenControl?.hide())
    await server.progress(taskId, 0.6, 'step 2')
    const result = { audio_id: 'audio_hidden', duration: 1.5 }
    await server.complete(taskId, result)

    await expectEveryTab([visible], { status: 'completed', percent: 100 })
    // The hidden tab gets there too, and its onCompleted ran (the page shows the result
    // from it), while frames and timers stay held.
    await expect.poll(() => readBar(background), { timeout: 15_000, interval: 50 }).toEqual(expect.objectContaining({ status: 'completed', percent: 100 }))
    await expect.poll(() => readResult(background), { timeout: 15_000, interval: 50 }).toEqual(result)
    const state = await control(background)
    expect(state.hidden).toBe(true)
    // The emulation really held something: the client asked for a frame or a timer it never got.
    expect(state.heldFrames + state.heldTimers).toBeGreaterThan(0)
    expect(env.backend.upgrades(taskId)).toBe(1)

    // Shown again, it runs what it held and stays consistent.
    await background.evaluate(() => window.hiddenControl?.show())
    await expectEveryTab([background], { status: 'completed', percent: 100 })
  })
})
