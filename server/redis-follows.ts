/**
 * Following tasks across processes: one pub/sub connection per store, one channel
 * subscription per followed task shared by its listeners. Live messages are delivered
 * in `seq` order, each once; a gap (after a reconnect or a resubscription) is filled
 * from the stream by a catch-up (redis-catch-up.ts). docs/redis.md, "Fan-out across
 * processes", describes the protocol.
 */
import type { TaskMessage } from '../src/protocol.js'
import type { Logger } from './logger.js'
import { catchUp, type Follow, type StreamReader } from './redis-catch-up.js'
import { parseMessage } from './redis-codec.js'
import type { RedisConnections } from './redis-connections.js'
import { errorText, TaskStoreUnavailableError } from './store-errors.js'
import type { TaskListener, Unsubscribe } from './store.js'

/** Channels per SUBSCRIBE command when resubscribing after a reconnect. */
const RESUBSCRIBE_BATCH = 1000

export class TaskFollows {
  private readonly follows = new Map<string, Follow>()
  private readonly byChannel = new Map<string, Follow>()
  /** Set while the subscription connection resubscribes after a reconnect. */
  private resubscribing: Promise<void> | null = null

  constructor(
    private readonly connections: RedisConnections,
    private readonly reader: StreamReader,
    private readonly logger: Logger,
    private readonly onListenerError: (error: unknown, taskId: string) => void,
  ) {}

  /** Tasks this process follows. */
  get size(): number {
    return this.follows.size
  }

  get isResubscribing(): boolean {
    return this.resubscribing !== null
  }

  /** Adds a listener of the task on `channel`; resolves once the subscription is active. */
  async subscribe(taskId: string, channel: string, listener: TaskListener): Promise<Unsubscribe> {
    let follow = this.follows.get(taskId)
    if (!follow) {
      const created: Follow = {
        taskId,
        channel,
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
      this.byChannel.set(channel, created)
      created.ready = this.start(created)
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
      if (current.listeners.size === 0) this.stop(current)
    }
  }

  /** A message on a subscribed channel. */
  onLive(channel: string, payload: string): void {
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

  onCommandsReady(): void {
    // Catch-ups that failed for want of the command connection.
    if (!this.connections.subscriptions.up || this.resubscribing !== null) return
    for (const follow of this.follows.values()) {
      if (follow.needsCatchUp) void this.catchUp(follow)
    }
  }

  onSubscriptionsReady(): void {
    if (this.follows.size === 0) return
    const run = this.resubscribe().finally(() => {
      if (this.resubscribing === run) this.resubscribing = null
    })
    this.resubscribing = run
  }

  /** Forgets every follow (the store is closing; its connections go with it). */
  clear(): void {
    for (const follow of this.follows.values()) follow.closed = true
    this.follows.clear()
    this.byChannel.clear()
  }

  /**
   * After a reconnect: subscribe to every followed task's channel again, and only then
   * read what was appended meanwhile, so nothing falls between the two.
   */
  private async resubscribe(): Promise<void> {
    const follows = [...this.follows.values()]
    const subscriptions = this.connections.subscriptions.client
    try {
      for (let i = 0; i < follows.length; i += RESUBSCRIBE_BATCH) {
        // Tasks left meanwhile are not resubscribed (their UNSUBSCRIBE may already be sent).
        const channels = follows.slice(i, i + RESUBSCRIBE_BATCH).flatMap((follow) => (follow.closed ? [] : [follow.channel]))
        if (channels.length > 0) await subscriptions.subscribe(...channels)
      }
    } catch (error) {
      this.logger.warn('resubscribing to followed tasks failed; reconnecting to try again', {
        redis: this.connections.where,
        error: errorText(error),
      })
      // Usually the connection dropped again and its next 'ready' starts over; if it is
      // still up (a timeout), drop it so that it does.
      if (!this.connections.isClosed && subscriptions.status === 'ready') subscriptions.disconnect(true)
      return
    }
    this.logger.info('resubscribed to followed tasks after a reconnect; catching up', { redis: this.connections.where, tasks: follows.length })
    for (const follow of follows) {
      if (!follow.closed) void this.catchUp(follow)
    }
  }

  private async start(follow: Follow): Promise<void> {
    const { subscriptions } = this.connections
    try {
      if (!subscriptions.up) {
        throw new TaskStoreUnavailableError(`could not follow task ${follow.taskId}: ${this.connections.describeOutage([subscriptions])}`, false)
      }
      try {
        await subscriptions.client.subscribe(follow.channel)
      } catch (error) {
        throw this.connections.wrap(`follow task ${follow.taskId}`, error)
      }
      // Read only now that the subscription is active: every message above this seq
      // arrives live (or is caught up after a reconnect).
      const seq = await this.reader.currentSeq(follow.taskId)
      follow.last = Math.max(follow.last ?? 0, seq)
    } catch (error) {
      if (this.follows.get(follow.taskId) === follow) this.stop(follow)
      throw error
    }
  }

  private stop(follow: Follow): void {
    if (follow.closed) return
    follow.closed = true
    follow.held = []
    if (this.follows.get(follow.taskId) === follow) this.follows.delete(follow.taskId)
    if (this.byChannel.get(follow.channel) === follow) this.byChannel.delete(follow.channel)
    // Commands on one connection run in order, so a new SUBSCRIBE to this channel sent
    // after this UNSUBSCRIBE wins. While Redis is away there is nothing to undo: the
    // channel is simply not resubscribed.
    if (this.connections.subscriptions.up && !this.connections.isClosed) {
      this.connections.subscriptions.client.unsubscribe(follow.channel).catch(() => {})
    }
  }

  private catchUp(follow: Follow): Promise<void> {
    return catchUp(follow, this.reader, (target, message) => this.deliver(target, message), this.logger)
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
