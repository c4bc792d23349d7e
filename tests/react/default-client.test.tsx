/**
 * Without a TabcastProvider the hook uses the page's shared client, created on the
 * first subscription (after commit), never while rendering.
 */
import { act, cleanup, render, screen } from '@testing-library/react'
import { afterEach, expect, it, vi } from 'vitest'
import { ProgressBar, useTabcastClient } from 'tabcast/react'
import { FakeClient } from './fake-client.js'

const shared = vi.hoisted(() => ({ client: null as FakeClient | null }))
const getTabcastClient = vi.hoisted(() =>
  vi.fn(() => {
    if (!shared.client) throw new Error('test set-up: no fake client')
    return shared.client
  }),
)
vi.mock('../../src/client/index.js', () => ({ getTabcastClient }))

afterEach(cleanup)

// First in this file: it needs the shared client not to exist yet.
it('before the shared client exists, two spellings of one backend get one placeholder snapshot', () => {
  const seen: unknown[] = []
  const Probe = (): null => {
    const client = useTabcastClient()
    seen.push(client.getSnapshot('task_a', { backendUrl: 'localhost:8000' }), client.getSnapshot('task_a', { backendUrl: 'http://localhost:8000' }))
    return null
  }
  render(<Probe />)
  expect(getTabcastClient).not.toHaveBeenCalled()
  expect(seen[0]).toBe(seen[1])
})

it('creates the shared client lazily, on subscription, and follows the task through it', () => {
  const client = new FakeClient()
  shared.client = client
  // Rendered after the bar, so it sees whether the bar's render created the client.
  const callsDuringRender: number[] = []
  const Probe = (): null => {
    callsDuringRender.push(getTabcastClient.mock.calls.length)
    useTabcastClient()
    return null
  }
  const errors = vi.spyOn(console, 'error')

  render(
    <>
      <ProgressBar projectId="test_task_001" />
      <Probe />
    </>,
  )
  expect(callsDuringRender[0]).toBe(0)
  expect(getTabcastClient).toHaveBeenCalledTimes(1)
  expect(client.active().map((s) => s.projectId)).toEqual(['test_task_001'])

  act(() => {
    client.update('test_task_001', { connection: 'live', status: 'running', progress: 0.25 })
  })
  expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('25')
  expect(screen.getByRole('status').textContent).toBe('Live')

  // A second bar reuses the same client.
  render(<ProgressBar projectId="audio_generation_12345" />)
  expect(getTabcastClient).toHaveBeenCalledTimes(1)
  expect(client.active()).toHaveLength(2)
  // React warns when getSnapshot is not stable ("should be cached"); the idle
  // placeholders before the client exists must be.
  expect(errors).not.toHaveBeenCalled()
})
