/**
 * The URL paths of the protocol (see `src/endpoints.ts` for the client side), matched
 * under an optional `basePath`. Task ids arrive URL-encoded; a segment that does not
 * decode is reported as such, so the caller can reject it with the task-id error.
 */

export type TaskIdSegment = { ok: true; taskId: string } | { ok: false; error: string }

export type Route =
  | { kind: 'stream'; segment: TaskIdSegment }
  | { kind: 'status'; segment: TaskIdSegment }
  | { kind: 'create' }
  | { kind: 'health' }

const STREAM = /^\/api\/v1\/ws\/projects\/([^/]*)\/stream\/?$/
const STATUS = /^\/api\/v1\/projects\/([^/]*)\/status\/?$/
const CREATE = /^\/api\/v1\/projects\/?$/
const HEALTH = /^\/healthz\/?$/

function decodeSegment(raw: string): TaskIdSegment {
  try {
    return { ok: true, taskId: decodeURIComponent(raw) }
  } catch {
    return { ok: false, error: `task id ${JSON.stringify(raw.slice(0, 40))} is not valid URL encoding` }
  }
}

/** The route a path belongs to, or `null` when it is not one of tabcast's. */
export function matchRoute(pathname: string, basePath: string): Route | null {
  if (basePath !== '') {
    if (!pathname.startsWith(`${basePath}/`)) return null
    pathname = pathname.slice(basePath.length)
  }
  let match = STREAM.exec(pathname)
  if (match) return { kind: 'stream', segment: decodeSegment(match[1] ?? '') }
  match = STATUS.exec(pathname)
  if (match) return { kind: 'status', segment: decodeSegment(match[1] ?? '') }
  if (CREATE.test(pathname)) return { kind: 'create' }
  if (HEALTH.test(pathname)) return { kind: 'health' }
  return null
}

/**
 * Splits a request target into path and query without trusting it to be a valid URL.
 * The path is matched as sent, not resolved: a segment that is `.` or `..` once
 * percent-decoded (`%2e%2e`) makes the target no route of ours. Resolving it instead
 * (as `new URL` does) would let `/api/v1/projects/%2e%2e/%2e%2e/%2e%2e/healthz` reach
 * `/healthz` through a proxy that forwards only `/api/`.
 */
export function parseTarget(target: string | undefined): { pathname: string; query: URLSearchParams } | null {
  if (target === undefined || !target.startsWith('/')) return null
  const end = target.search(/[?#]/)
  const pathname = end === -1 ? target : target.slice(0, end)
  const query = end === -1 || target[end] === '#' ? '' : target.slice(end + 1).split('#')[0]
  for (const segment of pathname.split('/')) {
    if (isDotSegment(segment)) return null
  }
  return { pathname, query: new URLSearchParams(query) }
}

function isDotSegment(segment: string): boolean {
  if (segment.length > 6) return false
  let decoded: string
  try {
    decoded = decodeURIComponent(segment)
  } catch {
    return false
  }
  return decoded === '.' || decoded === '..'
}

/** Paths handed back to clients that create tasks (relative, so they survive proxies). */
export function taskPaths(basePath: string, taskId: string): { status: string; stream: string } {
  const id = encodeURIComponent(taskId)
  return {
    status: `${basePath}/api/v1/projects/${id}/status`,
    stream: `${basePath}/api/v1/ws/projects/${id}/stream`,
  }
}
