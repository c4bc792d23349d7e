/**
 * Turning the guide's `backendUrl` (`'localhost:8000'` by default) into the two
 * endpoints of a task, and the key that identifies one shared connection.
 */
import { validateTaskId } from './protocol.js'

export { DEFAULT_BACKEND_URL } from './defaults.js'

export interface Backend {
  /** `ws://host:port[/prefix]` or `wss://…`, no trailing slash. */
  ws: string
  /** `http://host:port[/prefix]` or `https://…`, no trailing slash. */
  http: string
}

export type BackendResult = { ok: true; value: Backend } | { ok: false; error: string }

/**
 * Accepts `host:port`, `http(s)://…` and `ws(s)://…`. A bare `host:port` uses
 * `wss`/`https` when `secure` is true (the page itself is served over https, where
 * browsers block plain `ws://` as mixed content).
 */
export function resolveBackend(backendUrl: string, secure = false): BackendResult {
  const input = backendUrl.trim()
  if (input === '') return { ok: false, error: 'backendUrl is empty' }
  const schemeMatch = /^([a-z][a-z0-9+.-]*):\/\//i.exec(input)
  let scheme: string
  let rest: string
  if (schemeMatch) {
    scheme = (schemeMatch[1] ?? '').toLowerCase()
    rest = input.slice(schemeMatch[0].length)
  } else {
    scheme = secure ? 'https' : 'http'
    rest = input
  }
  const secureScheme = scheme === 'https' || scheme === 'wss'
  if (!['http', 'https', 'ws', 'wss'].includes(scheme)) {
    return { ok: false, error: `backendUrl ${JSON.stringify(backendUrl)} has scheme "${scheme}"; use host:port, http(s):// or ws(s)://` }
  }
  let url: URL
  try {
    url = new URL(`${secureScheme ? 'https' : 'http'}://${rest}`)
  } catch {
    return { ok: false, error: `backendUrl ${JSON.stringify(backendUrl)} is not a valid URL` }
  }
  if (url.username || url.password) {
    return { ok: false, error: `backendUrl ${JSON.stringify(backendUrl)} must not contain credentials` }
  }
  if (url.search || url.hash) {
    return { ok: false, error: `backendUrl ${JSON.stringify(backendUrl)} must not contain a query or fragment` }
  }
  const path = url.pathname.replace(/\/+$/, '')
  const hostAndPath = `${url.host}${path}`
  return {
    ok: true,
    value: {
      http: `${secureScheme ? 'https' : 'http'}://${hostAndPath}`,
      ws: `${secureScheme ? 'wss' : 'ws'}://${hostAndPath}`,
    },
  }
}

/** `ws(s)://…/api/v1/ws/projects/{task_id}/stream[?since=N]`. The id is URL-encoded. */
export function streamUrl(backend: Backend, taskId: string, since?: number): string {
  const base = `${backend.ws}/api/v1/ws/projects/${encodeURIComponent(taskId)}/stream`
  return since === undefined || since <= 0 ? base : `${base}?since=${since}`
}

/** `http(s)://…/api/v1/projects/{task_id}/status`. The id is URL-encoded. */
export function statusUrl(backend: Backend, taskId: string): string {
  return `${backend.http}/api/v1/projects/${encodeURIComponent(taskId)}/status`
}

/** `http(s)://…/api/v1/projects`: where the reference backend creates demo tasks. */
export function createTaskUrl(backend: Backend): string {
  return `${backend.http}/api/v1/projects`
}

/** One shared connection per (backend, task id). */
export function channelKey(backend: Backend, taskId: string): string {
  return `${backend.http} ${taskId}`
}

export type TaskTarget = { ok: true; backend: Backend; taskId: string; key: string } | { ok: false; error: string }

/** Validates both halves of a subscription target at once. */
export function resolveTarget(backendUrl: string, taskId: string, secure = false): TaskTarget {
  const idError = validateTaskId(taskId)
  if (idError !== null) return { ok: false, error: idError }
  const backend = resolveBackend(backendUrl, secure)
  if (!backend.ok) return backend
  return { ok: true, backend: backend.value, taskId, key: channelKey(backend.value, taskId) }
}
