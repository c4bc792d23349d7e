/**
 * The React layer over the real tab client (per-tab broker, jsdom's WebSocket) and the
 * real reference server on port 0: what the fake client promises, the real one keeps.
 */
import { act, cleanup, configure, render, screen, waitFor } from '@testing-library/react'
import { StrictMode } from 'react'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createTabcastClient, type TabcastClient } from 'tabcast'
import { ProgressBar, TabcastProvider, useWebSocket } from 'tabcast/react'
import { createTabcastServer, type TabcastServer } from 'tabcast/server'

// A real socket and server on a shared 2-core machine can take longer than the 1 s
// default to reach a state; these waits are upper bounds, not timings.
configure({ asyncUtilTimeout: 10_000 })

let server: TabcastServer
let backendUrl: string
let client: TabcastClient
// Short, so a finished test's socket closes quickly; any linger covers StrictMode's
// synchronous unmount/remount.
const linger = 200

beforeAll(async () => {
  server = createTabcastServer({ demo: false })
  backendUrl = (await server.listen(0)).url
  client = createTabcastClient({ mode: 'per-tab' })
})

afterEach(async () => {
  cleanup()
  await waitFor(() => expect(server.stats().connections).toBe(0), { timeout: 5000 })
})

afterAll(async () => {
  await server.close()
})

describe('with the real client and server', () => {
  it('shows live progress and completion, calls onCompleted once, and opens one socket under StrictMode', async () => {
    await server.createTask({ taskId: 'react_real_1', taskName: '오디오 생성' })
    const onCompleted = vi.fn()
    render(
      <StrictMode>
        <TabcastProvider client={client}>
          <ProgressBar projectId="react_real_1" backendUrl={backendUrl} linger={linger} locale="ko" onCompleted={onCompleted} />
        </TabcastProvider>
      </StrictMode>,
    )
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('실시간 연결'))
    expect(server.stats().connectionsByTask).toEqual({ react_real_1: 1 })

    await server.progress('react_real_1', 0.5, 'TTS 생성 중... (시도 2/5)')
    await waitFor(() => expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('50'))
    expect(screen.getByText('TTS 생성 중... (시도 2/5)')).toBeTruthy()
    expect(screen.getByText('오디오 생성')).toBeTruthy()

    await server.complete('react_real_1', { audio_id: 'audio_123', duration: 120.5 })
    await waitFor(() => expect(onCompleted).toHaveBeenCalledTimes(1))
    expect(onCompleted).toHaveBeenCalledWith({ audio_id: 'audio_123', duration: 120.5 })
    expect(screen.getByRole('status').textContent).toContain('작업 완료')
    expect(server.stats().connections).toBeLessThanOrEqual(1)
  })

  it('delivers every progress message to onProgress while coalescing renders', async () => {
    await server.createTask({ taskId: 'react_real_burst' })
    const onProgress = vi.fn()
    let renders = 0
    const Probe = (): null => {
      renders++
      useWebSocket({ projectId: 'react_real_burst', backendUrl, linger, onProgress })
      return null
    }
    render(
      <TabcastProvider client={client}>
        <Probe />
        <ProgressBar projectId="react_real_burst" backendUrl={backendUrl} linger={linger} />
      </TabcastProvider>,
    )
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('Live'))
    const rendersBefore = renders
    const count = 100
    await act(async () => {
      for (let i = 1; i <= count; i++) await server.progress('react_real_burst', i / count, `step ${i}`)
    })
    await waitFor(() => expect(onProgress).toHaveBeenCalledTimes(count))
    expect(onProgress.mock.calls.map(([fraction]) => fraction as number)).toEqual(
      Array.from({ length: count }, (_, i) => (i + 1) / count),
    )
    await waitFor(() => expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('100'))
    expect(renders - rendersBefore).toBeLessThan(count / 2)
  })
})
