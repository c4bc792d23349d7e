import { act, cleanup, render, screen } from '@testing-library/react'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { StrictMode } from 'react'
import { renderToString } from 'react-dom/server'
import { hydrateRoot } from 'react-dom/client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { DEFAULT_OPTIONS, type ConnectionState, type TaskStatus } from 'tabcast'
import {
  englishLabels,
  koreanLabels,
  ProgressBar,
  progressBarLabels,
  TabcastProvider,
  type ProgressBarLabels,
  type ProgressBarProps,
} from 'tabcast/react'
import 'tabcast/progress-bar.css'
import { FakeClient } from './fake-client.js'

// Read from disk: Vitest does not process CSS, so importing it yields nothing.
const css = readFileSync(join(import.meta.dirname, '../../src/react/progress-bar.css'), 'utf8')

let client: FakeClient

beforeEach(() => {
  client = new FakeClient()
})

afterEach(() => {
  cleanup()
  vi.restoreAllMocks()
  setBrowserLanguage(null)
  setReducedMotion(null)
})

function renderBar(props: Partial<ProgressBarProps> = {}) {
  const all: ProgressBarProps = { projectId: 'audio_generation_12345', ...props }
  const view = render(
    <TabcastProvider client={client}>
      <ProgressBar {...all} />
    </TabcastProvider>,
  )
  const root = view.container.firstElementChild as HTMLElement
  return {
    ...view,
    root,
    bar: () => screen.getByRole('progressbar'),
    live: () => screen.getByRole('status'),
    alert: () => screen.getByRole('alert'),
    rerenderBar: (next: Partial<ProgressBarProps>) =>
      view.rerender(
        <TabcastProvider client={client}>
          <ProgressBar {...all} {...next} />
        </TabcastProvider>,
      ),
  }
}

const push = (patch: Parameters<FakeClient['update']>[1]) =>
  act(() => {
    client.update('audio_generation_12345', patch)
  })

/** Overrides `navigator.language` (null restores jsdom's own, `en-US`). */
function setBrowserLanguage(language: string | null): void {
  if (language === null) {
    Reflect.deleteProperty(window.navigator, 'language')
    return
  }
  Object.defineProperty(window.navigator, 'language', { configurable: true, get: () => language })
}

type MediaListener = (event: MediaQueryListEvent) => void
let motionListeners: MediaListener[] = []

/** Installs a `matchMedia` that reports `prefers-reduced-motion: reduce` (null removes it). */
function setReducedMotion(reduce: boolean | null): void {
  if (reduce === null) {
    Reflect.deleteProperty(window, 'matchMedia')
    motionListeners = []
    return
  }
  const query = '(prefers-reduced-motion: reduce)'
  const list = {
    matches: false,
    media: query,
    addEventListener: (_type: string, listener: MediaListener) => motionListeners.push(listener),
    removeEventListener: (_type: string, listener: MediaListener) => {
      motionListeners = motionListeners.filter((l) => l !== listener)
    },
  }
  list.matches = reduce
  Object.defineProperty(window, 'matchMedia', {
    configurable: true,
    writable: true,
    value: (media: string) => ({ ...list, matches: media === query ? list.matches : false }),
  })
  // Later calls see the new value; listeners are told about the change.
  setReducedMotion.change = (next: boolean) => {
    list.matches = next
    for (const listener of motionListeners) listener({ matches: next, media: query } as MediaQueryListEvent)
  }
}
setReducedMotion.change = (_next: boolean): void => {
  throw new Error('setReducedMotion(true|false) first')
}

describe('ProgressBar: props and the client', () => {
  it("follows the task with the guide's defaults", () => {
    renderBar()
    const [subscription] = client.active()
    expect(subscription?.projectId).toBe('audio_generation_12345')
    // The bar only draws: snapshots, no messages.
    expect(subscription?.options).toEqual({ ...DEFAULT_OPTIONS, delivery: 'snapshots' })
    expect(subscription?.listener.message).toBeUndefined()
    expect(subscription?.options?.backendUrl).toBe('localhost:8000')
  })

  it('passes backendUrl and the other task options', () => {
    renderBar({ backendUrl: 'api.example.com:9000', maxReconnectAttempts: 2, pollingInterval: 750, linger: 0 })
    expect(client.active()[0]?.options).toEqual({
      ...DEFAULT_OPTIONS,
      backendUrl: 'api.example.com:9000',
      maxReconnectAttempts: 2,
      pollingInterval: 750,
      linger: 0,
      delivery: 'snapshots',
    })
  })

  it('adds className to the stable root class, and shows the task name', () => {
    const { root } = renderBar({ className: 'mt-4 my-bar' })
    expect(root.className).toBe('tabcast-progress mt-4 my-bar')
    expect(root.querySelector('.tabcast-progress__title')?.textContent).toBe('Progress')
    push({ taskName: '오디오 생성', status: 'running' })
    expect(root.querySelector('.tabcast-progress__title')?.textContent).toBe('오디오 생성')
  })

  it('calls onCompleted and onError once each', () => {
    const onCompleted = vi.fn()
    const onError = vi.fn()
    renderBar({ onCompleted, onError })
    push({ status: 'completed', progress: 1, result: { audio_id: 'audio_123' } })
    push({ connection: 'closed' })
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith({ audio_id: 'audio_123' })
    expect(onError).not.toHaveBeenCalled()
  })

  it('does not resubscribe when re-rendered with new inline callbacks and labels', () => {
    const { rerenderBar } = renderBar({ onCompleted: () => {}, labels: { live: 'On' } })
    rerenderBar({ onCompleted: () => {}, labels: { live: 'On' } })
    rerenderBar({ onCompleted: () => {}, labels: { live: 'On air' } })
    expect(client.subscriptions).toHaveLength(1)
  })

  it('switches task when projectId changes', () => {
    const { rerenderBar, bar } = renderBar()
    push({ status: 'running', progress: 0.6 })
    rerenderBar({ projectId: 'test_task_001' })
    expect(client.active().map((s) => s.projectId)).toEqual(['test_task_001'])
    expect(bar().getAttribute('aria-valuenow')).toBe('0')
  })
})

describe('ProgressBar: accessibility', () => {
  it('exposes a progressbar with min, max, whole-percent value and the message as value text', () => {
    const { bar } = renderBar()
    expect(bar().getAttribute('aria-valuemin')).toBe('0')
    expect(bar().getAttribute('aria-valuemax')).toBe('100')
    expect(bar().getAttribute('aria-valuenow')).toBe('0')
    expect(bar().getAttribute('aria-valuetext')).toBe('0%')
    expect(bar().getAttribute('aria-label')).toBe('Task progress')

    push({ status: 'running', progress: 0.5, message: 'TTS 생성 중... (시도 2/5)' })
    expect(bar().getAttribute('aria-valuenow')).toBe('50')
    expect(bar().getAttribute('aria-valuetext')).toBe('50% — TTS 생성 중... (시도 2/5)')
    expect(screen.getByText('TTS 생성 중... (시도 2/5)').className).toBe('tabcast-progress__message')

    push({ status: 'completed', progress: 1 })
    expect(bar().getAttribute('aria-valuetext')).toBe('100% — Completed')
    push({ status: 'failed' })
    expect(bar().getAttribute('aria-valuetext')).toBe('100% — Task failed')
  })

  it.each([
    [0.29, 'running', '29'],
    [0.426, 'running', '42'],
    [0.999, 'running', '99'],
    [1, 'running', '100'],
    [0.97, 'completed', '100'],
  ] as const)('shows progress %s (%s) as %s %%', (progress, status, expected) => {
    const { bar, root } = renderBar()
    push({ status, progress })
    expect(bar().getAttribute('aria-valuenow')).toBe(expected)
    expect(root.querySelector('.tabcast-progress__percent')?.textContent).toBe(`${expected}%`)
    expect((root.querySelector('.tabcast-progress__fill') as HTMLElement).style.width).toBe(`${expected}%`)
  })

  it('announces connection state and completion politely', () => {
    const { live } = renderBar()
    expect(live().getAttribute('aria-live')).toBe('polite')
    expect(live().textContent).toBe('Connecting…')
    push({ connection: 'live', status: 'running' })
    expect(live().textContent).toBe('Live')
    push({ status: 'completed', progress: 1, connection: 'closed' })
    expect(live().textContent).toContain('Completed')
    expect(live().querySelector('.tabcast-progress__completed')?.textContent).toBe('Completed')
  })

  it("shows a finished task's closed socket as finished, and an unfinished task's as disconnected", () => {
    const { live, root } = renderBar()
    push({ status: 'completed', progress: 1, connection: 'closed' })
    expect(live().textContent).toBe('Completed')
    expect(root.querySelector('.tabcast-progress__connection')).toBeNull()
    push({ status: 'failed', error: 'ElevenLabs API 호출 실패', connection: 'closed' })
    expect(live().textContent).toBe('')
    // Still finished, but the socket is open (a server that keeps it): that is worth showing.
    push({ connection: 'live' })
    expect(live().textContent).toBe('Live')
    push({ status: 'running', progress: 0.4, error: null, connection: 'closed' })
    expect(live().textContent).toBe('Disconnected')
  })

  it('puts the task error in role="alert", and a connection problem apart from it', () => {
    const { alert, root } = renderBar()
    expect(alert().textContent).toBe('')
    push({ status: 'running', connection: 'reconnecting', reconnectAttempts: 1, connectionError: 'socket closed (1006)' })
    expect(alert().textContent).toBe('')
    expect(root.querySelector('.tabcast-progress__notice')?.textContent).toBe('Connection problem: socket closed (1006)')
    push({ status: 'failed', error: 'ElevenLabs API 호출 실패', connectionError: null })
    expect(alert().textContent).toBe('Task failed: ElevenLabs API 호출 실패')
    expect(root.querySelector('.tabcast-progress__notice')).toBeNull()
  })
})

describe('ProgressBar: styling hooks', () => {
  const connections: ConnectionState[] = ['connecting', 'live', 'reconnecting', 'polling', 'closed']
  const statuses: TaskStatus[] = ['idle', 'running', 'completed', 'failed']

  it('carries data-connection and data-status on the root', () => {
    const { root } = renderBar()
    expect(root.dataset['connection']).toBe('connecting')
    expect(root.dataset['status']).toBe('idle')
    for (const connection of connections) {
      push({ connection })
      expect(root.getAttribute('data-connection')).toBe(connection)
    }
    for (const status of statuses) {
      push({ status })
      expect(root.getAttribute('data-status')).toBe(status)
    }
  })

  it('shows the shimmer only while running', () => {
    const { root } = renderBar()
    expect(root.querySelector('.tabcast-progress__shimmer')).toBeNull()
    push({ status: 'running', progress: 0.2 })
    expect(root.querySelector('.tabcast-progress__fill > .tabcast-progress__shimmer')).not.toBeNull()
    expect(root.classList.contains('tabcast-progress--reduced-motion')).toBe(false)
    push({ status: 'completed', progress: 1 })
    expect(root.querySelector('.tabcast-progress__shimmer')).toBeNull()
  })

  it('drops the shimmer and marks the root when the user prefers reduced motion', () => {
    setReducedMotion(true)
    const { root } = renderBar()
    push({ status: 'running', progress: 0.2 })
    expect(root.classList.contains('tabcast-progress--reduced-motion')).toBe(true)
    expect(root.querySelector('.tabcast-progress__shimmer')).toBeNull()
  })

  it('follows a change of the reduced-motion preference', () => {
    setReducedMotion(false)
    const { root } = renderBar()
    push({ status: 'running', progress: 0.2 })
    expect(root.querySelector('.tabcast-progress__shimmer')).not.toBeNull()
    act(() => setReducedMotion.change(true))
    expect(root.querySelector('.tabcast-progress__shimmer')).toBeNull()
    expect(root.classList.contains('tabcast-progress--reduced-motion')).toBe(true)
  })

  it('hides the connection state with showConnectionStatus={false}, still announcing completion', () => {
    const { live, root } = renderBar({ showConnectionStatus: false })
    push({ connection: 'live', status: 'running' })
    expect(live().textContent).toBe('')
    expect(root.querySelector('.tabcast-progress__connection')).toBeNull()
    expect(screen.queryByText('Live')).toBeNull()
    push({ status: 'completed', connection: 'closed' })
    expect(live().textContent).toBe('Completed')
  })

  it('ships a stylesheet with the shimmer, reduced motion, dark mode and every class it renders', () => {
    expect(css).toMatch(/@keyframes shimmer\s*{\s*0%\s*{\s*transform:\s*translateX\(-100%\);?\s*}\s*100%\s*{\s*transform:\s*translateX\(100%\);?\s*}/)
    expect(css).toMatch(/--tabcast-shimmer-duration:\s*2s/)
    expect(css).toMatch(/animation:\s*shimmer var\(--tabcast-shimmer-duration\) infinite/)
    expect(css).toMatch(/@media \(prefers-reduced-motion: reduce\)\s*{\s*\.tabcast-progress__shimmer\s*{[^}]*animation:\s*none/)
    expect(css).toMatch(/@media \(prefers-color-scheme: dark\)/)
    expect(css).not.toMatch(/@tailwind|@apply/)

    setReducedMotion(true)
    const { root } = renderBar({ showConnectionStatus: true })
    push({ status: 'failed', error: 'x', connectionError: null, message: 'm' })
    const rendered = new Set<string>([
      'tabcast-progress__shimmer',
      'tabcast-progress__completed',
      'tabcast-progress__notice',
      'tabcast-progress__stalled',
    ])
    for (const element of [root, ...root.querySelectorAll('*')]) {
      for (const name of element.classList) rendered.add(name)
    }
    // Each one is documented (or styled) in the stylesheet, which is where users look them up.
    for (const name of rendered) expect(css, name).toContain(`.${name}`)
  })
})

describe('ProgressBar: a stalled task', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('shows "No update for N s", counting up, and marks the root data-stalled, without failing the task', () => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] })
    vi.setSystemTime(100_000)
    setBrowserLanguage('en-US')
    const { root, alert } = renderBar()
    push({ status: 'running', connection: 'live', progress: 0.25, stalledSince: null })
    expect(root.hasAttribute('data-stalled')).toBe(false)
    expect(root.querySelector('.tabcast-progress__stalled')).toBeNull()

    push({ stalledSince: 100_000 - 45_000 })
    expect(root.getAttribute('data-stalled')).toBe('true')
    expect(root.querySelector('.tabcast-progress__stalled')?.textContent).toBe('No update for 45 s')
    act(() => {
      vi.advanceTimersByTime(2000)
    })
    expect(root.querySelector('.tabcast-progress__stalled')?.textContent).toBe('No update for 47 s')
    expect(root.getAttribute('data-status')).toBe('running')
    expect(alert().textContent).toBe('')

    push({ stalledSince: null, progress: 0.3 })
    expect(root.hasAttribute('data-stalled')).toBe(false)
    expect(root.querySelector('.tabcast-progress__stalled')).toBeNull()
  })

  it('speaks Korean in a Korean browser', () => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] })
    vi.setSystemTime(100_000)
    setBrowserLanguage('ko-KR')
    const { root } = renderBar()
    push({ status: 'running', stalledSince: 100_000 - 45_000 })
    expect(root.querySelector('.tabcast-progress__stalled')?.textContent).toBe('45초째 업데이트 없음')
  })

  it('a finished task is never shown as stalled', () => {
    const { root } = renderBar()
    push({ status: 'completed', progress: 1, stalledSince: 5 })
    expect(root.hasAttribute('data-stalled')).toBe(false)
    expect(root.querySelector('.tabcast-progress__stalled')).toBeNull()
  })
})

describe('ProgressBar: labels', () => {
  it('speaks English in an English browser', () => {
    setBrowserLanguage('en-US')
    const { live } = renderBar()
    push({ connection: 'reconnecting', reconnectAttempts: 2 })
    expect(live().textContent).toBe('Reconnecting (2/5)')
    push({ connection: 'polling' })
    expect(live().textContent).toBe('Polling mode')
  })

  it("speaks the guide's Korean in a Korean browser", () => {
    setBrowserLanguage('ko-KR')
    const { live, bar, alert } = renderBar()
    expect(live().textContent).toBe('연결 중…')
    expect(bar().getAttribute('aria-label')).toBe('작업 진행률')
    push({ connection: 'live', status: 'running' })
    expect(live().textContent).toBe('실시간 연결')
    push({ connection: 'reconnecting', reconnectAttempts: 2 })
    expect(live().textContent).toBe('재연결 중 (2/5)')
    push({ connection: 'polling', reconnectAttempts: 5 })
    expect(live().textContent).toBe('폴링 모드')
    push({ status: 'failed', error: 'ElevenLabs API 호출 실패', connection: 'closed' })
    expect(alert().textContent).toBe('작업 실패: ElevenLabs API 호출 실패')
  })

  it('uses the locale prop over the browser language', () => {
    setBrowserLanguage('en-GB')
    const { live, rerenderBar } = renderBar({ locale: 'ko' })
    push({ connection: 'live' })
    expect(live().textContent).toBe('실시간 연결')
    setBrowserLanguage('ko')
    rerenderBar({ locale: 'en' })
    expect(live().textContent).toBe('Live')
    rerenderBar({ locale: 'ko-KR' })
    expect(live().textContent).toBe('실시간 연결')
  })

  it('lets labels override any string, on top of the language', () => {
    setBrowserLanguage('ko-KR')
    const { live, bar, root } = renderBar({
      labels: { live: '연결됨', reconnecting: '다시 연결 {attempt}회째 / 최대 {max}회', progressLabel: '렌더링', title: '렌더' },
    })
    expect(bar().getAttribute('aria-label')).toBe('렌더링')
    expect(root.querySelector('.tabcast-progress__title')?.textContent).toBe('렌더')
    push({ connection: 'live' })
    expect(live().textContent).toBe('연결됨')
    push({ connection: 'reconnecting', reconnectAttempts: 3 })
    expect(live().textContent).toBe('다시 연결 3회째 / 최대 5회')
    push({ connection: 'polling' })
    expect(live().textContent).toBe(koreanLabels.polling)
  })

  it('exports complete label sets in both languages', () => {
    expect(progressBarLabels).toEqual({ en: englishLabels, ko: koreanLabels })
    expect(Object.keys(koreanLabels).sort()).toEqual(Object.keys(englishLabels).sort())
    expect(koreanLabels).toMatchObject({ live: '실시간 연결', polling: '폴링 모드' })
    expect(koreanLabels.reconnecting).toMatch(/^재연결 중/)
    const all: ProgressBarLabels = { ...englishLabels }
    for (const value of Object.values(all)) expect(value).not.toBe('')
  })

  it('renders English on the server and switches to the browser language after hydration, without a mismatch', async () => {
    setBrowserLanguage('ko-KR')
    const app = (
      <TabcastProvider client={client}>
        <ProgressBar projectId="audio_generation_12345" />
      </TabcastProvider>
    )
    const html = renderToString(app)
    expect(html).toContain('Connecting…')
    expect(client.getSnapshotCalls).toEqual([])

    const container = document.createElement('div')
    container.innerHTML = html
    document.body.append(container)
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {})
    const recoverable = vi.fn()
    const root = await act(async () => hydrateRoot(container, app, { onRecoverableError: recoverable }))
    expect(recoverable).not.toHaveBeenCalled()
    expect(errors).not.toHaveBeenCalled()
    expect(container.querySelector('[role="status"]')?.textContent).toBe('연결 중…')
    act(() => root.unmount())
    container.remove()
  })
})

describe('ProgressBar: network text is never markup', () => {
  it('shows an HTML-looking message, task name and error as text', () => {
    const payload = '<img src=x onerror=alert(1)>'
    const { root, bar, alert } = renderBar()
    push({ status: 'running', message: payload, taskName: `<b>${payload}</b>` })
    expect(root.querySelector('img')).toBeNull()
    expect(root.querySelector('b')).toBeNull()
    expect(root.querySelector('.tabcast-progress__message')?.textContent).toBe(payload)
    expect(root.querySelector('.tabcast-progress__title')?.textContent).toBe(`<b>${payload}</b>`)
    expect(bar().getAttribute('aria-valuetext')).toBe(`0% — ${payload}`)

    push({ connectionError: payload })
    expect(root.querySelector('.tabcast-progress__notice')?.textContent).toContain(payload)
    push({ status: 'failed', error: payload })
    expect(alert().textContent).toBe(`Task failed: ${payload}`)
    expect(root.querySelector('img')).toBeNull()
  })

  it('keeps label placeholders as text too', () => {
    const { live } = renderBar({ labels: { reconnecting: '<i>{attempt}</i>' } })
    push({ connection: 'reconnecting', reconnectAttempts: 1 })
    expect(live().textContent).toBe('<i>1</i>')
    expect(live().querySelector('i')).toBeNull()
  })
})

describe('ProgressBar: StrictMode', () => {
  it('calls onCompleted once and keeps one subscription', () => {
    client.update('audio_generation_12345', { status: 'completed', progress: 1, result: { ok: true } })
    const onCompleted = vi.fn()
    render(
      <StrictMode>
        <TabcastProvider client={client}>
          <ProgressBar projectId="audio_generation_12345" onCompleted={(result) => onCompleted(result)} />
        </TabcastProvider>
      </StrictMode>,
    )
    expect(onCompleted).toHaveBeenCalledExactlyOnceWith({ ok: true })
    expect(client.active()).toHaveLength(1)
    expect(screen.getByRole('status').textContent).toContain('Completed')
  })
})
