/**
 * `/test-websocket`: the guide's test page. Enter a task id, press "연결 시작", watch
 * the ProgressBar, see the result as JSON. The address carries the task
 * (`?taskId=…&backendUrl=…`), so the same view opens in another tab, where it shares
 * the first tab's connection; the inspector shows that sharing.
 */
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react'
import { DEFAULT_BACKEND_URL, DEFAULT_OPTIONS, type JsonRecord, type TaskOptions } from 'tabcast'
import { ProgressBar, useWebSocket } from 'tabcast/react'
import {
  backendFromSearch,
  backendProblem,
  createDemoTask,
  isConflict,
  pacingFromSearch,
  taskIdProblem,
  tokenFromHash,
  withTokenHash,
} from '../backend.js'
import { Inspector } from '../components/inspector.js'
import { OncePanel } from '../components/once-panel.js'
import { prettyJson } from '../format.js'
import { Link, navigate, useSearch } from '../router.js'

const EXAMPLE_IDS = ['test_task_001', 'audio_generation_12345'] as const

/** About ten seconds: long enough to open a second and third tab and watch them agree. */
const DEMO_PACING = { steps: 20, stepMs: 500 }

interface Followed {
  taskId: string
  backendUrl: string
}

type Outcome = { kind: 'completed'; result: JsonRecord } | { kind: 'failed'; error: string } | null

/**
 * `TaskOptions` given in the address (`?pollingInterval=200&pollingFallback=false`), so
 * a link (or an end-to-end test) can try other timings: every number or boolean option
 * of `DEFAULT_OPTIONS` (the backend has a field of its own). Values tabcast rejects fall
 * back to its defaults.
 */
function taskOptionsFromSearch(search: string): TaskOptions {
  const params = new URLSearchParams(search)
  const options: Record<string, number | boolean> = {}
  for (const [name, fallback] of Object.entries(DEFAULT_OPTIONS)) {
    const raw = params.get(name)
    if (raw === null) continue
    if (typeof fallback === 'number' && raw.trim() !== '' && Number.isFinite(Number(raw))) options[name] = Number(raw)
    if (typeof fallback === 'boolean' && (raw === 'true' || raw === 'false')) options[name] = raw === 'true'
  }
  return options as TaskOptions
}

/** The once-handler's options: the bar's, plus `?onceAckTimeout=` (ms) to try the broker's failover deadline. */
function onceOptionsFromSearch(search: string, backendUrl: string): TaskOptions & { ackTimeout?: number } {
  const raw = Number(new URLSearchParams(search).get('onceAckTimeout') ?? NaN)
  return { ...taskOptionsFromSearch(search), backendUrl, ...(Number.isFinite(raw) && raw > 0 ? { ackTimeout: raw } : {}) }
}

/**
 * The test page's `auth` option for a token: `?tokenDelay=<ms>` makes it answer late, to
 * try a slow token service (the broker asks another tab after 5 s).
 */
function authFromToken(token: string | null, search: string): Pick<TaskOptions, 'auth'> {
  if (token === null) return {}
  const delay = Number(new URLSearchParams(search).get('tokenDelay') ?? NaN)
  if (!Number.isFinite(delay) || delay <= 0) return { auth: () => token }
  return { auth: () => new Promise<string>((resolve) => setTimeout(() => resolve(token), Math.min(delay, 2 ** 31 - 1))) }
}

/**
 * The seqs of the task's messages as `onMessage` heard them, in order: a gap would show
 * here. Shown with `?seqs=1` only, since it is a second subscription of the task in the tab.
 */
function MessageSeqs({ options }: { options: TaskOptions & { projectId: string } }): ReactNode {
  const [seqs, setSeqs] = useState<number[]>([])
  useWebSocket({
    ...options,
    onMessage: (message) => {
      const seq = message.seq
      if (typeof seq === 'number') setSeqs((list) => [...list.slice(-199), seq])
    },
  })
  return (
    <p className="hint mono small">
      onMessage seq: <span data-testid="seqs">{seqs.join(',')}</span>
    </p>
  )
}

/** The task the address asks to follow, if it names a valid one. */
function followedFromSearch(search: string): Followed | null {
  const taskId = new URLSearchParams(search).get('taskId')?.trim() ?? ''
  const backendUrl = backendFromSearch(search)
  if (taskId === '' || taskIdProblem(taskId) !== null || backendProblem(backendUrl) !== null) return null
  return { taskId, backendUrl }
}

/** Why the task named in the address cannot be followed (a link with a bad id or backend), or null. */
function addressProblem(search: string): string | null {
  const params = new URLSearchParams(search)
  const taskId = params.get('taskId')?.trim() ?? ''
  if (taskId === '') return null
  const idError = taskIdProblem(taskId)
  if (idError) return `Task ID in the address: ${idError}`
  const backendError = backendProblem(backendFromSearch(search))
  return backendError ? `Backend URL in the address: ${backendError}` : null
}

/**
 * `/test-websocket?taskId=…[&backendUrl=…]` for a followed task. Other parameters of
 * the current address (`steps`, `stepMs`) are kept.
 */
function pageUrl(followed: Followed, currentSearch: string): string {
  const params = new URLSearchParams(currentSearch)
  params.delete('taskId')
  params.delete('backendUrl')
  const ordered = new URLSearchParams({ taskId: followed.taskId })
  if (followed.backendUrl !== DEFAULT_BACKEND_URL) ordered.set('backendUrl', followed.backendUrl)
  for (const [name, value] of params) ordered.append(name, value)
  return `/test-websocket?${ordered.toString()}`
}

export function TestWebSocketPage(): ReactNode {
  const search = useSearch()
  const followed = followedFromSearch(search)
  const addressError = addressProblem(search)

  const [taskIdInput, setTaskIdInput] = useState(() => new URLSearchParams(search).get('taskId') ?? '')
  const [backendInput, setBackendInput] = useState(() => backendFromSearch(search))
  const [formError, setFormError] = useState<string | null>(null)
  const [creating, setCreating] = useState(false)
  const [createInfo, setCreateInfo] = useState<string | null>(null)
  // Bumped by every start, so pressing "연결 시작" again for the same task remounts the bar.
  const [run, setRun] = useState(0)
  const [outcome, setOutcome] = useState<Outcome>(null)
  // With auth on, the token of the followed task: from task creation, or from a link's `#token=`.
  const [token, setToken] = useState(() => tokenFromHash(window.location.hash))
  useEffect(() => {
    const onHash = (): void => setToken(tokenFromHash(window.location.hash))
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])

  // The address changed under the page (back/forward): show what it names.
  const [seenSearch, setSeenSearch] = useState(search)
  if (seenSearch !== search) {
    setSeenSearch(search)
    const params = new URLSearchParams(search)
    setTaskIdInput(params.get('taskId') ?? '')
    setBackendInput(backendFromSearch(search))
    setOutcome(null)
  }

  /** `nextToken`: the task's token from its creation; undefined keeps the current one only for the same task. */
  const follow = (next: Followed, nextToken?: string | null): void => {
    setFormError(null)
    setOutcome(null)
    setRun((value) => value + 1)
    setTaskIdInput(next.taskId)
    setBackendInput(next.backendUrl)
    const sameTask = followed?.taskId === next.taskId && followed.backendUrl === next.backendUrl
    const kept = nextToken !== undefined ? nextToken : sameTask ? token : null
    setToken(kept)
    const url = withTokenHash(pageUrl(next, window.location.search), kept)
    // Replace, not push: the address is the page's state, so it can be copied to another tab.
    setSeenSearch(url.slice(url.indexOf('?')).replace(/#.*$/, ''))
    navigate(url, { replace: true })
  }

  const validated = (): Followed | string => {
    const backendUrl = backendInput.trim() || DEFAULT_BACKEND_URL
    const backendError = backendProblem(backendUrl)
    if (backendError) return `Backend URL: ${backendError}`
    const taskId = taskIdInput.trim()
    if (taskId === '') return 'Task ID를 입력하세요 (enter a task id).'
    const idError = taskIdProblem(taskId)
    if (idError) return `Task ID: ${idError}`
    return { taskId, backendUrl }
  }

  const onStart = (event: FormEvent<HTMLFormElement>): void => {
    event.preventDefault()
    const next = validated()
    if (typeof next === 'string') setFormError(next)
    else follow(next)
  }

  const createAbort = useRef<AbortController | null>(null)
  // Leaving the page cancels a pending creation, so its answer cannot rewrite the address of another page.
  useEffect(() => () => createAbort.current?.abort(), [])
  const onStartDemo = async (): Promise<void> => {
    const backendUrl = backendInput.trim() || DEFAULT_BACKEND_URL
    const backendError = backendProblem(backendUrl)
    if (backendError) {
      setFormError(`Backend URL: ${backendError}`)
      return
    }
    const wanted = taskIdInput.trim()
    const useWanted = wanted !== '' && taskIdProblem(wanted) === null
    createAbort.current?.abort()
    const abort = new AbortController()
    createAbort.current = abort
    setCreating(true)
    setFormError(null)
    setCreateInfo(null)
    try {
      const pacing = pacingFromSearch(window.location.search, DEMO_PACING)
      let created
      try {
        // Create the task under the id in the field, so tabs already waiting for it see it start.
        created = await createDemoTask(backendUrl, useWanted ? { ...pacing, taskId: wanted } : pacing, abort.signal)
      } catch (error) {
        if (!useWanted || !isConflict(error)) throw error
        created = await createDemoTask(backendUrl, pacing, abort.signal)
        setCreateInfo(`${wanted} already exists on the server, so a new task was created.`)
      }
      follow({ taskId: created.projectId, backendUrl }, created.token)
    } catch (error) {
      if (!abort.signal.aborted) setFormError(`데모 작업을 만들지 못했습니다: ${error instanceof Error ? error.message : String(error)}`)
    } finally {
      if (createAbort.current === abort) {
        createAbort.current = null
        setCreating(false)
      }
    }
  }

  // The new tab gets the token in the fragment, which never reaches a server.
  const shareUrl = followed ? withTokenHash(pageUrl(followed, search), token) : null

  return (
    <div className="page page--test">
      <header className="page-header">
        <p className="eyebrow">WebSocket 테스트 · Test page</p>
        <h1>실시간 진행률 테스트</h1>
        <p className="lead">
          Task ID를 입력하고 &ldquo;연결 시작&rdquo;을 누르면 ProgressBar가 작업을 실시간으로 추적합니다. Open the same address
          in more tabs: they all share one WebSocket per task through a SharedWorker.
        </p>
      </header>

      <div className="test-layout">
        <div className="stack">
          <form className="card form" onSubmit={onStart} noValidate>
            <div className="field">
              <label htmlFor="taskId">Task ID</label>
              <input
                id="taskId"
                name="taskId"
                type="text"
                value={taskIdInput}
                onChange={(event) => setTaskIdInput(event.target.value)}
                placeholder="test_task_001"
                autoComplete="off"
                spellCheck={false}
              />
              <div className="chips" aria-label="예시 Task ID (examples)">
                <span className="muted small">예시:</span>
                {EXAMPLE_IDS.map((id) => (
                  <button key={id} type="button" className="chip chip--button" onClick={() => setTaskIdInput(id)} data-example={id}>
                    {id}
                  </button>
                ))}
              </div>
            </div>
            <div className="field">
              <label htmlFor="backendUrl">Backend URL</label>
              <input
                id="backendUrl"
                name="backendUrl"
                type="text"
                value={backendInput}
                onChange={(event) => setBackendInput(event.target.value)}
                placeholder={DEFAULT_BACKEND_URL}
                autoComplete="off"
                spellCheck={false}
              />
              <p className="hint">host:port, http(s):// or ws(s):// — 기본값 {DEFAULT_BACKEND_URL}</p>
            </div>
            <div className="actions">
              <button type="submit" className="button button--primary" data-testid="start">
                연결 시작
              </button>
              <button
                type="button"
                className="button"
                data-testid="start-demo"
                onClick={() => void onStartDemo()}
                disabled={creating}
                aria-busy={creating}
              >
                {creating ? '작업 생성 중…' : '데모 작업 시작 · Start a demo task'}
              </button>
            </div>
            <p className="hint">
              &ldquo;데모 작업 시작&rdquo; creates an audio-generation task on the reference backend (
              <code>POST /api/v1/projects</code>), under the id in the field if it is free, and follows it.
            </p>
            {formError ?? addressError ? (
              <p className="notice notice--error" role="alert" data-testid="form-error">
                {formError ?? addressError}
              </p>
            ) : null}
            {createInfo ? <p className="notice">{createInfo}</p> : null}
          </form>

          {followed ? (
            <section className="card" aria-labelledby="progress-title" data-testid="following" data-task-id={followed.taskId}>
              <header className="card-header">
                <h2 id="progress-title">
                  진행률 <span className="mono small muted">{followed.taskId}</span>
                </h2>
                {shareUrl ? (
                  <a className="button button--small" href={shareUrl} target="_blank" rel="noopener" data-testid="open-new-tab">
                    새 탭에서 열기 ↗
                  </a>
                ) : null}
              </header>
              <ProgressBar
                key={`${followed.backendUrl} ${followed.taskId} ${run}`}
                {...taskOptionsFromSearch(search)}
                {...authFromToken(token, search)}
                projectId={followed.taskId}
                backendUrl={followed.backendUrl}
                showConnectionStatus={true}
                locale="ko"
                onCompleted={(result) => setOutcome({ kind: 'completed', result })}
                onError={(error) => setOutcome({ kind: 'failed', error })}
              />
              {new URLSearchParams(search).get('seqs') === '1' ? (
                <MessageSeqs
                  key={`seqs ${followed.backendUrl} ${followed.taskId} ${run}`}
                  options={{ ...taskOptionsFromSearch(search), ...authFromToken(token, search), projectId: followed.taskId, backendUrl: followed.backendUrl }}
                />
              ) : null}
              {/* Shown by the stylesheet only while the bar's data-status is "idle". */}
              <p className="hint idle-hint">
                Nothing happening? The server may not know <code>{followed.taskId}</code> yet: press &ldquo;데모 작업 시작&rdquo;
                to create it under this id. The bar keeps waiting on the open socket until the task starts.
              </p>
              {outcome?.kind === 'completed' ? (
                <div className="result">
                  <h3>onCompleted 결과 (result)</h3>
                  <pre data-testid="result">{prettyJson(outcome.result)}</pre>
                </div>
              ) : null}
              {/* The bar's alert already says the task failed; this shows what onError received. */}
              {outcome?.kind === 'failed' ? (
                <div className="result result--error">
                  <h3>onError 콜백 (error)</h3>
                  <pre data-testid="task-error">{prettyJson(outcome.error)}</pre>
                </div>
              ) : null}
            </section>
          ) : (
            <section className="card card--empty">
              <p>
                Task ID를 입력하고 <strong>연결 시작</strong>을 누르세요. No task is followed yet.
              </p>
            </section>
          )}
        </div>

        <Inspector>{followed ? <OncePanel key={`${followed.backendUrl} ${followed.taskId} ${run}`} taskId={followed.taskId} options={onceOptionsFromSearch(search, followed.backendUrl)} /> : null}</Inspector>
      </div>

      <Explanations />
      <p className="muted small">
        <Link to="/">← Home</Link> · <Link to="/production">Studio flow (/production)</Link>
      </p>
    </div>
  )
}

function Explanations(): ReactNode {
  return (
    <div className="explain">
      <section className="card">
        <h2>주요 기능 · Features</h2>
        <ul className="feature-list">
          <li>
            <strong>실시간 진행률 추적</strong>: WebSocket을 통한 서버-클라이언트 양방향 통신. <em>Live progress over WebSocket.</em>
          </li>
          <li>
            <strong>자동 재연결</strong>: Exponential backoff — <code>delay = min(1000 · 2^(n−1), 30000)</code> (n번째 시도), 1초 · 2초 · 4초 ·
            8초 · 16초, 최대 5회. <em>Reconnects with backoff.</em>
          </li>
          <li>
            <strong>폴링 Fallback</strong>: WebSocket 실패 시 2초마다 HTTP 폴링으로 자동 전환, UI에 &ldquo;폴링 모드&rdquo; 표시, 작업
            완료/실패 시 폴링 중지. <em>Falls back to polling the status endpoint.</em>
          </li>
          <li>
            <strong>Keep-alive</strong>: 30초마다 ping/pong으로 연결 유지. <em>A ping every 30 s.</em>
          </li>
          <li>
            <strong>탭 공유 (tabcast)</strong>: 하나의 SharedWorker가 작업당 WebSocket 하나만 열고 모든 탭에 진행률을 전달합니다.
            <em> One socket per task, however many tabs follow it; see the inspector.</em>
          </li>
        </ul>
      </section>
      <section className="card">
        <h2>백엔드 설정 · Backend setup</h2>
        <ol className="setup-list">
          <li>
            백엔드 서버 실행 확인: <code>npm start</code> runs the reference backend on <code>http://localhost:8000</code> and this demo on
            port 3020.
          </li>
          <li>
            WebSocket 엔드포인트: <code>ws://localhost:8000/api/v1/ws/projects/{'{task_id}'}/stream</code>
          </li>
          <li>
            폴링 엔드포인트 (선택사항): <code>GET /api/v1/projects/{'{task_id}'}/status</code>
          </li>
          <li>
            다른 백엔드: set the Backend URL field, or add <code>?backendUrl=host:port</code> to the address. The server must accept this
            page&rsquo;s origin (<code>{typeof window === 'undefined' ? '' : window.location.origin}</code>).
          </li>
        </ol>
        <h3>메시지 형식 (JSON)</h3>
        <pre className="code">{MESSAGE_EXAMPLE}</pre>
        <h3>트러블슈팅</h3>
        <ul className="feature-list">
          <li>
            <strong>&ldquo;WebSocket connection failed&rdquo;</strong>: 백엔드 서버가 실행되지 않음 또는 WebSocket 엔드포인트 미구현.
          </li>
          <li>
            <strong>&ldquo;Falling back to polling&rdquo;</strong>: 최대 재연결 횟수 초과 — 폴링으로 계속 작동합니다.
          </li>
          <li>
            <strong>&ldquo;Progress stuck at 0%&rdquo;</strong>: 백엔드가 <code>{"type: 'progress'"}</code> 메시지를 보내지 않음. DevTools → the
            worker&rsquo;s socket is listed under <code>chrome://inspect/#workers</code>, not under the page&rsquo;s Network tab.
          </li>
        </ul>
      </section>
    </div>
  )
}

const MESSAGE_EXAMPLE = `{
  "type": "progress",
  "project_id": "audio_generation_12345",
  "task_name": "오디오 생성",
  "progress": 0.5,
  "message": "TTS 생성 중... (시도 2/5)",
  "timestamp": "2026-02-02T08:00:10Z"
}`
