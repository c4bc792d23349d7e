/**
 * Paint latency on the demo's own `/test-websocket` page (issue 15): the same React app
 * and `<ProgressBar>` in both variants, N tabs in one browser context, one task sending
 * a progress step every `intervalMs`. tabcast runs with `?mode=shared-worker` (one
 * socket for every tab, through the SharedWorker); the baseline is the same page with
 * `?mode=per-tab`, where every tab opens its own WebSocket in the page.
 *
 * Each step moves the bar by one whole percent, so the percent the page shows names the
 * step, and so its server send time. An init script (installed before any page code)
 * stamps every change of `.tabcast-progress__percent`:
 *
 * - DOM change: when the change is made (a MutationObserver; for changes made inside an
 *   animation-frame callback, the records are taken in a microtask queued after the
 *   callback, after React's own commit microtask);
 * - paint: the first rendering update after the change, found with a
 *   `requestAnimationFrame` loop that posts itself a message from every frame. A change
 *   made inside a frame's callbacks is painted by that frame (the frame's timestamp
 *   matches); any other change by the first frame whose callbacks run after it. The
 *   posted message arrives right after that frame's rendering work, and that arrival
 *   is the paint stamp — the same method as the bench pages' probe.
 */
import type { Browser, Page } from 'playwright-core'
import { buildDemo, serveDemo } from '../../tests/e2e/support/demo.js'
import type { E2eBackend } from '../../tests/e2e/support/backend.js'
import { clock, sleep } from './feed.js'
import type { BrowserBenchSettings } from './settings.js'
import { percentile, round } from './stats.js'

export type DemoVariant = 'tabcast' | 'baseline'

const MODE: Record<DemoVariant, string> = { tabcast: 'shared-worker', baseline: 'per-tab' }

export interface DemoPaintRun {
  variant: DemoVariant
  repetition: number
  /** Steps whose percent some tab showed, over all tabs (a coalesced step is no sample). */
  samples: number
  expectedSamples: number
  /** Server send → the DOM change that shows the step, ms. */
  writeP50: number
  writeP99: number
  /** Server send → the paint of that change, ms. */
  paintP50: number
  paintP99: number
  /** Server sockets of the task once every tab was live. */
  connections: number
  error: string | null
}

/** What the init script collects in a page. */
interface PageStamps {
  changes: { percent: number; at: number; paintedAt: number | null }[]
}

/** Runs in the page before its own scripts (see the module comment). */
function installStamps(): void {
  const now = (): number => performance.timeOrigin + performance.now()
  type Change = { percent: number; at: number; frame: number | null; paintedAt: number | null }
  const changes: Change[] = []
  const waiting: Change[] = []
  let lastShown: number | null = null
  let currentFrame: number | null = null
  const record = (records: MutationRecord[], frame: number | null): void => {
    if (records.length === 0) return
    const element = document.querySelector('.tabcast-progress__percent')
    const percent = element ? Number.parseInt(element.textContent ?? '', 10) : Number.NaN
    if (!Number.isFinite(percent) || percent === lastShown) return
    lastShown = percent
    const change: Change = { percent, at: now(), frame, paintedAt: null }
    changes.push(change)
    waiting.push(change)
  }
  const observer = new MutationObserver((records) => record(records, currentFrame))
  const observe = (): void => observer.observe(document.documentElement, { subtree: true, childList: true, characterData: true })
  if (document.documentElement) observe()
  else document.addEventListener('readystatechange', observe, { once: true })
  const nativeFrame = window.requestAnimationFrame.bind(window)
  // Callbacks of the page (tabcast's frame flush among them) run with the frame known,
  // and their changes (React commits in a microtask) are taken right after them.
  window.requestAnimationFrame = (callback: FrameRequestCallback): number =>
    nativeFrame((time) => {
      currentFrame = time
      try {
        callback(time)
      } finally {
        queueMicrotask(() => {
          record(observer.takeRecords(), time)
          currentFrame = null
        })
      }
    })
  const channel = new MessageChannel()
  channel.port1.onmessage = (event: MessageEvent<{ frame: number; startedAt: number }>) => {
    const paintedAt = now()
    const { frame, startedAt } = event.data
    for (let i = waiting.length - 1; i >= 0; i--) {
      const change = waiting[i] as Change
      const inThisFrame = change.frame === frame
      const beforeThisFrame = change.frame === null && change.at <= startedAt
      if (inThisFrame || beforeThisFrame) {
        change.paintedAt = paintedAt
        waiting.splice(i, 1)
      }
    }
  }
  const loop = (time: number): void => {
    channel.port2.postMessage({ frame: time, startedAt: now() })
    nativeFrame(loop)
  }
  nativeFrame(loop)
  // Headless Chromium paints windows behind the front one about once a second; an
  // endless animation keeps every tab rendering like a visible window (as the bench
  // pages' frame keeper does).
  const keep = (): void => {
    const style = document.createElement('style')
    style.textContent =
      '.bench-frame-keeper{position:fixed;right:0;bottom:0;width:2px;height:2px;animation:bench-keeper 1s linear infinite alternate}' +
      '@keyframes bench-keeper{from{transform:translateX(0)}to{transform:translateX(-1px)}}'
    const keeper = document.createElement('div')
    keeper.className = 'bench-frame-keeper'
    document.head.append(style)
    document.body.append(keeper)
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', keep, { once: true })
  else keep()
  Object.assign(window, { demoPaintStamps: (): PageStamps => ({ changes: changes.map(({ percent, at, paintedAt }) => ({ percent, at, paintedAt })) }) })
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

const showsLive = (page: Page): Promise<boolean> =>
  page.evaluate(() => document.querySelector('.tabcast-progress')?.getAttribute('data-connection') === 'live')

const shownPercent = (page: Page): Promise<number> =>
  page.evaluate(() => Number.parseInt(document.querySelector('.tabcast-progress__percent')?.textContent ?? '', 10))

async function runOnce(
  browser: Browser,
  origin: string,
  backend: E2eBackend,
  settings: BrowserBenchSettings['demoPaint'],
  variant: DemoVariant,
  repetition: number,
  taskId: string,
): Promise<DemoPaintRun> {
  const result: DemoPaintRun = {
    variant,
    repetition,
    samples: 0,
    expectedSamples: settings.steps * settings.tabs,
    writeP50: Number.NaN,
    writeP99: Number.NaN,
    paintP50: Number.NaN,
    paintP99: Number.NaN,
    connections: 0,
    error: null,
  }
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } })
  try {
    // As text, with a no-op `__name`: tsx (esbuild's keepNames) wraps named functions in
    // calls to a helper that exists only in this process, not in the page.
    await context.addInitScript({ content: `var __name = (fn) => fn;\n(${installStamps.toString()})()` })
    await backend.jobs.createTask({ taskId, taskName: 'demo paint' })
    await backend.jobs.progress(taskId, 0, 'step 0')
    const query = new URLSearchParams({ taskId, backendUrl: backend.backendUrl, mode: MODE[variant] })
    const pages: Page[] = []
    for (let i = 0; i < settings.tabs; i++) {
      const page = await context.newPage()
      await page.goto(`${origin}/test-websocket?${query.toString()}`, { waitUntil: 'load' })
      pages.push(page)
    }
    await waitFor('every demo tab to show the task live', 15_000, async () => (await Promise.all(pages.map(showsLive))).every(Boolean))
    result.connections = backend.connections(taskId)
    await sleep(300)
    // One step per interval on a fixed schedule, each stamped as it is sent.
    const sentAt = new Map<number, number>()
    const start = clock()
    for (let step = 1; step <= settings.steps; step++) {
      const due = start + step * settings.intervalMs
      const wait = due - clock()
      if (wait > 0) await sleep(wait)
      sentAt.set(step, clock())
      await backend.jobs.progress(taskId, step / 100, `step ${step}`)
    }
    await waitFor('every demo tab to show the last step', 10_000, async () =>
      (await Promise.all(pages.map(shownPercent))).every((percent) => percent >= settings.steps),
    )
    await sleep(100)
    const writes: number[] = []
    const paints: number[] = []
    for (const page of pages) {
      const stamps = await page.evaluate(() => (window as unknown as { demoPaintStamps: () => PageStamps }).demoPaintStamps())
      for (const change of stamps.changes) {
        const sent = sentAt.get(change.percent)
        if (sent === undefined || change.paintedAt === null) continue
        writes.push(change.at - sent)
        paints.push(change.paintedAt - sent)
      }
    }
    result.samples = paints.length
    result.writeP50 = round(percentile(writes, 50), 2)
    result.writeP99 = round(percentile(writes, 99), 2)
    result.paintP50 = round(percentile(paints, 50), 2)
    result.paintP99 = round(percentile(paints, 99), 2)
    await backend.jobs.complete(taskId, { steps: settings.steps })
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error)
  } finally {
    await context.close()
  }
  return result
}

/** Builds the demo (cached by its sources), serves it, and runs both variants, alternating. */
export async function runDemoPaint(
  browser: Browser,
  backend: E2eBackend,
  settings: BrowserBenchSettings['demoPaint'],
  nextTaskId: () => string,
  log: (line: string) => void,
): Promise<DemoPaintRun[]> {
  const served = await serveDemo(await buildDemo())
  const runs: DemoPaintRun[] = []
  try {
    for (let repetition = 0; repetition < settings.repetitions; repetition++) {
      const order: DemoVariant[] = repetition % 2 === 0 ? ['tabcast', 'baseline'] : ['baseline', 'tabcast']
      for (const variant of order) {
        const run = await runOnce(browser, served.origin, backend, settings, variant, repetition, nextTaskId())
        runs.push(run)
        log(
          `  demo page ${variant.padEnd(8)} #${repetition + 1}: ` +
            (run.error ?? `${run.samples}/${run.expectedSamples} steps, write p50 ${run.writeP50} p99 ${run.writeP99} ms, paint p50 ${run.paintP50} p99 ${run.paintP99} ms, ${run.connections} socket(s)`),
        )
      }
    }
  } finally {
    await served.close()
  }
  return runs
}
