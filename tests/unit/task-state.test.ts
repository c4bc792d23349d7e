import { describe, expect, it } from 'vitest'
import type { ServerMessage, StatusResponse } from 'tabcast'
import { INITIAL_TASK, applyMessage, applyStatus, withConnectionError, withFatalError, type TaskState } from '../../src/core/task-state.js'

const NOW = 1_000

function applyAll(messages: ServerMessage[], from: TaskState = INITIAL_TASK) {
  let task = from
  const delivered: ServerMessage[] = []
  for (const message of messages) {
    const applied = applyMessage(task, message, NOW)
    task = applied.task
    if (applied.deliver) delivered.push(message)
  }
  return { task, delivered }
}

const status = (fields: Partial<StatusResponse> & Pick<StatusResponse, 'status'>): StatusResponse => ({
  project_id: 't1',
  progress: 0,
  ...fields,
})

describe('applyMessage', () => {
  it('progress sets running, progress, message and task name', () => {
    const { task } = applyAll([{ type: 'progress', progress: 0.25, message: 'step 1', task_name: 'render', seq: 1 }])
    expect(task).toMatchObject({ status: 'running', progress: 0.25, message: 'step 1', taskName: 'render', seq: 1, lastMessageAt: NOW })
  })

  it('progress never goes backwards', () => {
    const { task, delivered } = applyAll([
      { type: 'progress', progress: 0.6, seq: 1 },
      { type: 'progress', progress: 0.3, message: 'late', seq: 2 },
    ])
    expect(task.progress).toBe(0.6)
    // The message is news even if its number is not: it still reaches listeners.
    expect(task.message).toBe('late')
    expect(delivered).toHaveLength(2)
  })

  it('completed is sticky: later progress or errors do not change the outcome', () => {
    const { task, delivered } = applyAll([
      { type: 'progress', progress: 0.5, seq: 1 },
      { type: 'completed', result: { url: '/a.mp3' }, message: 'done', seq: 2 },
      { type: 'progress', progress: 0.1, message: 'ghost', seq: 3 },
      { type: 'error', error: 'too late', seq: 4 },
    ])
    expect(task).toMatchObject({ status: 'completed', progress: 1, result: { url: '/a.mp3' }, message: 'done', error: null, seq: 4 })
    expect(delivered).toHaveLength(4)
  })

  it('failed is sticky', () => {
    const { task } = applyAll([
      { type: 'error', error: 'out of memory', details: { code: 'oom' }, seq: 1 },
      { type: 'completed', result: { ok: true }, seq: 2 },
    ])
    expect(task).toMatchObject({ status: 'failed', error: 'out of memory', details: { code: 'oom' }, result: null })
  })

  it('completed without a result gets an empty result', () => {
    expect(applyAll([{ type: 'completed' }]).task.result).toEqual({})
  })

  it('an error without text still fails the task with a reason', () => {
    expect(applyAll([{ type: 'error' }]).task).toMatchObject({ status: 'failed', error: 'the task failed' })
    expect(applyAll([{ type: 'error', message: 'disk full' }]).task.error).toBe('disk full')
  })

  it('a duplicate seq is not delivered and changes nothing', () => {
    const first = applyAll([
      { type: 'progress', progress: 0.2, seq: 1 },
      { type: 'progress', progress: 0.4, seq: 2 },
    ])
    const again = applyMessage(first.task, { type: 'progress', progress: 0.4, seq: 2 }, NOW + 5)
    expect(again.deliver).toBe(false)
    expect(again.task).toBe(first.task)
    const older = applyMessage(first.task, { type: 'progress', progress: 0.9, seq: 1 }, NOW)
    expect(older.deliver).toBe(false)
    expect(older.task.progress).toBe(0.4)
  })

  it('messages without seq are always delivered and keep the last seq', () => {
    const { task, delivered } = applyAll([
      { type: 'progress', progress: 0.2, seq: 4 },
      { type: 'progress', progress: 0.3 },
      { type: 'progress', progress: 0.3 },
    ])
    expect(delivered).toHaveLength(3)
    expect(task.seq).toBe(4)
  })

  it('connected with last_seq below ours accepts the new numbering', () => {
    const before = applyAll([{ type: 'progress', progress: 0.7, seq: 9 }]).task
    const reset = applyMessage(before, { type: 'connected', last_seq: 2 }, NOW)
    expect(reset.task.seq).toBe(2)
    // Without the reset, seq 3 would be dropped as a duplicate of what we had.
    const next = applyMessage(reset.task, { type: 'progress', progress: 0.8, seq: 3 }, NOW)
    expect(next.deliver).toBe(true)
    expect(next.task).toMatchObject({ progress: 0.8, seq: 3 })
  })

  it('connected with last_seq at or above ours keeps our seq, and clears a connection error', () => {
    const before = { ...applyAll([{ type: 'progress', progress: 0.7, seq: 5 }]).task, connectionError: 'bad frame' }
    const same = applyMessage(before, { type: 'connected', last_seq: 8 }, NOW)
    expect(same.task.seq).toBe(5)
    expect(same.task.connectionError).toBeNull()
    expect(same.deliver).toBe(true)
  })

  it('a connection-scoped error is a connection note, not a task failure', () => {
    const before = applyAll([{ type: 'progress', progress: 0.3, seq: 1 }]).task
    const { task, deliver } = applyMessage(
      before,
      { type: 'error', error: 'message too fast', details: { scope: 'connection', code: 'rate_limited' } },
      NOW,
    )
    expect(deliver).toBe(true)
    expect(task).toMatchObject({ status: 'running', progress: 0.3, error: null, connectionError: 'message too fast' })
  })

  it('a good message clears a connection error', () => {
    const before = withConnectionError(INITIAL_TASK, 'bad frame')
    expect(applyMessage(before, { type: 'progress', progress: 0.1 }, NOW).task.connectionError).toBeNull()
  })

  it('pong changes nothing', () => {
    const { task, deliver } = applyMessage(INITIAL_TASK, { type: 'pong' }, NOW)
    expect(task).toBe(INITIAL_TASK)
    expect(deliver).toBe(true)
  })
})

describe('applyStatus', () => {
  const running = applyAll([{ type: 'progress', progress: 0.4, message: 'encoding', seq: 3 }]).task

  it('a running status with more progress synthesizes a progress message', () => {
    const { task, messages } = applyStatus(running, status({ status: 'running', progress: 0.6, message: 'mixing', seq: 5 }), NOW)
    expect(messages).toEqual([{ type: 'progress', project_id: 't1', progress: 0.6, message: 'mixing', seq: 5 }])
    expect(task).toMatchObject({ status: 'running', progress: 0.6, message: 'mixing', seq: 5 })
  })

  it('a status with nothing new yields no message but refreshes lastMessageAt and clears the error', () => {
    const before = { ...running, connectionError: 'HTTP 500' }
    const { task, messages } = applyStatus(before, status({ status: 'running', progress: 0.4, message: 'encoding', seq: 3 }), NOW + 50)
    expect(messages).toEqual([])
    expect(task).toMatchObject({ progress: 0.4, connectionError: null, lastMessageAt: NOW + 50 })
  })

  it('the first status of an idle task reports progress even at 0', () => {
    const { task, messages } = applyStatus(INITIAL_TASK, status({ status: 'running', progress: 0 }), NOW)
    expect(messages).toEqual([{ type: 'progress', project_id: 't1', progress: 0 }])
    expect(task.status).toBe('running')
  })

  it('a stale status (older seq) is ignored', () => {
    const { task, messages } = applyStatus(running, status({ status: 'running', progress: 0.9, message: 'old', seq: 2 }), NOW)
    expect(messages).toEqual([])
    expect(task.progress).toBe(0.4)
    expect(task.message).toBe('encoding')
    expect(task.seq).toBe(3)
  })

  it('a status with lower progress does not move progress backwards', () => {
    const { task } = applyStatus(running, status({ status: 'running', progress: 0.1, message: 'other', seq: 4 }), NOW)
    expect(task.progress).toBe(0.4)
  })

  it('completed synthesizes a completed message with the result', () => {
    const { task, messages } = applyStatus(running, status({ status: 'completed', progress: 1, result: { url: '/x' }, seq: 7 }), NOW)
    expect(messages).toEqual([{ type: 'completed', project_id: 't1', progress: 1, result: { url: '/x' }, seq: 7 }])
    expect(task).toMatchObject({ status: 'completed', progress: 1, result: { url: '/x' }, seq: 7 })
  })

  it.each(['failed', 'error'] as const)('%s synthesizes an error message', (value) => {
    const { task, messages } = applyStatus(running, status({ status: value, error: 'GPU lost', details: { gpu: 2 }, seq: 6 }), NOW)
    expect(messages).toEqual([{ type: 'error', project_id: 't1', error: 'GPU lost', details: { gpu: 2 }, seq: 6 }])
    expect(task).toMatchObject({ status: 'failed', error: 'GPU lost', details: { gpu: 2 } })
  })

  it('a failed status without text still names the failure', () => {
    expect(applyStatus(running, status({ status: 'failed' }), NOW).task.error).toBe('the task failed')
  })

  it('a terminal status applies even when its seq is not newer (a status is state, not a step)', () => {
    const { task } = applyStatus(running, status({ status: 'completed', result: {}, seq: 3 }), NOW)
    expect(task.status).toBe('completed')
    expect(task.seq).toBe(3)
  })

  it('nothing changes once the task finished', () => {
    const done = applyAll([{ type: 'completed', result: { a: 1 }, seq: 2 }]).task
    const { task, messages } = applyStatus(done, status({ status: 'failed', error: 'x', seq: 9 }), NOW)
    expect(task).toBe(done)
    expect(messages).toEqual([])
  })

  it('keeps the larger seq so a later stream resumes after it', () => {
    expect(applyStatus(running, status({ status: 'running', progress: 0.5 }), NOW).task.seq).toBe(3)
    expect(applyStatus(running, status({ status: 'running', progress: 0.5, seq: 10 }), NOW).task.seq).toBe(10)
  })
})

describe('withFatalError / withConnectionError', () => {
  it('a fatal error fails a running task but not a finished one', () => {
    expect(withFatalError(INITIAL_TASK, 'bad id')).toMatchObject({ status: 'failed', error: 'bad id', connectionError: 'bad id' })
    const done = applyAll([{ type: 'completed' }]).task
    expect(withFatalError(done, 'late')).toBe(done)
  })

  it('the same connection error twice keeps the same object', () => {
    const once = withConnectionError(INITIAL_TASK, 'x')
    expect(withConnectionError(once, 'x')).toBe(once)
  })
})
