/**
 * `onCompletedOnce` / `onErrorOnce` of `useWebSocket` and `<ProgressBar>`: registered with
 * the client's `once` while mounted, calling the latest callback when the broker picks
 * this tab, and removed on unmount. Which tab runs it is the broker's business
 * (tests/unit/once-hosts.test.ts, tests/e2e/once.test.ts).
 */
import { cleanup, render } from '@testing-library/react'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ProgressBar, TabcastProvider } from 'tabcast/react'
import { FakeClient, renderUseWebSocket } from './fake-client.js'

afterEach(cleanup)

const setup = renderUseWebSocket

describe('useWebSocket: once-handlers', () => {
  it('registers nothing without onCompletedOnce / onErrorOnce', () => {
    const { client } = setup({ projectId: 'task_1', onCompleted: () => {}, onError: () => {} })
    expect(client.onces).toEqual([])
  })

  it('registers one handler per option, with the task options, and calls the latest callback', () => {
    const first = vi.fn()
    const latest = vi.fn()
    const failed = vi.fn()
    const { client, rerender } = setup({ projectId: 'task_1', backendUrl: 'api.example.com:443', onCompletedOnce: first, onErrorOnce: failed })
    const active = client.onces.filter((entry) => entry.active)
    expect(active.map((entry) => [entry.projectId, entry.event])).toEqual([
      ['task_1', 'completed'],
      ['task_1', 'failed'],
    ])
    expect(active[0]?.options).toMatchObject({ backendUrl: 'api.example.com:443' })
    // A new function on every render does not register again.
    rerender({ projectId: 'task_1', backendUrl: 'api.example.com:443', onCompletedOnce: latest, onErrorOnce: failed })
    expect(client.onces.filter((entry) => entry.active)).toHaveLength(2)
    active[0]?.handler({ url: '/a.mp3' })
    active[1]?.handler('boom')
    expect(first).not.toHaveBeenCalled()
    expect(latest).toHaveBeenCalledWith({ url: '/a.mp3' })
    expect(failed).toHaveBeenCalledWith('boom')
  })

  it("carries the hook's auth, so a task followed only for its once-handler connects with a token", async () => {
    const auth = vi.fn(() => 'first-token')
    const { client, rerender } = setup({ projectId: 'task_1', onCompletedOnce: () => {}, auth })
    const entry = client.onces.find((candidate) => candidate.active)
    const given = entry?.options?.auth
    expect(typeof given).toBe('function')
    const context = { projectId: 'task_1', backendUrl: 'localhost:8000', reason: 'connect' as const }
    expect(await given?.(context)).toBe('first-token')
    // The latest auth is asked, without registering again.
    rerender({ projectId: 'task_1', onCompletedOnce: () => {}, auth: () => 'second-token' })
    expect(client.onces.filter((candidate) => candidate.active)).toEqual([entry])
    expect(await given?.(context)).toBe('second-token')
  })

  it('removes the handler on unmount and when the task changes', () => {
    const { client, rerender, unmount } = setup({ projectId: 'task_1', onCompletedOnce: () => {} })
    rerender({ projectId: 'task_2', onCompletedOnce: () => {} })
    expect(client.onces.map((entry) => [entry.projectId, entry.active])).toEqual([
      ['task_1', false],
      ['task_2', true],
    ])
    unmount()
    expect(client.onces.every((entry) => !entry.active)).toBe(true)
  })

  it('leaves one handler registered under StrictMode', () => {
    const { client } = setup({ projectId: 'task_1', onCompletedOnce: () => {} }, { strict: true })
    expect(client.onces.filter((entry) => entry.active)).toHaveLength(1)
  })

  it('a callback that throws is reported, not thrown into the client', () => {
    const reported = vi.fn()
    const original = globalThis.reportError
    globalThis.reportError = reported
    try {
      const { client } = setup({ projectId: 'task_1', onCompletedOnce: () => { throw new Error('handler bug') } })
      expect(() => client.onces[0]?.handler({})).not.toThrow()
      expect(reported).toHaveBeenCalledWith(expect.objectContaining({ message: 'handler bug' }))
    } finally {
      globalThis.reportError = original
    }
  })
})

describe('<ProgressBar>: once-handlers', () => {
  it('passes onCompletedOnce and onErrorOnce to the hook', () => {
    const client = new FakeClient()
    const done = vi.fn()
    render(
      <TabcastProvider client={client}>
        <ProgressBar projectId="task_9" onCompletedOnce={done} onErrorOnce={() => {}} />
      </TabcastProvider>,
    )
    expect(client.onces.map((entry) => entry.event)).toEqual(['completed', 'failed'])
    client.onces[0]?.handler({ ok: true })
    expect(done).toHaveBeenCalledWith({ ok: true })
  })
})
