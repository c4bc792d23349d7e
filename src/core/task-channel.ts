/**
 * One task on one backend: the single WebSocket (or poller) that every subscriber of
 * the task shares, the task's state, and the fan-out of its messages and snapshots.
 *
 * The decisions are made by two pure reducers (`reduceConnection`, `applyMessage` /
 * `applyStatus`); this class only runs their effects against the injected
 * environment and tells its subscribers what changed. Listeners are called
 * synchronously and never awaited: a listener that throws is isolated.
 */
import { statusUrl, streamUrl, type Backend } from '../endpoints.js'
import { DEFAULT_MAX_MESSAGE_BYTES, describeValue, parseServerMessage, parseStatusResponse, type ServerMessage } from '../protocol.js'
import { mergeOptions } from '../options.js'
import type { ResolvedTaskOptions, TaskSnapshot, TaskStats } from '../types.js'
import {
  INITIAL_LINK,
  attemptsOf,
  connectionState,
  reduceConnection,
  type ConnectionEffect,
  type ConnectionEvent,
  type Link,
  type TimerName,
} from './connection.js'
import type { BrokerEnv, SocketLike, TimerHandle } from './env.js'
import { INITIAL_TASK, applyMessage, applyStatus, isFinished, withConnectionError, withFatalError, type TaskState } from './task-state.js'

export type ChannelEvent = { type: 'snapshot'; snapshot: TaskSnapshot } | { type: 'message'; message: ServerMessage }
export type ChannelListener = (event: ChannelEvent) => void

export type SendResult = { ok: true; queued: boolean } | { ok: false; error: string }

/** Messages kept for a socket that is down; the guide's "message queue". */
export const SEND_QUEUE_LIMIT = 100
/** Largest application message `send()` accepts. */
export const MAX_SEND_BYTES = 64 * 1024

interface Subscriber {
  options: ResolvedTaskOptions
  listener: ChannelListener
}

export interface ChannelTarget {
  key: string
  projectId: string
  backend: Backend
}

export class TaskChannel {
  readonly key: string
  readonly projectId: string
  readonly backend: Backend
  messagesIn = 0
  messagesOut = 0

  private link: Link = INITIAL_LINK
  private task: TaskState = INITIAL_TASK
  private snapshot: TaskSnapshot
  private options: ResolvedTaskOptions
  private socket: SocketLike | null = null
  /** Bumped for every socket and request, so late events of a replaced one are ignored. */
  private generation = 0
  private readonly timers = new Map<TimerName, TimerHandle>()
  private readonly subscribers = new Map<number, Subscriber>()
  private readonly queue: string[] = []
  private readonly requests = new Map<'poll' | 'gap', AbortController>()
  private readonly env: BrokerEnv
  private readonly maxMessageBytes: number
  private longestLinger = 0
  /** Started from a tab's snapshot: read the status once after the first open to fill gaps. */
  private seeded = false
  /** A gap fill is due once the new socket's first message shows whether the server replays (see `receive`). */
  private gapDue = false

  constructor(
    target: ChannelTarget,
    options: ResolvedTaskOptions,
    env: BrokerEnv,
    seed?: TaskSnapshot,
    maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
  ) {
    this.key = target.key
    this.projectId = target.projectId
    this.backend = target.backend
    this.options = options
    this.env = env
    this.maxMessageBytes = maxMessageBytes
    if (seed && seed.projectId === target.projectId && (seed.status !== 'idle' || seed.seq !== null)) {
      // A new host (a new leader, a restarted worker) starts from what the tabs last saw:
      // the stream resumes after `seed.seq`, and progress cannot go back below it.
      this.task = {
        status: seed.status,
        progress: seed.progress,
        message: seed.message,
        taskName: seed.taskName,
        result: seed.result,
        error: seed.error,
        details: seed.details,
        seq: seed.seq,
        lastMessageAt: seed.lastMessageAt,
        connectionError: null,
      }
      this.seeded = true
    }
    this.snapshot = this.compose()
  }

  /** How long to keep the connection once nobody follows the task: the longest any subscriber asked for. */
  get linger(): number {
    return this.longestLinger
  }

  get subscriberCount(): number {
    return this.subscribers.size
  }

  get finished(): boolean {
    return isFinished(this.task)
  }

  /** Closed for good: the task finished or a fatal error ended following it. */
  get done(): boolean {
    return this.finished || (this.link.kind === 'closed' && this.link.fatal)
  }

  getSnapshot(): TaskSnapshot {
    return this.snapshot
  }

  /** Adds a subscriber, tells it the current snapshot at once, and starts the connection if idle. */
  addSubscriber(id: number, options: ResolvedTaskOptions, listener: ChannelListener): void {
    this.subscribers.set(id, { options, listener })
    this.options = this.mergedOptions()
    this.longestLinger = Math.max(this.longestLinger, options.linger)
    this.deliver(listener, { type: 'snapshot', snapshot: this.snapshot })
    if (!this.done && this.link.kind === 'closed') this.dispatch({ type: 'start' })
    else this.publish()
  }

  /** Returns how many subscribers remain. */
  removeSubscriber(id: number): number {
    if (this.subscribers.delete(id) && this.subscribers.size > 0) this.options = this.mergedOptions()
    return this.subscribers.size
  }

  /** Closes the socket and stops every timer and request. */
  stop(): void {
    this.dispatch({ type: 'stop' })
    this.abortRequests()
  }

  /** The browser says the network is back. */
  online(): void {
    this.dispatch({ type: 'online' })
  }

  send(message: unknown): SendResult {
    let data: string
    try {
      data = typeof message === 'string' ? message : JSON.stringify(message)
    } catch (error) {
      return { ok: false, error: `message cannot be sent as JSON: ${errorText(error)}` }
    }
    if (typeof data !== 'string') return { ok: false, error: `message cannot be sent as JSON: ${describeValue(message)}` }
    if (data.length > MAX_SEND_BYTES) return { ok: false, error: `message is ${data.length} characters; the limit is ${MAX_SEND_BYTES}` }
    if (this.done) return { ok: false, error: `task ${this.projectId} is no longer followed (${this.snapshot.status})` }
    if (this.link.kind === 'live' && this.socket) {
      this.transmit(data)
      return { ok: true, queued: false }
    }
    if (this.queue.length >= SEND_QUEUE_LIMIT) {
      return { ok: false, error: `send queue is full (${SEND_QUEUE_LIMIT} messages wait for the connection)` }
    }
    this.queue.push(data)
    return { ok: true, queued: true }
  }

  stats(): TaskStats {
    const state = connectionState(this.link)
    return {
      key: this.key,
      projectId: this.projectId,
      backend: this.backend.http,
      connection: state,
      status: this.task.status,
      transport: this.socket ? 'websocket' : this.link.kind === 'polling' ? 'polling' : 'none',
      reconnectAttempts: attemptsOf(this.link, this.options),
      subscribers: this.subscribers.size,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      queued: this.queue.length,
      seq: this.task.seq,
    }
  }

  private mergedOptions(): ResolvedTaskOptions {
    let merged: ResolvedTaskOptions | null = null
    for (const { options } of this.subscribers.values()) merged = merged ? mergeOptions(merged, options) : options
    return merged ?? this.options
  }

  private dispatch(event: ConnectionEvent): void {
    const before = this.link
    const { link, effects } = reduceConnection(this.link, event, this.options, this.env.random)
    this.link = link
    for (const effect of effects) this.run(effect)
    if (this.seeded && link.kind === 'live') {
      this.seeded = false
      this.gapDue = true
    }
    if (link !== before && link.kind === 'closed' && link.reason !== null && !this.finished) {
      this.task = link.fatal ? withFatalError(this.task, link.reason) : withConnectionError(this.task, link.reason)
    }
    this.publish()
  }

  private run(effect: ConnectionEffect): void {
    switch (effect.type) {
      case 'openSocket':
        this.openSocket()
        return
      case 'closeSocket':
        this.closeSocket(effect.code, effect.reason)
        return
      case 'arm': {
        this.cancelTimer(effect.name)
        const name = effect.name
        this.timers.set(
          name,
          this.env.clock.setTimeout(() => {
            this.timers.delete(name)
            this.dispatch({ type: 'timer', name })
          }, effect.ms),
        )
        return
      }
      case 'cancel':
        this.cancelTimer(effect.name)
        return
      case 'ping':
        this.transmit('{"type":"ping"}')
        return
      case 'poll':
        this.fetchStatus('poll')
        return
      case 'fillGap':
        this.gapDue = true
        return
      case 'flushQueue':
        for (const data of this.queue.splice(0)) this.transmit(data)
        return
    }
  }

  private cancelTimer(name: TimerName): void {
    const handle = this.timers.get(name)
    if (handle !== undefined) {
      this.env.clock.clearTimeout(handle)
      this.timers.delete(name)
    }
  }

  private transmit(data: string): void {
    try {
      this.socket?.send(data)
      this.messagesOut++
    } catch (error) {
      this.task = withConnectionError(this.task, `sending failed: ${errorText(error)}`)
    }
  }

  private openSocket(): void {
    this.closeSocket(1000, 'replaced')
    this.gapDue = false
    const generation = ++this.generation
    const url = streamUrl(this.backend, this.projectId, this.task.seq ?? undefined)
    let socket: SocketLike
    try {
      socket = this.env.createSocket(url)
    } catch (error) {
      // A constructor that throws (bad URL, a blocked port) is a failed attempt like any other,
      // reported on a later turn so the reducer is never re-entered.
      this.task = withConnectionError(this.task, `WebSocket to ${url} could not be created: ${errorText(error)}`)
      this.env.clock.setTimeout(() => {
        if (generation === this.generation) this.dispatch({ type: 'socketClose', code: 1006, reason: 'socket could not be created' })
      }, 0)
      return
    }
    this.socket = socket
    socket.onopen = () => {
      if (generation === this.generation) this.dispatch({ type: 'socketOpen' })
    }
    socket.onmessage = (event) => {
      if (generation === this.generation) this.receive(event.data)
    }
    socket.onclose = (event) => {
      if (generation !== this.generation) return
      this.socket = null
      if (event.code !== 1000 && event.code !== 1001) {
        this.task = withConnectionError(
          this.task,
          `WebSocket closed (code ${event.code}${event.reason ? `: ${event.reason}` : ''})`,
        )
      }
      this.dispatch({ type: 'socketClose', code: event.code, reason: event.reason })
    }
    // Browsers fire `error` without details and always follow it with `close`.
    socket.onerror = () => {}
  }

  private closeSocket(code: number, reason: string): void {
    const socket = this.socket
    if (!socket) return
    this.socket = null
    this.generation++
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null
    try {
      socket.close(code, reason)
    } catch {
      // Closing a socket that never opened may throw in some environments; it is gone either way.
    }
  }

  private receive(data: unknown): void {
    this.messagesIn++
    const parsed = parseServerMessage(data, { maxBytes: this.maxMessageBytes })
    if (!parsed.ok) {
      this.task = withConnectionError(this.task, `ignored a bad message from the server: ${parsed.error.message}`)
      this.dispatch({ type: 'socketMessage' })
      return
    }
    const message = parsed.value
    if (this.gapDue) {
      this.gapDue = false
      // A server that announces `last_seq` replays everything after `?since=` on this socket.
      // Reading the status as well could overtake that replay (a slow store) and make its
      // steps look like duplicates that `onMessage` never hears; only other servers need it.
      if (message.type !== 'connected' || message.last_seq === undefined) this.fetchStatus('gap')
    }
    const { task, deliver } = applyMessage(this.task, message, this.env.clock.now())
    this.task = task
    if (deliver) this.emit({ type: 'message', message })
    this.dispatch(message.type === 'pong' ? { type: 'pong' } : { type: 'socketMessage' })
    if (this.finished) this.dispatch({ type: 'finished' })
  }

  private fetchStatus(purpose: 'poll' | 'gap'): void {
    this.requests.get(purpose)?.abort()
    const controller = new AbortController()
    this.requests.set(purpose, controller)
    const url = statusUrl(this.backend, this.projectId)
    let timedOut = false
    const timer = this.env.clock.setTimeout(() => {
      timedOut = true
      controller.abort()
    }, this.options.requestTimeout)
    const finish = (problem: string | null, apply?: () => void): void => {
      this.env.clock.clearTimeout(timer)
      if (this.requests.get(purpose) !== controller) return
      this.requests.delete(purpose)
      // A failed gap fill is not worth alarming anyone: the stream itself is live again, and a
      // guide-only backend may have no status endpoint at all.
      if (problem !== null && purpose === 'poll') this.task = withConnectionError(this.task, problem)
      apply?.()
      if (this.finished) this.dispatch({ type: 'finished' })
      if (purpose === 'poll') this.dispatch({ type: 'pollDone' })
      else this.publish()
    }
    let response: Promise<{ status: number; body: string; contentType: string | null }>
    try {
      response = this.env
        .fetch(url, { signal: controller.signal, headers: { Accept: 'application/json' } })
        .then(async (res) => ({ status: res.status, contentType: res.headers.get('content-type'), body: await res.text() }))
    } catch (error) {
      response = Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    response.then(
      ({ status, body, contentType }) => {
        if (status < 200 || status > 299) {
          finish(`status endpoint ${url} answered HTTP ${status}${statusDetail(body, contentType)}`)
          return
        }
        const parsed = parseStatusResponse(body, { contentType, maxBytes: this.maxMessageBytes })
        if (!parsed.ok) {
          finish(`status endpoint ${url}: ${parsed.error.message}`)
          return
        }
        finish(null, () => {
          this.messagesIn++
          const { task, messages } = applyStatus(this.task, parsed.value, this.env.clock.now())
          this.task = task
          for (const message of messages) this.emit({ type: 'message', message })
        })
      },
      (error: unknown) => {
        finish(
          timedOut
            ? `status endpoint ${url} did not answer within ${this.options.requestTimeout} ms`
            : `status request to ${url} failed: ${errorText(error)}`,
        )
      },
    )
  }

  private abortRequests(): void {
    for (const controller of this.requests.values()) controller.abort()
    this.requests.clear()
  }

  private compose(): TaskSnapshot {
    const connection = connectionState(this.link)
    return Object.freeze({
      projectId: this.projectId,
      status: this.task.status,
      progress: this.task.progress,
      message: this.task.message,
      taskName: this.task.taskName,
      result: this.task.result,
      error: this.task.error,
      details: this.task.details,
      connection,
      reconnectAttempts: attemptsOf(this.link, this.options),
      maxReconnectAttempts: this.options.maxReconnectAttempts,
      isConnected: connection === 'live',
      isFallback: connection === 'polling',
      seq: this.task.seq,
      lastMessageAt: this.task.lastMessageAt,
      connectionError: this.task.connectionError,
    })
  }

  private publish(): void {
    if (this.link.kind === 'closed' && this.link.reason === null && !this.finished && this.subscribers.size === 0) {
      // Stopped for lack of subscribers: nobody is left to tell.
      return
    }
    const next = this.compose()
    if (shallowEqual(next, this.snapshot)) return
    this.snapshot = next
    this.emit({ type: 'snapshot', snapshot: next })
  }

  private emit(event: ChannelEvent): void {
    for (const { listener } of this.subscribers.values()) this.deliver(listener, event)
  }

  private deliver(listener: ChannelListener, event: ChannelEvent): void {
    try {
      listener(event)
    } catch {
      // One subscriber's bug must not stop the others from hearing about the task.
    }
  }
}

function shallowEqual(a: TaskSnapshot, b: TaskSnapshot): boolean {
  for (const key of Object.keys(a) as (keyof TaskSnapshot)[]) if (!Object.is(a[key], b[key])) return false
  return true
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** A short reason from an error body: its JSON `error`/`detail`, or that it was an HTML page. */
function statusDetail(body: string, contentType: string | null): string {
  const trimmed = body.trimStart()
  if ((contentType && /html/i.test(contentType)) || trimmed.startsWith('<')) return ' (an HTML page)'
  try {
    const parsed = JSON.parse(body) as unknown
    if (parsed && typeof parsed === 'object') {
      const record = parsed as Record<string, unknown>
      const reason = record['error'] ?? record['detail'] ?? record['message']
      if (typeof reason === 'string') return `: ${reason.slice(0, 200)}`
    }
  } catch {
    // Not JSON: the status code says enough.
  }
  return ''
}
