/**
 * What is known about a task, and the pure functions that apply server messages and
 * status responses to it. The rules that keep every tab consistent live here:
 * progress never goes backwards while the task runs, `completed` and `failed` are
 * sticky, and a message whose `seq` was already applied is a duplicate.
 */
import { isConnectionScopedError, type JsonRecord, type ServerMessage, type StatusResponse } from '../protocol.js'
import type { TaskStatus } from '../types.js'

export interface TaskState {
  status: TaskStatus
  progress: number
  message: string | null
  taskName: string | null
  result: JsonRecord | null
  error: string | null
  details: JsonRecord | null
  seq: number | null
  lastMessageAt: number | null
  connectionError: string | null
}

export const INITIAL_TASK: TaskState = Object.freeze({
  status: 'idle',
  progress: 0,
  message: null,
  taskName: null,
  result: null,
  error: null,
  details: null,
  seq: null,
  lastMessageAt: null,
  connectionError: null,
})

export function isFinished(task: TaskState): boolean {
  return task.status === 'completed' || task.status === 'failed'
}

export interface Applied {
  task: TaskState
  /** False for a duplicate (already-applied `seq`) that must not reach `onMessage` again. */
  deliver: boolean
}

/** Applies one validated server message. */
export function applyMessage(task: TaskState, message: ServerMessage, now: number): Applied {
  if (message.type === 'pong') return { task, deliver: true }
  if (message.type === 'connected') {
    // A server whose newest seq is below ours lost its history (an in-memory server
    // restarted): accept its new numbering instead of dropping everything as duplicates.
    const lastSeq = message.last_seq
    if (lastSeq !== undefined && task.seq !== null && lastSeq < task.seq) {
      return { task: { ...task, seq: lastSeq, connectionError: null }, deliver: true }
    }
    return { task: task.connectionError === null ? task : { ...task, connectionError: null }, deliver: true }
  }
  if (isConnectionScopedError(message)) {
    return { task: { ...task, connectionError: message.error ?? message.message ?? 'the server reported a connection error' }, deliver: true }
  }
  if (message.seq !== undefined && task.seq !== null && message.seq <= task.seq) return { task, deliver: false }
  const seq = message.seq ?? task.seq
  if (isFinished(task)) {
    // Sticky: nothing after the end changes what tabs show, but the message is still news.
    return { task: { ...task, seq, lastMessageAt: now }, deliver: true }
  }
  const base = {
    ...task,
    seq,
    lastMessageAt: now,
    connectionError: null,
    taskName: message.task_name ?? task.taskName,
  }
  switch (message.type) {
    case 'progress':
      return {
        task: {
          ...base,
          status: 'running',
          progress: Math.max(task.progress, message.progress ?? task.progress),
          message: message.message ?? task.message,
        },
        deliver: true,
      }
    case 'completed':
      return {
        task: {
          ...base,
          status: 'completed',
          progress: 1,
          message: message.message ?? task.message,
          result: message.result ?? {},
        },
        deliver: true,
      }
    case 'error':
      return {
        task: {
          ...base,
          status: 'failed',
          message: message.message ?? task.message,
          error: message.error ?? message.message ?? 'the task failed',
          details: message.details ?? null,
        },
        deliver: true,
      }
  }
}

export interface StatusApplied {
  task: TaskState
  /** Messages equivalent to what changed, for `onMessage` listeners while polling. */
  messages: ServerMessage[]
}

/** Applies one validated status response (from polling or a gap fill). */
export function applyStatus(task: TaskState, status: StatusResponse, now: number): StatusApplied {
  if (isFinished(task)) return { task, messages: [] }
  const common = {
    project_id: status.project_id,
    ...(status.task_name === undefined ? {} : { task_name: status.task_name }),
    ...(status.seq === undefined ? {} : { seq: status.seq }),
    ...(status.message === undefined ? {} : { message: status.message }),
  }
  const stale = status.seq !== undefined && task.seq !== null && status.seq < task.seq
  let message: ServerMessage | null = null
  if (status.status === 'completed') {
    message = { ...common, type: 'completed', progress: 1, result: status.result ?? {} }
  } else if (status.status === 'failed' || status.status === 'error') {
    message = {
      ...common,
      type: 'error',
      error: status.error ?? status.message ?? `the task ${status.status}`,
      ...(status.details === undefined ? {} : { details: status.details }),
    }
  } else if (!stale && (status.progress > task.progress || (status.message !== undefined && status.message !== task.message) || task.status === 'idle')) {
    message = { ...common, type: 'progress', progress: Math.max(task.progress, status.progress) }
  }
  if (message === null) {
    const cleared = task.connectionError === null ? task : { ...task, connectionError: null }
    return { task: { ...cleared, lastMessageAt: now }, messages: [] }
  }
  // Status responses describe state rather than a step in the stream: apply without the
  // duplicate check, keeping the larger seq so the stream can resume after it.
  const { seq: _ignored, ...withoutSeq } = message
  const applied = applyMessage({ ...task, seq: null }, withoutSeq as ServerMessage, now).task
  const seq = status.seq === undefined ? task.seq : Math.max(task.seq ?? 0, status.seq)
  return { task: { ...applied, seq }, messages: [message] }
}

/** Records a problem (a bad message, a failed poll) without touching the task. */
export function withConnectionError(task: TaskState, error: string): TaskState {
  return task.connectionError === error ? task : { ...task, connectionError: error }
}

/** A problem that ends following the task (bad id, fatal close): shown as the task's error. */
export function withFatalError(task: TaskState, error: string): TaskState {
  if (isFinished(task)) return task
  return { ...task, status: 'failed', error, connectionError: error }
}
