/**
 * Reading what a user sees in a tab of the demo, and waiting until every tab shows
 * something. Everything here reads the DOM (the ProgressBar's public attributes and
 * roles, the demo's `data-testid`s); nothing reaches into the library.
 */
import type { BrowserContext, Page } from 'playwright-core'
import { expect } from 'vitest'

/** What one `<ProgressBar>` shows. */
export interface BarState {
  /** `data-connection` of the root: connecting | live | reconnecting | polling | closed. */
  connection: string | null
  /** `data-status` of the root: idle | running | completed | failed. */
  status: string | null
  /** `aria-valuenow` of the `role=progressbar` element: whole percent. */
  percent: number | null
  /** The message line. */
  message: string | null
  /** Text of the `role=alert` region ('' when empty). */
  alert: string
  /** The connection-problem notice, or null when there is none. */
  notice: string | null
}

/** Inspector figures (`data-tabs`, `data-sockets`, `data-pollers`) and its headline. */
export interface InspectorState {
  tabs: number | null
  sockets: number | null
  pollers: number | null
  headline: string | null
}

/** Options the test page passes to its ProgressBar, as query parameters. */
export type PageOptions = Record<string, string | number | boolean>

/** `/test-websocket?taskId=…&backendUrl=…&<option>=…`. */
export function testPageUrl(origin: string, taskId: string, backendUrl: string, options: PageOptions = {}): string {
  const params = new URLSearchParams({ taskId, backendUrl })
  for (const [name, value] of Object.entries(options)) params.set(name, String(value))
  return `${origin}/test-websocket?${params.toString()}`
}

// The functions below run in the page: they must not refer to anything outside themselves.

/** Reads every `.tabcast-progress` of the page, in document order. */
export function readBars(page: Page): Promise<BarState[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll('.tabcast-progress')].map((root) => {
      const bar = root.querySelector('[role=progressbar]')
      const now = bar?.getAttribute('aria-valuenow')
      return {
        connection: root.getAttribute('data-connection'),
        status: root.getAttribute('data-status'),
        percent: now === null || now === undefined ? null : Number(now),
        message: root.querySelector('.tabcast-progress__message')?.textContent ?? null,
        alert: root.querySelector('[role=alert]')?.textContent ?? '',
        notice: root.querySelector('.tabcast-progress__notice')?.textContent ?? null,
      }
    }),
  )
}

/** The first bar of the page (null while none is rendered). */
export async function readBar(page: Page): Promise<BarState | null> {
  return (await readBars(page))[0] ?? null
}

export function readInspector(page: Page): Promise<InspectorState> {
  return page.evaluate(() => {
    const root = document.querySelector('[data-testid=inspector]')
    const number = (name: string): number | null => {
      const value = root?.getAttribute(name)
      return value === null || value === undefined ? null : Number(value)
    }
    return {
      tabs: number('data-tabs'),
      sockets: number('data-sockets'),
      pollers: number('data-pollers'),
      headline: document.querySelector('[data-testid=inspector-headline]')?.textContent ?? null,
    }
  })
}

/** The completion JSON of the test page, parsed (null while none is shown). */
export function readResult(page: Page): Promise<unknown> {
  return page.evaluate(() => {
    const text = document.querySelector('[data-testid=result]')?.textContent
    return text ? (JSON.parse(text) as unknown) : null
  })
}

/** Opens `count` tabs on `url` in the context, one after the other, each with its bar rendered. */
export async function openTabs(context: BrowserContext, url: string, count: number): Promise<Page[]> {
  const pages: Page[] = []
  for (let i = 0; i < count; i++) pages.push(await openTab(context, url))
  return pages
}

export async function openTab(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage()
  await page.goto(url)
  await page.waitForSelector('.tabcast-progress')
  return page
}

export interface WaitOptions {
  /** @default 15000 */
  timeout?: number
}

/**
 * Waits until the first bar of every tab matches `expected` (the fields given), and
 * fails with every tab's state when they do not in time.
 */
export async function expectEveryTab(pages: readonly Page[], expected: Partial<BarState>, options: WaitOptions = {}): Promise<void> {
  await expect
    .poll(async () => Promise.all(pages.map((page) => readBar(page))), { timeout: options.timeout ?? 15_000, interval: 50 })
    .toEqual(pages.map(() => expect.objectContaining(expected)))
}

/** Waits until every tab shows `expected` as its completion result. */
export async function expectEveryResult(pages: readonly Page[], expected: unknown, options: WaitOptions = {}): Promise<void> {
  await expect
    .poll(async () => Promise.all(pages.map((page) => readResult(page))), { timeout: options.timeout ?? 15_000, interval: 50 })
    .toEqual(pages.map(() => expected))
}

/** Waits until the inspector of `page` shows the given figures. */
export async function expectInspector(page: Page, expected: Partial<InspectorState>, options: WaitOptions = {}): Promise<void> {
  await expect
    .poll(() => readInspector(page), { timeout: options.timeout ?? 15_000, interval: 50 })
    .toEqual(expect.objectContaining(expected))
}

let nextTask = 0

/** A task id no other test (or earlier run against the same store) uses. */
export function uniqueTaskId(prefix: string): string {
  nextTask++
  return `${prefix}_${Date.now().toString(36)}_${process.pid}_${nextTask}`
}
