/**
 * One task on one backend: the single WebSocket (or poller) that every subscriber of
 * the task shares, the task's state, and the fan-out of its messages and snapshots.
 *
 * Every decision is made by the pure `reduceChannel` (connection state machine, task
 * state, status reads, errors, staleness); this class only runs its effects against
 * the injected environment and tells its subscribers what changed. Listeners are
 * called synchronously and never awaited: a listener that throws is isolated.
 */
import { statusUrl, streamUrl, type Backend } from '../endpoints.js'
import {
  BEARER_SUBPROTOCOL_PREFIX,
  CloseCode,
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_CLIENT_MESSAGE_BYTES,
  TABCAST_SUBPROTOCOL,
  describeValue,
  parseServerMessage,
  utf8ByteLength,
  validateBearerToken,
  type ServerMessage,
} from '../protocol.js'
import { mergeOptions } from '../options.js'
import type { AuthContext, AuthReason, ResolvedTaskOptions, TaskSnapshot, TaskStats } from '../types.js'
import {
  reduceChannel,
  seededChannel,
  type ChannelEffect,
  type ChannelInput,
  type ChannelState,
  type ChannelTimer,
  type ReadPurpose,
  type ReadResult,
} from './channel-reducer.js'
import { attemptsOf, connectionState } from './connection.js'
import type { BrokerEnv, SocketLike, TimerHandle } from './env.js'
import { RequestTimeout, probeReachable, readStatus } from './status-reader.js'
import { isFinished } from './task-state.js'

export type ChannelEvent = { type: 'snapshot'; snapshot: TaskSnapshot } | { type: 'message'; message: ServerMessage }
export type ChannelListener = (event: ChannelEvent) => void

export type SendResult = { ok: true; queued: boolean } | { ok: false; error: string }

/** Messages kept for a socket that is down; the guide's "message queue". */
export const SEND_QUEUE_LIMIT = 100

/** How long one tab may take to give a token before the next tab is asked. */
export const AUTH_REQUEST_TIMEOUT = 5000

/**
 * Where a channel gets a token: a subscriber's `auth` function, which stays in its tab
 * and is asked through the host (`TabSession.request`), with a deadline. The core only
 * sees this async provider.
 */
export interface TokenSource {
  /** Who answers (a tab id): each is asked at most once per token, however many subscriptions it has. */
  readonly id: string
  /** Rejects at `timeout` ms, or at once for a tab that is gone. */
  get(context: AuthContext, timeout: number): Promise<string | null>
}

/**
 * Asks for a token in turn until one answer is good: `next` picks the next untried
 * source, and is called again after each failure, so a tab that left is not asked and
 * one that came meanwhile is. `idOf` says which sources count as one (each is tried
 * once). The channel walks its subscribers' sources this way, and a once-watcher its
 * registering tabs (`OnceHost`).
 */
export async function askInTurn<S>(
  next: (tried: ReadonlySet<string>) => S | undefined,
  idOf: (source: S) => string,
  ask: (source: S) => Promise<string | null>,
): Promise<{ ok: true; token: string | null; source: S } | { ok: false; problems: string[] }> {
  const problems: string[] = []
  const tried = new Set<string>()
  for (let source = next(tried); source !== undefined; source = next(tried)) {
    const id = idOf(source)
    tried.add(id)
    try {
      return { ok: true, token: await ask(source), source }
    } catch (error) {
      // Named by tab: two tabs whose auth functions fail alike must not read as one reason twice.
      const text = errorText(error)
      problems.push(text.includes(`tab ${id}`) ? text : `tab ${id}: ${text}`)
    }
  }
  return { ok: false, problems }
}

type TokenOutcome = { ok: true; token: string | null } | { ok: false; error: string }

/**
 * One WebSocket handshake at a time per backend, in the order asked. Browsers hold every
 * other socket to the same host and port in CONNECTING until the first one opens or
 * fails (RFC 6455, 4.1), so a socket's connect timeout would run while it waits behind
 * another: a backend that never answers one task's upgrade would time out the others
 * too, at every attempt. Here a socket is created when its turn comes, and its connect
 * timeout starts then.
 */
export class HandshakeQueue {
  /** Backend → the attempts waiting for it; a backend with an entry has a handshake under way. */
  private readonly waiting = new Map<string, (() => void)[]>()

  /**
   * Takes a place in the backend's line. `now`: the turn is this attempt's at once (the
   * caller starts; `start` is not called); otherwise `start` is called when the handshakes
   * ahead are over. `leave` ends the turn, or leaves the line.
   */
  enter(backend: string, start: () => void): { now: boolean; leave: () => void } {
    const queue = this.waiting.get(backend)
    let turn: 'waiting' | 'running' | 'over' = queue ? 'waiting' : 'running'
    const begin = (): void => {
      turn = 'running'
      start()
    }
    if (queue) queue.push(begin)
    else this.waiting.set(backend, [])
    const leave = (): void => {
      if (turn === 'over') return
      const wasRunning = turn === 'running'
      turn = 'over'
      const line = this.waiting.get(backend)
      if (!wasRunning) {
        line?.splice(line.indexOf(begin), 1)
        return
      }
      const next = line?.shift()
      if (next) next()
      else this.waiting.delete(backend)
    }
    return { now: !queue, leave }
  }
}

interface Subscriber {
  options: ResolvedTaskOptions
  listener: ChannelListener
  auth: TokenSource | undefined
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

  private state: ChannelState
  private snapshot: TaskSnapshot
  private options: ResolvedTaskOptions
  private socket: SocketLike | null = null
  /** Bumped for every socket, so late events of a replaced one are ignored. */
  private generation = 0
  /** The token search of the socket attempt `generation`, and the tabs it asked so far. */
  private tokenWait: { generation: number; asked: string[] } | null = null
  /** This channel's turn in the backend's handshake queue; `deferredTimeout`: a connect timeout to arm when the turn comes. */
  private handshake: { generation: number; started: boolean; end: () => void; deferredTimeout: number | null } | null = null
  private readonly handshakes: HandshakeQueue | null
  private readonly timers = new Map<ChannelTimer, TimerHandle>()
  private readonly subscribers = new Map<number, Subscriber>()
  private readonly queue: string[] = []
  private readonly requests = new Map<ReadPurpose | 'probe', AbortController>()
  private readonly env: BrokerEnv
  private readonly maxMessageBytes: number
  private readonly backendOrigin: string
  private longestLinger = 0
  /** The source that gave the latest token: asked first next time. */
  private preferredSource: string | null = null

  constructor(
    target: ChannelTarget,
    options: ResolvedTaskOptions,
    env: BrokerEnv,
    seed?: TaskSnapshot,
    maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
    handshakes: HandshakeQueue | null = null,
  ) {
    this.handshakes = handshakes
    this.key = target.key
    this.projectId = target.projectId
    this.backend = target.backend
    this.options = options
    this.env = env
    this.maxMessageBytes = maxMessageBytes
    this.backendOrigin = originOf(target.backend.http)
    this.state = seededChannel(target.projectId, seed)
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
    return isFinished(this.state.task)
  }

  /** Closed for good: the task finished or a fatal error ended following it. */
  get done(): boolean {
    const { link } = this.state
    return this.finished || (link.kind === 'closed' && link.fatal)
  }

  getSnapshot(): TaskSnapshot {
    return this.snapshot
  }

  /** Adds a subscriber, tells it the current snapshot at once, and starts the connection if idle. */
  addSubscriber(id: number, options: ResolvedTaskOptions, listener: ChannelListener, auth?: TokenSource): void {
    this.subscribers.set(id, { options, listener, auth })
    this.options = this.mergedOptions()
    this.longestLinger = Math.max(this.longestLinger, options.linger)
    this.deliver(listener, { type: 'snapshot', snapshot: this.snapshot })
    if (!this.done && this.state.link.kind === 'closed') this.dispatch({ type: 'start' })
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
    // Counted in UTF-8 bytes, as the server counts: 30,000 Korean characters are 90,000 bytes.
    if (data.length > MAX_CLIENT_MESSAGE_BYTES / 3) {
      const bytes = utf8ByteLength(data)
      if (bytes > MAX_CLIENT_MESSAGE_BYTES) {
        return { ok: false, error: `message is ${bytes} bytes (UTF-8); the limit is ${MAX_CLIENT_MESSAGE_BYTES}` }
      }
    }
    if (this.done) return { ok: false, error: `task ${this.projectId} is no longer followed (${this.snapshot.status})` }
    if (this.state.link.kind === 'live' && this.socket) {
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
    const { link, task } = this.state
    return {
      key: this.key,
      projectId: this.projectId,
      backend: this.backend.http,
      connection: connectionState(link),
      status: task.status,
      transport: this.socket ? 'websocket' : link.kind === 'polling' ? 'polling' : 'none',
      reconnectAttempts: attemptsOf(link, this.options),
      subscribers: this.subscribers.size,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      queued: this.queue.length,
      seq: task.seq,
    }
  }

  private mergedOptions(): ResolvedTaskOptions {
    let merged: ResolvedTaskOptions | null = null
    for (const { options } of this.subscribers.values()) merged = merged ? mergeOptions(merged, options) : options
    return merged ?? this.options
  }

  private dispatch(input: ChannelInput): void {
    const { state, effects } = reduceChannel(this.state, input, {
      options: this.options,
      now: this.env.clock.now(),
      random: this.env.random,
      pageOrigin: this.env.origin ?? null,
      backendOrigin: this.backendOrigin,
    })
    this.state = state
    for (const effect of effects) this.run(effect)
    this.publish()
  }

  private run(effect: ChannelEffect): void {
    switch (effect.type) {
      case 'openSocket':
        this.openSocket(effect.refresh === true)
        return
      case 'closeSocket':
        this.closeSocket(effect.code, effect.reason)
        return
      case 'arm': {
        this.cancelTimer(effect.name)
        const waiting = this.handshake
        if (effect.name === 'connectTimeout' && waiting !== null && !waiting.started) {
          // Queued behind another handshake to this backend: the timeout starts with the turn.
          waiting.deferredTimeout = effect.ms
          return
        }
        const name = effect.name
        this.timers.set(
          name,
          this.env.clock.setTimeout(() => {
            this.timers.delete(name)
            const wait = this.tokenWait
            if (name === 'connectTimeout' && wait !== null && wait.generation === this.generation) {
              // The attempt's time went to asking tabs for a token, not to the socket: say so.
              this.tokenWait = null
              this.closeSocket(CloseCode.Normal, 'no token')
              const tabs = wait.asked.length > 0 ? `asked ${wait.asked.map((id) => `tab ${id}`).join(', ')}; none answered in time` : 'no tab answered'
              this.dispatch({ type: 'tokenUnavailable', error: `auth error: no token for task ${this.projectId} within connectTimeout (${this.options.connectTimeout} ms): ${tabs}` })
              return
            }
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
      case 'readStatus':
        this.readStatus(effect.purpose)
        return
      case 'flushQueue':
        for (const data of this.queue.splice(0)) this.transmit(data)
        return
      case 'deliver':
        this.emit({ type: 'message', message: effect.message })
        return
      case 'probe':
        this.probe()
        return
    }
  }

  private cancelTimer(name: ChannelTimer): void {
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
      // Reported on a later turn, so the reducer is never re-entered from one of its effects.
      const generation = this.generation
      this.env.clock.setTimeout(() => {
        if (generation === this.generation) this.dispatch({ type: 'sendFailed', error: errorText(error) })
      }, 0)
    }
  }

  private openSocket(refresh: boolean): void {
    this.closeSocket(CloseCode.Normal, 'replaced')
    const generation = ++this.generation
    if (!this.usesAuth()) {
      this.createSocket(generation, null)
      return
    }
    const { link } = this.state
    const reason: AuthReason = refresh ? 'refresh' : link.kind === 'connecting' && link.attempt === 0 ? 'connect' : 'reconnect'
    // A close, a stop or a connect timeout meanwhile bumps the generation: the token is then dropped.
    const wait = { generation, asked: [] as string[] }
    this.tokenWait = wait
    void this.token(reason, (id) => wait.asked.push(id)).then((outcome) => {
      if (this.tokenWait === wait) this.tokenWait = null
      if (generation !== this.generation) return
      if (outcome.ok) this.createSocket(generation, outcome.token)
      else this.dispatch({ type: 'tokenUnavailable', error: outcome.error })
    })
  }

  private createSocket(generation: number, token: string | null): void {
    const queue = this.handshakes
    if (!queue) {
      this.openSocketNow(generation, token)
      return
    }
    this.endHandshake()
    const turn: NonNullable<TaskChannel['handshake']> = { generation, started: false, end: () => {}, deferredTimeout: null }
    this.handshake = turn
    const { now, leave } = queue.enter(this.backend.ws, () => this.takeTurn(turn, token))
    turn.end = leave
    if (now) {
      this.takeTurn(turn, token)
    } else if (this.timers.has('connectTimeout')) {
      // Armed before the turn was known to wait (while a token was asked for): start it again with the turn.
      this.cancelTimer('connectTimeout')
      turn.deferredTimeout = this.options.connectTimeout
    }
  }

  private takeTurn(turn: NonNullable<TaskChannel['handshake']>, token: string | null): void {
    turn.started = true
    if (this.handshake !== turn || turn.generation !== this.generation) {
      turn.end()
      return
    }
    this.openSocketNow(turn.generation, token)
    if (turn.deferredTimeout !== null) {
      const ms = turn.deferredTimeout
      turn.deferredTimeout = null
      this.run({ type: 'arm', name: 'connectTimeout', ms })
    }
  }

  /** Ends this channel's handshake turn, so the next socket to the backend may start. */
  private endHandshake(): void {
    const turn = this.handshake
    this.handshake = null
    turn?.end()
  }

  private openSocketNow(generation: number, token: string | null): void {
    const url = streamUrl(this.backend, this.projectId, this.state.task.seq ?? undefined)
    let socket: SocketLike
    try {
      // The token travels as a second subprotocol, never in the URL (PROTOCOL.md, Authorization).
      socket = token === null ? this.env.createSocket(url) : this.env.createSocket(url, [TABCAST_SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + token])
    } catch (error) {
      this.endHandshake()
      // A constructor that throws (bad URL, a blocked port) is a failed attempt like any other,
      // reported on a later turn so the reducer is never re-entered.
      this.env.clock.setTimeout(() => {
        if (generation !== this.generation) return
        this.dispatch({ type: 'socketUnavailable', error: `WebSocket to ${url} could not be created: ${redact(errorText(error), token)}` })
      }, 0)
      return
    }
    this.socket = socket
    socket.onopen = () => {
      if (generation !== this.generation) return
      this.endHandshake()
      this.dispatch({ type: 'socketOpen' })
    }
    socket.onmessage = (event) => {
      if (generation === this.generation) this.receive(event.data)
    }
    socket.onclose = (event) => {
      if (generation !== this.generation) return
      this.endHandshake()
      this.socket = null
      this.dispatch({ type: 'socketClose', code: event.code, reason: event.reason })
    }
    // Browsers fire `error` without details and always follow it with `close`.
    socket.onerror = () => {}
  }

  private closeSocket(code: number, reason: string): void {
    // Bumped even without a socket: a socket still waiting for its token must not open.
    this.generation++
    this.endHandshake()
    const socket = this.socket
    if (!socket) return
    this.socket = null
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
    this.dispatch(parsed.ok ? { type: 'received', message: parsed.value } : { type: 'badMessage', error: parsed.error.message })
  }

  private readStatus(purpose: ReadPurpose): void {
    // Neither request rejects (failures are results); a bug that made one would surface as
    // an unhandled rejection rather than vanish.
    void this.request(purpose, (signal) => this.authorizedRead(signal)).then((result) => {
      if (result === null) return
      if (result.ok) this.messagesIn++
      this.dispatch({ type: 'statusRead', purpose, result })
    })
  }

  /**
   * A status read with a fresh token when any subscriber has an `auth` function
   * (`Authorization: Bearer`), and the subscription's `credentials`. A 401 to a read that
   * carried a token gets one fresh token and one more read; a 403 to it is fatal.
   */
  private async authorizedRead(signal: AbortSignal): Promise<ReadResult> {
    const url = statusUrl(this.backend, this.projectId)
    const read = (token: string | null): Promise<ReadResult> =>
      readStatus(this.env, url, { signal, maxBytes: this.maxMessageBytes, token, credentials: this.options.credentials })
    if (!this.usesAuth()) return withAuthMeaning(await read(null), null, false)
    let outcome = await this.token('status')
    if (!outcome.ok) return { ok: false, problem: outcome.error, network: false }
    let result = await read(outcome.token)
    if (result.ok || result.httpStatus !== 401 || outcome.token === null) return withAuthMeaning(result, outcome.token, false)
    outcome = await this.token('refresh')
    if (!outcome.ok) return { ok: false, problem: outcome.error, network: false }
    result = await read(outcome.token)
    return withAuthMeaning(result, outcome.token, true)
  }

  /** Whether any subscriber gave an `auth` function: only then is a token asked for. */
  private usesAuth(): boolean {
    for (const { auth } of this.subscribers.values()) if (auth) return true
    return false
  }

  /**
   * A fresh token from one of the tabs that follow the task: the one that answered last
   * time first, then the others in order, each with a deadline, so a closed, frozen or
   * failing tab costs at most `AUTH_REQUEST_TIMEOUT` and never stalls the channel.
   * Tokens are never put into an error text.
   */
  private async token(reason: AuthReason, onAsk?: (tab: string) => void): Promise<TokenOutcome> {
    const context: AuthContext = { projectId: this.projectId, backendUrl: this.options.backendUrl, reason }
    const outcome = await askInTurn(
      (tried) => this.nextSource(tried),
      (source) => source.id,
      async (source) => {
        onAsk?.(source.id)
        const token = await source.get(context, AUTH_REQUEST_TIMEOUT)
        const invalid = token === null ? null : validateBearerToken(token)
        // askInTurn names the tab.
        if (invalid !== null) throw new Error(invalid)
        return token
      },
    )
    if (outcome.ok) {
      this.preferredSource = outcome.source.id
      return { ok: true, token: outcome.token }
    }
    const why = outcome.problems.length > 0 ? outcome.problems.join('; ') : 'no tab with an auth function follows it'
    return { ok: false, error: `auth error: no token for task ${this.projectId} (${why})` }
  }

  /** The tab that gave the latest token if it is still here and untried, else the first untried one. */
  private nextSource(tried: ReadonlySet<string>): TokenSource | undefined {
    let first: TokenSource | undefined
    for (const { auth } of this.subscribers.values()) {
      if (!auth || tried.has(auth.id)) continue
      if (auth.id === this.preferredSource) return auth
      first ??= auth
    }
    return first
  }

  private probe(): void {
    void this.request('probe', (signal) => probeReachable(this.env, statusUrl(this.backend, this.projectId), signal)).then((reachable) => {
      if (reachable !== null) this.dispatch({ type: 'probed', reachable })
    })
  }

  /**
   * Runs one request of a kind, replacing (aborting) an earlier one of the same kind, with
   * the `requestTimeout` deadline. Resolves with null when it was replaced or stopped.
   */
  private async request<T>(kind: ReadPurpose | 'probe', run: (signal: AbortSignal) => Promise<T>): Promise<T | null> {
    this.requests.get(kind)?.abort()
    const controller = new AbortController()
    this.requests.set(kind, controller)
    const timer = this.env.clock.setTimeout(() => controller.abort(new RequestTimeout(this.options.requestTimeout)), this.options.requestTimeout)
    try {
      const result = await run(controller.signal)
      return this.requests.get(kind) === controller ? result : null
    } finally {
      this.env.clock.clearTimeout(timer)
      if (this.requests.get(kind) === controller) this.requests.delete(kind)
    }
  }

  private abortRequests(): void {
    for (const controller of this.requests.values()) controller.abort()
    this.requests.clear()
  }

  private compose(): TaskSnapshot {
    const { link, task } = this.state
    const connection = connectionState(link)
    return Object.freeze({
      projectId: this.projectId,
      status: task.status,
      progress: task.progress,
      message: task.message,
      taskName: task.taskName,
      result: task.result,
      error: task.error,
      details: task.details,
      connection,
      reconnectAttempts: attemptsOf(link, this.options),
      maxReconnectAttempts: this.options.maxReconnectAttempts,
      isConnected: connection === 'live',
      isFallback: connection === 'polling',
      seq: task.seq,
      epoch: task.epoch,
      lastMessageAt: task.lastMessageAt,
      stalledSince: task.stalledSince,
      connectionError: task.connectionError,
    })
  }

  private publish(): void {
    const { link } = this.state
    if (link.kind === 'closed' && link.reason === null && !this.finished && this.subscribers.size === 0) {
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

/** An error text that may quote what was passed to the WebSocket constructor, without the token. */
function redact(text: string, token: string | null): string {
  return token === null || token === '' ? text : text.split(token).join('<token>')
}

/**
 * What a 401 or 403 to a status read means. A 403 to a read that carried a token is the
 * server's answer about this identity: fatal. Without a token it may be an origin
 * refusal or a proxy, named like any other answer.
 */
function withAuthMeaning(result: ReadResult, token: string | null, refreshed: boolean): ReadResult {
  if (result.ok) return result
  if (result.httpStatus === 401) {
    const hint = token === null ? ' (the backend wants a token: give the `auth` option)' : refreshed ? ' (a fresh token was refused too)' : ''
    return { ...result, problem: `unauthenticated: ${result.problem}${hint}`, ...(token !== null && refreshed ? { unauthenticated: true } : {}) }
  }
  if (result.httpStatus === 403 && token !== null) return { ...result, problem: `forbidden: ${result.problem}`, forbidden: true }
  return result
}

function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return url
  }
}
