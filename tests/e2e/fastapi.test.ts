/**
 * Issue 13: the demo in real Chromium against the FastAPI example under uvicorn (not
 * the reference server). Connections are counted by the example itself (`/healthz`),
 * since Playwright cannot see a SharedWorker's sockets.
 */
import { describe, expect, it } from 'vitest'
import { startFastapiBackend } from '../support/fastapi-backend.js'
import { setUpE2eEnvironmentWith } from './support/environment.js'
import { startRefusingProxy } from './support/refusing-proxy.js'
import { expectEveryResult, expectEveryTab, expectInspector, openTabs, testPageUrl, uniqueTaskId } from './support/tabs.js'

// Small, bounded backoff so the tabs retry quickly and never run out of attempts.
const FAST_RECONNECT = { reconnectBaseDelay: 100, reconnectMaxDelay: 400, maxReconnectAttempts: 100, linger: 200 }

const env = setUpE2eEnvironmentWith(startFastapiBackend)

describe('the demo against the FastAPI example', () => {
  it('3 tabs share 1 socket on the Python server; completion reaches every tab', async () => {
    const python = env.backend
    const { project_id: taskId } = await python.create({ taskId: uniqueTaskId('py_share'), steps: 0 })
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, python.backendUrl, FAST_RECONNECT), 3)
    await expectEveryTab(tabs, { connection: 'live' })

    await python.event(taskId, { type: 'progress', progress: 0.4, message: 'TTS 생성 중... (시도 2/5)', task_name: '오디오 생성' })
    await expectEveryTab(tabs, { status: 'running', percent: 40, message: 'TTS 생성 중... (시도 2/5)' })
    expect(await python.connections(taskId)).toBe(1)
    expect(await python.opened(taskId)).toBe(1)
    await expectInspector(tabs[0]!, { tabs: 3, sockets: 1 })

    const result = { audio_id: 'audio_py', file_path: '/media/audio/audio_py.mp3', duration: 120.5 }
    await python.event(taskId, { type: 'completed', result })
    await expectEveryTab(tabs, { status: 'completed', percent: 100, alert: '' })
    await expectEveryResult(tabs, result)
    await expect.poll(() => python.connections(taskId)).toBe(0)
    expect(await python.opened(taskId)).toBe(1)
  })

  it('an error reaches every tab', async () => {
    const python = env.backend
    const { project_id: taskId } = await python.create({ taskId: uniqueTaskId('py_error'), steps: 0 })
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, python.backendUrl, FAST_RECONNECT), 3)
    await python.event(taskId, { type: 'progress', progress: 0.3, message: 'TTS 생성 중...' })
    await expectEveryTab(tabs, { connection: 'live', percent: 30 })
    await python.event(taskId, { type: 'error', error: 'ElevenLabs API 호출 실패', details: { status_code: 500, reason: 'Internal Server Error' } })
    await expectEveryTab(tabs, { status: 'failed', percent: 30, alert: expect.stringContaining('ElevenLabs API 호출 실패') })
    expect(await python.opened(taskId)).toBe(1)
  })

  // SIGTERM: uvicorn closes the sockets with 1012 (--ws wsproto); SIGKILL: a crash, the sockets just drop (1006).
  it.each(['SIGTERM', 'SIGKILL'] as const)('killed (%s) and restarted mid-task: every tab reconnects on one socket and ends in the true final state', async (signal) => {
    const python = env.backend
    const taskId = uniqueTaskId(`py_restart_${signal}`)
    await python.create({ taskId, steps: 0 })
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, python.backendUrl, FAST_RECONNECT), 3)
    await python.event(taskId, { type: 'progress', progress: 0.5, message: 'before the restart' })
    await python.event(taskId, { type: 'progress', progress: 0.6, message: 'still before the restart' })
    await expectEveryTab(tabs, { connection: 'live', percent: 60 })
    const { epoch: before } = await python.health()

    await python.stop(signal)
    await expectEveryTab(tabs, { connection: 'reconnecting', status: 'running', percent: 60 })
    await python.start()
    // A new process: its tasks were in memory, so the job reports the task again, in a new epoch.
    await expect.poll(() => python.connections(taskId)).toBe(1)
    expect((await python.health()).epoch).not.toBe(before)
    await python.create({ taskId, steps: 0 })
    await python.event(taskId, { type: 'progress', progress: 0.9, message: 'after the restart' })
    await expectEveryTab(tabs, { connection: 'live', status: 'running', percent: 90, message: 'after the restart' })

    const result = { audio_id: 'audio_restarted', attempt: 2 }
    await python.event(taskId, { type: 'completed', result })
    await expectEveryTab(tabs, { status: 'completed', percent: 100, alert: '' })
    await expectEveryResult(tabs, result)
    // One socket for all three tabs after the restart too.
    expect(await python.opened(taskId)).toBe(1)
  })

  it('polls the Python status endpoint when the WebSocket route is refused, and completes', async () => {
    const python = env.backend
    const proxy = await startRefusingProxy(python.port)
    try {
      const { project_id: taskId } = await python.create({ taskId: uniqueTaskId('py_poll'), steps: 0 })
      const options = { maxReconnectAttempts: 1, reconnectBaseDelay: 50, pollingInterval: 250, socketRetryInterval: 0, linger: 200 }
      const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, proxy.backendUrl, options), 3)
      await expectEveryTab(tabs, { connection: 'polling' })
      await expectInspector(tabs[0]!, { tabs: 3, sockets: 0, pollers: 1 })

      await python.event(taskId, { type: 'progress', progress: 0.5, message: 'TTS 생성 중... (polled)' })
      await expectEveryTab(tabs, { connection: 'polling', status: 'running', percent: 50, message: 'TTS 생성 중... (polled)' })
      const result = { audio_id: 'audio_polled_py' }
      await python.event(taskId, { type: 'completed', result })
      await expectEveryTab(tabs, { status: 'completed', percent: 100, connection: 'closed' })
      await expectEveryResult(tabs, result)
      expect(proxy.statusRequests(taskId).length).toBeGreaterThan(0)
      expect(proxy.refusedUpgrades).toBe(2)
      expect(await python.opened(taskId)).toBe(0)
    } finally {
      await proxy.close()
    }
  })
})
