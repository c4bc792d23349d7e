/**
 * The reference server telling the truth about a task (issue 11, server side), on the
 * in-memory store: the epoch of its numbering history on `connected` and in the status
 * response, leases that fail a task whose job stopped reporting, and publishes that
 * survive a store outage by being retried, in order, each applied once.
 *
 * Lease expiry runs on the store's clock, which these tests inject, so no test waits
 * for a lease to run out in real time.
 */
import { describe, expect, it } from 'vitest'
import type { TaskMessage } from 'tabcast'
import {
  createTabcastServer,
  MemoryTaskStore,
  silentLogger,
  TaskStoreUnavailableError,
  type AppendResult,
  type TaskStore,
} from 'tabcast/server'
import { taskMessages, TestClient, trackServers } from './server-helpers.js'

const { start, follow, clients } = trackServers()

/**
 * Opens a stream and returns its `connected` frame as sent (the client parser keeps
 * only the fields it knows, so the new ones are read from the raw frame).
 */
async function connectedFrame(url: string): Promise<Record<string, unknown>> {
  const client = new TestClient(url)
  clients.push(client)
  const raw = new Promise<Record<string, unknown>>((resolve) => {
    client.socket.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()) as Record<string, unknown>))
  })
  await client.next('connected')
  return raw
}

async function status(url: string): Promise<Record<string, unknown>> {
  const response = await fetch(url)
  expect(response.status).toBe(200)
  return (await response.json()) as Record<string, unknown>
}

/** A memory store whose clock the test moves. */
function clockedStore(): { store: MemoryTaskStore; advance: (ms: number) => void } {
  let now = Date.now()
  return { store: new MemoryTaskStore({ now: () => now }), advance: (ms) => (now += ms) }
}

type Failure = 'before' | 'after'

/**
 * A memory store whose appends fail like a network store's, in the order the test
 * queues: `before` refuses the append (nothing written), `after` applies it and then
 * loses the answer (the caller cannot know it was applied).
 */
function flakyStore(shouldFail: (input: Parameters<TaskStore['append']>[1]) => Failure | undefined): { store: TaskStore; inner: MemoryTaskStore } {
  const inner = new MemoryTaskStore()
  const store: TaskStore = {
    create: (...args) => inner.create(...args),
    get: (...args) => inner.get(...args),
    readSince: (...args) => inner.readSince(...args),
    subscribe: (...args) => inner.subscribe(...args),
    renewLease: (...args) => inner.renewLease(...args),
    expiredLeases: (...args) => inner.expiredLeases(...args),
    health: () => inner.health(),
    close: () => inner.close(),
    append: async (taskId, input, options): Promise<AppendResult> => {
      const failure = shouldFail(input)
      if (failure === 'before') throw new TaskStoreUnavailableError('the store is away; nothing was written', false)
      const result = await inner.append(taskId, input, options)
      if (failure === 'after') throw new TaskStoreUnavailableError('the answer was lost; it may or may not have been applied', true)
      return result
    },
  }
  return { store, inner }
}

/** Fails the appends whose turn is listed: `queue[0]` for the first append, and so on. */
function scripted(queue: (Failure | undefined)[]): (input: unknown) => Failure | undefined {
  return () => queue.shift()
}


describe('epoch and capabilities', () => {
  it('announces the capabilities and an epoch on connected, the same epoch in the status, stable across reconnects', async () => {
    const { server, streamUrl, statusUrl } = await start()
    await server.createTask({ taskId: 'render', taskName: '오디오 생성' })
    await server.progress('render', 0.25, 'TTS 생성 중...')

    const first = await connectedFrame(streamUrl('render'))
    expect(first).toMatchObject({ type: 'connected', last_seq: 1, capabilities: ['pong', 'seq', 'since', 'epoch'] })
    expect(first['epoch']).toMatch(/^[A-Za-z0-9._-]{1,64}$/)
    const again = await connectedFrame(streamUrl('render', 1))
    expect(again['epoch']).toBe(first['epoch'])
    expect(await status(statusUrl('render'))).toMatchObject({ status: 'running', seq: 1, epoch: first['epoch'] })

    // A task the server does not know has no history yet, so no epoch.
    const unknown = await connectedFrame(streamUrl('nobody'))
    expect(unknown['epoch']).toBeUndefined()
    expect(unknown['capabilities']).toEqual(['pong', 'seq', 'since', 'epoch'])
  })

  it('keeps the epoch when a restarted server is handed the same store, and changes it with a fresh store', async () => {
    const store = new MemoryTaskStore()
    const first = await start({ store })
    await first.server.progress('render', 0.5, 'half')
    const before = await connectedFrame(first.streamUrl('render'))
    await first.server.close()

    const sameStore = await start({ store })
    expect((await connectedFrame(sameStore.streamUrl('render')))['epoch']).toBe(before['epoch'])
    await sameStore.server.close()

    // A fresh store (a restarted process): the job starts numbering again from 1.
    const fresh = await start()
    await fresh.server.progress('render', 0.1, 'again')
    const after = await connectedFrame(fresh.streamUrl('render'))
    expect(after).toMatchObject({ last_seq: 1 })
    expect(after['epoch']).toMatch(/^[A-Za-z0-9._-]{1,64}$/)
    expect(after['epoch']).not.toBe(before['epoch'])
    expect((await status(fresh.statusUrl('render')))['epoch']).toBe(after['epoch'])
  })

  it('gives a task that expired and started again a new epoch in the same store', async () => {
    const { store, advance } = clockedStore()
    const { server, statusUrl } = await start({ store, staleTaskTimeout: 1000, staleAfter: false })
    await server.progress('again', 0.5, 'half')
    const before = await status(statusUrl('again'))
    advance(1001)
    await server.progress('again', 0.1, 'restarted')
    const after = await status(statusUrl('again'))
    expect(after).toMatchObject({ seq: 1, message: 'restarted' })
    expect(after['epoch']).not.toBe(before['epoch'])
  })
})

describe('leases', () => {
  it('fails a task whose job stopped reporting, for subscribers and pollers, and refuses its late publishes', async () => {
    const { store, advance } = clockedStore()
    const { server, streamUrl, statusUrl } = await start({ store, staleAfter: 1000 })
    await server.createTask({ taskId: 'silent', taskName: '오디오 생성' })
    await server.progress('silent', 0.25, 'TTS 생성 중... (시도 1/5)')
    const clientsOfTask = await Promise.all([follow(streamUrl('silent')), follow(streamUrl('silent', 0))])

    advance(1000)
    const expected = {
      type: 'error',
      project_id: 'silent',
      task_name: '오디오 생성',
      error: 'the job stopped reporting (no update for 1 s)',
      details: { code: 'job_stale' },
      seq: 2,
    }
    for (const client of clientsOfTask) {
      const read = taskMessages(await client.until((message) => message.type === 'error', 'the stale error'))
      expect(read[read.length - 1]).toMatchObject(expected)
    }
    expect(await status(statusUrl('silent'))).toMatchObject({
      status: 'failed',
      progress: 0.25,
      error: expected.error,
      details: { code: 'job_stale' },
      seq: 2,
    })
    await expect(server.progress('silent', 0.5, 'too late')).rejects.toMatchObject({ name: 'TaskUpdateError', code: 'task_finished' })
  })

  it('keeps a task alive while its job sends heartbeats', async () => {
    const { store, advance } = clockedStore()
    const { server, streamUrl, statusUrl } = await start({ store, staleAfter: 1000 })
    // Created first, so a lease check meets it before the control task.
    await server.createTask({ taskId: 'beating' })
    await server.createTask({ taskId: 'quiet' })
    const quiet = await follow(streamUrl('quiet'))

    advance(600)
    await server.heartbeat('beating')
    advance(600)
    // The check that fails the control task saw the heartbeating one at the same time.
    await quiet.until((message) => message.type === 'error', 'the control task to fail')
    expect(await status(statusUrl('beating'))).toMatchObject({ status: 'running', seq: 0 })

    await expect(server.heartbeat('quiet')).rejects.toMatchObject({ code: 'task_finished' })
    await expect(server.heartbeat('nobody')).rejects.toMatchObject({ code: 'task_not_found' })
  })

  it('renews the lease with every publish', async () => {
    const { store, advance } = clockedStore()
    const { server, streamUrl } = await start({ store, staleAfter: 1000 })
    await server.createTask({ taskId: 'talking' })
    await server.createTask({ taskId: 'control' })
    const control = await follow(streamUrl('control'))
    const talking = await follow(streamUrl('talking'))
    advance(600)
    await server.progress('talking', 0.5, 'still here')
    advance(600)
    await control.until((message) => message.type === 'error', 'the control task to fail')
    expect(taskMessages(talking.messages).map((message) => message.type)).toEqual(['progress'])
    await server.complete('talking', { audio_id: 'audio_1' })
    expect(taskMessages(await talking.untilSeq(2)).map((message) => message.type)).toEqual(['progress', 'completed'])
  })

  it('validates staleAfter and publishRetryFor', () => {
    expect(() => createTabcastServer({ staleAfter: 0, logger: silentLogger })).toThrow(/staleAfter must be a positive number/)
    expect(() => createTabcastServer({ publishRetryFor: -1, logger: silentLogger })).toThrow(/publishRetryFor must be a number of milliseconds, 0 or more/)
  })
})

describe('publishes: idempotent, retried in order, bounded', () => {
  it('appends once when the first try was applied but its answer was lost', async () => {
    const { store, inner } = flakyStore(scripted([undefined, 'after', 'before', 'after']))
    const { server, streamUrl } = await start({ store })
    await server.createTask({ taskId: 'retried' })
    const client = await follow(streamUrl('retried'))
    await server.progress('retried', 0.1, 'first')
    // Applied, answer lost; refused; applied, answer lost: then the retry finds it applied.
    const second = await server.progress('retried', 0.5, 'second')
    expect(second).toMatchObject({ seq: 2, message: 'second' })
    const done = await server.complete('retried', { audio_id: 'audio_1' })
    expect(done.seq).toBe(3)

    const seen = taskMessages(await client.untilSeq(3))
    expect(seen.map((message) => [message.seq, message.message])).toEqual([
      [1, 'first'],
      [2, 'second'],
      [3, undefined],
    ])
    expect((await inner.readSince('retried', 0)).messages).toHaveLength(3)
  })

  it('answers a repeated publish id with the first result, even after the task ended', async () => {
    const store = new MemoryTaskStore()
    const options = { historyLimit: 10, expireAfterMs: 60_000, publishId: 'pub-1' }
    const first = await store.append('ended', { type: 'completed', result: {} }, options)
    const again = await store.append('ended', { type: 'completed', result: {} }, options)
    expect(first).toMatchObject({ ok: true, message: { seq: 1 } })
    expect(again).toMatchObject({ ok: true, duplicate: true, message: { seq: 1 } })
    expect(await store.append('ended', { type: 'progress', progress: 1 }, { ...options, publishId: 'pub-2' })).toMatchObject({ ok: false, reason: 'finished' })
  })

  it('keeps the call order of a task while a publish is being retried', async () => {
    let refusals = 0
    // Only the first message is refused (twice): the second must still wait for it.
    const { store } = flakyStore((input) => (input.message === 'one' && ++refusals <= 2 ? 'before' : undefined))
    const { server } = await start({ store })
    const one = server.progress('ordered', 0.1, 'one')
    const two = server.progress('ordered', 0.2, 'two')
    expect(await one).toMatchObject({ seq: 1, message: 'one' })
    expect(await two).toMatchObject({ seq: 2, message: 'two' })
  })

  it('gives up after publishRetryFor and says how long it tried; without retries it rejects at once', async () => {
    const { store } = flakyStore(() => 'before')
    const { server } = await start({ store, publishRetryFor: 200 })
    const refused = server.progress('down', 0.5, 'half')
    await expect(refused).rejects.toBeInstanceOf(TaskStoreUnavailableError)
    await expect(refused).rejects.toThrow(/the task store stayed unavailable for \d+ ms \([2-9]\d* tries; nothing was written\)/)
    await expect(refused).rejects.toMatchObject({ maybeApplied: false })

    // A try whose answer was lost, then refusals: the call may have been applied after all.
    let tries = 0
    const { store: lossy } = flakyStore(() => (++tries === 1 ? 'after' : 'before'))
    const uncertain = (await start({ store: lossy, publishRetryFor: 200 })).server.progress('lossy', 0.5, 'half')
    await expect(uncertain).rejects.toThrow(/tries; an earlier try may have been applied\)/)
    await expect(uncertain).rejects.toMatchObject({ maybeApplied: true })

    const noRetries = await start({ store, publishRetryFor: 0 })
    await expect(noRetries.server.progress('down', 0.5, 'half')).rejects.toThrow('the store is away; nothing was written')
  })

  it('fails the demo task visibly when its job cannot publish', async () => {
    let progress = 0
    // The first two progress messages go through; every later one is refused.
    const { store } = flakyStore((input) => (input.type === 'progress' && ++progress > 2 ? 'before' : undefined))
    const { http, streamUrl, statusUrl } = await start({ store, publishRetryFor: 100, demo: true })
    const response = await fetch(`${http}/api/v1/projects`, { method: 'POST', body: JSON.stringify({ taskId: 'demo_1', steps: 10, stepMs: 0 }) })
    expect(response.status).toBe(201)
    const client = await follow(streamUrl('demo_1', 0))
    const read = taskMessages(await client.until((message) => message.type === 'error', 'the job to fail'))
    const failure = read[read.length - 1] as TaskMessage
    expect(failure).toMatchObject({ type: 'error', error: 'the job could not report its progress', details: { code: 'publish_failed' } })
    expect(String(failure.details?.['reason'])).toMatch(/stayed unavailable/)
    expect(await status(statusUrl('demo_1'))).toMatchObject({ status: 'failed', details: { code: 'publish_failed' } })
  })
})
