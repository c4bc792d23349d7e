/**
 * A `TaskStore` on Redis, so that several server processes serve one task: a job
 * publishes through any process, and tabs connected to any process follow it.
 *
 * - Each task is a Redis stream (its bounded history, entry id = `seq`) plus a state
 *   hash; `append` is one Lua script (see redis-scripts.ts), so `seq` is strictly
 *   increasing per task whatever the number of publishers, and a finished task takes
 *   no further message.
 * - Fan-out across processes uses ONE pub/sub connection per store: the append script
 *   PUBLISHes the message (with its `seq`) on the task's channel, and a process
 *   SUBSCRIBEs to the channels of the tasks it follows. Delivery to listeners is
 *   ordered and deduplicated by `seq`; a gap (a reconnect, a resubscription) is filled
 *   from the stream with XRANGE. No blocking read per task: a process holds two Redis
 *   connections (commands, subscriptions) however many tasks it serves.
 * - When Redis goes away every command fails at once with `TaskStoreUnavailableError`
 *   (nothing is queued to be sent later), `health()` reports it, and when Redis is back
 *   the store resubscribes and catches every followed task up from the last `seq` it
 *   delivered, so listeners miss nothing that Redis kept.
 *
 * `ioredis` is an optional peer dependency: it is loaded with a dynamic `import()` by
 * `createRedisTaskStore`, so servers that do not use Redis never need it. docs/redis.md
 * describes the design, its limits and the operations side.
 */
import type { Redis as RedisClient, RedisOptions } from 'ioredis'
import type { TaskMessage } from '../src/protocol.js'
import { createConsoleLogger, type Logger } from './logger.js'
import { DeferredTaskStore } from './deferred-store.js'
import { APPEND_SCRIPT, CREATE_SCRIPT } from './redis-scripts.js'
import type {
  AppendOptions,
  AppendResult,
  CreateResult,
  CreateTaskInit,
  ExpiryOptions,
  HistoryRead,
  StoreHealth,
  TaskLifecycle,
  TaskListener,
  TaskMessageInput,
  TaskState,
  TaskStore,
  Unsubscribe,
} from './store.js'

export interface RedisTaskStoreOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  url: string
  /**
   * The first segment of every key and channel, so several applications (or test
   * runs) can share one Redis.
   * @default "tabcast"
   */
  keyPrefix?: string
  /**
   * Where connection losses and recoveries are logged.
   * @default a console logger that prints warnings and errors
   */
  logger?: Logger
  /**
   * Whether `createRedisTaskStore` waits for both connections before it resolves (and
   * rejects when Redis cannot be reached within `connectTimeout`). Without waiting the
   * store is returned at once, reports itself unhealthy and refuses commands until
   * Redis answers.
   * @default true
   */
  waitForConnection?: boolean
  /**
   * How long the first connection may take, in milliseconds.
   * @default 10000
   */
  connectTimeout?: number
  /**
   * A command that gets no answer within this many milliseconds fails (Redis stalled).
   * @default 5000
   */
  commandTimeout?: number
  /**
   * The longest pause between reconnection attempts, in milliseconds (they start at
   * 50 ms and double).
   * @default 2000
   */
  maxReconnectDelay?: number
  /**
   * How many entries one XRANGE reads during a catch-up.
   * @default 1000
   */
  readBatch?: number
  /**
   * More ioredis options (`tls`, `password`, `family`, …), for both connections;
   * `connectionName` (default "tabcast") names them `<name>-commands` and
   * `<name>-subscriptions` in CLIENT LIST. The store's own settings (no offline queue, no automatic resending or
   * resubscribing) cannot be changed: they are what makes failures visible.
   */
  clientOptions?: Record<string, unknown>
  /**
   * Called when a listener throws. Listeners are the server's own fan-out, so this is
   * a bug report, not flow control.
   * @default logs it
   */
  onListenerError?: (error: unknown, taskId: string) => void
}

/**
 * Thrown (as a rejected promise) when the store cannot reach Redis. Nothing was
 * published unless `maybeApplied` is true: then the connection was lost after the
 * command was sent and before Redis answered, so Redis may or may not have applied it.
 */
export class TaskStoreUnavailableError extends Error {
  override readonly name = 'TaskStoreUnavailableError'
  readonly code = 'store_unavailable'
  constructor(
    message: string,
    readonly maybeApplied: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Checks a Redis URL and returns it trimmed; throws a TypeError naming the problem. */
export function validateRedisUrl(value: unknown, name = 'redis url'): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(`${name} must be a redis:// or rediss:// URL, got ${JSON.stringify(value) ?? String(value)}`)
  }
  const text = value.trim()
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TypeError(`${name} must be a redis:// or rediss:// URL, got ${JSON.stringify(text)}`)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new TypeError(`${name} must start with redis:// or rediss://, got ${JSON.stringify(`${url.protocol}//…`)}`)
  }
  return text
}

/** The URL without its password, for logs and `/healthz`. */
export function redactRedisUrl(text: string): string {
  try {
    const url = new URL(text)
    if (url.password !== '') url.password = '***'
    return url.toString()
  } catch {
    return '<invalid url>'
  }
}

const PREFIX_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/

/** A task this process follows: one channel subscription shared by its listeners. */
interface Follow {
  readonly taskId: string
  readonly channel: string
  readonly listeners: Set<TaskListener>
  /** Resolves once the subscription is active and `last` is known. */
  ready: Promise<void>
  /** `seq` of the newest message handed to the listeners; null until known. */
  last: number | null
  /** A catch-up from the stream is running; live messages wait in `held`. */
  catchingUp: boolean
  /** Run the catch-up once more when the current one ends. */
  again: boolean
  /** A catch-up failed (Redis was down); it is retried when Redis is back. */
  needsCatchUp: boolean
  held: TaskMessage[]
  closed: boolean
}

interface Connection {
  readonly role: 'commands' | 'subscriptions'
  readonly client: RedisClient
  up: boolean
  /** When it was lost, and why (the last client error). */
  downSince: number | null
  lastError: string | null
}

type CommandClient = RedisClient & {
  tabcastCreate(state: string, log: string, ...args: string[]): Promise<[number, string[]]>
  tabcastAppend(state: string, log: string, ...args: string[]): Promise<[number, string[]]>
}

/** Errors Redis answers with while it cannot serve (loading, failing over, out of memory). */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|OOM|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function statusAfter(type: TaskMessageInput['type']): TaskLifecycle {
  return type === 'completed' ? 'completed' : type === 'error' ? 'failed' : 'running'
}

function parseMessage(json: string): TaskMessage {
  return Object.freeze(JSON.parse(json) as TaskMessage)
}

function pairs(flat: readonly string[]): Map<string, string> {
  const map = new Map<string, string>()
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i] as string, flat[i + 1] as string)
  return map
}

/** A state hash (HGETALL) as a `TaskState`, or null when the hash is empty. */
function toState(taskId: string, flat: readonly string[]): TaskState | null {
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
  const latest = fields.get('latest')
  if (latest !== undefined) state.latest = parseMessage(latest)
  return state
}

/** The state fields a message changes, as hash field/value pairs (values are JSON). */
function stateFields(input: TaskMessageInput): string[] {
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

export class RedisTaskStore implements TaskStore {
  private readonly commands: Connection
  private readonly subscriptions: Connection
  private readonly follows = new Map<string, Follow>()
  private readonly byChannel = new Map<string, Follow>()
  private readonly prefix: string
  private readonly where: string
  private readonly logger: Logger
  private readonly onListenerError: (error: unknown, taskId: string) => void
  private readonly readBatch: number
  /** Set while the subscription connection resubscribes after a reconnect. */
  private resubscribing: Promise<void> | null = null
  private closed = false

  private constructor(Redis: typeof RedisClient, options: RedisTaskStoreOptions) {
    const prefix = options.keyPrefix ?? 'tabcast'
    if (!PREFIX_PATTERN.test(prefix)) {
      throw new TypeError(`keyPrefix must be 1–64 characters from A–Z a–z 0–9 _ . : -, got ${JSON.stringify(prefix)}`)
    }
    this.prefix = prefix
    const url = validateRedisUrl(options.url, 'url')
    this.where = redactRedisUrl(url)
    this.logger = options.logger ?? createConsoleLogger('warn')
    this.onListenerError =
      options.onListenerError ??
      ((error, taskId) => this.logger.error('a subscriber of a task threw', { task: taskId, error: errorText(error) }))
    this.readBatch = options.readBatch ?? 1000
    const maxDelay = options.maxReconnectDelay ?? 2000
    const clientOptions: Omit<RedisOptions, 'replyMapping'> = {
      ...(options.clientOptions as Omit<RedisOptions, 'replyMapping'> | undefined),
      connectTimeout: options.connectTimeout ?? 10_000,
      commandTimeout: options.commandTimeout ?? 5000,
      // Fail fast instead of queueing: a command issued while Redis is away is refused
      // at once, and one in flight when the connection drops is failed at once, so the
      // job API rejects instead of hanging, and nothing is resent behind its back.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // The store resubscribes itself, so that it knows when the subscriptions are
      // active again and the catch-up can start.
      autoResubscribe: false,
      retryStrategy: (times: number) => Math.min(maxDelay, 50 * 2 ** Math.min(times - 1, 10)),
    }
    // Named in CLIENT LIST as <name>-commands and <name>-subscriptions.
    const name = typeof clientOptions.connectionName === 'string' && clientOptions.connectionName !== '' ? clientOptions.connectionName : 'tabcast'
    const command = new Redis(url, { ...clientOptions, connectionName: `${name}-commands` })
    command.defineCommand('tabcastCreate', { numberOfKeys: 2, lua: CREATE_SCRIPT })
    command.defineCommand('tabcastAppend', { numberOfKeys: 2, lua: APPEND_SCRIPT })
    this.commands = { role: 'commands', client: command, up: false, downSince: Date.now(), lastError: 'connecting' }
    const subscriber = new Redis(url, { ...clientOptions, connectionName: `${name}-subscriptions` })
    this.subscriptions = { role: 'subscriptions', client: subscriber, up: false, downSince: Date.now(), lastError: 'connecting' }
    this.watch(this.commands, () => this.onCommandsReady())
    this.watch(this.subscriptions, () => this.onSubscriptionsReady())
    subscriber.on('message', (channel: string, payload: string) => this.onLive(channel, payload))
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
    const [created, flat] = await this.run(`create task ${taskId}`, () =>
      this.client.tabcastCreate(keys.state, keys.log, now, String(ttl(options.expireAfterMs)), name),
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
    const [appended, flat] = await this.run(`publish a ${input.type} message to task ${taskId}`, () =>
      this.client.tabcastAppend(
        keys.state,
        keys.log,
        body,
        name,
        statusAfter(input.type),
        String(options.historyLimit),
        String(ttl(options.expireAfterMs)),
        now,
        timestamp,
        keys.channel,
        ...stateFields(input),
      ),
    )
    const state = toState(taskId, flat)
    if (state === null) throw new Error(`task ${taskId}: Redis returned no state after append`)
    if (appended !== 1) return { ok: false, reason: 'finished', state }
    if (state.latest === undefined) throw new Error(`task ${taskId}: Redis returned no message after append`)
    return { ok: true, message: state.latest, state }
  }

  async get(taskId: string): Promise<TaskState | null> {
    const flat = await this.run(`read task ${taskId}`, () => this.client.hgetall(this.keys(taskId).state))
    // ioredis answers HGETALL with an object.
    return toState(taskId, Object.entries(flat).flat())
  }

  async readSince(taskId: string, since: number): Promise<HistoryRead> {
    const keys = this.keys(taskId)
    const replies = await this.run(`read the history of task ${taskId}`, () =>
      this.client.multi().hget(keys.state, 'seq').xrange(keys.log, `${since + 1}-0`, '+').exec(),
    )
    const [seqReply, rangeReply] = replies ?? []
    if (seqReply?.[0]) throw seqReply[0]
    if (rangeReply?.[0]) throw rangeReply[0]
    const seq = seqReply?.[1] as string | null | undefined
    if (seq === null || seq === undefined) return { messages: [], complete: false }
    if (since >= Number(seq)) return { messages: [], complete: true }
    const messages = this.entries(rangeReply?.[1] as [string, string[]][])
    return { messages, complete: messages[0]?.seq === since + 1 }
  }

  async subscribe(taskId: string, listener: TaskListener): Promise<Unsubscribe> {
    this.checkOpen()
    let follow = this.follows.get(taskId)
    if (!follow) {
      const created: Follow = {
        taskId,
        channel: this.keys(taskId).channel,
        listeners: new Set(),
        ready: Promise.resolve(),
        last: null,
        catchingUp: false,
        again: false,
        needsCatchUp: false,
        held: [],
        closed: false,
      }
      this.follows.set(taskId, created)
      this.byChannel.set(created.channel, created)
      created.ready = this.startFollow(created)
      follow = created
    }
    const current = follow
    current.listeners.add(listener)
    try {
      await current.ready
    } catch (error) {
      current.listeners.delete(listener)
      throw error
    }
    let subscribed = true
    return () => {
      if (!subscribed) return
      subscribed = false
      current.listeners.delete(listener)
      if (current.listeners.size === 0) this.stopFollow(current)
    }
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, kind: 'redis', detail: 'the store is closed' }
    const down = [this.commands, this.subscriptions].filter((connection) => !connection.up)
    if (down.length > 0) return { ok: false, kind: 'redis', detail: this.describeOutage(down) }
    if (this.resubscribing !== null) {
      return { ok: false, kind: 'redis', detail: `reconnected to Redis at ${this.where}; resubscribing to ${this.follows.size} followed tasks` }
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
      return { ok: false, kind: 'redis', detail: `Redis at ${this.where} does not answer: ${errorText(error)}` }
    } finally {
      clearTimeout(timer)
    }
    return { ok: true, kind: 'redis', detail: `${this.where}; ${this.follows.size} tasks followed by this process` }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const follow of this.follows.values()) follow.closed = true
    this.follows.clear()
    this.byChannel.clear()
    await Promise.all(
      [this.commands, this.subscriptions].map(async ({ client }) => {
        try {
          if (client.status === 'ready') await client.quit()
        } catch {
          // Going away anyway.
        }
        client.disconnect()
      }),
    )
  }

  /** Resolves once both connections are ready; rejects after `timeoutMs`. */
  waitUntilConnected(timeoutMs: number): Promise<void> {
    const connections = [this.commands, this.subscriptions]
    if (connections.every((connection) => connection.up)) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!connections.every((connection) => connection.up)) return
        cleanup()
        resolve()
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new TaskStoreUnavailableError(`could not connect to Redis at ${this.where} within ${timeoutMs} ms: ${this.describeOutage(connections.filter((c) => !c.up))}`, false))
      }, timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        for (const { client } of connections) client.off('ready', onReady)
      }
      // Both connections' own ready listeners were registered first, so `up` is set.
      const onReady = (): void => check()
      for (const { client } of connections) client.on('ready', onReady)
    })
  }

  private get client(): CommandClient {
    return this.commands.client as CommandClient
  }

  private keys(taskId: string): { state: string; log: string; channel: string } {
    const base = `${this.prefix}:task:{${taskId}}`
    return { state: `${base}:state`, log: `${base}:log`, channel: `${base}:live` }
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the Redis task store is closed')
  }

  /** Runs one Redis call, turning connection failures into `TaskStoreUnavailableError`. */
  private async run<T>(what: string, call: () => Promise<T>): Promise<T> {
    this.checkOpen()
    if (!this.commands.up) {
      throw new TaskStoreUnavailableError(`could not ${what}: ${this.describeOutage([this.commands])}; nothing was written`, false)
    }
    try {
      return await call()
    } catch (error) {
      throw this.wrap(what, error)
    }
  }

  private wrap(what: string, error: unknown): Error {
    const text = errorText(error)
    const name = error instanceof Error ? error.name : ''
    if (name === 'ReplyError' && !UNAVAILABLE_REPLY.test(text)) {
      // A real answer from Redis (a script error, a wrong type): a bug, not an outage.
      return new Error(`could not ${what}: Redis answered ${text}`, { cause: error })
    }
    const notSent = /isn't writeable|enableOfflineQueue/.test(text) || name === 'ReplyError'
    if (notSent) {
      return new TaskStoreUnavailableError(`could not ${what}: Redis at ${this.where} is unavailable (${text}); nothing was written`, false, {
        cause: error,
      })
    }
    return new TaskStoreUnavailableError(
      `could not ${what}: the connection to Redis at ${this.where} failed before Redis answered (${text}); it may or may not have been applied`,
      true,
      { cause: error },
    )
  }

  private describeOutage(down: readonly Connection[]): string {
    const first = down[0]
    if (!first) return `Redis at ${this.where} is reachable`
    const since = first.downSince === null ? '' : ` since ${new Date(first.downSince).toISOString()}`
    return `Redis at ${this.where} is unreachable${since} (${first.lastError ?? 'disconnected'}); reconnecting`
  }

  private entries(range: readonly [string, string[]][] | undefined): TaskMessage[] {
    const messages: TaskMessage[] = []
    for (const [, fields] of range ?? []) {
      const index = fields.indexOf('m')
      const json = index >= 0 ? fields[index + 1] : undefined
      if (json !== undefined) messages.push(parseMessage(json))
    }
    return messages
  }

  // --- connections -------------------------------------------------------------

  private watch(connection: Connection, onReady: () => void): void {
    const { client, role } = connection
    client.on('ready', () => {
      if (this.closed) return
      const wasDown = connection.downSince
      connection.up = true
      connection.downSince = null
      connection.lastError = null
      if (wasDown !== null && role === 'commands') this.logger.info('connected to Redis', { redis: this.where })
      onReady()
    })
    client.on('error', (error: Error) => {
      connection.lastError = error.message
      this.logger.debug('Redis connection error', { redis: this.where, connection: role, error: error.message })
    })
    client.on('close', () => {
      if (this.closed || !connection.up) return
      connection.up = false
      connection.downSince = Date.now()
      this.logger.warn(
        role === 'commands'
          ? 'lost the connection to Redis: publishes are refused until it is back'
          : 'lost the pub/sub connection to Redis: followers catch up when it is back',
        { redis: this.where, error: connection.lastError ?? 'connection closed' },
      )
    })
  }

  private onCommandsReady(): void {
    // Catch-ups that failed for want of the command connection.
    if (!this.subscriptions.up || this.resubscribing !== null) return
    for (const follow of this.follows.values()) {
      if (follow.needsCatchUp) void this.catchUp(follow)
    }
  }

  private onSubscriptionsReady(): void {
    if (this.follows.size === 0) return
    const run = this.resubscribe().finally(() => {
      if (this.resubscribing === run) this.resubscribing = null
    })
    this.resubscribing = run
  }

  /**
   * After a reconnect: subscribe to every followed task's channel again, and only then
   * read what was appended meanwhile, so nothing falls between the two.
   */
  private async resubscribe(): Promise<void> {
    const follows = [...this.follows.values()]
    try {
      for (let i = 0; i < follows.length; i += 1000) {
        // Tasks left meanwhile are not resubscribed (their UNSUBSCRIBE may already be sent).
        const channels = follows.slice(i, i + 1000).flatMap((follow) => (follow.closed ? [] : [follow.channel]))
        if (channels.length > 0) await this.subscriptions.client.subscribe(...channels)
      }
    } catch (error) {
      this.logger.warn('resubscribing to followed tasks failed; reconnecting to try again', {
        redis: this.where,
        error: errorText(error),
      })
      // Usually the connection dropped again and its next 'ready' starts over; if it is
      // still up (a timeout), drop it so that it does.
      if (!this.closed && this.subscriptions.client.status === 'ready') this.subscriptions.client.disconnect(true)
      return
    }
    this.logger.info('resubscribed to followed tasks after a reconnect; catching up', { redis: this.where, tasks: follows.length })
    for (const follow of follows) {
      if (!follow.closed) void this.catchUp(follow)
    }
  }

  // --- following tasks ---------------------------------------------------------

  private async startFollow(follow: Follow): Promise<void> {
    try {
      if (!this.subscriptions.up) {
        throw new TaskStoreUnavailableError(`could not follow task ${follow.taskId}: ${this.describeOutage([this.subscriptions])}`, false)
      }
      try {
        await this.subscriptions.client.subscribe(follow.channel)
      } catch (error) {
        throw this.wrap(`follow task ${follow.taskId}`, error)
      }
      // Read only now that the subscription is active: every message above this seq
      // arrives live (or is caught up after a reconnect).
      const seq = await this.run(`read task ${follow.taskId}`, () => this.client.hget(this.keys(follow.taskId).state, 'seq'))
      follow.last = Math.max(follow.last ?? 0, Number(seq ?? 0))
    } catch (error) {
      if (this.follows.get(follow.taskId) === follow) this.stopFollow(follow)
      throw error
    }
  }

  private stopFollow(follow: Follow): void {
    if (follow.closed) return
    follow.closed = true
    follow.held = []
    if (this.follows.get(follow.taskId) === follow) this.follows.delete(follow.taskId)
    if (this.byChannel.get(follow.channel) === follow) this.byChannel.delete(follow.channel)
    // Commands on one connection run in order, so a new SUBSCRIBE to this channel sent
    // after this UNSUBSCRIBE wins. While Redis is away there is nothing to undo: the
    // channel is simply not resubscribed.
    if (this.subscriptions.up && !this.closed) {
      this.subscriptions.client.unsubscribe(follow.channel).catch(() => {})
    }
  }

  private onLive(channel: string, payload: string): void {
    const follow = this.byChannel.get(channel)
    if (!follow || follow.closed) return
    let message: TaskMessage
    try {
      message = parseMessage(payload)
    } catch (error) {
      this.logger.error('ignored a malformed live message from Redis', { channel, error: errorText(error) })
      return
    }
    const seq = message.seq ?? 0
    if (follow.catchingUp) {
      follow.held.push(message)
      return
    }
    if (follow.last !== null && seq <= follow.last) return
    if (follow.last !== null && seq > follow.last + 1) {
      // Something was missed (a reconnect): fill the gap from the stream first.
      follow.held.push(message)
      void this.catchUp(follow)
      return
    }
    this.deliver(follow, message)
  }

  /**
   * Delivers, in order, everything after `follow.last`: first what the stream holds,
   * then the live messages that arrived meanwhile. Serialised per task.
   */
  private async catchUp(follow: Follow): Promise<void> {
    if (follow.catchingUp) {
      follow.again = true
      return
    }
    follow.catchingUp = true
    follow.needsCatchUp = false
    try {
      let rounds = 0
      do {
        follow.again = false
        rounds += 1
        const from = (follow.last ?? 0) + 1
        const messages = await this.readFrom(follow.taskId, from)
        if (follow.closed) return
        const first = messages[0]
        if (first !== undefined && (first.seq ?? 0) > from) {
          this.logger.warn('messages of a followed task were trimmed or lost before this process caught up', {
            task: follow.taskId,
            missing: `${from}–${(first.seq ?? 0) - 1}`,
          })
        }
        if (messages.length === 0) {
          const seq = await this.run(`read task ${follow.taskId}`, () => this.client.hget(this.keys(follow.taskId).state, 'seq'))
          if (follow.closed) return
          const current = Number(seq ?? 0)
          if (current < from - 1) {
            // Redis lost the task (restarted without persistence, or it expired): follow
            // its new numbering rather than waiting for seqs that will never come.
            this.logger.warn('a followed task went back in Redis (data lost?); following its new numbering', {
              task: follow.taskId,
              delivered: from - 1,
              redis: current,
            })
            follow.last = current
          }
        }
        for (const message of messages) {
          if ((message.seq ?? 0) > (follow.last ?? 0)) this.deliver(follow, message)
        }
        const held = follow.held.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0))
        follow.held = []
        for (let i = 0; i < held.length; i += 1) {
          const message = held[i] as TaskMessage
          const seq = message.seq ?? 0
          const last = follow.last ?? 0
          if (seq <= last) continue
          if (seq > last + 1 && rounds < 3) {
            follow.held = held.slice(i)
            follow.again = true
            break
          }
          this.deliver(follow, message)
        }
      } while (follow.again && !follow.closed)
    } catch (error) {
      follow.needsCatchUp = true
      this.logger.warn('catching a followed task up failed; retrying when Redis is back', {
        task: follow.taskId,
        error: errorText(error),
      })
    } finally {
      follow.catchingUp = false
    }
  }

  /** The stream's messages from `seq` on, in batches. */
  private async readFrom(taskId: string, seq: number): Promise<TaskMessage[]> {
    const log = this.keys(taskId).log
    const messages: TaskMessage[] = []
    let start = `${seq}-0`
    for (;;) {
      const range = await this.run(`read the history of task ${taskId}`, () => this.client.xrange(log, start, '+', 'COUNT', this.readBatch))
      const batch = this.entries(range)
      messages.push(...batch)
      const lastSeq = batch[batch.length - 1]?.seq
      if (batch.length < this.readBatch || lastSeq === undefined) return messages
      start = `${lastSeq + 1}-0`
    }
  }

  private deliver(follow: Follow, message: TaskMessage): void {
    follow.last = message.seq ?? follow.last
    // A copy, so a listener that unsubscribes while being called does not change who
    // receives this message.
    for (const listener of [...follow.listeners]) {
      try {
        listener(message)
      } catch (error) {
        this.onListenerError(error, follow.taskId)
      }
    }
  }
}

/** Whole milliseconds, at least 1 (PEXPIRE takes an integer). */
function ttl(ms: number): number {
  return Math.max(1, Math.ceil(ms))
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
