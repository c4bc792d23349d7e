/**
 * Issue 16: a once-handler runs in exactly one tab of the browser. The test page's
 * inspector registers one (`client.once`) and shows, per tab, how often it ran there
 * and in which tab it ran; calls are counted across pages from the DOM.
 *
 * Visibility and focus are emulated by an init script: headless Chromium reports every
 * page visible and focused, and CDP's focus emulation can only add focus, not take it
 * away. The script overrides `document.visibilityState` / `hidden` / `hasFocus()`
 * before the page's scripts run, from the address (`testPresence=hidden|visible`), so
 * the tab's first registration already carries it.
 */
import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { expectEveryTab, expectInspector, openTab, testPageUrl, uniqueTaskId, type PageOptions } from './support/tabs.js'

const env = setUpE2eEnvironment()
const WAIT = { timeout: 15_000, interval: 50 }

function emulatePresence(): void {
  // Runs in the page before its scripts.
  const presence = new URLSearchParams(location.search).get('testPresence')
  if (presence !== 'hidden' && presence !== 'visible') return
  const hidden = presence === 'hidden'
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') })
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden })
  Document.prototype.hasFocus = () => !hidden
}

function skewClock(): void {
  // Runs in the page before its scripts: lets the test move this page's clock.
  const realNow = Date.now.bind(Date)
  let skew = 0
  Date.now = () => realNow() + skew
  ;(window as unknown as { __skewClock: (ms: number) => void }).__skewClock = (ms) => {
    skew = ms
  }
}

function removeSharedWorker(): void {
  delete (window as { SharedWorker?: unknown }).SharedWorker
}

interface OnceState {
  tabId: string
  calls: number
  ranIn: string
}

function readOnce(page: Page): Promise<OnceState> {
  return page.evaluate(() => {
    const panel = document.querySelector('[data-testid=once-panel]')
    return {
      tabId: panel?.getAttribute('data-tab-id') ?? '',
      calls: Number(panel?.getAttribute('data-once-calls') ?? NaN),
      ranIn: panel?.getAttribute('data-once-ran-in') ?? '',
    }
  })
}

async function readAll(pages: readonly Page[]): Promise<OnceState[]> {
  return Promise.all(pages.map((page) => readOnce(page)))
}

function total(states: readonly OnceState[]): number {
  return states.reduce((sum, state) => sum + state.calls, 0)
}

async function openTabs(taskId: string, presences: readonly ('hidden' | 'visible')[], options: PageOptions = {}): Promise<Page[]> {
  const pages: Page[] = []
  for (const presence of presences) {
    const url = testPageUrl(env.demo.origin, taskId, env.backend.backendUrl, { ...options, testPresence: presence })
    const page = await openTab(env.context, url)
    await page.waitForSelector('[data-testid=once-panel]')
    pages.push(page)
  }
  await expectEveryTab(pages, { connection: 'live' })
  await expectInspector(pages.at(-1)!, { tabs: pages.length, sockets: 1 })
  return pages
}

/** Waits until every tab learned where the handler ran, and returns what they show. */
async function settledEverywhere(pages: readonly Page[]): Promise<OnceState[]> {
  await expect.poll(async () => (await readAll(pages)).every((state) => state.ranIn !== ''), WAIT).toBe(true)
  return readAll(pages)
}

describe('once-handlers in a real browser', () => {
  it('3 tabs with a once-handler: exactly one call in the browser, in the visible tab', async () => {
    const taskId = uniqueTaskId('once_three')
    await env.context.addInitScript(emulatePresence)
    const tabs = await openTabs(taskId, ['hidden', 'visible', 'hidden'])
    await env.backend.server.progress(taskId, 0.5, 'half')
    await env.backend.server.complete(taskId, { url: '/audio.mp3' })
    const states = await settledEverywhere(tabs)
    expect(states.map((state) => state.calls)).toEqual([0, 1, 0])
    // Every tab names the same tab: the visible one, which registered second.
    expect(new Set(states.map((state) => state.ranIn))).toEqual(new Set([states[1]!.tabId]))
  })

  it('the chosen tab closes abruptly before acknowledging: another tab runs it, once', async () => {
    const taskId = uniqueTaskId('once_failover')
    await env.context.addInitScript(emulatePresence)
    await env.context.addInitScript(skewClock)
    // The visible tab's clock reads a day ahead, so it reads every run request as too late
    // and never runs or acknowledges it: it stands for a tab that cannot answer. The
    // deadline is far beyond the test's waits, so only the closed tab's released Web Lock
    // can move the broker on.
    const tabs = await openTabs(taskId, ['visible', 'hidden', 'hidden'], { onceAckTimeout: 600_000 })
    const [chosen, ...survivors] = tabs as [Page, ...Page[]]
    await chosen.evaluate(() => (window as unknown as { __skewClock: (ms: number) => void }).__skewClock(86_400_000))
    await env.backend.server.complete(taskId, { failover: true })
    // The broker saw the end (the other tabs show it) and asked the visible tab, in vain.
    await expectEveryTab(tabs, { status: 'completed' })
    expect(await readAll(tabs)).toEqual(tabs.map(() => expect.objectContaining({ calls: 0, ranIn: '' })))
    await chosen.close()
    const states = await settledEverywhere(survivors)
    expect(total(states)).toBe(1)
    expect(states.map((state) => state.tabId)).toContain(states[0]!.ranIn)
  })

  it('a tab opened after the handler ran does not run it again', async () => {
    const taskId = uniqueTaskId('once_late')
    await env.context.addInitScript(emulatePresence)
    const tabs = await openTabs(taskId, ['visible', 'hidden'])
    await env.backend.server.complete(taskId, { late: true })
    const before = await settledEverywhere(tabs)
    expect(total(before)).toBe(1)

    const late = await openTab(env.context, testPageUrl(env.demo.origin, taskId, env.backend.backendUrl, { testPresence: 'visible' }))
    // The broker answered its registration: done, in the tab that ran it.
    const [lateState] = await settledEverywhere([late])
    expect(lateState?.ranIn).toBe(before[0]!.ranIn)
    expect(total(await readAll([...tabs, late]))).toBe(1)
  })

  it('leader mode (no SharedWorker): exactly one call across the tabs', async () => {
    const taskId = uniqueTaskId('once_leader')
    await env.context.addInitScript(removeSharedWorker)
    const tabs = await openTabs(taskId, ['hidden', 'hidden', 'hidden'])
    const mode = await tabs[0]!.evaluate(() => document.querySelector('[data-testid=inspector]')?.getAttribute('data-mode'))
    expect(mode).toBe('leader')
    await env.backend.server.complete(taskId, { via: 'leader' })
    const states = await settledEverywhere(tabs)
    expect(total(states)).toBe(1)
    expect(new Set(states.map((state) => state.ranIn)).size).toBe(1)
  })

  it('/production: one desktop notification when the audio is ready, however many studio tabs show it', async () => {
    // Counts notifications in each page instead of showing them; the permission is granted.
    await env.context.addInitScript(() => {
      const shown: string[] = []
      ;(window as unknown as { __notifications: string[] }).__notifications = shown
      class CountingNotification {
        static permission = 'granted'
        static requestPermission(): Promise<string> {
          return Promise.resolve('granted')
        }
        constructor(title: string) {
          shown.push(title)
        }
      }
      ;(window as unknown as { Notification: unknown }).Notification = CountingNotification
    })
    const first = await env.context.newPage()
    const params = new URLSearchParams({ backendUrl: env.backend.backendUrl, steps: '6', stepMs: '300' })
    await first.goto(`${env.demo.origin}/production?${params.toString()}`)
    await first.click('[data-testid=to-director]')
    await first.click('[data-testid=generate-audio]')
    const taskId = await first.getByTestId('audio-task').getAttribute('data-task-id')
    const studios = [first]
    for (let i = 0; i < 2; i++) {
      const page = await env.context.newPage()
      await page.goto(`${env.demo.origin}/production?${new URLSearchParams({ backendUrl: env.backend.backendUrl, taskId: taskId ?? '' }).toString()}`)
      studios.push(page)
    }
    await Promise.all(studios.map((page) => page.getByTestId('audio-result').waitFor({ timeout: 15_000 })))
    const counted = async (): Promise<string[][]> =>
      Promise.all(studios.map((page) => page.evaluate(() => (window as unknown as { __notifications: string[] }).__notifications)))
    await expect.poll(async () => (await counted()).flat(), WAIT).toEqual(['오디오 생성 완료'])
  })
})
