/**
 * Which backend the demo talks to, and the one call it makes itself: creating a demo
 * task on the reference server (`POST /api/v1/projects`). Following a task is left
 * entirely to tabcast.
 */
import { createTaskUrl, DEFAULT_BACKEND_URL, resolveBackend, validateTaskId } from 'tabcast'

/** `?backendUrl=` of the address wins; otherwise the guide's `localhost:8000`. */
export function backendFromSearch(search: string): string {
  const given = new URLSearchParams(search).get('backendUrl')?.trim()
  return given ? given : DEFAULT_BACKEND_URL
}

/** Whether the page is served over https (a bare `host:port` backend then means wss/https). */
export function pageIsSecure(): boolean {
  return window.location.protocol === 'https:'
}

/** An error message for a backend URL tabcast cannot use, or `null`. */
export function backendProblem(backendUrl: string): string | null {
  const resolved = resolveBackend(backendUrl, pageIsSecure())
  return resolved.ok ? null : resolved.error
}

/** An error message for a task id tabcast cannot use, or `null`. */
export function taskIdProblem(taskId: string): string | null {
  return validateTaskId(taskId)
}

/** What the reference server's demo task can be asked to do (`POST /api/v1/projects`). */
export interface DemoTaskRequest {
  /** Use this id instead of a generated one (the server answers 409 if it is taken). */
  taskId?: string
  /** The text to "synthesise"; the result's duration follows its length. */
  script?: string
  /** Number of progress steps. */
  steps?: number
  /** Milliseconds between steps. */
  stepMs?: number
  /** Fail the task for good once this fraction (0–1) of the work is done. */
  failAt?: number
  /** How many TTS attempts fail (and are retried) before one succeeds; 5 or more fails the task. */
  failAttempts?: number
}

/**
 * Pacing of demo tasks: the page's defaults, overridable from the address
 * (`?steps=…&stepMs=…`) so tests can run fast and a presenter slow.
 */
export function pacingFromSearch(search: string, defaults: { steps: number; stepMs: number }): { steps: number; stepMs: number } {
  const params = new URLSearchParams(search)
  const read = (name: string, fallback: number, max: number): number => {
    const raw = params.get(name)
    if (raw === null || !/^\d+$/.test(raw)) return fallback
    const value = Number(raw)
    return value <= max ? value : fallback
  }
  return { steps: Math.max(1, read('steps', defaults.steps, 1000)), stepMs: read('stepMs', defaults.stepMs, 60_000) }
}

export interface CreatedTask {
  projectId: string
  statusUrl: string | null
  streamUrl: string | null
  /** The task's bearer token when the backend has auth on (`TABCAST_AUTH_SECRET`), else null. */
  token: string | null
}

export class CreateTaskError extends Error {
  override readonly name = 'CreateTaskError'
  constructor(
    message: string,
    /** HTTP status, or 0 when the request never got an answer. */
    readonly status: number,
  ) {
    super(message)
  }
}

/** Creates a demo task on the reference backend and returns its id. */
export async function createDemoTask(backendUrl: string, request: DemoTaskRequest, signal?: AbortSignal): Promise<CreatedTask> {
  const backend = resolveBackend(backendUrl, pageIsSecure())
  if (!backend.ok) throw new CreateTaskError(backend.error, 0)
  const url = createTaskUrl(backend.value)
  let response: Response
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
      ...(signal ? { signal } : {}),
    })
  } catch (error) {
    if (signal?.aborted) throw error
    throw new CreateTaskError(
      `could not reach ${url} (${error instanceof Error ? error.message : String(error)}). Is the backend running? Try \`npm start\`.`,
      0,
    )
  }
  const text = await response.text()
  let body: unknown = null
  try {
    body = text === '' ? null : JSON.parse(text)
  } catch {
    // Not JSON: reported below with the status.
  }
  const record = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {}
  if (!response.ok) {
    const detail = typeof record['error'] === 'string' ? record['error'] : typeof record['message'] === 'string' ? record['message'] : text.slice(0, 200)
    throw new CreateTaskError(`POST ${url} answered ${response.status}${detail ? `: ${detail}` : ''}`, response.status)
  }
  const projectId = record['project_id']
  if (typeof projectId !== 'string' || validateTaskId(projectId) !== null) {
    throw new CreateTaskError(`POST ${url} answered without a valid project_id`, response.status)
  }
  return {
    projectId,
    statusUrl: typeof record['status_url'] === 'string' ? record['status_url'] : null,
    streamUrl: typeof record['stream_url'] === 'string' ? record['stream_url'] : null,
    token: typeof record['token'] === 'string' ? record['token'] : null,
  }
}

/**
 * The task token a link carries in its fragment (`#token=…`). A fragment, not the query:
 * browsers never send it to a server, so it stays out of access logs and `Referer`.
 */
export function tokenFromHash(hash: string): string | null {
  const token = new URLSearchParams(hash.replace(/^#/, '')).get('token')
  return token === null || token === '' ? null : token
}

/** `url` with `#token=…` when there is a token (the demo's "open in new tab" links). */
export function withTokenHash(url: string, token: string | null): string {
  const base = url.replace(/#.*$/, '')
  return token === null ? base : `${base}#${new URLSearchParams({ token }).toString()}`
}

/** Whether a failed creation means "this id is taken". */
export function isConflict(error: unknown): boolean {
  return error instanceof CreateTaskError && error.status === 409
}
