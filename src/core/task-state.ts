/**
 * What is known about a task, and the pure functions that apply server messages and
 * status responses to it. The rules that keep every tab consistent live here:
 * - progress never goes backwards within one numbering epoch of the server;
 * - `completed` and `failed` are final, whatever arrives after them, in any order;
 * - a task message whose `seq` was already applied in this epoch is a duplicate;
 * - a server whose numbering restarted (a new `epoch`, or `last_seq` below ours) starts
 *   a new epoch: its messages are accepted from the first one on, and its truth wins;
 * - a running task with no update for `staleAfter` ms is stalled (not failed).
 */
import {
  isConnectionScopedError,
  isKnownMessage,
  type JsonRecord,
  type ServerMessage,
  type StatusResponse,
  type TaskMessage,
} from '../protocol.js'
import type { TaskStatus } from '../types.js'

export interface TaskState {
  status: TaskStatus
  progress: number
  message: string | null
  taskName: string | null
  result: JsonRecord | null
  error: string | null
  details: JsonRecord | null
  /** The newest `seq` applied in the current epoch; null when none (or the epoch just began). */
  seq: number | null
  /** The server's `epoch` the `seq` belongs to, once the server has named one. */
  epoch: string | null
  /**
   * A new epoch began and nothing of it was applied yet: the next message or status
   * sets the progress even when it is lower (the server's truth wins over what we had).
   */
  renumbered: boolean
  lastMessageAt: number | null
  /** When the task last showed a sign of life: a task message, or a status that changed. */
  lastUpdateAt: number | null
  /** `lastUpdateAt` once the running task has had no update for `staleAfter`; else null. */
  stalledSince: number | null
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
  epoch: null,
  renumbered: false,
  lastMessageAt: null,
  lastUpdateAt: null,
  stalledSince: null,
  connectionError: null,
})

export function isFinished(task: TaskState): boolean {
  return task.status === 'completed' || task.status === 'failed'
}

function isTerminal(message: TaskMessage): boolean {
  return message.type === 'completed' || (message.type === 'error' && !isConnectionScopedError(message))
}

export interface Applied {
  task: TaskState
  /** False for a duplicate (already-applied `seq`) that must not reach `onMessage` again. */
  deliver: boolean
  /** The message began a new numbering epoch: the status should be read once. */
  newEpoch: boolean
}

/** Applies one validated server message. */
export function applyMessage(task: TaskState, message: ServerMessage, now: number): Applied {
  // A type this client does not know is news for `onMessage`, and nothing else.
  if (!isKnownMessage(message) || message.type === 'pong') return { task, deliver: true, newEpoch: false }
  if (message.type === 'connected') {
    const epoch = message.epoch ?? task.epoch
    const epochChanged = message.epoch !== undefined && task.epoch !== null && message.epoch !== task.epoch
    // A server whose newest seq is below ours lost its history even if it names no epoch
    // (an in-memory server restarted).
    const behind = message.last_seq !== undefined && task.seq !== null && message.last_seq < task.seq
    if (epochChanged || behind) {
      // Forget the seq baseline: the current-state message that follows may carry
      // seq == last_seq, which must not be dropped as a duplicate of the old numbering.
      return { task: { ...task, seq: null, epoch, renumbered: true, connectionError: null }, deliver: true, newEpoch: true }
    }
    const same = task.connectionError === null && task.epoch === epoch
    return { task: same ? task : { ...task, epoch, connectionError: null }, deliver: true, newEpoch: false }
  }
  if (isConnectionScopedError(message)) {
    return {
      task: { ...task, connectionError: message.error ?? message.message ?? 'the server reported a connection error' },
      deliver: true,
      newEpoch: false,
    }
  }
  const finished = isFinished(task)
  // An end the client has not seen cannot be a duplicate of anything it applied, so a
  // terminal message is never dropped for its seq (a renumbered server may send it lower).
  const duplicate = message.seq !== undefined && task.seq !== null && message.seq <= task.seq
  if (duplicate && (finished || !isTerminal(message))) return { task, deliver: false, newEpoch: false }
  const seq = message.seq === undefined ? task.seq : Math.max(message.seq, task.seq ?? 0)
  if (finished) {
    // Final: nothing after the end changes what tabs show, but the message is still news.
    return { task: { ...task, seq, lastMessageAt: now }, deliver: true, newEpoch: false }
  }
  const base: TaskState = {
    ...task,
    seq,
    renumbered: false,
    lastMessageAt: now,
    lastUpdateAt: now,
    stalledSince: null,
    connectionError: null,
    taskName: message.task_name ?? task.taskName,
  }
  switch (message.type) {
    case 'progress': {
      const reported = message.progress ?? task.progress
      return {
        task: {
          ...base,
          status: 'running',
          progress: task.renumbered ? reported : Math.max(task.progress, reported),
          message: message.message ?? task.message,
        },
        deliver: true,
        newEpoch: false,
      }
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
        newEpoch: false,
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
        newEpoch: false,
      }
  }
}

export interface StatusApplied {
  task: TaskState
  /** Messages equivalent to what changed, for `onMessage` listeners while polling. */
  messages: ServerMessage[]
}

export interface StatusOptions {
  /**
   * Whether the status's `seq` becomes the task's (the point a reconnect resumes after).
   * A read made while waiting to reconnect shows the state but leaves `seq` alone, so the
   * reconnect still replays every step since, and `onMessage` misses none of them.
   * @default true
   */
  advanceSeq?: boolean
}

/** Applies one validated status response (from polling, a backoff read or a gap fill). */
export function applyStatus(task: TaskState, status: StatusResponse, now: number, options: StatusOptions = {}): StatusApplied {
  if (isFinished(task)) return { task, messages: [] }
  // A status naming another epoch than ours is the truth of a server that lost our history.
  const epochChanged = status.epoch !== undefined && task.epoch !== null && status.epoch !== task.epoch
  const current: TaskState = epochChanged ? { ...task, seq: null, renumbered: true } : task
  const epoch = status.epoch ?? task.epoch
  const nextSeq = status.seq === undefined || options.advanceSeq === false ? current.seq : Math.max(current.seq ?? 0, status.seq)
  const common = {
    project_id: status.project_id,
    ...(status.task_name === undefined ? {} : { task_name: status.task_name }),
    ...(status.seq === undefined ? {} : { seq: status.seq }),
    ...(status.message === undefined ? {} : { message: status.message }),
  }
  const stale = status.seq !== undefined && current.seq !== null && status.seq < current.seq
  const moved = current.renumbered ? status.progress !== current.progress : status.progress > current.progress
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
  } else if (!stale && (moved || (status.message !== undefined && status.message !== current.message) || current.status === 'idle')) {
    message = {
      ...common,
      type: 'progress',
      progress: current.renumbered ? status.progress : Math.max(current.progress, status.progress),
    }
  }
  if (message === null) {
    // No visible change; a newer seq still shows the job is reporting.
    const advanced = !stale && status.seq !== undefined && (current.seq === null || status.seq > current.seq)
    return {
      task: {
        ...current,
        epoch,
        renumbered: false,
        seq: nextSeq,
        connectionError: null,
        lastMessageAt: now,
        ...(advanced ? { lastUpdateAt: now, stalledSince: null } : {}),
      },
      messages: [],
    }
  }
  // Status responses describe state rather than a step in the stream: apply without the
  // duplicate check, keeping the larger seq so the stream can resume after it.
  const { seq: _ignored, ...withoutSeq } = message
  const applied = applyMessage({ ...current, seq: null }, withoutSeq as ServerMessage, now).task
  return { task: { ...applied, seq: nextSeq, epoch }, messages: [message] }
}

/**
 * Marks or clears the stalled state at `now`: a running task whose last update is
 * `staleAfter` ms old or more is stalled since that update. 0 disables the rule.
 */
export function withStaleness(task: TaskState, now: number, staleAfter: number): TaskState {
  const stalledSince =
    task.status === 'running' && staleAfter > 0 && task.lastUpdateAt !== null && now - task.lastUpdateAt >= staleAfter
      ? task.lastUpdateAt
      : null
  return stalledSince === task.stalledSince ? task : { ...task, stalledSince }
}

/** When the task becomes stalled if nothing happens (ms since epoch), or null when it cannot. */
export function staleDeadline(task: TaskState, staleAfter: number): number | null {
  if (task.status !== 'running' || staleAfter <= 0 || task.lastUpdateAt === null || task.stalledSince !== null) return null
  return task.lastUpdateAt + staleAfter
}

/** Records a problem (a bad message, a failed poll) without touching the task. */
export function withConnectionError(task: TaskState, error: string): TaskState {
  return task.connectionError === error ? task : { ...task, connectionError: error }
}

/** A problem that ends following the task (bad id, fatal close): shown as the task's error. */
export function withFatalError(task: TaskState, error: string): TaskState {
  if (isFinished(task)) return task
  return { ...task, status: 'failed', error, connectionError: error, stalledSince: null }
}
