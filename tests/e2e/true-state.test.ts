/**
 * Issue 11, "every tab shows the true state", client side, in real Chromium: the status
 * read at the first failed connection attempt, a silent socket replaced thanks to the
 * server's `pong` capability, backends whose numbering restarted (a scripted one sending
 * `completed` with `seq == last_seq` below the tabs' seq, and the reference server
 * restarted on a fresh store), the stalled notice before a lease fails a dead job, and
 * a refused origin named as such.
 */
import type { Page } from 'playwright-core'
import { createTabcastServer, MemoryTaskStore, silentLogger, type TabcastServer } from 'tabcast/server'
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
let servers: TabcastServer[] = []
afterEach(async () => {
  await Promise.all([proxy?.close(), scripted?.close(), strict?.close(), ...servers.map((server) => server.close())])
  proxy = scripted = strict = null
  servers = []
})

/** A reference server of this test's own, on a fresh in-memory store (a new process, as far as tasks go). */
function freshServer(): TabcastServer {
  const server = createTabcastServer({ store: new MemoryTaskStore(), logger: silentLogger, closeTimeout: 500 })
  servers.push(server)
  return server
}

/** The stalled state of the first bar of a page: `data-stalled` and the notice text. */
function readStalled(page: Page): Promise<{ stalled: string | null; notice: string | null }> {
  return page.evaluate(() => ({
    stalled: document.querySelector('.tabcast-progress')?.getAttribute('data-stalled') ?? null,
    notice: document.querySelector('.tabcast-progress__stalled')?.textContent ?? null,
  }))
}

const STALLED_NOTICE = /^(No update for \d+ s|\d+초째 업데이트 없음)$/

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
      // Every connection gets the task's current state, so no step depends on which socket
      // is open at a given moment (the short pong timeout may replace one at any time).
      greet: (taskId) => [
        { type: 'connected', project_id: taskId, last_seq: 1, capabilities: ['seq', 'pong'] },
        { type: 'progress', project_id: taskId, progress: 0.3, seq: 1 },
      ],
    })
    const taskId = uniqueTaskId('silent')
    const options = { pingInterval: 500, pongTimeout: 300, reconnectBaseDelay: 100, maxReconnectAttempts: 100 }
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, scripted.backendUrl, options), 2)
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
    await expect
      .poll(() => Promise.all(tabs.map(readStalled)), { timeout: 15_000 })
      .toEqual(tabs.map(() => ({ stalled: 'true', notice: expect.stringMatching(STALLED_NOTICE) })))
    await expectEveryTab(tabs, { status: 'running', connection: 'live', percent: 25, alert: '' })

    scripted.send(taskId, { type: 'progress', project_id: taskId, progress: 0.3, seq: 2 })
    await expect.poll(() => Promise.all(tabs.map(readStalled))).toEqual(tabs.map(() => ({ stalled: null, notice: null })))
    await expectEveryTab(tabs, { percent: 30 })
  })
})

describe('against the reference server', () => {
  it('the server restarts on a fresh memory store and the job completes there before the tabs are back: every tab shows completed with the result', async () => {
    const first = freshServer()
    const { port } = await first.listen(0)
    const taskId = uniqueTaskId('fresh_store')
    await first.createTask({ taskId, taskName: '오디오 생성' })
    const options = { reconnectBaseDelay: 200, reconnectMaxDelay: 400, maxReconnectAttempts: 100 }
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, `127.0.0.1:${port}`, options), 3)
    await expectEveryTab(tabs, { connection: 'live' })
    for (let step = 1; step <= 5; step++) await first.progress(taskId, 0.12 * step + 0.02, `step ${step}`)
    await expectEveryTab(tabs, { status: 'running', percent: 62, message: 'step 5' })

    await first.close()
    await expectEveryTab(tabs, { connection: 'reconnecting', percent: 62 })
    // A new process with an empty store: the job, run again there, finishes before it
    // listens, so the tabs' first contact with it is a finished task with fewer messages.
    const second = freshServer()
    const result = { audio_id: 'audio_fresh', duration: 12.5 }
    await second.createTask({ taskId, taskName: '오디오 생성' })
    await second.progress(taskId, 0.5, 'again')
    await second.complete(taskId, result)
    await second.listen(port)

    await expectEveryTab(tabs, { status: 'completed', percent: 100, alert: '' })
    await expectEveryResult(tabs, result)
  })

  it('a job that dies: every tab shows the stalled notice, then the task failed when its lease runs out', async () => {
    strict = await startBackend({ staleAfter: 4000 })
    const backend = strict
    const taskId = uniqueTaskId('dies')
    await backend.server.createTask({ taskId })
    // Alive (heartbeats) while the tabs open, however long that takes.
    const heartbeats = setInterval(() => void backend.server.heartbeat(taskId).catch(() => {}), 500)
    let tabs: Page[]
    try {
      tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, backend.backendUrl, { staleAfter: 1000 }), 2)
      await expectEveryTab(tabs, { connection: 'live' })
      await backend.server.progress(taskId, 0.4, 'TTS 생성 중...')
      await expectEveryTab(tabs, { status: 'running', percent: 40 })
    } finally {
      clearInterval(heartbeats)
    }

    // The job died: first the tabs say it went quiet (the task still running), then the server fails it.
    await expect
      .poll(() => Promise.all(tabs.map(readStalled)), { timeout: 15_000 })
      .toEqual(tabs.map(() => ({ stalled: 'true', notice: expect.stringMatching(STALLED_NOTICE) })))
    await expectEveryTab(tabs, { status: 'failed', percent: 40, alert: expect.stringContaining('the job stopped reporting') })
    expect(await Promise.all(tabs.map(readStalled))).toEqual(tabs.map(() => ({ stalled: null, notice: null })))
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

  it('a backendUrl with a wrong path prefix: the notice says HTTP 404, not that the origin is refused', async () => {
    const taskId = uniqueTaskId('wrong_prefix')
    await env.backend.server.createTask({ taskId })
    const options = { maxReconnectAttempts: 1, reconnectBaseDelay: 100, pollingInterval: 500, socketRetryInterval: 0 }
    const wrong = `${env.backend.backendUrl}/wrong`
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, wrong, options), 2)
    await expectEveryTab(tabs, { notice: expect.stringContaining('HTTP 404') })
    for (const bar of await Promise.all(tabs.map((tab) => tab.locator('.tabcast-progress__notice').textContent()))) {
      expect(bar).toContain(`/wrong/api/v1/projects/${taskId}/status`)
      expect(bar).not.toContain('refuses this page')
    }
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
