/**
 * The Redis store's two connections (commands; subscriptions) and what their failures
 * mean: whether each is up, since when it is down and why, and the translation of a
 * failed command into `TaskStoreUnavailableError` (nothing written, or maybe applied).
 */
import type { Redis as RedisClient } from 'ioredis'
import type { Logger } from './logger.js'
import { clientOptionsFor, type RedisTaskStoreOptions } from './redis-options.js'
import { errorText, TaskStoreUnavailableError } from './store-errors.js'

export interface Connection {
  readonly role: 'commands' | 'subscriptions'
  readonly client: RedisClient
  up: boolean
  /** When it was lost, and why (the last client error). */
  downSince: number | null
  lastError: string | null
}

/** Errors Redis answers with while it cannot serve (loading, failing over, out of memory). */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|OOM|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/

export interface ConnectionEvents {
  onCommandsReady(): void
  onSubscriptionsReady(): void
  onLive(channel: string, payload: string): void
}

export class RedisConnections {
  readonly commands: Connection
  readonly subscriptions: Connection
  private closed = false

  constructor(
    Redis: typeof RedisClient,
    url: string,
    options: RedisTaskStoreOptions,
    /** The URL without its password, for messages. */
    readonly where: string,
    private readonly logger: Logger,
    events: ConnectionEvents,
  ) {
    const { common, name } = clientOptionsFor(options)
    const command = new Redis(url, { ...common, connectionName: `${name}-commands` })
    this.commands = { role: 'commands', client: command, up: false, downSince: Date.now(), lastError: 'connecting' }
    const subscriber = new Redis(url, { ...common, connectionName: `${name}-subscriptions` })
    this.subscriptions = { role: 'subscriptions', client: subscriber, up: false, downSince: Date.now(), lastError: 'connecting' }
    this.watch(this.commands, () => events.onCommandsReady())
    this.watch(this.subscriptions, () => events.onSubscriptionsReady())
    subscriber.on('message', (channel: string, payload: string) => events.onLive(channel, payload))
  }

  get isClosed(): boolean {
    return this.closed
  }

  checkOpen(): void {
    if (this.closed) throw new Error('the Redis task store is closed')
  }

  /** Runs one command, turning connection failures into `TaskStoreUnavailableError`. */
  async run<T>(what: string, call: (client: RedisClient) => Promise<T>): Promise<T> {
    this.checkOpen()
    if (!this.commands.up) {
      throw new TaskStoreUnavailableError(`could not ${what}: ${this.describeOutage([this.commands])}; nothing was written`, false)
    }
    try {
      return await call(this.commands.client)
    } catch (error) {
      throw this.wrap(what, error)
    }
  }

  wrap(what: string, error: unknown): Error {
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

  describeOutage(down: readonly Connection[]): string {
    const first = down[0]
    if (!first) return `Redis at ${this.where} is reachable`
    const since = first.downSince === null ? '' : ` since ${new Date(first.downSince).toISOString()}`
    return `Redis at ${this.where} is unreachable${since} (${first.lastError ?? 'disconnected'}); reconnecting`
  }

  /** The connections that are down now. */
  down(): Connection[] {
    return [this.commands, this.subscriptions].filter((connection) => !connection.up)
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
        reject(
          new TaskStoreUnavailableError(
            `could not connect to Redis at ${this.where} within ${timeoutMs} ms: ${this.describeOutage(connections.filter((c) => !c.up))}`,
            false,
          ),
        )
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

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
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
}
