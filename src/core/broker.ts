/**
 * The broker: one `TaskChannel` per (backend, task id), however many subscribers
 * follow it. Hosts (the SharedWorker, a leader tab, a lone tab) put a `Broker` behind
 * their own transport; the broker itself knows nothing about tabs or ports.
 */
import { resolveTarget, taskKey } from '../endpoints.js'
import { PROTOCOL_VERSION } from '../protocol.js'
import { initialSnapshot, resolveOptions } from '../options.js'
import type { BrokerMode, TaskOptions, TaskSnapshot, TaskStats } from '../types.js'
import type { BrokerEnv, TimerHandle } from './env.js'
import { HandshakeQueue, TaskChannel, type ChannelListener, type SendResult, type TokenSource } from './task-channel.js'

export interface BrokerInfo {
  mode: BrokerMode
  modeReason: string
}

export interface BrokerCoreStats {
  mode: BrokerMode
  modeReason: string
  instanceId: string
  protocolVersion: number
  sockets: number
  pollers: number
  tasks: TaskStats[]
}

/** How long a finished task's final snapshot is kept once nobody follows it, for late joiners. */
export const FINISHED_RETENTION_MS = 10 * 60 * 1000
/** At most this many finished tasks are kept. */
export const FINISHED_LIMIT = 200
/**
 * At most this many unfinished tasks are followed at once (with a subscriber, or
 * lingering after the last one left): each holds a socket or a poll, and Chromium opens
 * at most 255 WebSockets per profile. Past it the oldest lingering task makes room; with
 * none, a new task's subscription gets a snapshot that says why it is not followed.
 */
export const MAX_FOLLOWED_TASKS = 200

/** The snapshot of a subscription a host refused to follow, with the reason. */
export function refusedSnapshot(projectId: string, options: TaskOptions, problem: string): TaskSnapshot {
  return Object.freeze({ ...initialSnapshot(projectId, options), connection: 'closed', connectionError: problem })
}

export class Broker {
  readonly instanceId: string
  private readonly channels = new Map<string, TaskChannel>()
  private readonly lingers = new Map<string, TimerHandle>()
  /** One handshake at a time per backend, for every task of this broker (see `HandshakeQueue`). */
  private readonly handshakes = new HandshakeQueue()
  /** Snapshots of subscriptions that can never connect (a bad task id or backend URL). */
  private readonly invalid = new Map<string, TaskSnapshot>()
  private nextId = 1
  /** The injected environment, shared with the hub that hosts this broker. */
  readonly env: BrokerEnv
  /** How this broker is hosted (the mode every tab's hello reports). */
  readonly info: BrokerInfo

  constructor(env: BrokerEnv, info: BrokerInfo, instanceId = randomId(env)) {
    this.env = env
    this.info = info
    this.instanceId = instanceId
  }

  /**
   * Follows a task. The listener hears the current snapshot at once, then every
   * message and snapshot change. Returns the function that stops following. `auth`:
   * where this subscriber's tokens come from (its tab's `auth` function), if it has one.
   */
  subscribe(projectId: string, options: TaskOptions, listener: ChannelListener, seed?: TaskSnapshot, auth?: TokenSource): () => void {
    const resolved = resolveOptions(options)
    const target = resolveTarget(resolved.backendUrl, projectId, this.env.secure, resolved.authScope)
    if (!target.ok) {
      safely(listener, { type: 'snapshot', snapshot: this.invalidSnapshot(projectId, options, target.error) })
      return () => {}
    }
    let channel = this.channels.get(target.key)
    if (!channel) {
      if (!this.makeRoom()) {
        const problem = `tabcast follows ${MAX_FOLLOWED_TASKS} tasks here already (the limit): task ${projectId} is not followed; stop following another, then subscribe again`
        safely(listener, { type: 'snapshot', snapshot: refusedSnapshot(projectId, options, problem) })
        return () => {}
      }
      channel = new TaskChannel({ key: target.key, projectId, backend: target.backend }, resolved, this.env, seed, undefined, this.handshakes)
      this.channels.set(target.key, channel)
    }
    this.cancelLinger(target.key)
    const id = this.nextId++
    channel.addSubscriber(id, resolved, listener, auth)
    let active = true
    const subscribed = channel
    return () => {
      if (!active) return
      active = false
      if (subscribed.removeSubscriber(id) === 0) this.scheduleRelease(target.key, subscribed, subscribed.linger)
    }
  }

  getSnapshot(projectId: string, options: TaskOptions = {}): TaskSnapshot {
    const resolved = resolveOptions(options)
    const target = resolveTarget(resolved.backendUrl, projectId, this.env.secure, resolved.authScope)
    if (!target.ok) return this.invalidSnapshot(projectId, options, target.error)
    return this.channels.get(target.key)?.getSnapshot() ?? initialSnapshot(projectId, options)
  }

  send(projectId: string, options: TaskOptions, message: unknown): SendResult {
    const resolved = resolveOptions(options)
    const target = resolveTarget(resolved.backendUrl, projectId, this.env.secure, resolved.authScope)
    if (!target.ok) return { ok: false, error: target.error }
    const channel = this.channels.get(target.key)
    if (!channel || channel.subscriberCount === 0) {
      return { ok: false, error: `task ${projectId} is not followed; subscribe before sending` }
    }
    return channel.send(message)
  }

  /** The network is back: reconnect now instead of waiting out a backoff. */
  online(): void {
    for (const channel of this.channels.values()) channel.online()
  }

  stats(): BrokerCoreStats {
    const tasks = [...this.channels.values()].map((channel) => channel.stats())
    return {
      mode: this.info.mode,
      modeReason: this.info.modeReason,
      instanceId: this.instanceId,
      protocolVersion: PROTOCOL_VERSION,
      sockets: tasks.filter((task) => task.transport === 'websocket').length,
      pollers: tasks.filter((task) => task.transport === 'polling').length,
      tasks,
    }
  }

  /** Stops every channel at once (the host is shutting down). */
  close(): void {
    for (const handle of this.lingers.values()) this.env.clock.clearTimeout(handle)
    this.lingers.clear()
    for (const channel of this.channels.values()) channel.stop()
    this.channels.clear()
  }

  private scheduleRelease(key: string, channel: TaskChannel, linger: number): void {
    this.cancelLinger(key)
    // A finished task holds no socket; keep its final state longer for tabs that open later.
    const delay = channel.done ? Math.max(linger, FINISHED_RETENTION_MS) : linger
    if (!channel.done && delay === 0) {
      this.release(key, channel)
      return
    }
    this.lingers.set(
      key,
      this.env.clock.setTimeout(() => {
        this.lingers.delete(key)
        this.release(key, channel)
      }, delay),
    )
    this.pruneFinished()
  }

  private release(key: string, channel: TaskChannel): void {
    if (channel.subscriberCount > 0 || this.channels.get(key) !== channel) return
    channel.stop()
    this.channels.delete(key)
  }

  /** Whether one more task may be followed, after closing the oldest lingering one if needed. */
  private makeRoom(): boolean {
    let followed = 0
    let oldestIdle: [string, TaskChannel] | null = null
    for (const entry of this.channels) {
      if (entry[1].done) continue
      followed++
      if (oldestIdle === null && entry[1].subscriberCount === 0) oldestIdle = entry
    }
    if (followed < MAX_FOLLOWED_TASKS) return true
    if (oldestIdle === null) return false
    this.cancelLinger(oldestIdle[0])
    this.release(oldestIdle[0], oldestIdle[1])
    return true
  }

  private cancelLinger(key: string): void {
    const handle = this.lingers.get(key)
    if (handle !== undefined) {
      this.env.clock.clearTimeout(handle)
      this.lingers.delete(key)
    }
  }

  private pruneFinished(): void {
    const idle = [...this.channels.entries()].filter(([, channel]) => channel.done && channel.subscriberCount === 0)
    for (const [key, channel] of idle.slice(0, Math.max(0, idle.length - FINISHED_LIMIT))) {
      this.cancelLinger(key)
      this.release(key, channel)
    }
  }

  private invalidSnapshot(projectId: string, options: TaskOptions, error: string): TaskSnapshot {
    const cacheKey = taskKey(projectId, options, this.env.secure)
    let snapshot = this.invalid.get(cacheKey)
    if (!snapshot) {
      snapshot = Object.freeze({
        ...initialSnapshot(projectId, options),
        status: 'failed',
        connection: 'closed',
        error,
        connectionError: error,
      })
      // Bounded: a page that types ids keystroke by keystroke must not grow this forever.
      if (this.invalid.size > 100) this.invalid.clear()
      this.invalid.set(cacheKey, snapshot)
    }
    return snapshot
  }
}

function safely(listener: ChannelListener, event: Parameters<ChannelListener>[0]): void {
  try {
    listener(event)
  } catch {
    // Isolated like every other listener call.
  }
}

function randomId(env: BrokerEnv): string {
  return `${env.clock.now().toString(36)}-${Math.floor(env.random() * 2 ** 32).toString(36)}`
}
