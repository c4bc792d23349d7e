/**
 * RedisTaskStore against a real redis-server (started here on a free port): the
 * TaskStore contract the memory store also meets, plus what only a shared store has to
 * do (several publishers in several processes, expiry in Redis, failing fast while
 * Redis is away). Each store instance stands for one server process: it holds its own
 * two connections.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Redis } from 'ioredis'
import type { TaskMessage } from 'tabcast'
import {
  createRedisTaskStore,
  createTabcastServer,
  MemoryTaskStore,
  type RedisTaskStore,
  silentLogger,
  TaskStoreUnavailableError,
  type RedisTaskStoreOptions,
} from 'tabcast/server'
import { adminClient, eventually, uniquePrefix } from '../support/redis-helpers.js'
import { findRedisServer, RedisServer } from '../support/redis-server.js'

const binary = findRedisServer()
if (binary === null) {
  console.warn('redis-store tests SKIPPED: no redis-server binary on PATH (apt-get install redis-server, or set REDIS_SERVER)')
}

const HOUR = 60 * 60 * 1000
const append = { historyLimit: 1000, expireAfterMs: HOUR }

describe('redis store: setup', () => {
  it('has a redis-server binary on CI (the Redis tests must not be skipped there)', () => {
    if (process.env['CI']) expect(binary, '.ci/run installs redis-server; the Redis tests need it').not.toBeNull()
  })

  it('says to install ioredis when it is missing (it is an optional peer dependency)', async () => {
    vi.doMock('ioredis', () => {
      throw new Error("Cannot find package 'ioredis'")
    })
    try {
      await expect(createRedisTaskStore({ url: 'redis://127.0.0.1:6379' })).rejects.toThrow(/needs the "ioredis" package .*npm install ioredis/)
    } finally {
      vi.doUnmock('ioredis')
    }
  })

  it('validates its options with messages that name them', async () => {
    await expect(createRedisTaskStore({ url: 'http://localhost:6379' })).rejects.toThrow(/url must start with redis:\/\/ or rediss:\/\//)
    await expect(createRedisTaskStore({ url: '' })).rejects.toThrow(/url must be a redis:\/\/ or rediss:\/\/ URL/)
    await expect(createRedisTaskStore({ url: 'redis://127.0.0.1:1', keyPrefix: 'bad prefix', waitForConnection: false })).rejects.toThrow(
      /keyPrefix/,
    )
    expect(() => createTabcastServer({ redis: 'not a url', logger: silentLogger })).toThrow(/redis must be a redis:\/\/ or rediss:\/\/ URL/)
    expect(() => createTabcastServer({ redis: 'redis://127.0.0.1:6379', store: new MemoryTaskStore(), logger: silentLogger })).toThrow(
      'pass either store or redis, not both',
    )
  })
})

describe.skipIf(binary === null)('redis store', () => {
  let redis: RedisServer
  let admin: Redis
  const stores: RedisTaskStore[] = []

  async function open(prefix: string, options: Partial<RedisTaskStoreOptions> = {}): Promise<RedisTaskStore> {
    const store = await createRedisTaskStore({ url: redis.url, keyPrefix: prefix, logger: silentLogger, maxReconnectDelay: 100, ...options })
    stores.push(store)
    return store
  }

  beforeAll(async () => {
    redis = await RedisServer.start()
    admin = adminClient(redis.url)
  })

  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()))
    admin?.disconnect()
    await redis?.stop()
  })

  it('fails to connect with a clear error when nothing listens, when asked to wait', async () => {
    const closed = await RedisServer.start()
    const url = closed.url
    await closed.stop()
    const attempt = createRedisTaskStore({ url, logger: silentLogger, connectTimeout: 300 })
    await expect(attempt).rejects.toBeInstanceOf(TaskStoreUnavailableError)
    await expect(attempt).rejects.toThrow(/could not connect to Redis at redis:\/\/127\.0\.0\.1:\d+ within 300 ms/)
  })

  it('creates a task once, and reads it back from another process', async () => {
    const prefix = uniquePrefix('create')
    const [a, b] = [await open(prefix), await open(prefix)]
    const first = await a.create('render-1', { taskName: '오디오 생성' }, { expireAfterMs: HOUR })
    expect(first).toMatchObject({ created: true, state: { taskId: 'render-1', status: 'running', progress: 0, lastSeq: 0, taskName: '오디오 생성' } })
    const again = await b.create('render-1', {}, { expireAfterMs: HOUR })
    expect(again).toMatchObject({ created: false, state: { taskName: '오디오 생성' } })
    expect(await b.get('render-1')).toEqual(first.state)
    expect(await b.get('nobody')).toBeNull()
    expect(await b.readSince('nobody', 0)).toEqual({ messages: [], complete: false })
    expect(await b.readSince('render-1', 0)).toEqual({ messages: [], complete: true })
  })

  it('numbers messages, inherits the task name, keeps the state, and refuses to append after the end', async () => {
    const prefix = uniquePrefix('append')
    const [a, b] = [await open(prefix), await open(prefix)]
    await a.create('tts', { taskName: 'TTS "생성"' }, { expireAfterMs: HOUR })
    const one = await a.append('tts', { type: 'progress', status: 'running', progress: 0.25, message: 'one', timestamp: '2026-01-01T00:00:00.000Z' }, append)
    expect(one).toMatchObject({
      ok: true,
      message: { type: 'progress', progress: 0.25, message: 'one', task_name: 'TTS "생성"', seq: 1, timestamp: '2026-01-01T00:00:00.000Z' },
    })
    const two = await b.append('tts', { type: 'progress', progress: 0.5, task_name: 'renamed' }, append)
    expect(two).toMatchObject({ ok: true, message: { seq: 2, task_name: 'renamed' }, state: { message: 'one', progress: 0.5, taskName: 'renamed' } })
    // Results keep full number precision and nested JSON (Lua never re-encodes them).
    const result = { audio_id: 'audio_123', duration: 0.1 + 0.2, big: 2 ** 53 - 1, nested: { list: [], empty: {} } }
    const done = await a.append('tts', { type: 'completed', status: 'completed', progress: 1, result }, append)
    expect(done).toMatchObject({ ok: true, message: { type: 'completed', seq: 3, result }, state: { status: 'completed', progress: 1, result, lastSeq: 3 } })
    const late = await b.append('tts', { type: 'progress', progress: 0.9 }, append)
    expect(late).toMatchObject({ ok: false, reason: 'finished', state: { status: 'completed', lastSeq: 3 } })

    const state = await b.get('tts')
    expect(state).toMatchObject({ status: 'completed', progress: 1, message: 'one', taskName: 'renamed', result, lastSeq: 3 })
    expect(state?.latest).toEqual((done as { message: TaskMessage }).message)
    const history = await b.readSince('tts', 1)
    expect(history.complete).toBe(true)
    expect(history.messages.map((message) => message.seq)).toEqual([2, 3])
    expect(history.messages[1]?.result).toEqual(result)
  })

  it('records a failure with its error and details', async () => {
    const [a] = [await open(uniquePrefix('fail'))]
    await a.append('job', { type: 'progress', progress: 0.4, message: 'TTS 생성 중...' }, append)
    const failed = await a.append('job', { type: 'error', status: 'failed', error: 'ElevenLabs API 호출 실패', details: { status_code: 500 } }, append)
    expect(failed).toMatchObject({
      ok: true,
      state: { status: 'failed', progress: 0.4, error: 'ElevenLabs API 호출 실패', details: { status_code: 500 }, lastSeq: 2 },
    })
  })

  it('keeps an epoch with the task, the same for every process, and a new one when the record is created again', async () => {
    const prefix = uniquePrefix('epoch')
    const [a, b] = [await open(prefix), await open(prefix)]
    const created = await a.create('numbered', {}, { expireAfterMs: HOUR })
    const epoch = created.state.epoch
    expect(epoch).toMatch(/^[A-Za-z0-9._-]{1,64}$/)
    const appended = await b.append('numbered', { type: 'progress', progress: 0.5 }, append)
    expect(appended).toMatchObject({ ok: true, state: { epoch, lastSeq: 1 } })
    expect((await b.get('numbered'))?.epoch).toBe(epoch)
    // The record is lost (an eviction, a Redis restart without persistence): the next
    // publish starts a new numbering, under a new epoch.
    await admin.del(`${prefix}:task:{numbered}:state`)
    const reborn = await a.append('numbered', { type: 'progress', progress: 0.1 }, append)
    expect(reborn).toMatchObject({ ok: true, message: { seq: 1 } })
    expect(reborn.ok && reborn.state.epoch).toMatch(/^[A-Za-z0-9._-]{1,64}$/)
    expect(reborn.ok && reborn.state.epoch).not.toBe(epoch)
  })

  it('applies a publish id once, from any process, and answers a repeat with the first message', async () => {
    const prefix = uniquePrefix('pubid')
    const [a, b] = [await open(prefix), await open(prefix)]
    const first = await a.append('once', { type: 'progress', progress: 0.5, message: 'half' }, { ...append, publishId: 'p-1' })
    await a.append('once', { type: 'progress', progress: 0.6, message: 'other' }, { ...append, publishId: 'p-2' })
    const repeat = await b.append('once', { type: 'progress', progress: 0.5, message: 'half' }, { ...append, publishId: 'p-1' })
    expect(repeat).toMatchObject({ ok: true, duplicate: true, message: { seq: 1, message: 'half' }, state: { lastSeq: 2 } })
    expect(first.ok && repeat.ok && repeat.message).toEqual(first.ok && first.message)
    const done = await a.append('once', { type: 'completed', result: { audio_id: 'a' } }, { ...append, publishId: 'p-3' })
    // A retried `complete` whose first try ended the task is the same success, not "finished".
    expect(await b.append('once', { type: 'completed', result: { audio_id: 'a' } }, { ...append, publishId: 'p-3' })).toMatchObject({
      ok: true,
      duplicate: true,
      message: { seq: 3, type: 'completed' },
    })
    expect(done).toMatchObject({ ok: true, message: { seq: 3 } })
    expect((await a.readSince('once', 0)).messages.map((message) => message.seq)).toEqual([1, 2, 3])
  })

  it('keeps leases on Redis time: renewed by publishes and renewLease, found when expired, and failed by exactly one process', async () => {
    const prefix = uniquePrefix('lease')
    const [a, b, c] = [await open(prefix), await open(prefix), await open(prefix)]
    const created = await a.create('leased', {}, { expireAfterMs: HOUR, leaseMs: HOUR })
    expect(created.state.leaseExpiresAt).toBeGreaterThan(Date.now() + HOUR - 60_000)
    expect(await b.expiredLeases(100)).toEqual([])
    const stale = { type: 'error' as const, status: 'failed', error: 'the job stopped reporting', details: { code: 'job_stale' } }
    expect(await b.append('leased', stale, { ...append, ifLeaseExpired: true })).toMatchObject({ ok: false, reason: 'lease_active' })

    // A short lease, then a heartbeat that makes it long again: not expired.
    await a.append('leased', { type: 'progress', progress: 0.5 }, { ...append, leaseMs: 1 })
    expect(await b.renewLease('leased', { leaseMs: HOUR, expireAfterMs: HOUR })).toMatchObject({ status: 'running' })
    expect(await c.append('leased', stale, { ...append, ifLeaseExpired: true })).toMatchObject({ ok: false, reason: 'lease_active' })

    await a.append('leased', { type: 'progress', progress: 0.6 }, { ...append, leaseMs: 1 })
    await eventually(async () => (await b.expiredLeases(100)).includes('leased'), 'the lease ran out')
    const attempts = await Promise.all([a, b, c].map((store) => store.append('leased', stale, { ...append, ifLeaseExpired: true })))
    expect(attempts.filter((result) => result.ok)).toHaveLength(1)
    expect(attempts.filter((result) => !result.ok).map((result) => !result.ok && result.reason)).toEqual(['finished', 'finished'])
    expect(await c.get('leased')).toMatchObject({ status: 'failed', lastSeq: 3, details: { code: 'job_stale' } })
    expect((await c.get('leased'))?.leaseExpiresAt).toBeUndefined()
    expect(await a.expiredLeases(100)).toEqual([])
    expect(await a.renewLease('leased', { leaseMs: HOUR, expireAfterMs: HOUR })).toMatchObject({ status: 'failed' })
    expect(await a.renewLease('nobody', { leaseMs: HOUR, expireAfterMs: HOUR })).toBeNull()
    // A lease index entry whose task is gone is dropped, and nothing is created.
    await a.append('vanishing', { type: 'progress', progress: 0.1 }, { ...append, leaseMs: 1 })
    await admin.del(`${prefix}:task:{vanishing}:state`)
    await eventually(async () => (await a.expiredLeases(100)).includes('vanishing'), 'the lease ran out')
    expect(await a.append('vanishing', stale, { ...append, ifLeaseExpired: true })).toMatchObject({ ok: false, reason: 'lease_active', state: null })
    expect(await a.get('vanishing')).toBeNull()
    expect(await a.expiredLeases(100)).toEqual([])
  })

  it('keeps seq strictly increasing with many concurrent publishers in several processes', async () => {
    const prefix = uniquePrefix('publishers')
    const publishers = [await open(prefix), await open(prefix), await open(prefix)]
    const followers = [await open(prefix), await open(prefix)]
    const seen = followers.map(() => [] as number[])
    await Promise.all(followers.map((store, i) => store.subscribe('shared', (message) => seen[i]?.push(message.seq ?? -1))))
    const perPublisher = 60
    const results = await Promise.all(
      publishers.flatMap((store, p) =>
        Array.from({ length: perPublisher }, (_, i) => store.append('shared', { type: 'progress', progress: 0.5, message: `p${p}-${i}` }, append)),
      ),
    )
    const total = publishers.length * perPublisher
    const seqs = results.map((result) => (result.ok ? result.message.seq : -1)).sort((x, y) => (x ?? 0) - (y ?? 0))
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    await eventually(() => seen.every((list) => list.length >= total), 'every follower got every message')
    for (const list of seen) expect(list).toEqual(Array.from({ length: total }, (_, i) => i + 1))
  })

  it('bounds the history (approximately, as XADD MAXLEN ~ does) and says when it no longer reaches back', async () => {
    const store = await open(uniquePrefix('history'))
    for (let i = 0; i < 400; i += 1) await store.append('long', { type: 'progress', progress: i / 400, message: `m${i}` }, { historyLimit: 10, expireAfterMs: HOUR })
    const all = await store.readSince('long', 0)
    expect(all.complete).toBe(false)
    // At least the limit is kept; trimming whole stream nodes keeps well under the total.
    expect(all.messages.length).toBeGreaterThanOrEqual(10)
    expect(all.messages.length).toBeLessThan(400)
    expect(all.messages[all.messages.length - 1]?.seq).toBe(400)
    const recent = await store.readSince('long', 395)
    expect(recent).toMatchObject({ complete: true })
    expect(recent.messages.map((message) => message.seq)).toEqual([396, 397, 398, 399, 400])
    expect(await store.readSince('long', 400)).toEqual({ messages: [], complete: true })
  })

  it('sets the time-to-live on every write, and a task expires from Redis by itself', async () => {
    const prefix = uniquePrefix('expiry')
    const store = await open(prefix)
    await store.create('kept', {}, { expireAfterMs: HOUR })
    const stateKey = `${prefix}:task:{kept}:state`
    const logKey = `${prefix}:task:{kept}:log`
    expect(await admin.pttl(stateKey)).toBeGreaterThan(HOUR - 60_000)
    await store.append('kept', { type: 'progress', progress: 0.1 }, { historyLimit: 10, expireAfterMs: 2 * HOUR })
    expect(await admin.pttl(stateKey)).toBeGreaterThan(HOUR + 60_000)
    expect(await admin.pttl(logKey)).toBeGreaterThan(HOUR + 60_000)
    await store.append('kept', { type: 'completed', result: {} }, { historyLimit: 10, expireAfterMs: 30_000 })
    expect(await admin.pttl(stateKey)).toBeLessThanOrEqual(30_000)
    expect(await admin.pttl(logKey)).toBeLessThanOrEqual(30_000)

    await store.append('brief', { type: 'completed', result: {} }, { historyLimit: 10, expireAfterMs: 50 })
    await eventually(async () => (await store.get('brief')) === null, 'the finished task expired')
    // Gone means gone: a new task of the same id starts again from seq 1.
    const reborn = await store.append('brief', { type: 'progress', progress: 0.1 }, { historyLimit: 10, expireAfterMs: HOUR })
    expect(reborn).toMatchObject({ ok: true, message: { seq: 1 } })
  })

  it('shares one subscription per task among listeners, and stops delivering after unsubscribe', async () => {
    const prefix = uniquePrefix('listeners')
    const [publisher, follower] = [await open(prefix), await open(prefix)]
    const first: number[] = []
    const second: number[] = []
    const stopFirst = await follower.subscribe('t', (message) => first.push(message.seq ?? -1))
    const stopSecond = await follower.subscribe('t', (message) => second.push(message.seq ?? -1))
    await publisher.append('t', { type: 'progress', progress: 0.1 }, append)
    await eventually(() => first.length === 1 && second.length === 1, 'both listeners got seq 1')
    stopFirst()
    await publisher.append('t', { type: 'progress', progress: 0.2 }, append)
    await eventually(() => second.length === 2, 'the remaining listener got seq 2')
    expect(first).toEqual([1])
    stopSecond()
    expect(await follower.health()).toMatchObject({ ok: true, kind: 'redis', detail: expect.stringContaining('0 tasks followed') as unknown })
  })

  it('catches a follower up from the stream when its pub/sub connection was cut', async () => {
    const prefix = uniquePrefix('gap')
    const logged: string[] = []
    const record = (message: string): void => {
      logged.push(message)
    }
    const logger = { debug: record, info: record, warn: record, error: record }
    const [publisher, follower] = [await open(prefix), await open(prefix, { logger })]
    const seen: number[] = []
    await follower.subscribe('gappy', (message) => seen.push(message.seq ?? -1))
    for (let i = 1; i <= 3; i += 1) await publisher.append('gappy', { type: 'progress', progress: i / 10 }, append)
    await eventually(() => seen.length === 3, 'the first three arrived live')
    // Cut every pub/sub connection; the publisher's command connection stays up, so
    // these land in the stream while nobody listens.
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    for (let i = 4; i <= 8; i += 1) await publisher.append('gappy', { type: 'progress', progress: i / 10 }, append)
    await eventually(() => seen.length >= 8, 'the follower caught up after resubscribing')
    await publisher.append('gappy', { type: 'completed', result: {} }, append)
    await eventually(() => seen.length >= 9, 'live delivery resumed')
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(logged).toContain('resubscribed to followed tasks after a reconnect; catching up')
  })
})
