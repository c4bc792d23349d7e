/**
 * How the Redis store writes tasks into Redis and reads them back: the state hash's
 * fields, the stream entries, and the arguments of the append script. Values other
 * than `status`, `seq` and the times are JSON text written by Node, so Lua never parses
 * user data (results keep their number precision and exact shape).
 */
import { randomBytes } from 'node:crypto'
import type { TaskMessage } from '../src/protocol.js'
import type { TaskLifecycle, TaskMessageInput, TaskState } from './store.js'

export function statusAfter(type: TaskMessageInput['type']): TaskLifecycle {
  return type === 'completed' ? 'completed' : type === 'error' ? 'failed' : 'running'
}

export function parseMessage(json: string): TaskMessage {
  return Object.freeze(JSON.parse(json) as TaskMessage)
}

function pairs(flat: readonly string[]): Map<string, string> {
  const map = new Map<string, string>()
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i] as string, flat[i + 1] as string)
  return map
}

/** A state hash (HGETALL as a flat list) as a `TaskState`, or null when the hash is empty. */
export function toState(taskId: string, flat: readonly string[]): TaskState | null {
  const fields = pairs(flat)
  const status = fields.get('status')
  if (status === undefined) return null
  const json = (name: string): unknown => {
    const text = fields.get(name)
    return text === undefined ? undefined : JSON.parse(text)
  }
  const created = fields.get('created') ?? new Date(0).toISOString()
  const state: TaskState = {
    taskId,
    status: status as TaskLifecycle,
    progress: Number(json('progress') ?? 0),
    lastSeq: Number(fields.get('seq') ?? 0),
    createdAt: created,
    updatedAt: fields.get('updated') ?? created,
  }
  const taskName = json('name')
  if (typeof taskName === 'string') state.taskName = taskName
  const message = json('message')
  if (typeof message === 'string') state.message = message
  const result = json('result')
  if (result !== undefined) state.result = result as NonNullable<TaskState['result']>
  const error = json('error')
  if (typeof error === 'string') state.error = error
  const details = json('details')
  if (details !== undefined) state.details = details as NonNullable<TaskState['details']>
  const epoch = fields.get('epoch')
  if (epoch !== undefined) state.epoch = epoch
  const lease = fields.get('lease')
  if (lease !== undefined && status === 'running') state.leaseExpiresAt = Number(lease)
  const latest = fields.get('latest')
  if (latest !== undefined) state.latest = parseMessage(latest)
  return state
}

/** An object reply (ioredis answers HGETALL with one) as the flat list `toState` takes. */
export function flatten(record: Record<string, string>): string[] {
  return Object.entries(record).flat()
}

/** The state fields a message changes, as hash field/value pairs (values are JSON). */
export function stateFields(input: TaskMessageInput): string[] {
  const fields: string[] = []
  const set = (name: string, value: unknown): void => {
    if (value !== undefined) fields.push(name, JSON.stringify(value))
  }
  if (input.type === 'progress') {
    set('progress', input.progress)
    set('message', input.message)
  } else if (input.type === 'completed') {
    set('progress', 1)
    set('message', input.message)
    set('result', input.result)
  } else {
    set('error', input.error)
    set('details', input.details)
  }
  return fields
}

/** Stream entries (XRANGE) as messages, oldest first. */
export function streamMessages(range: readonly [string, string[]][] | undefined | null): TaskMessage[] {
  const messages: TaskMessage[] = []
  for (const [, fields] of range ?? []) {
    const index = fields.indexOf('m')
    const json = index >= 0 ? fields[index + 1] : undefined
    if (json !== undefined) messages.push(parseMessage(json))
  }
  return messages
}

/** A new epoch: 12 characters of base64url, inside the protocol's epoch alphabet. */
export function newEpoch(): string {
  return randomBytes(9).toString('base64url')
}

/** Whole milliseconds, at least 1 (PEXPIRE takes an integer). */
export function ttl(ms: number): number {
  return Math.max(1, Math.ceil(ms))
}
