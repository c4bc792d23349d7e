import { describe, expect, it } from 'vitest'
import type { ServerMessage, StatusResponse } from 'tabcast'
import {
  INITIAL_TASK,
  applyMessage,
  applyStatus,
  staleDeadline,
  withConnectionError,
  withFatalError,
  withStaleness,
  type TaskState,
} from '../../src/core/task-state.js'

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

describe('applyMessage: numbering epochs', () => {
  const at5 = applyAll([
    { type: 'connected', epoch: 'A', last_seq: 0 },
    { type: 'progress', progress: 0.62, message: 'mixing', seq: 5 },
  ]).task

  it('the first epoch a server names is recorded, not treated as a new one', () => {
    expect(at5).toMatchObject({ epoch: 'A', seq: 5, renumbered: false })
  })

  it('connected with last_seq below ours (no epoch named) starts a new epoch and forgets the seq baseline', () => {
    const applied = applyMessage({ ...at5, epoch: null }, { type: 'connected', last_seq: 4 }, NOW)
    expect(applied).toMatchObject({ newEpoch: true, deliver: true })
    expect(applied.task).toMatchObject({ seq: null, renumbered: true, progress: 0.62 })
  })

  it('a different epoch starts a new one even when last_seq is above ours', () => {
    const applied = applyMessage(at5, { type: 'connected', epoch: 'B', last_seq: 9 }, NOW)
    expect(applied).toMatchObject({ newEpoch: true })
    expect(applied.task).toMatchObject({ epoch: 'B', seq: null, renumbered: true })
  })

  it('the same epoch with last_seq at or above ours is the same history', () => {
    for (const lastSeq of [5, 8]) {
      const applied = applyMessage(at5, { type: 'connected', epoch: 'A', last_seq: lastSeq }, NOW)
      expect(applied.newEpoch).toBe(false)
      expect(applied.task.seq).toBe(5)
    }
  })

  it('the same epoch but last_seq below ours is still a new epoch (rule b holds alone)', () => {
    expect(applyMessage(at5, { type: 'connected', epoch: 'A', last_seq: 2 }, NOW).newEpoch).toBe(true)
  })

  it('connected without last_seq or epoch changes nothing about the numbering', () => {
    const applied = applyMessage(at5, { type: 'connected' }, NOW)
    expect(applied.newEpoch).toBe(false)
    expect(applied.task).toBe(at5)
  })

  it('issue 11: completed with seq == last_seq after a renumbering restart is applied, not dropped', () => {
    const { task, delivered } = applyAll(
      [
        { type: 'connected', last_seq: 4 },
        { type: 'completed', result: { audio_id: 'a1' }, seq: 4 },
      ],
      at5,
    )
    expect(task).toMatchObject({ status: 'completed', progress: 1, result: { audio_id: 'a1' }, seq: 4 })
    expect(delivered.map((message) => message.type)).toEqual(['connected', 'completed'])
  })

  it('the first message of a new epoch sets the progress even when lower; later ones never go back within it', () => {
    const { task } = applyAll(
      [
        { type: 'connected', epoch: 'B', last_seq: 1 },
        { type: 'progress', progress: 0.25, seq: 1 },
        { type: 'progress', progress: 0.45, seq: 2 },
        { type: 'progress', progress: 0.3, seq: 3 },
      ],
      at5,
    )
    expect(task).toMatchObject({ progress: 0.45, seq: 3, epoch: 'B', renumbered: false })
  })

  it('a job resuming after a renumbering: the first new message is not dropped (no jump 25 % → 45 %)', () => {
    const renumbered = applyAll([{ type: 'connected', last_seq: 3 }], { ...at5, progress: 0.25 }).task
    const first = applyMessage(renumbered, { type: 'progress', progress: 0.35, seq: 4 }, NOW)
    expect(first.deliver).toBe(true)
    expect(first.task).toMatchObject({ progress: 0.35, seq: 4 })
  })

  it('a duplicate within the new epoch is still dropped', () => {
    const { task, delivered } = applyAll(
      [
        { type: 'connected', last_seq: 2 },
        { type: 'progress', progress: 0.1, seq: 2 },
        { type: 'progress', progress: 0.1, seq: 2 },
      ],
      at5,
    )
    expect(delivered).toHaveLength(2)
    expect(task.seq).toBe(2)
  })

  it.each([
    ['completed', { type: 'completed', result: { ok: 1 }, seq: 3 }, 'completed'],
    ['a task error', { type: 'error', error: 'GPU lost', seq: 3 }, 'failed'],
  ] as const)('%s with a seq below ours, with no epoch news at all, still ends the task', (_name, message, status) => {
    const applied = applyMessage(at5, message, NOW)
    expect(applied.deliver).toBe(true)
    expect(applied.task.status).toBe(status)
    expect(applied.task.seq).toBe(5)
  })

  it('a progress with a seq below ours and no epoch news is a duplicate', () => {
    expect(applyMessage(at5, { type: 'progress', progress: 0.9, seq: 3 }, NOW)).toMatchObject({ deliver: false, task: at5 })
  })

  it.each([
    ['a new epoch', [{ type: 'connected', epoch: 'B', last_seq: 0 }, { type: 'progress', progress: 0.1, seq: 1 }]],
    ['a lower last_seq', [{ type: 'connected', last_seq: 0 }, { type: 'progress', progress: 0.1, seq: 1 }]],
    ['an error after it', [{ type: 'error', error: 'late', seq: 9 }]],
  ] as const)('completed stays final whatever follows: %s', (_name, after) => {
    const done = applyAll([{ type: 'completed', result: { a: 1 }, seq: 6 }], at5).task
    const { task } = applyAll([...after], done)
    expect(task).toMatchObject({ status: 'completed', progress: 1, result: { a: 1 }, error: null })
  })

  it('a message of an unknown type is delivered and leaves the task alone', () => {
    const applied = applyMessage(at5, { type: 'eta', seconds: 3, seq: 99, progress: 0.99 }, NOW)
    expect(applied).toEqual({ task: at5, deliver: true, newEpoch: false })
  })
})

describe('applyStatus: epochs and sequence', () => {
  const at5: TaskState = { ...applyAll([{ type: 'progress', progress: 0.62, seq: 5 }]).task, epoch: 'A' }

  it('a status of another epoch is the truth: lower progress is shown and its seq replaces ours', () => {
    const { task, messages } = applyStatus(at5, status({ status: 'running', progress: 0.3, seq: 2, epoch: 'B' }), NOW)
    expect(task).toMatchObject({ progress: 0.3, seq: 2, epoch: 'B', renumbered: false })
    expect(messages).toEqual([{ type: 'progress', project_id: 't1', progress: 0.3, seq: 2 }])
  })

  it('after connected started a new epoch, the status read sets the progress even if lower', () => {
    const renumbered = applyMessage(at5, { type: 'connected', last_seq: 1 }, NOW).task
    const { task } = applyStatus(renumbered, status({ status: 'running', progress: 0.2, seq: 1 }), NOW)
    expect(task).toMatchObject({ progress: 0.2, seq: 1, renumbered: false })
  })

  it('a status of the same epoch with an older seq is stale', () => {
    const { task, messages } = applyStatus(at5, status({ status: 'running', progress: 0.9, seq: 4, epoch: 'A' }), NOW)
    expect(messages).toEqual([])
    expect(task.progress).toBe(0.62)
  })

  it('a read made while waiting to reconnect shows the state but keeps the seq a reconnect resumes after', () => {
    const { task } = applyStatus(at5, status({ status: 'running', progress: 0.8, seq: 9 }), NOW, { advanceSeq: false })
    expect(task).toMatchObject({ progress: 0.8, seq: 5 })
  })

  it('a terminal status of a new epoch ends the task', () => {
    const { task } = applyStatus(at5, status({ status: 'completed', result: { r: 1 }, seq: 1, epoch: 'B' }), NOW)
    expect(task).toMatchObject({ status: 'completed', result: { r: 1 } })
  })
})

describe('staleness', () => {
  const STALE = 30_000
  const running = applyAll([{ type: 'progress', progress: 0.4, seq: 1 }]).task

  it('a running task is stalled once its last update is staleAfter old, since that update', () => {
    expect(withStaleness(running, NOW + STALE - 1, STALE).stalledSince).toBeNull()
    expect(withStaleness(running, NOW + STALE, STALE).stalledSince).toBe(NOW)
    expect(staleDeadline(running, STALE)).toBe(NOW + STALE)
  })

  it('staleAfter 0 disables the rule', () => {
    expect(withStaleness(running, NOW + 10 * STALE, 0).stalledSince).toBeNull()
    expect(staleDeadline(running, 0)).toBeNull()
  })

  it('idle, completed and failed tasks are never stalled', () => {
    const done = applyAll([{ type: 'completed' }], running).task
    const failed = applyAll([{ type: 'error', error: 'x' }], running).task
    for (const task of [INITIAL_TASK, done, failed]) {
      expect(withStaleness({ ...task, lastUpdateAt: NOW }, NOW + 10 * STALE, STALE).stalledSince).toBeNull()
      expect(staleDeadline({ ...task, lastUpdateAt: NOW }, STALE)).toBeNull()
    }
  })

  it('a task message clears it, even one that changes nothing visible', () => {
    const stalled = withStaleness(running, NOW + STALE, STALE)
    const later = applyMessage(stalled, { type: 'progress', progress: 0.4, seq: 2 }, NOW + STALE + 5).task
    expect(later).toMatchObject({ stalledSince: null, lastUpdateAt: NOW + STALE + 5 })
  })

  it('a duplicate, a pong or a connection note is not an update', () => {
    for (const message of [
      { type: 'progress', progress: 0.4, seq: 1 },
      { type: 'pong' },
      { type: 'error', error: 'slow down', details: { scope: 'connection' } },
      { type: 'connected', last_seq: 1 },
    ] as const) {
      expect(applyMessage(running, message, NOW + 5).task.lastUpdateAt).toBe(NOW)
    }
  })

  it('while polling, a status with no change is not an update, one with a change or a newer seq is', () => {
    expect(applyStatus(running, status({ status: 'running', progress: 0.4, seq: 1 }), NOW + 5).task.lastUpdateAt).toBe(NOW)
    expect(applyStatus(running, status({ status: 'running', progress: 0.5, seq: 2 }), NOW + 5).task.lastUpdateAt).toBe(NOW + 5)
    expect(applyStatus(running, status({ status: 'running', progress: 0.4, seq: 2 }), NOW + 5).task.lastUpdateAt).toBe(NOW + 5)
  })

  it('a stalled task is not failed; the end clears the stall', () => {
    const stalled = withStaleness(running, NOW + STALE, STALE)
    expect(stalled).toMatchObject({ status: 'running', error: null, stalledSince: NOW })
    const done = applyMessage(stalled, { type: 'completed', seq: 2 }, NOW + STALE + 1).task
    expect(withStaleness(done, NOW + 2 * STALE, STALE).stalledSince).toBeNull()
    expect(withFatalError(stalled, 'refused').stalledSince).toBeNull()
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
