/**
 * Issue 3: "WebSocket refused → polling mode in every tab, one poller, completion,
 * polling stops." The backend sits behind a proxy that forwards HTTP and destroys
 * every WebSocket upgrade, and counts the status requests it forwards.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { startRefusingProxy, type RefusingProxy } from './support/refusing-proxy.js'
import { expectEveryResult, expectEveryTab, expectInspector, openTab, openTabs, testPageUrl, uniqueTaskId } from './support/tabs.js'

const env = setUpE2eEnvironment()

const POLLING_INTERVAL = 250
const MAX_RECONNECT_ATTEMPTS = 1
const FAST_FALLBACK = {
  maxReconnectAttempts: MAX_RECONNECT_ATTEMPTS,
  reconnectBaseDelay: 50,
  pollingInterval: POLLING_INTERVAL,
  // No socket probes while polling: the proxy would refuse them anyway, and they would
  // only add upgrades to the count.
  socketRetryInterval: 0,
  linger: 200,
}

let proxy: RefusingProxy
beforeEach(async () => {
  proxy = await startRefusingProxy(env.backend.port)
})
afterEach(async () => {
  await proxy.close()
})

describe('WebSocket refused: polling fallback', () => {
  it('every tab shows polling mode, one poller serves them all, completion reaches every tab and polling stops', async () => {
    const { server } = env.backend
    const taskId = uniqueTaskId('poll')
    await server.createTask({ taskId, taskName: '오디오 생성' })
    const url = testPageUrl(env.demo.origin, taskId, proxy.backendUrl, FAST_FALLBACK)
    const tabs = await openTabs(env.context, url, 5)

    await expectEveryTab(tabs, { connection: 'polling' })
    await expectInspector(tabs[0]!, { tabs: 5, sockets: 0, pollers: 1, headline: '5 tabs, 0 sockets, 1 poller' })
    // The first attempt and its retries, once for all five tabs.
    expect(proxy.refusedUpgrades).toBe(1 + MAX_RECONNECT_ATTEMPTS)
    expect(env.backend.connections(taskId)).toBe(0)

    await server.progress(taskId, 0.5, 'TTS 생성 중... (polled)')
    await expectEveryTab(tabs, { connection: 'polling', status: 'running', percent: 50, message: 'TTS 생성 중... (polled)' })
    await expect.poll(() => proxy.statusRequests(taskId).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(6)

    // One poller asks, waits for the answer, then waits a full interval: five pollers
    // (one per tab) would send requests within milliseconds of each other.
    const times = proxy.statusRequests(taskId).map((request) => request.at)
    const gaps = times.slice(1).map((at, index) => at - times[index]!)
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(POLLING_INTERVAL * 0.8)

    const result = { audio_id: 'audio_polled', duration: 12.5 }
    await server.complete(taskId, result)
    await expectEveryTab(tabs, { status: 'completed', percent: 100, connection: 'closed' })
    await expectEveryResult(tabs, result)
    await expectInspector(tabs[0]!, { pollers: 0, sockets: 0 })
    const requestsAtEnd = proxy.statusRequests(taskId).length

    // Polling has stopped: while another task's poller makes four rounds through the same
    // proxy (time measured by the browser's own timers), this task is not asked for again.
    const control = uniqueTaskId('poll_control')
    await server.createTask({ taskId: control })
    const controlTab = await openTab(env.context, testPageUrl(env.demo.origin, control, proxy.backendUrl, FAST_FALLBACK))
    await expectEveryTab([controlTab], { connection: 'polling' })
    await expect.poll(() => proxy.statusRequests(control).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(4)
    expect(proxy.statusRequests(taskId).length).toBe(requestsAtEnd)
    expect(env.backend.upgrades(taskId)).toBe(0)
  })
})
