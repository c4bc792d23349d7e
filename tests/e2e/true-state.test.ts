/**
 * Issue 11, "every tab shows the true state", client side, in real Chromium: the status
 * read at the first failed connection attempt, a silent socket replaced thanks to the
 * server's `pong` capability, and a backend whose numbering restarted sending its
 * terminal message with `seq == last_seq` below what the tabs had seen.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startBackend, type E2eBackend } from './support/backend.js'
import { setUpE2eEnvironment } from './support/environment.js'
import { startRefusingProxy, type RefusingProxy } from './support/refusing-proxy.js'
import { startScriptedBackend, type ScriptedBackend } from './support/scripted-backend.js'
import { expectEveryResult, expectEveryTab, openTabs, testPageUrl, uniqueTaskId } from './support/tabs.js'

const env = setUpE2eEnvironment()

let proxy: RefusingProxy | null = null
let scripted: ScriptedBackend | null = null
let strict: E2eBackend | null = null
afterEach(async () => {
  await Promise.all([proxy?.close(), scripted?.close(), strict?.close()])
  proxy = scripted = strict = null
})

describe('status during backoff', () => {
  it('WebSocket refused, status endpoint up, task at 40 %: every tab shows 40 % while still reconnecting', async () => {
    const { server } = env.backend
    proxy = await startRefusingProxy(env.backend.port)
    const taskId = uniqueTaskId('backoff_read')
    await server.createTask({ taskId, taskName: '오디오 생성' })
    await server.progress(taskId, 0.4, 'TTS 생성 중... (시도 2/5)')

    // A long first backoff step: the 40 % can only come from the read at the first failure.
    const options = { reconnectBaseDelay: 60_000, reconnectMaxDelay: 60_000 }
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, proxy.backendUrl, options), 3)
    await expectEveryTab(tabs, { connection: 'reconnecting', status: 'running', percent: 40, message: 'TTS 생성 중... (시도 2/5)' })
    // One socket attempt and one status read for all three tabs, both in the first step.
    expect(proxy.refusedUpgrades).toBe(1)
    expect(proxy.statusRequests(taskId)).toHaveLength(1)
  })
})

describe('half-open detection', () => {
  it('a server that announced "pong" and then stops answering pings is replaced by a new connection', async () => {
    scripted = await startScriptedBackend({
      answerPings: false,
      greet: (taskId) => [{ type: 'connected', project_id: taskId, last_seq: 0, capabilities: ['seq', 'pong'] }],
    })
    const taskId = uniqueTaskId('silent')
    const options = { pingInterval: 500, pongTimeout: 300, reconnectBaseDelay: 100, maxReconnectAttempts: 100 }
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, scripted.backendUrl, options), 2)
    await expectEveryTab(tabs, { connection: 'live' })
    scripted.send(taskId, { type: 'progress', project_id: taskId, progress: 0.3, seq: 1 })
    await expectEveryTab(tabs, { percent: 30 })

    // The socket stays open on the server but never answers: the client gives it up and reconnects.
    await expect.poll(() => scripted?.upgradeAttempts, { timeout: 15_000 }).toBeGreaterThanOrEqual(2)
    // The silent socket was closed by the client; one socket at a time, shared by both tabs.
    await expect.poll(() => scripted?.openSockets(taskId)).toBeLessThanOrEqual(1)
    await expectEveryTab(tabs, { percent: 30 })
  })
})

describe('numbering epochs', () => {
  it('a backend that restarts its numbering sends completed with seq == last_seq below the tabs’ seq: every tab completes with the result', async () => {
    const result = { audio_id: 'audio_after_restart', duration: 12.5 }
    scripted = await startScriptedBackend({
      greet: (taskId, connection) =>
        connection === 1
          ? [{ type: 'connected', project_id: taskId, last_seq: 0 }]
          : // The restarted backend lost seq 5: its history ends at 4, the job's end.
            [
              { type: 'connected', project_id: taskId, last_seq: 4, status: 'completed' },
              { type: 'completed', project_id: taskId, progress: 1, result, seq: 4 },
            ],
    })
    const taskId = uniqueTaskId('renumbered')
    const options = { reconnectBaseDelay: 100, maxReconnectAttempts: 100 }
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, scripted.backendUrl, options), 3)
    await expectEveryTab(tabs, { connection: 'live' })
    for (let seq = 1; seq <= 5; seq++) {
      scripted.send(taskId, { type: 'progress', project_id: taskId, progress: 0.12 * seq + 0.02, seq, message: `step ${seq}` })
    }
    await expectEveryTab(tabs, { status: 'running', percent: 62, message: 'step 5' })

    // A restart: the server closes with 1012 (service restart), the tabs reconnect at once.
    expect(scripted.closeSockets(taskId, 1012, 'restart')).toBe(1)
    await expectEveryTab(tabs, { status: 'completed', percent: 100, alert: '' })
    await expectEveryResult(tabs, result)
    expect(scripted.upgradeAttempts).toBe(2)
  })
})

describe('a job that stops reporting', () => {
  it('every tab shows the stalled notice and data-stalled, without failing the task; the next update clears it', async () => {
    scripted = await startScriptedBackend()
    const taskId = uniqueTaskId('stalled')
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, scripted.backendUrl, { staleAfter: 1500 }), 2)
    await expectEveryTab(tabs, { connection: 'live' })
    scripted.send(taskId, { type: 'progress', project_id: taskId, progress: 0.25, seq: 1, message: 'TTS' })
    await expectEveryTab(tabs, { status: 'running', percent: 25 })

    // The socket stays up (pings are answered), but the job says nothing more.
    const stalledText = (page: (typeof tabs)[number]) =>
      page.evaluate(() => ({
        stalled: document.querySelector('.tabcast-progress')?.getAttribute('data-stalled') ?? null,
        notice: document.querySelector('.tabcast-progress__stalled')?.textContent ?? null,
      }))
    await expect
      .poll(() => Promise.all(tabs.map(stalledText)), { timeout: 15_000 })
      .toEqual(tabs.map(() => ({ stalled: 'true', notice: expect.stringMatching(/^(No update for \d+ s|\d+초째 업데이트 없음)$/) })))
    await expectEveryTab(tabs, { status: 'running', connection: 'live', percent: 25, alert: '' })

    scripted.send(taskId, { type: 'progress', project_id: taskId, progress: 0.3, seq: 2 })
    await expect.poll(() => Promise.all(tabs.map(stalledText))).toEqual(tabs.map(() => ({ stalled: null, notice: null })))
    await expectEveryTab(tabs, { percent: 30 })
  })
})

describe('saying what is wrong', () => {
  it('a backend that refuses the page’s origin: the notice names the Origin allow-list or CORS, the page origin and the backend', async () => {
    strict = await startBackend({ allowedOrigins: ['https://studio.example.com'] })
    const taskId = uniqueTaskId('refused_origin')
    await strict.server.createTask({ taskId })
    const options = { maxReconnectAttempts: 1, reconnectBaseDelay: 100, pollingInterval: 500, socketRetryInterval: 0 }
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, strict.backendUrl, options), 2)
    const backendOrigin = `http://${strict.backendUrl}`
    // The backend answers a no-cors probe, so the client knows it is up and refusing this page.
    await expectEveryTab(tabs, {
      notice: expect.stringMatching(new RegExp(`is up but refuses this page: its Origin allow-list or CORS .*${escape(env.demo.origin)}`)),
    })
    for (const bar of await Promise.all(tabs.map((tab) => tab.locator('.tabcast-progress__notice').textContent()))) {
      expect(bar).toContain(backendOrigin)
    }
    expect(strict.connections(taskId)).toBe(0)
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
