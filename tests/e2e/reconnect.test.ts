/**
 * Issue 3: "When the network drops, all tabs show 'reconnecting' together and resume
 * together; no progress step that the server still holds is lost, and
 * `completed`/`error` are never lost." Here the server restarts: it closes every
 * socket with 1001 (going away), its port refuses connections for a while, and a new
 * server comes up on the same port with the same store.
 */
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { expectEveryResult, expectEveryTab, expectInspector, openTabs, testPageUrl, uniqueTaskId } from './support/tabs.js'

const env = setUpE2eEnvironment()

// Small, bounded backoff so the tabs retry quickly and never run out of attempts.
const FAST_RECONNECT = { reconnectBaseDelay: 100, reconnectMaxDelay: 400, maxReconnectAttempts: 100, linger: 200 }

describe('server restart', () => {
  it('every tab shows reconnecting, then live again on one socket, and gets what happened meanwhile and the end', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('restart')
    await backend.server.createTask({ taskId, taskName: '오디오 생성' })
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, backend.backendUrl, FAST_RECONNECT), 4)
    await expectEveryTab(tabs, { connection: 'live' })
    await backend.server.progress(taskId, 0.3, 'before the restart')
    await expectEveryTab(tabs, { status: 'running', percent: 30, message: 'before the restart' })
    expect(backend.connections(taskId)).toBe(1)

    await backend.stop()
    // Every tab notices, keeps what it showed, and keeps trying.
    await expectEveryTab(tabs, { connection: 'reconnecting', status: 'running', percent: 30, message: 'before the restart' })

    // The job goes on while no server is listening; only a resume can bring this to the tabs.
    await backend.jobs.progress(taskId, 0.6, 'while the server was down')

    await backend.start()
    await expectEveryTab(tabs, { connection: 'live', status: 'running', percent: 60, message: 'while the server was down' })
    await expect.poll(() => backend.connections(taskId)).toBe(1)
    await expectInspector(tabs[0]!, { tabs: 4, sockets: 1 })
    // One socket before the restart and one after: the tabs reconnected together, not each on its own.
    expect(backend.upgrades(taskId)).toBe(2)

    const result = { audio_id: 'audio_restart', attempt: 1 }
    await backend.server.complete(taskId, result)
    await expectEveryTab(tabs, { status: 'completed', percent: 100, alert: '' })
    await expectEveryResult(tabs, result)
    await expect.poll(() => backend.connections(taskId)).toBe(0)
  })

  it('a task that ends while the server is down still ends in every tab once it is back', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('restart_end')
    await backend.server.createTask({ taskId })
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, backend.backendUrl, FAST_RECONNECT), 3)
    await expectEveryTab(tabs, { connection: 'live' })
    await backend.server.progress(taskId, 0.5, 'halfway')
    await expectEveryTab(tabs, { percent: 50 })

    await backend.stop()
    await expectEveryTab(tabs, { connection: 'reconnecting', percent: 50 })
    await backend.jobs.fail(taskId, 'ElevenLabs API 호출 실패', { status_code: 500 })
    await backend.start()

    await expectEveryTab(tabs, { status: 'failed', percent: 50, alert: expect.stringContaining('ElevenLabs API 호출 실패') })
    await expect.poll(() => backend.connections(taskId)).toBe(0)
  })
})
