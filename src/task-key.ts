/**
 * The identity of a followed task, `taskKey()`, and the backend normalisation it rests
 * on. One key everywhere: the broker shares one connection per key, and the tab
 * client, the React hook and the provider keep their caches by the same key, so
 * `localhost:8000` and `http://localhost:8000` are one task, not two. A module of its
 * own, free of the protocol parsers, because every page loads it.
 */
import { DEFAULT_BACKEND_URL } from './defaults.js'

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

/** What a task key is made of besides the task id; `TaskOptions` fits. */
export interface TaskKeyParts {
  /** @default 'localhost:8000' */
  backendUrl?: string | undefined
  /**
   * Whose view of the task this is: two identities (auth scopes) never share a
   * connection or a snapshot. Absent or `''` means the one anonymous identity.
   */
  authScope?: string | undefined
}

/** Whether this page (or worker) is served over https, where bare `host:port` backends use wss/https. */
function contextIsSecure(): boolean {
  return (globalThis as { location?: { protocol?: string } }).location?.protocol === 'https:'
}

/**
 * The key of one task: `"<backend http URL> <task id>"`, plus `" <authScope>"`
 * (URI-encoded) when there is one. Backends are compared after normalisation
 * (`resolveBackend`); a backend that does not resolve keeps its own trimmed text, so it
 * still has a key of its own (its subscriptions never connect).
 *
 * `secure` decides what a bare `host:port` means; it defaults to whether this context
 * is served over https, which is what the broker's environment says too.
 */
export function taskKey(projectId: string, parts: TaskKeyParts = {}, secure = contextIsSecure()): string {
  // Like `resolveOptions`: a backendUrl that is not a string means the default.
  const backendUrl = typeof parts.backendUrl === 'string' ? parts.backendUrl : DEFAULT_BACKEND_URL
  const backend = resolveBackend(backendUrl, secure)
  const base = `${backend.ok ? backend.value.http : backendUrl.trim()} ${projectId}`
  return parts.authScope === undefined || parts.authScope === '' ? base : `${base} ${encodeURIComponent(parts.authScope)}`
}
