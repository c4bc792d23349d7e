/**
 * Two reference servers sharing one real redis-server (started here): a job publishes
 * through one process while tabs follow the task on the other. Each server opens its
 * own Redis store from the `redis` option, as two processes behind a load balancer
 * would, so nothing passes between them except through Redis.
 */
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Redis } from 'ioredis'
import { CloseCode, type TaskMessage } from 'tabcast'
import { TaskStoreUnavailableError, type TabcastServerOptions } from 'tabcast/server'
import { adminClient, connectionsByName, eventually, uniquePrefix } from '../support/redis-helpers.js'
import { findRedisServer, RedisServer } from '../support/redis-server.js'
import { connect, type RunningServer, startServer, taskMessages, TestClient, trackServers } from './server-helpers.js'

const binary = findRedisServer()
if (binary === null) {
  console.warn('redis-servers tests SKIPPED: no redis-server binary on PATH (apt-get install redis-server, or set REDIS_SERVER)')
}

interface Pair {
  a: RunningServer
  b: RunningServer
}

const { running, clients, follow } = trackServers()

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url)
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

async function healthy(server: Pick<RunningServer, 'http'>): Promise<boolean> {
  return (await getJson(`${server.http}/healthz`)).status === 200
}

/** Two servers on one Redis, both healthy. */
async function pair(url: string, name: string, options: TabcastServerOptions = {}): Promise<Pair> {
  const redis = { url, keyPrefix: uniquePrefix(name), maxReconnectDelay: 100 }
  const [a, b] = await Promise.all([startServer({ redis, demo: false, ...options }), startServer({ redis, demo: false, ...options })])
  running.push(a, b)
  await eventually(async () => (await healthy(a)) && (await healthy(b)), 'both servers reach Redis')
  return { a, b }
}

function seqs(messages: readonly TaskMessage[]): number[] {
  return messages.map((message) => message.seq ?? -1)
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}


describe.skipIf(binary === null)('two server processes on one Redis', () => {
  let redis: RedisServer
  let admin: Redis

  beforeAll(async () => {
    redis = await RedisServer.start()
    admin = adminClient(redis.url)
  })

  afterAll(async () => {
    admin?.disconnect()
    await redis?.stop()
  })

  it('delivers a job published through one process to every client of the other, in order, exactly once', async () => {
    const { a, b } = await pair(redis.url, 'fanout')
    const onB = await Promise.all([1, 2, 3].map(() => follow(b.streamUrl('render-1'))))
    const onA = await follow(a.streamUrl('render-1'))
    await a.server.createTask({ taskId: 'render-1', taskName: '오디오 생성' })
    for (let step = 1; step <= 30; step += 1) await a.server.progress('render-1', step / 31, `TTS 생성 중... ${step}/30`)
    const result = { audio_id: 'audio_123', duration: 120.5 }
    await a.server.complete('render-1', result)

    const seen = await Promise.all([...onB, onA].map(async (client) => taskMessages(await client.untilSeq(31))))
    for (const messages of seen) {
      expect(seqs(messages)).toEqual(range(1, 31))
      expect(messages).toEqual(seen[0])
    }
    expect(seen[0]?.[30]).toMatchObject({ type: 'completed', project_id: 'render-1', task_name: '오디오 생성', result, seq: 31 })
    for (const client of [...onB, onA]) expect(client.unread()).toEqual([])
  })

  it('keeps seq strictly increasing when both processes publish to one task at once', async () => {
    const { a, b } = await pair(redis.url, 'publishers')
    const followers = await Promise.all([follow(a.streamUrl('shared')), follow(b.streamUrl('shared')), follow(b.streamUrl('shared'))])
    const publish = (server: RunningServer, name: string): Promise<TaskMessage[]> =>
      Promise.all(Array.from({ length: 40 }, (_, i) => server.server.progress('shared', 0.5, `${name} ${i}`)))
    const published = (await Promise.all([publish(a, 'a'), publish(b, 'b')])).flat()
    expect(seqs(published).sort((x, y) => x - y)).toEqual(range(1, 80))
    await b.server.complete('shared', {})

    const seen = await Promise.all(followers.map(async (client) => taskMessages(await client.untilSeq(81))))
    for (const messages of seen) {
      expect(seqs(messages)).toEqual(range(1, 81))
      expect(messages).toEqual(seen[0])
    }
  })

  it('replays with since on the other process after a client drops: nothing is missed', async () => {
    const { a, b } = await pair(redis.url, 'since')
    const first = await follow(a.streamUrl('moving'))
    for (let step = 1; step <= 5; step += 1) await b.server.progress('moving', step / 20, `step ${step}`)
    const before = taskMessages(await first.untilSeq(5))
    first.socket.terminate()
    await first.waitClosed()
    for (let step = 6; step <= 10; step += 1) await a.server.progress('moving', step / 20, `step ${step}`)

    const { client: again, connected } = await connect(b.streamUrl('moving', 5))
    clients.push(again)
    expect(connected).toMatchObject({ type: 'connected', last_seq: 10, status: 'running' })
    for (let step = 11; step <= 12; step += 1) await a.server.progress('moving', step / 20, `step ${step}`)
    await a.server.complete('moving', { audio_id: 'audio_9' })
    const after = taskMessages(await again.untilSeq(13))
    expect(seqs([...before, ...after])).toEqual(range(1, 13))
    expect(after.map((message) => message.message)).toEqual(['step 6', 'step 7', 'step 8', 'step 9', 'step 10', 'step 11', 'step 12', undefined])
  })

  it('answers the status endpoint identically on both processes', async () => {
    const { a, b } = await pair(redis.url, 'status')
    await a.server.createTask({ taskId: 'polled', taskName: '오디오 생성' })
    const same = async (): Promise<Record<string, unknown>> => {
      const [fromA, fromB] = await Promise.all([getJson(a.statusUrl('polled')), getJson(b.statusUrl('polled'))])
      expect(fromA.status).toBe(200)
      expect(fromB).toEqual(fromA)
      return fromA.body
    }
    expect(await same()).toMatchObject({ project_id: 'polled', status: 'running', progress: 0, seq: 0, task_name: '오디오 생성' })
    await b.server.progress('polled', 0.5, 'TTS 생성 중... (시도 2/5)')
    expect(await same()).toMatchObject({ status: 'running', progress: 0.5, message: 'TTS 생성 중... (시도 2/5)', seq: 1 })
    await a.server.fail('polled', 'ElevenLabs API 호출 실패', { status_code: 500 })
    expect(await same()).toMatchObject({ status: 'failed', error: 'ElevenLabs API 호출 실패', details: { status_code: 500 }, seq: 2 })

    const missing = await Promise.all([getJson(a.statusUrl('nobody')), getJson(b.statusUrl('nobody'))])
    expect(missing.map((response) => response.status)).toEqual([404, 404])
    // /healthz says only ok by default; the store's own report has the details.
    expect(await getJson(`${b.http}/healthz`)).toEqual({ status: 200, body: { ok: true } })
    expect(await b.server.store.health()).toMatchObject({ ok: true, kind: 'redis' })
  })

  it('gives both processes the same epoch for a task, on connected and in the status', async () => {
    const { a, b } = await pair(redis.url, 'epoch')
    await a.server.createTask({ taskId: 'numbered' })
    const epoch = (await getJson(a.statusUrl('numbered'))).body['epoch']
    expect(epoch).toMatch(/^[A-Za-z0-9._-]{1,64}$/)
    expect((await getJson(b.statusUrl('numbered'))).body['epoch']).toBe(epoch)
    const client = new TestClient(b.streamUrl('numbered'))
    clients.push(client)
    const frame = new Promise<Record<string, unknown>>((resolve) => {
      client.socket.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()) as Record<string, unknown>))
    })
    expect(await frame).toMatchObject({ type: 'connected', epoch, capabilities: ['pong', 'seq', 'since', 'epoch'] })
  })

  it('works with a separate process started by the CLI with --redis-url', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', '--port', '0', '--redis-url', redis.url], {
      cwd: root,
      env: { ...process.env, TABCAST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const exited = new Promise<void>((done) => child.once('exit', () => done()))
    try {
      let output = ''
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString()
      })
      const http = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString()
          const url = /listening on (http:\/\/\S+)/.exec(output)?.[1]
          if (url !== undefined) resolve(url)
        })
        child.once('exit', (code) => reject(new Error(`the CLI exited with ${String(code)}:\n${output}`)))
      })
      expect(output).toContain(`store    redis ${redis.url}`)
      const cli: Pick<RunningServer, 'http' | 'streamUrl' | 'statusUrl'> = {
        http,
        streamUrl: (taskId, since) => `${http.replace(/^http/, 'ws')}/api/v1/ws/projects/${taskId}/stream${since === undefined ? '' : `?since=${since}`}`,
        statusUrl: (taskId) => `${http}/api/v1/projects/${taskId}/status`,
      }
      await eventually(() => healthy(cli), 'the CLI process reaches Redis')
      // The CLI uses the default key prefix; so does this in-process server.
      const job = await startServer({ redis: { url: redis.url, maxReconnectDelay: 100 }, demo: false })
      running.push(job)
      await eventually(() => healthy(job), 'the job process reaches Redis')
      const client = await follow(cli.streamUrl('cli-task'))
      await job.server.createTask({ taskId: 'cli-task', taskName: '오디오 생성' })
      await job.server.progress('cli-task', 0.5, 'half')
      await job.server.complete('cli-task', { audio_id: 'audio_1' })
      expect(seqs(taskMessages(await client.untilSeq(2)))).toEqual([1, 2])
      const [fromJob, fromCli] = await Promise.all([getJson(job.statusUrl('cli-task')), getJson(cli.statusUrl('cli-task'))])
      expect(fromCli).toEqual(fromJob)
      expect(fromCli.body).toMatchObject({ status: 'completed', seq: 2 })
    } finally {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM')
      await exited
    }
  })

  it('follows hundreds of tasks over two Redis connections per process', async () => {
    const { a, b } = await pair(redis.url, 'many')
    const tasks = Array.from({ length: 200 }, (_, i) => `many_${i}`)
    const followers = await Promise.all(tasks.map((taskId) => follow(b.streamUrl(taskId))))
    await Promise.all(tasks.map((taskId, i) => a.server.progress(taskId, 0.5, `task ${i}`)))
    const received = await Promise.all(followers.map(async (client) => taskMessages(await client.untilSeq(1))))
    received.forEach((messages, i) => expect(messages).toMatchObject([{ project_id: tasks[i], seq: 1, message: `task ${i}` }]))

    // Two servers: one command and one pub/sub connection each, whatever the task count.
    const byName = await connectionsByName(admin)
    expect(byName.get('tabcast-commands')).toBe(2)
    expect(byName.get('tabcast-subscriptions')).toBe(2)
    expect(b.server.stats().connections).toBe(200)
  })
})

describe.skipIf(binary === null)('a process started while Redis is away', () => {
  it('answers 503 and refuses publishes until Redis comes up, then serves', async () => {
    const redis = await RedisServer.start()
    try {
      await redis.kill()
      const server = await startServer({ redis: { url: redis.url, keyPrefix: uniquePrefix('late'), maxReconnectDelay: 100 }, demo: false, publishRetryFor: 0 })
      running.push(server)
      expect((await getJson(`${server.http}/healthz`)).status).toBe(503)
      await expect(server.server.createTask({ taskId: 'early' })).rejects.toBeInstanceOf(TaskStoreUnavailableError)
      const refused = new TestClient(server.streamUrl('early'))
      clients.push(refused)
      expect((await refused.waitClosed()).code).toBe(CloseCode.TryAgainLater)

      await redis.restart()
      await eventually(() => healthy(server), 'the server reaches Redis')
      const client = await follow(server.streamUrl('early'))
      await server.server.createTask({ taskId: 'early' })
      await server.server.progress('early', 0.5, 'half')
      expect(taskMessages(await client.untilSeq(1))).toMatchObject([{ seq: 1, message: 'half' }])
    } finally {
      await redis.stop()
    }
  })
})

describe.skipIf(binary === null)('Redis restarted in the middle of a task', () => {
  let redis: RedisServer

  beforeAll(async () => {
    // With the append-only file fsynced before every reply, what Redis acknowledged
    // survives the kill: "accepted" means the job API call resolved.
    redis = await RedisServer.start({ persistent: true })
  })

  afterAll(async () => {
    await redis?.stop()
  })

  it('keeps clients connected, refuses publishes while Redis is away, and completes the task for every client with nothing lost', async () => {
    // Without retries, to see the store's own refusals (retries are tested below).
    const { a, b } = await pair(redis.url, 'restart', { publishRetryFor: 0 })
    const followers = await Promise.all([follow(b.streamUrl('long-job')), follow(b.streamUrl('long-job')), follow(a.streamUrl('long-job'))])
    await a.server.createTask({ taskId: 'long-job', taskName: '오디오 생성' })
    for (let step = 1; step <= 10; step += 1) await a.server.progress('long-job', step / 30, `before ${step}`)
    await Promise.all(followers.map((client) => client.untilSeq(10)))

    await redis.kill()
    await eventually(async () => !(await healthy(a)) && !(await healthy(b)), 'both servers report Redis down')
    expect(await getJson(`${b.http}/healthz`)).toEqual({ status: 503, body: { ok: false } })
    const health = await b.server.store.health()
    expect(health).toMatchObject({ ok: false, kind: 'redis' })
    expect(String(health.detail)).toMatch(/unreachable/)

    // Publishing fails loudly, on either process; nothing is queued behind the job's back.
    const refused = a.server.progress('long-job', 0.5, 'while Redis is down')
    await expect(refused).rejects.toBeInstanceOf(TaskStoreUnavailableError)
    await expect(refused).rejects.toThrow(/nothing was written/)
    await expect(b.server.complete('long-job', {})).rejects.toMatchObject({ code: 'store_unavailable', maybeApplied: false })
    // The status endpoint says "try again later" rather than failing as a bug.
    const status = await fetch(a.statusUrl('long-job'))
    expect(status.status).toBe(503)
    expect(status.headers.get('retry-after')).not.toBeNull()
    // A tab that connects now is told to retry with backoff; followers stay connected.
    const newcomer = new TestClient(b.streamUrl('long-job'))
    clients.push(newcomer)
    expect((await newcomer.waitClosed()).code).toBe(CloseCode.TryAgainLater)
    for (const client of followers) expect(client.isOpen).toBe(true)

    await redis.restart()
    // Publish as soon as one process is back: the other may still be resubscribing, and
    // then catches its followers up from the stream.
    await eventually(() => healthy(a), 'the publishing server reaches Redis again')
    for (let step = 11; step <= 15; step += 1) await a.server.progress('long-job', step / 30, `after ${step}`)
    await eventually(() => healthy(b), 'the other server reaches Redis again')
    for (let step = 16; step <= 20; step += 1) {
      const server = step % 2 === 0 ? a : b
      await server.server.progress('long-job', step / 30, `after ${step}`)
    }
    await a.server.complete('long-job', { audio_id: 'audio_123' })

    await Promise.all(followers.map((client) => client.untilSeq(21)))
    for (const [i, client] of followers.entries()) {
      const messages = taskMessages(client.messages)
      expect(seqs(messages)).toEqual(range(1, 21))
      expect(messages.map((message) => message.message).slice(9, 11)).toEqual(['before 10', 'after 11'])
      expect(messages[20]).toMatchObject({ type: 'completed', result: { audio_id: 'audio_123' } })
      expect(client.isOpen, `follower ${i} stayed connected`).toBe(true)
    }
    // The state survived too: both processes report the completed task.
    const [fromA, fromB] = await Promise.all([getJson(a.statusUrl('long-job')), getJson(b.statusUrl('long-job'))])
    expect(fromA).toMatchObject({ status: 200, body: { status: 'completed', seq: 21 } })
    expect(fromB).toEqual(fromA)
  })

  it('loses no accepted message when Redis is killed in the middle of a stream of publishes', async () => {
    const { a, b } = await pair(redis.url, 'crash', { publishRetryFor: 0 })
    const follower = await follow(b.streamUrl('crashing'))
    const accepted: number[] = []
    let failure: unknown = null
    const publishing = (async () => {
      for (let step = 1; failure === null; step += 1) {
        try {
          accepted.push((await a.server.progress('crashing', 0.5, `step ${step}`)).seq ?? -1)
        } catch (error) {
          failure = error
        }
      }
    })()
    await eventually(() => accepted.length >= 25, 'some publishes were accepted')
    await redis.kill()
    await publishing
    expect(failure).toBeInstanceOf(TaskStoreUnavailableError)

    await redis.restart()
    await eventually(async () => (await healthy(a)) && (await healthy(b)), 'both servers reach Redis again')
    const last = await a.server.complete('crashing', { audio_id: 'audio_7' })
    const delivered = seqs(taskMessages(await follower.untilSeq(last.seq ?? 0)))
    // Contiguous from 1, each once, in order; every accepted seq among them. (A publish
    // that failed as "may or may not have been applied" may be there too.)
    expect(delivered).toEqual(range(1, last.seq ?? 0))
    for (const seq of accepted) expect(delivered).toContain(seq)
    expect(accepted.length).toBeGreaterThanOrEqual(25)
  })

  it('completes a task through a one-second Redis outage for clients of both processes: publishes are retried, none applied twice', async () => {
    const { a, b } = await pair(redis.url, 'outage')
    const followers = await Promise.all([follow(a.streamUrl('through')), follow(b.streamUrl('through')), follow(b.streamUrl('through'))])
    await a.server.createTask({ taskId: 'through', taskName: '오디오 생성' })
    const steps = 39
    const job = (async () => {
      for (let step = 1; step <= steps; step += 1) {
        await a.server.progress('through', step / (steps + 1), `step ${step}`)
        await sleep(10)
      }
      return a.server.complete('through', { audio_id: 'audio_1' })
    })()
    await Promise.all(followers.map((client) => client.untilSeq(10)))
    await redis.kill()
    // The outage the job lives through (not an assertion: the job retries for up to 15 s).
    await sleep(1000)
    await redis.restart()
    const last = await job
    expect(last.seq).toBe(steps + 1)

    const expected = [...Array.from({ length: steps }, (_, i) => `step ${i + 1}`), undefined]
    for (const client of followers) {
      await client.untilSeq(steps + 1)
      const messages = taskMessages(client.messages)
      expect(seqs(messages)).toEqual(range(1, steps + 1))
      expect(messages.map((message) => message.message)).toEqual(expected)
      expect(messages[steps]).toMatchObject({ type: 'completed', result: { audio_id: 'audio_1' } })
    }
    const [fromA, fromB] = await Promise.all([getJson(a.statusUrl('through')), getJson(b.statusUrl('through'))])
    expect(fromA).toMatchObject({ status: 200, body: { status: 'completed', seq: steps + 1 } })
    expect(fromB).toEqual(fromA)
  })

  it('fails the task of a process killed mid-job when its lease runs out; the other processes serve the failure', async () => {
    const keyPrefix = uniquePrefix('killed')
    const options = { redis: { url: redis.url, keyPrefix, maxReconnectDelay: 100 }, demo: false, staleAfter: 500 }
    const [b, c] = await Promise.all([startServer(options), startServer(options)])
    running.push(b, c)
    await eventually(async () => (await healthy(b)) && (await healthy(c)), 'both servers reach Redis')
    const watchers = await Promise.all([follow(b.streamUrl('orphan')), follow(c.streamUrl('orphan'))])

    const root = fileURLToPath(new URL('../..', import.meta.url))
    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/support/redis-job-process.ts', redis.url, keyPrefix, 'orphan', '500'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const exited = new Promise<void>((done) => child.once('exit', () => done()))
    try {
      let output = ''
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString()
      })
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString()
          if (output.includes('published')) resolve()
        })
        child.once('exit', (code) => reject(new Error(`the job process exited with ${String(code)}:\n${output}`)))
      })
      await Promise.all(watchers.map((client) => client.untilSeq(1)))
    } finally {
      // Killed mid-job: no goodbye, no failure of its own.
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
      await exited
    }

    for (const client of watchers) {
      await client.untilSeq(2)
      const messages = taskMessages(client.messages)
      expect(seqs(messages)).toEqual([1, 2])
      expect(messages[1]).toMatchObject({
        type: 'error',
        project_id: 'orphan',
        task_name: '오디오 생성',
        error: 'the job stopped reporting (no update for 0.5 s)',
        details: { code: 'job_stale' },
      })
    }
    const [fromB, fromC] = await Promise.all([getJson(b.statusUrl('orphan')), getJson(c.statusUrl('orphan'))])
    expect(fromB).toMatchObject({ status: 200, body: { status: 'failed', progress: 0.3, seq: 2, details: { code: 'job_stale' } } })
    expect(fromC).toEqual(fromB)
  })
})
