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

/** Splits a request target into path and query without trusting it to be a valid URL. */
export function parseTarget(target: string | undefined): { pathname: string; query: URLSearchParams } | null {
  if (target === undefined || !target.startsWith('/')) return null
  try {
    const url = new URL(target, 'http://tabcast.invalid')
    return { pathname: url.pathname, query: url.searchParams }
  } catch {
    return null
  }
}

/** Paths handed back to clients that create tasks (relative, so they survive proxies). */
export function taskPaths(basePath: string, taskId: string): { status: string; stream: string } {
  const id = encodeURIComponent(taskId)
  return {
    status: `${basePath}/api/v1/projects/${id}/status`,
    stream: `${basePath}/api/v1/ws/projects/${id}/stream`,
  }
}
