/**
 * Issue 12, client credentials, in real Chromium against the reference server with
 * signed per-task tokens (`auth: { secret }`). The demo's test page takes the task's
 * token from its address fragment (`#token=…`, never the query) and gives it as the
 * `auth` option; connections are counted on the server (Playwright cannot see a
 * SharedWorker's sockets).
 */
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { expectEveryResult, expectEveryTab, openTab, openTabs, testPageUrl, uniqueTaskId, type PageOptions } from './support/tabs.js'
import type { Page } from 'playwright-core'

const SECRET = 'e2e-secret-that-is-at-least-32-bytes-long'
const env = setUpE2eEnvironment({ auth: { secret: SECRET } })

// Small, bounded backoff: a retry loop would show up as many upgrades quickly.
const FAST_RECONNECT = { reconnectBaseDelay: 100, reconnectMaxDelay: 400, maxReconnectAttempts: 100, linger: 200 }

function pageWithToken(taskId: string, token: string, options: PageOptions = FAST_RECONNECT): string {
  return `${testPageUrl(env.demo.origin, taskId, env.backend.backendUrl, options)}#token=${encodeURIComponent(token)}`
}

/** The seqs the page's `onMessage` heard, in order. */
async function seqsOf(page: Page): Promise<number[]> {
  const text = await page.evaluate(() => document.querySelector('[data-testid=seqs]')?.textContent ?? '')
  return text === '' ? [] : text.split(',').map(Number)
}

describe('signed task tokens', () => {
  it('tabs with a valid token follow the task on one socket to its end; the share link carries the token in the fragment', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('auth_ok')
    await backend.server.createTask({ taskId, taskName: '오디오 생성' })
    const tabs = await openTabs(env.context, pageWithToken(taskId, backend.server.taskToken(taskId)), 2)
    await expectEveryTab(tabs, { connection: 'live' })
    await backend.server.progress(taskId, 0.4, 'authorized')
    await expectEveryTab(tabs, { status: 'running', percent: 40, message: 'authorized' })
    const share = await tabs[0]!.getAttribute('[data-testid=open-new-tab]', 'href')
    expect(share).toMatch(/^\/test-websocket\?taskId=[^#]*#token=v1\./)
    expect(share?.split('#')[0]).not.toContain('token')
    const result = { audio_id: 'audio_auth' }
    await backend.server.complete(taskId, result)
    await expectEveryResult(tabs, result)
    expect(backend.upgrades(taskId)).toBe(1)
  })

  it('the demo creates a task, follows it with the token it returned, and puts the token in the fragment only', async () => {
    const { backend } = env
    const page = await env.context.newPage()
    const params = new URLSearchParams({ backendUrl: backend.backendUrl, steps: '3', stepMs: '100' })
    await page.goto(`${env.demo.origin}/test-websocket?${params.toString()}`)
    await page.click('[data-testid=start-demo]')
    await page.waitForSelector('.tabcast-progress')
    await expectEveryTab([page], { status: 'completed', percent: 100 })
    const address = new URL(page.url())
    expect(address.hash).toMatch(/^#token=v1\./)
    expect(address.search).not.toContain('token')
    const taskId = address.searchParams.get('taskId') ?? ''
    expect(backend.upgrades(taskId)).toBe(1)
  })

  it("another task's token: the forbidden state, once, with no retry loop", async () => {
    const { backend } = env
    const taskId = uniqueTaskId('auth_forbidden')
    const otherTask = uniqueTaskId('auth_other')
    await backend.server.createTask({ taskId })
    await backend.server.createTask({ taskId: otherTask })
    const url = pageWithToken(taskId, backend.server.taskToken(otherTask))
    const first = await openTab(env.context, url)
    await expectEveryTab([first], { status: 'failed', connection: 'closed' })
    const bar = await first.textContent('.tabcast-progress [role=alert]')
    expect(bar).toContain('forbidden')
    expect(backend.upgrades(taskId)).toBe(1)
    // A second tab (a few hundred ms later: a loop at a 100 ms backoff would have retried by
    // now) joins the same closed channel and shows the same state without a new socket.
    const second = await openTab(env.context, url)
    await expectEveryTab([first, second], { status: 'failed', connection: 'closed' })
    await backend.server.progress(taskId, 0.5, 'not for this token')
    await expectEveryTab([first, second], { status: 'failed', percent: 0 })
    expect(backend.upgrades(taskId)).toBe(1)
    expect(backend.connections(taskId)).toBe(0)
  })

  it('a tab with no token: unauthenticated, one retry at once, then the backoff until the attempts run out (no loop)', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('auth_none')
    await backend.server.createTask({ taskId })
    const options = { reconnectBaseDelay: 100, reconnectMaxDelay: 400, maxReconnectAttempts: 2, pollingFallback: false }
    const tab = await openTab(env.context, testPageUrl(env.demo.origin, taskId, backend.backendUrl, options))
    await expectEveryTab([tab], { connection: 'closed' })
    // The first socket, its at-once retry, two reconnects: the server accepts each and closes it with 4401.
    expect(backend.upgrades(taskId)).toBe(4)
    expect(await tab.textContent('.tabcast-progress')).toContain('gave up after 2 reconnect attempts')
  })

  it('a token that expires mid-task is replaced on the reconnect, with no gap in the messages', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('auth_expiry')
    await backend.server.createTask({ taskId })
    // Long enough for a loaded machine to open the tab and connect with it; short enough to wait out.
    const lifetime = 5000
    const shortLived = backend.server.taskToken(taskId, lifetime)
    const expiresAt = Number(shortLived.split('.')[2]) * 1000
    const tab = await openTab(env.context, pageWithToken(taskId, shortLived, { ...FAST_RECONNECT, seqs: 1 }))
    await expectEveryTab([tab], { connection: 'live' })
    await backend.server.progress(taskId, 0.2, 'one')
    await backend.server.progress(taskId, 0.3, 'two')
    await expectEveryTab([tab], { percent: 30 })

    // The app gets a fresh token (its token store changes: here, the address fragment);
    // the open socket goes on with the old one, which then expires.
    await tab.evaluate((token) => {
      window.location.hash = `token=${encodeURIComponent(token)}`
    }, backend.server.taskToken(taskId))
    await expect.poll(() => Date.now() > expiresAt, { timeout: lifetime + 3000, interval: 100 }).toBe(true)

    await backend.stop()
    await expectEveryTab([tab], { connection: 'reconnecting', percent: 30 })
    await backend.jobs.progress(taskId, 0.5, 'three, while the server was down')
    await backend.jobs.progress(taskId, 0.6, 'four, while the server was down')
    await backend.start()
    await expectEveryTab([tab], { connection: 'live', percent: 60 })
    await backend.server.complete(taskId, { audio_id: 'audio_expiry' })
    await expectEveryResult([tab], { audio_id: 'audio_expiry' })
    // No gap: every seq reached onMessage, the replayed ones in order after the last seq the
    // tab had (the reconnect resumed with ?since=2). A status read during the backoff may
    // also have delivered the then-current step once more, ahead of the replay.
    await expect.poll(() => seqsOf(tab)).toContain(5)
    const seqs = await seqsOf(tab)
    expect(seqs.slice(0, 2)).toEqual([1, 2])
    expect(seqs.slice(-3)).toEqual([3, 4, 5])
    expect(seqs.length).toBeLessThanOrEqual(6)
    // One socket before the restart, one after: the fresh token was asked for and accepted at once.
    expect(backend.upgrades(taskId)).toBe(2)
  })

  it('a tab that closes while it is the one asked for a token does not stall the others', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('auth_closing')
    await backend.server.createTask({ taskId })
    const token = backend.server.taskToken(taskId)
    // This tab's auth function never answers; it is the first (and so the asked) tab of the task.
    const silent = await openTab(env.context, pageWithToken(taskId, token, { ...FAST_RECONNECT, tokenDelay: 2 ** 31 - 1 }))
    const other = await openTab(env.context, pageWithToken(taskId, token))
    await expectEveryTab([silent, other], { connection: 'connecting' })
    expect(backend.upgrades(taskId)).toBe(0)
    await silent.close()
    await expectEveryTab([other], { connection: 'live' })
    await backend.server.progress(taskId, 0.7, 'after the silent tab left')
    await expectEveryTab([other], { percent: 70 })
    expect(backend.upgrades(taskId)).toBe(1)
    expect(backend.connections(taskId)).toBe(1)
  })
})
