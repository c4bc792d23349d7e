/**
 * `/production`: the guide's studio flow (its `DirectorPanel`). Writer step → Director
 * step → "Zero-Fault 오디오 생성" creates an audio task on the backend → a ProgressBar
 * follows it → the result, or the error with a retry. This is where the guide replaced
 * a 2-second polling loop with the ProgressBar.
 */
import { useEffect, useRef, useState, type ReactNode } from 'react'
import type { JsonRecord } from 'tabcast'
import { ProgressBar } from 'tabcast/react'
import { backendFromSearch, createDemoTask, pacingFromSearch, taskIdProblem, tokenFromHash, withTokenHash } from '../backend.js'
import { NotificationToggle, notifyAudioReady } from '../components/desktop-notification.js'
import { displayValue, formatDuration, formatFraction, prettyJson } from '../format.js'
import { Link, replaceQuery, useSearch, withBackendParam } from '../router.js'

const SAMPLE_SCRIPT = `안녕하세요, OmniVibe Pro 스튜디오입니다.
오늘은 하나의 WebSocket으로 여러 탭의 진행률을 동시에 보여 주는 방법을 소개합니다.
탭을 몇 개 열어도 서버 연결은 작업당 하나뿐입니다.
그럼 시작해 볼까요?`

const VOICES = [
  { id: 'minji', label: '민지 · 차분한 여성 음성' },
  { id: 'junho', label: '준호 · 또렷한 남성 음성' },
  { id: 'narrator', label: 'Narrator · warm, English' },
] as const

type VoiceId = (typeof VOICES)[number]['id']

/** About eight seconds: long enough to watch, short enough to wait for. */
const STUDIO_PACING = { steps: 16, stepMs: 500 }
/** Provider attempts that fail (and are retried) in the "flaky provider" mode; the 3rd succeeds. */
const FLAKY_ATTEMPTS = 2

type Step = 'writer' | 'director'

/**
 * Where the simulated provider outage hits: about half way, at a step the bar shows.
 * The demo job fails at the first step whose fraction reaches `failAt` without
 * reporting that step, so aiming between step k and k + 1 leaves the bar at step k,
 * the percentage the checkbox promises.
 */
function failurePoint(steps: number): { failAt: number; percent: number } {
  if (steps < 2) return { failAt: 0, percent: 0 }
  const k = Math.min(steps - 1, Math.max(1, Math.round(steps / 2)))
  // The same flooring as the bar's whole percent.
  return { failAt: (k + 0.5) / steps, percent: Math.floor((k / steps) * 100 + 1e-6) }
}

type Generation =
  | { state: 'idle' }
  | { state: 'creating' }
  | { state: 'running'; taskId: string }
  | { state: 'completed'; taskId: string; result: JsonRecord }
  | { state: 'failed'; taskId: string | null; error: string }

export function ProductionPage(): ReactNode {
  const search = useSearch()
  const backendUrl = backendFromSearch(search)
  // `?taskId=` follows a task already started, e.g. in another studio tab.
  const [initialTask] = useState(() => {
    const taskId = new URLSearchParams(search).get('taskId')?.trim() ?? ''
    return taskId !== '' && taskIdProblem(taskId) === null ? taskId : null
  })
  const [step, setStep] = useState<Step>(initialTask === null ? 'writer' : 'director')
  const [script, setScript] = useState(SAMPLE_SCRIPT)
  const [voice, setVoice] = useState<VoiceId>('minji')
  const [speed, setSpeed] = useState(1)
  const [simulateFailure, setSimulateFailure] = useState(false)
  const [flakyProvider, setFlakyProvider] = useState(false)
  const [generation, setGeneration] = useState<Generation>(initialTask === null ? { state: 'idle' } : { state: 'running', taskId: initialTask })
  const request = useRef<AbortController | null>(null)
  useEffect(() => () => request.current?.abort(), [])
  // With auth on, the task's token: from its creation, or from a link's `#token=` (never the query).
  const [token, setToken] = useState(() => tokenFromHash(window.location.hash))

  const trimmed = script.trim()
  const busy = generation.state === 'creating' || generation.state === 'running'
  const pacing = pacingFromSearch(search, STUDIO_PACING)
  const failure = failurePoint(pacing.steps)

  const generate = async (): Promise<void> => {
    request.current?.abort()
    const abort = new AbortController()
    request.current = abort
    setGeneration({ state: 'creating' })
    try {
      const created = await createDemoTask(
        backendUrl,
        {
          script: trimmed,
          ...pacing,
          ...(simulateFailure ? { failAt: failure.failAt } : {}),
          ...(flakyProvider ? { failAttempts: FLAKY_ATTEMPTS } : {}),
        },
        abort.signal,
      )
      if (request.current === abort) {
        setGeneration({ state: 'running', taskId: created.projectId })
        setToken(created.token)
        // The address names the task, so another studio tab opened on it follows it too.
        const params = new URLSearchParams(window.location.search)
        params.set('taskId', created.projectId)
        replaceQuery(params)
        window.history.replaceState(window.history.state, '', withTokenHash(`${window.location.pathname}${window.location.search}`, created.token))
      }
    } catch (error) {
      if (!abort.signal.aborted) {
        setGeneration({ state: 'failed', taskId: null, error: error instanceof Error ? error.message : String(error) })
      }
    }
  }

  // The guide's handleAudioCompleted / handleAudioError.
  const handleAudioCompleted = (taskId: string, result: JsonRecord): void => {
    setGeneration((current) => (current.state === 'running' && current.taskId === taskId ? { state: 'completed', taskId, result } : current))
  }
  const handleAudioError = (taskId: string, error: string): void => {
    setGeneration((current) => (current.state === 'running' && current.taskId === taskId ? { state: 'failed', taskId, error } : current))
  }

  const taskId = generation.state === 'running' || generation.state === 'completed' || generation.state === 'failed' ? generation.taskId : null
  // The third step is the audio task itself: current while it is created and runs.
  const audioStep =
    step !== 'director' || generation.state === 'idle'
      ? ''
      : generation.state === 'completed'
        ? 'is-done'
        : generation.state === 'failed'
          ? 'is-failed'
          : 'is-current'
  const directorStep = step !== 'director' ? '' : audioStep === '' || audioStep === 'is-failed' ? 'is-current' : 'is-done'

  return (
    <div className="page page--production">
      <header className="page-header">
        <p className="eyebrow">스튜디오 · Studio</p>
        <h1>오디오 제작 스튜디오</h1>
        <p className="lead">
          Writer 단계에서 스크립트를 작성하고, Director 단계에서 &ldquo;Zero-Fault 오디오 생성&rdquo;을 누르면 ProgressBar가 오디오 작업을
          실시간으로 추적합니다. The guide&rsquo;s studio flow: the 2-second polling loop is gone, progress arrives over the shared
          WebSocket.
        </p>
      </header>

      <ol className="stepper" aria-label="Steps">
        <li className={step === 'writer' ? 'is-current' : 'is-done'} aria-current={step === 'writer' ? 'step' : undefined}>
          <span className="stepper__n">1</span> Writer
        </li>
        <li className={directorStep} aria-current={directorStep === 'is-current' ? 'step' : undefined} data-testid="step-director">
          <span className="stepper__n">2</span> Director
        </li>
        <li className={audioStep} aria-current={audioStep === 'is-current' ? 'step' : undefined} data-testid="step-audio">
          <span className="stepper__n">3</span> Audio
        </li>
      </ol>

      {step === 'writer' ? (
        <section className="card" aria-labelledby="writer-title" data-testid="writer-step">
          <h2 id="writer-title">Writer · 스크립트 작성</h2>
          <div className="field">
            <label htmlFor="script">스크립트 (script)</label>
            <textarea id="script" name="script" rows={8} value={script} onChange={(event) => setScript(event.target.value)} />
            <p className="hint">
              {trimmed.length}자 · 예상 길이 약 {estimateSeconds(trimmed)}초
            </p>
          </div>
          <div className="actions">
            <button
              type="button"
              className="button button--primary"
              data-testid="to-director"
              disabled={trimmed === ''}
              onClick={() => setStep('director')}
            >
              Director 단계로 →
            </button>
          </div>
        </section>
      ) : (
        <section className="card" aria-labelledby="director-title" data-testid="director-step">
          <header className="card-header">
            <h2 id="director-title">Director · 오디오 설정</h2>
            <button type="button" className="button button--small" onClick={() => setStep('writer')} disabled={busy}>
              ← Writer
            </button>
          </header>

          <div className="director-grid">
            <div className="script-summary" data-testid="script-summary">
              <h3>스크립트 요약</h3>
              <p className="muted small">
                {trimmed.length}자 · {lineCount(trimmed)}줄 · 예상 길이 약 {estimateSeconds(trimmed)}초
              </p>
              <blockquote className="script-preview">{preview(trimmed)}</blockquote>
            </div>
            <div className="voice-settings">
              <h3>음성 설정</h3>
              <div className="field">
                <label htmlFor="voice">Voice</label>
                <select id="voice" name="voice" value={voice} disabled={busy} onChange={(event) => setVoice(event.target.value as VoiceId)}>
                  {VOICES.map((option) => (
                    <option key={option.id} value={option.id}>
                      {option.label}
                    </option>
                  ))}
                </select>
              </div>
              <div className="field">
                <label htmlFor="speed">속도 (speed) · {speed.toFixed(1)}×</label>
                <input
                  id="speed"
                  name="speed"
                  type="range"
                  min={0.5}
                  max={1.5}
                  step={0.1}
                  value={speed}
                  disabled={busy}
                  onChange={(event) => setSpeed(Number(event.target.value))}
                />
              </div>
              <label className="check">
                <input
                  type="checkbox"
                  name="simulateFailure"
                  checked={simulateFailure}
                  disabled={busy}
                  onChange={(event) => setSimulateFailure(event.target.checked)}
                />
                <span>
                  API 장애 시뮬레이션 · <em>simulate an API failure</em> (the provider fails for good at{' '}
                  <span data-testid="fail-percent">{failure.percent}</span>&nbsp;%)
                </span>
              </label>
              <label className="check">
                <input
                  type="checkbox"
                  name="flakyProvider"
                  checked={flakyProvider}
                  disabled={busy}
                  onChange={(event) => setFlakyProvider(event.target.checked)}
                />
                <span>
                  불안정한 API · <em>flaky provider</em> ({FLAKY_ATTEMPTS} failed attempts, retried: &ldquo;시도 {FLAKY_ATTEMPTS + 1}/5&rdquo;)
                </span>
              </label>
            </div>
          </div>

          <div className="actions">
            <button
              type="button"
              className="button button--primary button--large"
              data-testid="generate-audio"
              disabled={busy || trimmed === ''}
              aria-busy={busy}
              onClick={() => void generate()}
            >
              {generation.state === 'creating' ? '작업 생성 중…' : generation.state === 'running' ? '생성 중…' : 'Zero-Fault 오디오 생성'}
            </button>
            <span className="muted small">
              Backend <code>{backendUrl}</code>
            </span>
            <NotificationToggle />
          </div>

          {taskId !== null ? (
            <div className="generation" data-testid="audio-task" data-task-id={taskId} data-state={generation.state}>
              <p className="muted small">
                Task <span className="mono">{taskId}</span> ·{' '}
                <a
                  href={withTokenHash(withBackendParam(`/production?taskId=${encodeURIComponent(taskId)}`), token)}
                  target="_blank"
                  rel="noopener"
                  data-testid="open-studio-tab"
                >
                  another studio tab ↗
                </a>{' '}
                ·{' '}
                <Link to={withTokenHash(`/test-websocket?taskId=${encodeURIComponent(taskId)}`, token)} target="_blank" rel="noopener">
                  open in the test page ↗
                </Link>
              </p>
              <ProgressBar
                key={taskId}
                {...(token === null ? {} : { auth: () => token })}
                projectId={taskId}
                backendUrl={backendUrl}
                showConnectionStatus={true}
                locale="ko"
                onCompleted={(result) => handleAudioCompleted(taskId, result)}
                // Every studio tab updates its own view; the desktop notification is shown by one tab only.
                onCompletedOnce={(result) => notifyAudioReady(taskId, result)}
                onError={(error) => handleAudioError(taskId, error)}
              />
            </div>
          ) : null}

          {generation.state === 'completed' ? <AudioResult result={generation.result} /> : null}

          {generation.state === 'failed' ? (
            // A task's failure is already in the bar's alert: here only what to do about it.
            // A task that could not even be created has no bar, so its error shows here.
            <div
              className={generation.taskId === null ? 'notice notice--error failure' : 'failure'}
              {...(generation.taskId === null ? { role: 'alert' } : {})}
              data-testid="audio-error"
            >
              {generation.taskId === null ? (
                <p>
                  <strong>오디오 생성 실패</strong>: {generation.error}
                </p>
              ) : null}
              <button type="button" className="button" data-testid="retry" onClick={() => void generate()}>
                다시 시도 · Retry
              </button>
              {simulateFailure ? (
                <p className="small">
                  &ldquo;API 장애 시뮬레이션&rdquo; is still on; turn it off above for the retry to succeed.
                </p>
              ) : null}
            </div>
          ) : null}
        </section>
      )}

      <p className="muted small">
        <Link to="/">← Home</Link> · <Link to="/test-websocket">Test page (/test-websocket)</Link>
      </p>
    </div>
  )
}

function AudioResult({ result }: { result: JsonRecord }): ReactNode {
  const rows: [string, string, string][] = [
    ['audio_id', 'Audio ID', displayValue(result['audio_id'])],
    ['duration', '길이 (duration)', formatDuration(result['duration'])],
    ['accuracy', '정확도 (accuracy)', formatFraction(result['accuracy'])],
    ['attempt', '시도 (attempt)', displayValue(result['attempt'])],
    ['file_path', '파일 (file path)', displayValue(result['file_path'])],
  ]
  return (
    <div className="audio-result" data-testid="audio-result">
      <h3>✓ 오디오 생성 완료</h3>
      <dl className="facts">
        {rows.map(([field, label, value]) => (
          <div key={field}>
            <dt>{label}</dt>
            <dd className={field === 'file_path' || field === 'audio_id' ? 'mono' : undefined} data-field={field}>
              {value}
            </dd>
          </div>
        ))}
      </dl>
      <details>
        <summary>result JSON</summary>
        <pre>{prettyJson(result)}</pre>
      </details>
    </div>
  )
}

function estimateSeconds(text: string): number {
  // The reference backend's estimate: about five characters of Korean speech per second.
  return Math.max(1, Math.round((text.length / 5) * 10) / 10)
}

function lineCount(text: string): number {
  return text === '' ? 0 : text.split('\n').filter((line) => line.trim() !== '').length
}

function preview(text: string): string {
  return text.length > 240 ? `${text.slice(0, 240)}…` : text
}
