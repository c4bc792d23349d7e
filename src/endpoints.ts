/**
 * Turning the guide's `backendUrl` (`'localhost:8000'` by default) into the two
 * endpoints of a task, and the key that identifies one shared connection.
 */
import { validateTaskId } from './protocol.js'
import { resolveBackend, taskKey, type Backend } from './task-key.js'

export { DEFAULT_BACKEND_URL } from './defaults.js'

export { resolveBackend, taskKey, type Backend, type BackendResult, type TaskKeyParts } from './task-key.js'

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

export type TaskTarget = { ok: true; backend: Backend; taskId: string; key: string } | { ok: false; error: string }

/**
 * Validates both halves of a subscription target at once. `key` is `taskKey()` of the
 * target: one shared connection per key.
 */
export function resolveTarget(backendUrl: string, taskId: string, secure = false, authScope?: string): TaskTarget {
  const idError = validateTaskId(taskId)
  if (idError !== null) return { ok: false, error: idError }
  const backend = resolveBackend(backendUrl, secure)
  if (!backend.ok) return backend
  return { ok: true, backend: backend.value, taskId, key: taskKey(taskId, { backendUrl, authScope }, secure) }
}
