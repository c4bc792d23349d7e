// @vitest-environment node
/**
 * Server rendering (as in a Next.js App Router client component's SSR pass): no DOM,
 * no `window`, no `navigator`, and no tabcast client may be created.
 */
import { renderToString } from 'react-dom/server'
import { describe, expect, it, vi } from 'vitest'
import { ProgressBar, TabcastProvider, useWebSocket } from 'tabcast/react'
import { FakeClient } from './fake-client.js'

const getTabcastClient = vi.hoisted(() =>
  vi.fn(() => {
    throw new Error('the shared client must not be created during server rendering')
  }),
)
vi.mock('../../src/client/index.js', () => ({ getTabcastClient }))

describe('server rendering', () => {
  it('runs without browser globals', () => {
    expect(typeof window).toBe('undefined')
    expect(typeof document).toBe('undefined')
  })

  it('renders an idle ProgressBar in English without creating the shared client', () => {
    const html = renderToString(<ProgressBar projectId="audio_generation_12345" className="mt-4" />)
    expect(html).toContain('class="tabcast-progress mt-4"')
    expect(html).toContain('data-connection="connecting"')
    expect(html).toContain('data-status="idle"')
    expect(html).toContain('role="progressbar"')
    expect(html).toContain('aria-valuenow="0"')
    expect(html).toContain('Connecting…')
    expect(html).not.toContain('tabcast-progress__shimmer')
    expect(getTabcastClient).not.toHaveBeenCalled()
  })

  it('renders Korean on the server when asked with locale', () => {
    const html = renderToString(<ProgressBar projectId="audio_generation_12345" locale="ko" />)
    expect(html).toContain('연결 중…')
    expect(html).toContain('aria-label="작업 진행률"')
  })

  it('gives the hook the idle snapshot, without asking a provided client', () => {
    const client = new FakeClient()
    let seen: unknown
    const Probe = (): null => {
      seen = useWebSocket({ projectId: 'task_123', maxReconnectAttempts: 3, onCompleted: () => {} })
      return null
    }
    renderToString(
      <TabcastProvider client={client}>
        <Probe />
      </TabcastProvider>,
    )
    expect(seen).toMatchObject({
      projectId: 'task_123',
      isConnected: false,
      isFallback: false,
      reconnectAttempts: 0,
      maxReconnectAttempts: 3,
      status: 'idle',
      connection: 'connecting',
    })
    expect(client.getSnapshotCalls).toEqual([])
    expect(client.subscriptions).toEqual([])
    expect(getTabcastClient).not.toHaveBeenCalled()
  })
})
