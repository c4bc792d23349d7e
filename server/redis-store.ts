/**
 * A `TaskStore` on Redis, so that several server processes serve one task: a job
 * publishes through any process, and tabs connected to any process follow it.
 *
 * - Each task is a Redis stream (its bounded history, entry id = `seq`) plus a state
 *   hash; `append` is one Lua script (redis-scripts.ts), so `seq` is strictly
 *   increasing per task whatever the number of publishers, and a finished task takes
 *   no further message.
 * - Fan-out across processes uses ONE pub/sub connection per store (redis-follows.ts),
 *   with gaps filled from the stream (redis-catch-up.ts): a process holds two Redis
 *   connections (redis-connections.ts) however many tasks it serves.
 * - When Redis goes away every command fails at once with `TaskStoreUnavailableError`
 *   (nothing is queued to be sent later), `health()` reports it, and when Redis is back
 *   the store resubscribes and catches every followed task up.
 *
 * Module map: options and URL validation in redis-options.ts, hash/stream encoding in
 * redis-codec.ts. `ioredis` is an optional peer dependency, loaded with a dynamic
 * `import()` by `createRedisTaskStore`, so servers that do not use Redis never need it.
 * docs/redis.md describes the design, its limits and the operations side.
 */
import type { Redis as RedisClient } from 'ioredis'
import type { TaskMessage } from '../src/protocol.js'
import { DeferredTaskStore } from './deferred-store.js'
import { createConsoleLogger, type Logger } from './logger.js'
import { flatten, newEpoch, parseMessage, statusAfter, stateFields, streamMessages, toState, ttl } from './redis-codec.js'
import { RedisConnections } from './redis-connections.js'
import { TaskFollows } from './redis-follows.js'
import { redactRedisUrl, validateKeyPrefix, validateRedisUrl, type RedisTaskStoreOptions } from './redis-options.js'
import { APPEND_SCRIPT, CREATE_SCRIPT, EXPIRED_LEASES_SCRIPT, RENEW_LEASE_SCRIPT } from './redis-scripts.js'
import { errorText } from './store-errors.js'
import type {
  AppendOptions,
  AppendResult,
  CreateResult,
  CreateTaskInit,
  ExpiryOptions,
  HistoryRead,
  LeaseRenewal,
  StoreHealth,
  TaskListener,
  TaskMessageInput,
  TaskState,
  TaskStore,
  Unsubscribe,
} from './store.js'
import { PUBLISH_ID_WINDOW } from './store.js'

// Where these lived before the split; kept so existing imports keep working.
export { redactRedisUrl, validateRedisUrl, type RedisTaskStoreOptions } from './redis-options.js'
export { TaskStoreUnavailableError } from './store-errors.js'

/** The scripts' replies: a code, the state hash (flat), and for a duplicate the message it appended. */
type ScriptReply = [number, string[], (string | null)?]

type CommandClient = RedisClient & {
  tabcastCreate(...keysThenArgs: string[]): Promise<ScriptReply>
  tabcastAppend(...keysThenArgs: string[]): Promise<ScriptReply>
  tabcastRenewLease(...keysThenArgs: string[]): Promise<ScriptReply>
  tabcastExpiredLeases(leases: string, limit: string): Promise<string[]>
}

interface TaskKeys {
  state: string
  log: string
  pubs: string
  channel: string
}

export class RedisTaskStore implements TaskStore {
  private readonly connections: RedisConnections
  private readonly follows: TaskFollows
  private readonly prefix: string
  private readonly readBatch: number

  private constructor(Redis: typeof RedisClient, options: RedisTaskStoreOptions) {
    this.prefix = validateKeyPrefix(options.keyPrefix)
    const url = validateRedisUrl(options.url, 'url')
    const logger: Logger = options.logger ?? createConsoleLogger('warn')
    const onListenerError =
      options.onListenerError ??
      ((error: unknown, taskId: string) => logger.error('a subscriber of a task threw', { task: taskId, error: errorText(error) }))
    this.readBatch = options.readBatch ?? 1000
    this.connections = new RedisConnections(Redis, url, options, redactRedisUrl(url), logger, {
      onCommandsReady: () => this.follows.onCommandsReady(),
      onSubscriptionsReady: () => this.follows.onSubscriptionsReady(),
      onLive: (channel, payload) => this.follows.onLive(channel, payload),
    })
    const command = this.connections.commands.client
    command.defineCommand('tabcastCreate', { numberOfKeys: 4, lua: CREATE_SCRIPT })
    command.defineCommand('tabcastAppend', { numberOfKeys: 4, lua: APPEND_SCRIPT })
    command.defineCommand('tabcastRenewLease', { numberOfKeys: 4, lua: RENEW_LEASE_SCRIPT })
    command.defineCommand('tabcastExpiredLeases', { numberOfKeys: 1, lua: EXPIRED_LEASES_SCRIPT })
    this.follows = new TaskFollows(
      this.connections,
      { readFrom: (taskId, seq) => this.readFrom(taskId, seq), currentSeq: (taskId) => this.currentSeq(taskId) },
      logger,
      onListenerError,
    )
  }

  /** Use `createRedisTaskStore`; this is its implementation. */
  static async connect(options: RedisTaskStoreOptions): Promise<RedisTaskStore> {
    validateRedisUrl(options.url, 'url')
    let Redis: typeof RedisClient
    try {
      Redis = (await import('ioredis')).Redis
    } catch (error) {
      throw new Error(
        `the Redis task store needs the "ioredis" package (an optional peer dependency of tabcast): npm install ioredis (${errorText(error)})`,
        { cause: error },
      )
    }
    const store = new RedisTaskStore(Redis, options)
    if (options.waitForConnection ?? true) {
      try {
        await store.waitUntilConnected(options.connectTimeout ?? 10_000)
      } catch (error) {
        await store.close()
        throw error
      }
    }
    return store
  }

  async create(taskId: string, init: CreateTaskInit, options: ExpiryOptions): Promise<CreateResult> {
    const keys = this.keys(taskId)
    const now = new Date().toISOString()
    const name = init.taskName === undefined ? '' : JSON.stringify(init.taskName)
    const lease = options.leaseMs === undefined ? '' : String(ttl(options.leaseMs))
    const [created, flat] = await this.connections.run(`create task ${taskId}`, () =>
      this.client.tabcastCreate(...this.scriptKeys(keys), now, String(ttl(options.expireAfterMs)), name, newEpoch(), lease, taskId),
    )
    const state = toState(taskId, flat)
    if (state === null) throw new Error(`task ${taskId}: Redis returned no state after create`)
    return created === 1 ? { created: true, state } : { created: false, state }
  }

  async append(taskId: string, input: TaskMessageInput, options: AppendOptions): Promise<AppendResult> {
    const keys = this.keys(taskId)
    const now = new Date().toISOString()
    const timestamp = input.timestamp ?? now
    const body = JSON.stringify({ ...input, timestamp })
    const name = input.task_name === undefined ? '' : JSON.stringify(input.task_name)
    const [code, flat, applied] = await this.connections.run(`publish a ${input.type} message to task ${taskId}`, () =>
      this.client.tabcastAppend(
        ...this.scriptKeys(keys),
        body,
        name,
        statusAfter(input.type),
        String(options.historyLimit),
        String(ttl(options.expireAfterMs)),
        now,
        timestamp,
        keys.channel,
        options.publishId ?? '',
        options.leaseMs === undefined ? '' : String(ttl(options.leaseMs)),
        taskId,
        newEpoch(),
        options.ifLeaseExpired ? '1' : '',
        String(PUBLISH_ID_WINDOW),
        ...stateFields(input),
      ),
    )
    const state = toState(taskId, flat)
    if (code === 2) return { ok: false, reason: 'lease_active', state }
    if (state === null) throw new Error(`task ${taskId}: Redis returned no state after append`)
    if (code === 0) return { ok: false, reason: 'finished', state }
    if (code === 3) {
      // The message this publish id appended the first time (the newest one if the
      // stream no longer holds it).
      const message = typeof applied === 'string' ? parseMessage(applied) : state.latest
      if (message === undefined) throw new Error(`task ${taskId}: Redis returned no message for a repeated publish`)
      return { ok: true, message, state, duplicate: true }
    }
    if (state.latest === undefined) throw new Error(`task ${taskId}: Redis returned no message after append`)
    return { ok: true, message: state.latest, state }
  }

  async get(taskId: string): Promise<TaskState | null> {
    const record = await this.connections.run(`read task ${taskId}`, () => this.client.hgetall(this.keys(taskId).state))
    return toState(taskId, flatten(record))
  }

  async readSince(taskId: string, since: number): Promise<HistoryRead> {
    const keys = this.keys(taskId)
    const replies = await this.connections.run(`read the history of task ${taskId}`, () =>
      this.client.multi().hget(keys.state, 'seq').xrange(keys.log, `${since + 1}-0`, '+').exec(),
    )
    const [seqReply, rangeReply] = replies ?? []
    if (seqReply?.[0]) throw seqReply[0]
    if (rangeReply?.[0]) throw rangeReply[0]
    const seq = seqReply?.[1] as string | null | undefined
    if (seq === null || seq === undefined) return { messages: [], complete: false }
    if (since >= Number(seq)) return { messages: [], complete: true }
    const messages = streamMessages(rangeReply?.[1] as [string, string[]][])
    return { messages, complete: messages[0]?.seq === since + 1 }
  }

  async renewLease(taskId: string, renewal: LeaseRenewal): Promise<TaskState | null> {
    const [, flat] = await this.connections.run(`renew the lease of task ${taskId}`, () =>
      this.client.tabcastRenewLease(...this.scriptKeys(this.keys(taskId)), String(ttl(renewal.leaseMs)), String(ttl(renewal.expireAfterMs)), taskId),
    )
    return toState(taskId, flat)
  }

  expiredLeases(limit: number): Promise<string[]> {
    return this.connections.run('look for expired leases', () => this.client.tabcastExpiredLeases(this.leasesKey, String(limit)))
  }

  subscribe(taskId: string, listener: TaskListener): Promise<Unsubscribe> {
    this.connections.checkOpen()
    return this.follows.subscribe(taskId, this.keys(taskId).channel, listener)
  }

  async health(): Promise<StoreHealth> {
    const { connections, follows } = this
    if (connections.isClosed) return { ok: false, kind: 'redis', detail: 'the store is closed' }
    const down = connections.down()
    if (down.length > 0) return { ok: false, kind: 'redis', detail: connections.describeOutage(down) }
    if (follows.isResubscribing) {
      return { ok: false, kind: 'redis', detail: `reconnected to Redis at ${connections.where}; resubscribing to ${follows.size} followed tasks` }
    }
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      await Promise.race([
        this.client.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer to PING within 1 s')), 1000)
        }),
      ])
    } catch (error) {
      return { ok: false, kind: 'redis', detail: `Redis at ${connections.where} does not answer: ${errorText(error)}` }
    } finally {
      clearTimeout(timer)
    }
    return { ok: true, kind: 'redis', detail: `${connections.where}; ${follows.size} tasks followed by this process` }
  }

  async close(): Promise<void> {
    if (this.connections.isClosed) return
    this.follows.clear()
    await this.connections.close()
  }

  /** Resolves once both connections are ready; rejects after `timeoutMs`. */
  waitUntilConnected(timeoutMs: number): Promise<void> {
    return this.connections.waitUntilConnected(timeoutMs)
  }

  private get client(): CommandClient {
    return this.connections.commands.client as CommandClient
  }

  private keys(taskId: string): TaskKeys {
    const base = `${this.prefix}:task:{${taskId}}`
    return { state: `${base}:state`, log: `${base}:log`, pubs: `${base}:pubs`, channel: `${base}:live` }
  }

  /** The lease index: one key per prefix, outside the tasks' hash slots (see docs/redis.md, Limits). */
  private get leasesKey(): string {
    return `${this.prefix}:leases`
  }

  /** The KEYS of the create, append and renew scripts. */
  private scriptKeys(keys: TaskKeys): [string, string, string, string] {
    return [keys.state, keys.log, this.leasesKey, keys.pubs]
  }

  private async currentSeq(taskId: string): Promise<number> {
    const seq = await this.connections.run(`read task ${taskId}`, () => this.client.hget(this.keys(taskId).state, 'seq'))
    return Number(seq ?? 0)
  }

  /** The stream's messages from `seq` on, in batches of `readBatch`. */
  private async readFrom(taskId: string, seq: number): Promise<TaskMessage[]> {
    const log = this.keys(taskId).log
    const messages: TaskMessage[] = []
    let start = `${seq}-0`
    for (;;) {
      const range = await this.connections.run(`read the history of task ${taskId}`, () => this.client.xrange(log, start, '+', 'COUNT', this.readBatch))
      const batch = streamMessages(range)
      messages.push(...batch)
      const lastSeq = batch[batch.length - 1]?.seq
      if (batch.length < this.readBatch || lastSeq === undefined) return messages
      start = `${lastSeq + 1}-0`
    }
  }
}

/**
 * Connects a Redis task store (loading `ioredis` on first use). Pass it as the `store`
 * of one or more servers; close it yourself when they are closed.
 */
export function createRedisTaskStore(options: RedisTaskStoreOptions): Promise<RedisTaskStore> {
  return RedisTaskStore.connect(options)
}

/**
 * The store behind `createTabcastServer({ redis })`: returned at once (the server's
 * constructor is synchronous), connecting in the background. Until Redis answers it
 * reports itself unhealthy and refuses commands, like during any outage.
 */
export function openRedisTaskStore(options: RedisTaskStoreOptions, logger: Logger): TaskStore {
  return new DeferredTaskStore('redis', createRedisTaskStore({ logger, ...options, waitForConnection: false }), logger)
}
