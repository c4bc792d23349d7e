/**
 * The tab's side of once-handlers: how a tab answers run requests (in time, late, with
 * replaced handlers, with none) and "settled" notices, and what it remembers as done.
 */
import { describe, expect, it, vi } from 'vitest'
import type { OnceOutcome } from 'tabcast'
import { MAX_KNOWN_DONE, OnceHandlers, type LocalOnce } from '../../src/client/once-handlers.js'
import type { OnceRunRequest } from '../../src/core/once-coordinator.js'
import { taskKey } from '../../src/task-key.js'

const TASK = 'audio_1'
const KEY = taskKey(TASK, {})
const NOW = 1_700_000_000_000

function handlers(now = NOW): { tab: OnceHandlers; reported: unknown[] } {
  const reported: unknown[] = []
  return { tab: new OnceHandlers('tab-a', () => now, (error) => reported.push(error)), reported }
}

function registration(id: number, handler: (value: never) => void, extra: Partial<LocalOnce> = {}): LocalOnce {
  return { id, projectId: TASK, event: 'completed', options: {}, ackTimeout: undefined, handler, onSettled: undefined, key: KEY, ...extra }
}

function run(regIds: number[], runBy = NOW + 1000): OnceRunRequest {
  return { id: 1, task: KEY, regIds, event: 'completed', value: { url: '/a.mp3' }, runBy }
}

describe('OnceHandlers: run requests', () => {
  it('runs the named handlers with the value, once, and tells them it ran here', () => {
    const { tab } = handlers()
    const first = vi.fn()
    const settled: OnceOutcome[] = []
    tab.add(registration(1, first, { onSettled: (outcome) => settled.push(outcome) }))
    expect(tab.run(run([1]))).toBe('ran')
    expect(first).toHaveBeenCalledWith({ url: '/a.mp3' })
    expect(settled).toEqual([{ event: 'completed', ranHere: true, ranIn: 'tab-a' }])
    expect(tab.run(run([1]))).toBe('no-handler')
    expect(first).toHaveBeenCalledTimes(1)
    expect(tab.doneOutcome(KEY)).toEqual({ event: 'completed', ranHere: true, ranIn: 'tab-a' })
  })

  it('does not run a request read after its runBy: another tab may have run it', () => {
    const { tab } = handlers(NOW + 1001)
    const handler = vi.fn()
    tab.add(registration(1, handler))
    expect(tab.run(run([1], NOW + 1000))).toBe('late')
    expect(handler).not.toHaveBeenCalled()
    expect(tab.size).toBe(1)
  })

  it('runs the current handlers of the task when the named ones were replaced (a remount)', () => {
    const { tab } = handlers()
    const replacement = vi.fn()
    tab.add(registration(2, replacement))
    tab.add(registration(3, vi.fn(), { event: 'failed' }))
    expect(tab.run(run([1]))).toBe('ran')
    expect(replacement).toHaveBeenCalledTimes(1)
    expect(tab.all().map((entry) => entry.id)).toEqual([3])
  })

  it('answers no-handler when it has none for the task and event', () => {
    const { tab } = handlers()
    tab.add(registration(1, vi.fn(), { event: 'failed' }))
    expect(tab.run(run([1]))).toBe('no-handler')
  })

  it('a handler that throws is reported; the others run and the run counts', () => {
    const { tab, reported } = handlers()
    const second = vi.fn()
    tab.add(registration(1, () => {
      throw new Error('handler bug')
    }))
    tab.add(registration(2, second))
    expect(tab.run(run([1, 2]))).toBe('ran')
    expect(second).toHaveBeenCalled()
    expect(reported).toEqual([expect.objectContaining({ message: 'handler bug' })])
  })
})

describe('OnceHandlers: settled notices and memory', () => {
  it('drops the named handlers and tells them where it ran', () => {
    const { tab } = handlers()
    const settled: OnceOutcome[] = []
    const handler = vi.fn()
    tab.add(registration(1, handler, { onSettled: (outcome) => settled.push(outcome) }))
    tab.settled({ task: KEY, regIds: [1], event: 'completed', ranIn: 'tab-b' })
    expect(settled).toEqual([{ event: 'completed', ranHere: false, ranIn: 'tab-b' }])
    expect(tab.size).toBe(0)
    expect(handler).not.toHaveBeenCalled()
    expect(tab.knownDone().map(([key]) => key)).toEqual([KEY])
  })

  it('does not remember a task whose handlers were dropped because it ended with the other event', () => {
    const { tab } = handlers()
    tab.add(registration(1, vi.fn()))
    tab.settled({ task: KEY, regIds: [1], event: 'failed', ranIn: null })
    expect(tab.knownDone()).toEqual([])
  })

  it(`remembers at most ${MAX_KNOWN_DONE} done tasks, the newest`, () => {
    const { tab } = handlers()
    for (let i = 0; i < MAX_KNOWN_DONE + 10; i++) {
      const key = taskKey(`task_${i}`, {})
      tab.add(registration(i, vi.fn(), { projectId: `task_${i}`, key }))
      tab.registeredDone(i, { event: 'completed', ranIn: 'tab-b' })
    }
    expect(tab.knownDone()).toHaveLength(MAX_KNOWN_DONE)
    expect(tab.doneOutcome(taskKey('task_0', {}))).toBeNull()
    expect(tab.doneOutcome(taskKey(`task_${MAX_KNOWN_DONE + 9}`, {}))).toEqual({ event: 'completed', ranHere: false, ranIn: 'tab-b' })
  })
})
