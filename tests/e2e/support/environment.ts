/**
 * The per-file environment of an end-to-end test: the built demo served by
 * `vite preview`, one Chromium for the file, the reference backend, and a fresh
 * BrowserContext per test (so every test gets a fresh SharedWorker: pages of one
 * context share one, separate contexts do not).
 */
import type { Browser, BrowserContext } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest'
import { startBackend, type E2eBackend, type E2eBackendOptions } from './backend.js'
import { launchChromium } from './chromium.js'
import { buildDemo, serveDemo, type ServedDemo } from './demo.js'

export interface E2eEnvironment<Backend = E2eBackend> {
  readonly browser: Browser
  readonly demo: ServedDemo
  /** The backend shared by the file's tests (tests use distinct task ids): the reference one unless the file starts another. */
  readonly backend: Backend
  /** This test's context. */
  readonly context: BrowserContext
  /** Uncaught errors of this test's pages; checked to be empty after each test. */
  readonly pageErrors: string[]
}

/**
 * Registers the hooks that build, serve and launch everything for this file.
 * @param backendOptions Options of the file's reference backend (for example a short `staleAfter`).
 */
export function setUpE2eEnvironment(backendOptions: E2eBackendOptions = {}): E2eEnvironment {
  return setUpE2eEnvironmentWith(() => startBackend(backendOptions))
}

/** The same hooks with another backend (the FastAPI example, say), started by `start` and closed after the file. */
export function setUpE2eEnvironmentWith<Backend extends { close(): Promise<void> }>(start: () => Promise<Backend>): E2eEnvironment<Backend> {
  let browser: Browser | null = null
  let demo: ServedDemo | null = null
  let backend: Backend | null = null
  let context: BrowserContext | null = null
  const pageErrors: string[] = []

  const need = <T>(value: T | null, what: string): T => {
    if (value === null) throw new Error(`the e2e environment has no ${what} (did beforeAll fail?)`)
    return value
  }

  beforeAll(async () => {
    const [outDir, launched, started] = await Promise.allSettled([buildDemo(), launchChromium(), start()])
    // Keep whatever did start, so afterAll closes it even when another part failed.
    if (launched.status === 'fulfilled') browser = launched.value
    if (started.status === 'fulfilled') backend = started.value
    for (const outcome of [launched, outDir, started]) if (outcome.status === 'rejected') throw outcome.reason
    if (outDir.status === 'fulfilled') demo = await serveDemo(outDir.value)
  })

  beforeEach(async () => {
    pageErrors.length = 0
    context = await need(browser, 'browser').newContext()
    context.on('page', (page) => {
      page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`))
    })
  })

  afterEach(async () => {
    const closing = context
    context = null
    await closing?.close()
    expect(pageErrors, 'uncaught errors in the pages').toEqual([])
  })

  afterAll(async () => {
    await Promise.allSettled([browser?.close(), demo?.close(), backend?.close()])
  })

  return {
    get browser() {
      return need(browser, 'browser')
    },
    get demo() {
      return need(demo, 'demo server')
    },
    get backend() {
      return need(backend, 'backend')
    },
    get context() {
      return need(context, 'browser context')
    },
    pageErrors,
  }
}
