/**
 * Issue 3, "What a user sees": five tabs follow one task, the server sees one
 * WebSocket for it, and every tab shows the same progress, message and result.
 */
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import {
  expectEveryResult,
  expectEveryTab,
  expectInspector,
  openTab,
  openTabs,
  readBar,
  testPageUrl,
  uniqueTaskId,
} from './support/tabs.js'

const env = setUpE2eEnvironment()

describe('tabs of one browser share one WebSocket per task', () => {
  it('five tabs on one task: one socket on the server, the same progress, message and result in every tab', async () => {
    const taskId = uniqueTaskId('share')
    const { server } = env.backend
    await server.createTask({ taskId, taskName: '오디오 생성' })

    const tabs = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, env.backend.backendUrl), 5)
    await expectEveryTab(tabs, { connection: 'live' })
    await expectInspector(tabs[4]!, { tabs: 5, sockets: 1, pollers: 0, headline: '5 tabs, 1 socket' })
    expect(env.backend.connections(taskId)).toBe(1)

    const steps: [number, string][] = [
      [0.25, '스크립트 분석 중...'],
      [0.5, 'TTS 생성 중... (시도 2/5)'],
      [0.75, '후처리 중...'],
    ]
    for (const [fraction, message] of steps) {
      await server.progress(taskId, fraction, message)
      await expectEveryTab(tabs, { status: 'running', percent: Math.round(fraction * 100), message })
    }
    expect(env.backend.connections(taskId)).toBe(1)

    const result = { audio_id: 'audio_123', file_path: '/media/audio/audio_123.mp3', duration: 120.5, accuracy: 0.97, attempt: 2 }
    await server.complete(taskId, result)
    await expectEveryTab(tabs, { status: 'completed', percent: 100, alert: '' })
    await expectEveryResult(tabs, result)

    // Every tab was served by a single socket for the whole run, and a finished task holds none.
    expect(env.backend.upgrades(taskId)).toBe(1)
    await expect.poll(() => env.backend.connections(taskId)).toBe(0)
  })

  it('three tabs on each of two tasks: two sockets in all, each tab shows only its own task', async () => {
    const { server } = env.backend
    const first = uniqueTaskId('multi_a')
    const second = uniqueTaskId('multi_b')
    const firstTabs = await openTabs(env.context, testPageUrl(env.demo.origin, first, env.backend.backendUrl), 3)
    const secondTabs = await openTabs(env.context, testPageUrl(env.demo.origin, second, env.backend.backendUrl), 3)
    const everyTab = [...firstTabs, ...secondTabs]
    await expectEveryTab(everyTab, { connection: 'live' })
    await expectInspector(everyTab[0]!, { tabs: 6, sockets: 2, pollers: 0, headline: '6 tabs, 2 sockets' })
    expect([env.backend.connections(first), env.backend.connections(second)]).toEqual([1, 1])

    await server.progress(first, 0.3, 'first task at 30 %')
    await server.progress(second, 0.6, 'second task at 60 %')
    await expectEveryTab(firstTabs, { status: 'running', percent: 30, message: 'first task at 30 %' })
    await expectEveryTab(secondTabs, { status: 'running', percent: 60, message: 'second task at 60 %' })

    await server.complete(second, { which: 'second' })
    await expectEveryResult(secondTabs, { which: 'second' })
    await expectEveryTab(secondTabs, { status: 'completed', percent: 100 })
    // The other task is untouched by its neighbour's completion.
    await expectEveryTab(firstTabs, { status: 'running', percent: 30, connection: 'live' })
    await server.complete(first, { which: 'first' })
    await expectEveryResult(firstTabs, { which: 'first' })

    expect([env.backend.upgrades(first), env.backend.upgrades(second)]).toEqual([1, 1])
  })

  it('a tab opened mid-task shows the current progress at once, over the existing socket', async () => {
    const { server } = env.backend
    const taskId = uniqueTaskId('late')
    // No keep-alive pings: their pongs would be server messages too.
    const url = testPageUrl(env.demo.origin, taskId, env.backend.backendUrl, { pingInterval: 0 })
    const tabs = await openTabs(env.context, url, 5)
    await expectEveryTab(tabs, { connection: 'live' })
    await server.progress(taskId, 0.4, 'TTS 생성 중... (시도 1/5)')
    await expectEveryTab(tabs, { status: 'running', percent: 40 })
    const sentBefore = server.stats().messagesSent

    // No message is sent from here on until the late tab shows the state: it can only
    // have come from the worker's snapshot.
    const late = await openTab(env.context, url)
    await expectEveryTab([late], { connection: 'live', status: 'running', percent: 40, message: 'TTS 생성 중... (시도 1/5)' })
    expect(server.stats().messagesSent).toBe(sentBefore)
    expect(env.backend.connections(taskId)).toBe(1)
    expect(env.backend.upgrades(taskId)).toBe(1)
    await expectInspector(late, { tabs: 6, sockets: 1 })

    await server.complete(taskId, { late: true })
    await expectEveryResult([...tabs, late], { late: true })

    // A tab that opens after the end still sees the final state (kept by the worker; the socket is gone).
    await expect.poll(() => env.backend.connections(taskId)).toBe(0)
    const afterEnd = await openTab(env.context, url)
    await expectEveryTab([afterEnd], { status: 'completed', percent: 100 })
    await expectEveryResult([afterEnd], { late: true })
    expect(env.backend.upgrades(taskId)).toBe(1)
    expect(await readBar(afterEnd)).toMatchObject({ alert: '' })
  })
})
