import { act, cleanup, render } from '@testing-library/react'
import { StrictMode } from 'react'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { DEFAULT_OPTIONS, type ServerMessage } from 'tabcast'
import { TabcastProvider, useWebSocket, type UseWebSocketOptions, type UseWebSocketResult } from 'tabcast/react'
import { FakeClient, renderUseWebSocket } from './fake-client.js'

afterEach(cleanup)

const setup = renderUseWebSocket

const progress = (value: number, message?: string): ServerMessage =>
  message === undefined ? { type: 'progress', progress: value } : { type: 'progress', progress: value, message }

describe('useWebSocket: options', () => {
  it("passes the guide's defaults to the client", () => {
    const { client } = setup({ projectId: 'task_123' })
    expect(client.active()).toHaveLength(1)
    const [subscription] = client.active()
    expect(subscription?.projectId).toBe('task_123')
    expect(subscription?.options).toMatchObject({
      backendUrl: 'localhost:8000',
      autoReconnect: true,
      maxReconnectAttempts: 5,
      pollingFallback: true,
      pollingInterval: 2000,
    })
    // Nothing takes messages: the broker is asked for snapshots only.
    expect(subscription?.options).toEqual({ ...DEFAULT_OPTIONS, delivery: 'snapshots' })
    expect(subscription?.listener.message).toBeUndefined()
  })

  it('passes given option values through, and no callbacks', () => {
    const { client } = setup({
      projectId: 'audio_generation_12345',
      backendUrl: 'https://api.example.com/tasks',
      autoReconnect: false,
      maxReconnectAttempts: 3,
      pollingFallback: false,
      pollingInterval: 500,
      pingInterval: 15_000,
      linger: 0,
      onCompleted: () => {},
      onProgress: () => {},
    })
    const options = client.active()[0]?.options
    expect(options).toEqual({
      ...DEFAULT_OPTIONS,
      backendUrl: 'https://api.example.com/tasks',
      autoReconnect: false,
      maxReconnectAttempts: 3,
      pollingFallback: false,
      pollingInterval: 500,
      pingInterval: 15_000,
      linger: 0,
      delivery: 'messages',
    })
    expect(options).not.toHaveProperty('onCompleted')
    expect(options).not.toHaveProperty('onProgress')
  })
})

describe('useWebSocket: delivery', () => {
  it.each([
    ['onMessage', { onMessage: () => {} }],
    ['onProgress', { onProgress: () => {} }],
  ])('asks for every message when %s is given, for snapshots only otherwise', (_name, callbacks) => {
    const { client, rerender } = setup({ projectId: 'task_1', onCompleted: () => {}, onError: () => {} })
    expect(client.active()[0]?.options?.delivery).toBe('snapshots')
    rerender({ projectId: 'task_1', ...callbacks })
    expect(client.active()).toHaveLength(1)
    expect(client.active()[0]?.options?.delivery).toBe('messages')
    expect(client.active()[0]?.listener.message).toBeTypeOf('function')
    rerender({ projectId: 'task_1' })
    expect(client.active()[0]?.options?.delivery).toBe('snapshots')
  })

  it('a new callback of the same kind does not resubscribe', () => {
    const { client, rerender } = setup({ projectId: 'task_1', onMessage: () => {} })
    const first = client.active()[0]
    rerender({ projectId: 'task_1', onMessage: () => {} })
    expect(client.active()[0]).toBe(first)
  })
})

describe('useWebSocket: return value', () => {
  it("returns the guide's { isConnected, isFallback, reconnectAttempts } and the snapshot", () => {
    const { client, result } = setup({ projectId: 'task_123', maxReconnectAttempts: 7 })
    expect(result.current).toMatchObject({
      isConnected: false,
      isFallback: false,
      reconnectAttempts: 0,
      maxReconnectAttempts: 7,
      status: 'idle',
      progress: 0,
      message: null,
      result: null,
      error: null,
      connection: 'connecting',
      connectionError: null,
    })
    expect(typeof result.current.send).toBe('function')

    act(() => {
      client.update('task_123', { connection: 'live', status: 'running', progress: 0.5, message: 'TTS 생성 중...' })
    })
    expect(result.current).toMatchObject({
      isConnected: true,
      isFallback: false,
      status: 'running',
      progress: 0.5,
      message: 'TTS 생성 중...',
      connection: 'live',
    })

    act(() => {
      client.update('task_123', { connection: 'reconnecting', reconnectAttempts: 2 })
    })
    expect(result.current).toMatchObject({ isConnected: false, isFallback: false, reconnectAttempts: 2 })

    act(() => {
      client.update('task_123', { connection: 'polling', reconnectAttempts: 7, connectionError: 'socket refused' })
    })
    expect(result.current).toMatchObject({ isConnected: false, isFallback: true, connectionError: 'socket refused' })
  })

  it('keeps the same result object until the snapshot changes', () => {
    const { client, result, rerender } = setup({ projectId: 'task_123' })
    const first = result.current
    rerender({ projectId: 'task_123', onProgress: () => {} })
    expect(result.current).toBe(first)
    act(() => {
      client.update('task_123', { progress: 0.1 })
    })
    expect(result.current).not.toBe(first)
  })

  it("send() goes to the client with the task's id and options", async () => {
    const { client, result } = setup({ projectId: 'task_123', backendUrl: 'localhost:9000' })
    await act(() => result.current.send({ type: 'cancel' }))
    expect(client.sent).toEqual([
      { projectId: 'task_123', message: { type: 'cancel' }, options: { ...DEFAULT_OPTIONS, backendUrl: 'localhost:9000' } },
    ])
  })
})

describe('useWebSocket: message callbacks', () => {
  it('gives onMessage every message in order and onProgress every progress message', () => {
    const onMessage = vi.fn()
    const onProgress = vi.fn()
    const { client } = setup({ projectId: 'task_123', onMessage, onProgress })
    const messages: ServerMessage[] = [
      { type: 'connected', project_id: 'task_123' },
      progress(0.1, 'step 1'),
      { type: 'pong' },
      progress(0.5, 'TTS 생성 중... (시도 2/5)'),
      progress(0.5, 'TTS 생성 중... (시도 2/5)'),
      progress(0.75),
    ]
    act(() => {
      for (const message of messages) client.emit('task_123', message)
    })
    expect(onMessage.mock.calls.map(([message]) => message as ServerMessage)).toEqual(messages)
    expect(onProgress.mock.calls).toEqual([
      [0.1, 'step 1'],
      [0.5, 'TTS 생성 중... (시도 2/5)'],
      [0.5, 'TTS 생성 중... (시도 2/5)'],
      [0.75, ''],
    ])
  })

  it('reports the latest known progress for a progress message that carries none', () => {
    const onProgress = vi.fn()
    const { client } = setup({ projectId: 'task_123', onProgress })
    act(() => {
      client.update('task_123', { status: 'running', progress: 0.4 })
      client.emit('task_123', { type: 'progress', message: 'still working' })
    })
    expect(onProgress).toHaveBeenCalledExactlyOnceWith(0.4, 'still working')
  })

  it('never resubscribes for new inline callbacks or an equal options object, and calls the latest callbacks', () => {
    const first = vi.fn()
    const second = vi.fn()
    const { client, rerender } = setup({ projectId: 'task_123', pollingInterval: 1000, onProgress: (p) => first(p) })
    for (let i = 0; i < 3; i++) {
      rerender({ projectId: 'task_123', pollingInterval: 1000, onProgress: (p) => second(p) })
    }
    expect(client.subscriptions).toHaveLength(1)
    expect(client.active()).toHaveLength(1)
    act(() => {
      client.emit('task_123', progress(0.3))
    })
    expect(first).not.toHaveBeenCalled()
    expect(second).toHaveBeenCalledExactlyOnceWith(0.3)
  })

  it('resubscribes when any option of DEFAULT_OPTIONS changes, and passes its value on', () => {
    for (const [key, value] of Object.entries(DEFAULT_OPTIONS)) {
      // A valid other value for each string option (an invalid one would fall back to the default).
      const strings: Record<string, string> = { backendUrl: 'localhost:9000', authScope: 'user-2', credentials: 'include' }
      const changed = typeof value === 'boolean' ? !value : typeof value === 'number' ? (value === 0 ? 0.5 : value + 1) : strings[key]
      const { client, rerender, unmount } = setup({ projectId: 'task_123' })
      rerender({ projectId: 'task_123', [key]: changed })
      expect(client.subscriptions, key).toHaveLength(2)
      expect(client.active()[0]?.options, key).toMatchObject({ [key]: changed })
      unmount()
    }
  })

  it('auth passes through to the client but not into the key: a new inline function does not resubscribe, and the latest one answers', async () => {
    const first = vi.fn(() => 'token-1')
    const { client, rerender } = setup({ projectId: 'task_123', auth: first })
    const auth = client.active()[0]?.options?.auth
    expect(typeof auth).toBe('function')
    const second = vi.fn(() => 'token-2')
    rerender({ projectId: 'task_123', auth: second })
    expect(client.subscriptions).toHaveLength(1)
    const context = { projectId: 'task_123', backendUrl: 'localhost:8000', reason: 'connect' as const }
    expect(await auth?.(context)).toBe('token-2')
    expect(second).toHaveBeenCalledWith(context)
    expect(first).not.toHaveBeenCalled()
    // Without an auth function nothing of it crosses.
    rerender({ projectId: 'task_123' })
    expect(client.active()[0]?.options?.auth).toBeUndefined()
  })

  it('resubscribes when an option value changes', () => {
    const { client, rerender } = setup({ projectId: 'task_123' })
    rerender({ projectId: 'task_123', pollingInterval: 5000 })
    expect(client.subscriptions).toHaveLength(2)
    expect(client.active()).toHaveLength(1)
    expect(client.active()[0]?.options).toMatchObject({ pollingInterval: 5000 })
  })
})

describe('useWebSocket: onCompleted / onError', () => {
  const result = { audio_id: 'audio_123', file_path: '/media/audio/audio_123.mp3', duration: 120.5 }

  it('calls onCompleted once with the result, however often the snapshot changes afterwards', () => {
    const onCompleted = vi.fn()
    const onError = vi.fn()
    const { client, rerender } = setup({ projectId: 'task_123', onCompleted, onError })
    act(() => {
      client.update('task_123', { status: 'running', progress: 0.9 })
    })
    expect(onCompleted).not.toHaveBeenCalled()
    act(() => {
      client.update('task_123', { status: 'completed', progress: 1, result, connection: 'closed' })
    })
    act(() => {
      client.update('task_123', { lastMessageAt: 123 })
    })
    rerender({ projectId: 'task_123', onCompleted, onError })
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith(result)
    expect(onError).not.toHaveBeenCalled()
  })

  it('passes {} when the task completed without a result', () => {
    const onCompleted = vi.fn()
    const { client } = setup({ projectId: 'task_123', onCompleted })
    act(() => {
      client.update('task_123', { status: 'completed', progress: 1 })
    })
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith({})
  })

  it('calls onError once with the task error, not for connection problems', () => {
    const onError = vi.fn()
    const onCompleted = vi.fn()
    const { client } = setup({ projectId: 'task_123', onError, onCompleted })
    act(() => {
      client.update('task_123', { status: 'running', connection: 'reconnecting', connectionError: 'socket closed (1006)' })
    })
    expect(onError).not.toHaveBeenCalled()
    act(() => {
      client.update('task_123', { status: 'failed', error: 'ElevenLabs API 호출 실패' })
    })
    act(() => {
      client.update('task_123', { connection: 'closed' })
    })
    expect(onError).toHaveBeenCalledExactlyOnceWith('ElevenLabs API 호출 실패')
    expect(onCompleted).not.toHaveBeenCalled()
  })

  it('gives onError a text even when the failure carries none', () => {
    const onError = vi.fn()
    const { client } = setup({ projectId: 'task_123', onError })
    act(() => {
      client.update('task_123', { status: 'failed' })
    })
    expect(onError).toHaveBeenCalledExactlyOnceWith('Task failed')
  })

  it('tells a hook that joins after the task finished, once', () => {
    const client = new FakeClient()
    client.update('task_done', { status: 'completed', progress: 1, result, connection: 'closed' })
    const onCompleted = vi.fn()
    const Probe = (): null => {
      useWebSocket({ projectId: 'task_done', onCompleted })
      return null
    }
    const view = render(
      <TabcastProvider client={client}>
        <Probe />
      </TabcastProvider>,
    )
    view.rerender(
      <TabcastProvider client={client}>
        <Probe />
      </TabcastProvider>,
    )
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith(result)
  })

  it('fires every callback once under StrictMode, with one active subscription', () => {
    const onCompleted = vi.fn()
    const onProgress = vi.fn()
    const onMessage = vi.fn()
    const { client } = setup({ projectId: 'task_123', onCompleted, onProgress, onMessage }, { strict: true })
    expect(client.active()).toHaveLength(1)
    act(() => {
      client.emit('task_123', progress(0.5, 'half'))
      client.update('task_123', { status: 'running', progress: 0.5 })
    })
    act(() => {
      client.emit('task_123', { type: 'completed', result })
      client.update('task_123', { status: 'completed', progress: 1, result })
    })
    expect(onProgress).toHaveBeenCalledExactlyOnceWith(0.5, 'half')
    expect(onMessage).toHaveBeenCalledTimes(2)
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith(result)
  })

  it('fires once under StrictMode for a task that finished before mounting', () => {
    const client = new FakeClient()
    client.update('task_failed', { status: 'failed', error: 'boom' })
    const onError = vi.fn()
    const Probe = (): null => {
      useWebSocket({ projectId: 'task_failed', onError: (error) => onError(error) })
      return null
    }
    render(
      <StrictMode>
        <TabcastProvider client={client}>
          <Probe />
        </TabcastProvider>
      </StrictMode>,
    )
    expect(onError).toHaveBeenCalledExactlyOnceWith('boom')
    expect(client.active()).toHaveLength(1)
  })
})

describe('useWebSocket: switching projectId', () => {
  it('unsubscribes the old task, subscribes the new one, and reports only the new one', () => {
    const onCompleted = vi.fn()
    const onProgress = vi.fn()
    const { client, result, rerender } = setup({ projectId: 'task_a', onCompleted, onProgress })
    act(() => {
      client.update('task_a', { status: 'running', progress: 0.3 })
    })
    rerender({ projectId: 'task_b', onCompleted, onProgress })
    expect(client.active().map((s) => s.projectId)).toEqual(['task_b'])
    expect(client.subscriptions.map((s) => s.projectId)).toEqual(['task_a', 'task_b'])
    expect(result.current).toMatchObject({ projectId: 'task_b', progress: 0, status: 'idle' })

    act(() => {
      client.emit('task_a', progress(0.9))
      client.update('task_a', { status: 'completed', result: { from: 'a' } })
    })
    expect(onProgress).not.toHaveBeenCalled()
    expect(onCompleted).not.toHaveBeenCalled()
    expect(result.current.projectId).toBe('task_b')

    act(() => {
      client.emit('task_b', progress(0.2, 'b'))
      client.update('task_b', { status: 'completed', progress: 1, result: { from: 'b' } })
    })
    expect(onProgress).toHaveBeenCalledExactlyOnceWith(0.2, 'b')
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith({ from: 'b' })
  })

  it('reports each task once per hook instance, also when switching back', () => {
    const onCompleted = vi.fn()
    const { client, rerender } = setup({ projectId: 'task_a', onCompleted })
    act(() => {
      client.update('task_a', { status: 'completed', result: { from: 'a' } })
    })
    rerender({ projectId: 'task_b', onCompleted })
    rerender({ projectId: 'task_a', onCompleted })
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith({ from: 'a' })
  })

  it('treats the same id on another backend as another task', () => {
    const onCompleted = vi.fn()
    const { client, rerender } = setup({ projectId: 'task_a', backendUrl: 'one:8000', onCompleted })
    act(() => {
      client.update('task_a', { status: 'completed', result: { n: 1 } })
    })
    rerender({ projectId: 'task_a', backendUrl: 'two:8000', onCompleted })
    // The fake keys snapshots by id only, so the second backend sees the same completed snapshot.
    expect(onCompleted).toHaveBeenCalledTimes(2)
    expect(client.active()[0]?.options?.backendUrl).toBe('two:8000')
  })
})

describe('useWebSocket: types', () => {
  it('accepts handlers written for narrower types, as the guide did', () => {
    interface AudioResult {
      audio_id: string
      duration: number
    }
    const seen: AudioResult[] = []
    const options: UseWebSocketOptions = {
      projectId: 'task_123',
      onCompleted: (done: AudioResult) => {
        seen.push(done)
      },
    }
    const { client } = setup(options)
    act(() => {
      client.update('task_123', { status: 'completed', result: { audio_id: 'a1', duration: 1 } })
    })
    expect(seen).toEqual([{ audio_id: 'a1', duration: 1 }])
    const returned: Pick<UseWebSocketResult, 'isConnected' | 'isFallback' | 'reconnectAttempts'> = {
      isConnected: false,
      isFallback: false,
      reconnectAttempts: 0,
    }
    expect(returned.reconnectAttempts).toBe(0)
  })
})
