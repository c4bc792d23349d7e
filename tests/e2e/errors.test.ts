/**
 * What tabs show when things go wrong: a task that fails (issue 5, "error path shown in
 * every tab"), a stream that sends what no correct server sends (issue 3: "A bad
 * message from the server becomes an error note on the snapshot and never kills the
 * worker or other tasks"), and a task id that can never be valid.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { buildAndServePages } from '../../bench/browser/pages.js'
import { setUpE2eEnvironment } from './support/environment.js'
import { startScriptedBackend, type ScriptedBackend } from './support/scripted-backend.js'
import { expectEveryResult, expectEveryTab, expectInspector, openTabs, readBars, testPageUrl, uniqueTaskId } from './support/tabs.js'

const env = setUpE2eEnvironment()

describe('a task that fails', () => {
  it('every tab shows the server’s error in its alert region, and the socket closes', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('fail')
    await backend.server.createTask({ taskId, taskName: '오디오 생성' })
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, backend.backendUrl), 3)
    await expectEveryTab(tabs, { connection: 'live', alert: '' })
    await backend.server.progress(taskId, 0.4, 'TTS 생성 중... (시도 5/5)')
    await expectEveryTab(tabs, { status: 'running', percent: 40 })

    await backend.server.fail(taskId, 'ElevenLabs API 호출 실패', { status_code: 500, reason: 'Internal Server Error' })
    // The bar keeps where the task stopped and says why, in every tab.
    await expectEveryTab(tabs, { status: 'failed', percent: 40, alert: expect.stringContaining('ElevenLabs API 호출 실패') })
    for (const tab of tabs) {
      expect(await tab.locator('[role=alert]').first().textContent()).toMatch(/Task failed: ElevenLabs API 호출 실패|작업 실패: ElevenLabs API 호출 실패/)
      expect(await tab.getByTestId('task-error').textContent()).toContain('ElevenLabs API 호출 실패')
    }
    await expect.poll(() => backend.connections(taskId)).toBe(0)
    expect(backend.upgrades(taskId)).toBe(1)
  })
})

describe('bad input seen in the browser', () => {
  let scripted: ScriptedBackend
  beforeEach(async () => {
    scripted = await startScriptedBackend()
  })
  afterEach(async () => {
    await scripted.close()
  })

  it('malformed JSON and progress 7 become a notice naming the problem; later messages still reach every tab', async () => {
    const taskId = uniqueTaskId('bad_input')
    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, scripted.backendUrl), 3)
    await expectEveryTab(tabs, { connection: 'live', notice: null })
    expect(scripted.openSockets(taskId)).toBe(1)

    const steps: { frame: string; notice: string }[] = [
      { frame: '{"type":"progress","progress":0.5', notice: 'is not valid JSON' },
      { frame: JSON.stringify({ type: 'progress', project_id: taskId, progress: 7, seq: 2 }), notice: 'progress must be between 0 and 1, got 7' },
    ]
    let percent = 0
    for (const [index, { frame, notice }] of steps.entries()) {
      expect(scripted.sendRaw(taskId, frame)).toBe(1)
      // The problem is named in every tab; what the bar showed is untouched, the socket stays up.
      await expectEveryTab(tabs, { connection: 'live', percent, notice: expect.stringContaining(notice), alert: '' })

      // A valid message after it still updates every tab (and clears the notice).
      percent = 20 * (index + 1)
      scripted.send(taskId, { type: 'progress', project_id: taskId, progress: percent / 100, message: `good ${index + 1}`, seq: 10 + index })
      await expectEveryTab(tabs, { connection: 'live', status: 'running', percent, message: `good ${index + 1}`, notice: null })
    }

    scripted.send(taskId, { type: 'completed', project_id: taskId, progress: 1, result: { survived: true }, seq: 20 })
    await expectEveryTab(tabs, { status: 'completed', percent: 100, alert: '' })
    await expectEveryResult(tabs, { survived: true })
    // The bad frames never cost the connection: one socket for the whole run.
    expect(scripted.upgradeAttempts).toBe(1)
  })

  it('a task whose upgrade is never answered does not keep another task of its backend from connecting', async () => {
    // Chromium holds a second handshake to one host until the first opens or fails. One page
    // follows both tasks at once (the bench page), so both sockets would start in the same
    // moment and time out together, the stuck one first again at every attempt; tabcast
    // starts a socket, and its connect timeout, only when no other handshake to that backend is under way.
    const stuck = await startScriptedBackend({ hold: (taskId) => taskId.startsWith('stuck') })
    const pages = await buildAndServePages()
    try {
      const stuckTask = uniqueTaskId('stuck')
      const okTask = uniqueTaskId('ok')
      const page = await env.context.newPage()
      await page.goto(`${pages.origin}/tabcast.html?${new URLSearchParams({ tasks: `${stuckTask},${okTask}`, backend: stuck.backendUrl, keeper: '0' }).toString()}`)
      // The default connectTimeout (10 s) ends the stuck attempt; then the other task connects.
      await expect.poll(() => stuck.openSockets(okTask), { timeout: 25_000, interval: 250 }).toBe(1)
      await page.close()
    } finally {
      await pages.close()
      await stuck.close()
    }
  }, 60_000)

  it('an invalid task id ("../etc") is refused with a clear error and no socket is opened', async () => {
    const tab = await env.context.newPage()
    await tab.goto(`${env.demo.origin}/test-websocket?${new URLSearchParams({ backendUrl: scripted.backendUrl }).toString()}`)
    await tab.fill('input[name=taskId]', '../etc')
    await tab.click('[data-testid=start]')

    const error = tab.getByTestId('form-error')
    await error.waitFor()
    expect(await error.getAttribute('role')).toBe('alert')
    expect(await error.textContent()).toContain('task id "../etc" has characters outside')
    // Nothing follows the bad id: no bar, no socket, no request.
    expect(await readBars(tab)).toEqual([])
    await expectInspector(tab, { tabs: 1, sockets: 0, pollers: 0 })
    expect(scripted.upgradeAttempts).toBe(0)
    expect(scripted.httpRequests).toEqual([])
  })

  it('a link naming an invalid task id shows the problem at once, and follows nothing', async () => {
    const tab = await env.context.newPage()
    await tab.goto(`${env.demo.origin}/test-websocket?${new URLSearchParams({ taskId: '../etc', backendUrl: scripted.backendUrl }).toString()}`)
    const error = tab.getByTestId('form-error')
    await error.waitFor()
    expect(await error.textContent()).toContain('task id "../etc" has characters outside')
    expect(await readBars(tab)).toEqual([])
    expect(scripted.upgradeAttempts).toBe(0)
  })
})
