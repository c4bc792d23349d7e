/**
 * One client socket on `/api/v1/ws/projects/{task_id}/stream`: the catch-up on connect
 * (current state or `since` replay), live delivery, and the client's messages.
 *
 * Catch-up without gaps or duplicates: the connection joins the task's fan-out first
 * (live messages from then on are buffered), reads state and history second, sends
 * those, then flushes the buffer. Every task message goes out only if its `seq` is
 * above the last one sent, so a message that is both in the history and in the buffer
 * is sent once.
 */
import type { RawData, WebSocket } from 'ws'
import {
  CloseCode,
  isPingMessage,
  parseClientMessage,
  type ConnectedMessage,
  type ConnectionErrorCode,
  type ErrorMessage,
  type JsonRecord,
  type ServerCapability,
  type ServerMessage,
  type TaskMessage,
} from '../src/protocol.js'
import type { TaskFanout, TaskSubscriber } from './fanout.js'
import type { Logger } from './logger.js'
import type { ClientConnection, ClientMessageHandler } from './options.js'
import type { RateLimiter } from './rate-limit.js'
import type { TaskState, TaskStore } from './store.js'

export interface ConnectionContext {
  store: TaskStore
  fanout: TaskFanout
  logger: Logger
  allowUnknownTasks: boolean
  maxMessageBytes: number
  maxBufferedBytes: number
  /** How long a socket on an unknown task waits for it (ms), or `false` for ever. */
  unknownTaskTimeout: number | false
  onClientMessage: ClientMessageHandler | undefined
  /** What `connected` announces (`serverCapabilities`), computed once per server. */
  capabilities: ServerCapability[]
  /** Counts frames for `stats()`. */
  counters: { sent: number; received: number }
}

export interface ConnectionInit {
  id: number
  taskId: string
  /** The client's `?since=`, when it sent a valid one. */
  since: number | undefined
  /** Why the client's `?since=` was ignored, reported to it after `connected`. */
  sinceProblem: string | null
  origin: string | undefined
  remoteAddress: string | undefined
  rateLimiter: RateLimiter | null
}

/** Close reasons are limited to 123 bytes of UTF-8 by the WebSocket protocol. */
export function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text
  let cut = text.slice(0, 120)
  while (Buffer.byteLength(`${cut}…`) > 123) cut = cut.slice(0, -1)
  return `${cut}…`
}

type Phase = 'starting' | 'live' | 'closed'

const MAX_EARLY_FRAMES = 32

export class StreamConnection implements TaskSubscriber, ClientConnection {
  readonly id: number
  readonly taskId: string
  readonly origin: string | undefined
  readonly remoteAddress: string | undefined
  /** Resolves when the socket has closed (handshake done or dropped). */
  readonly done: Promise<void>
  private readonly since: number | undefined
  private readonly sinceProblem: string | null
  private readonly rateLimiter: RateLimiter | null
  private phase: Phase = 'starting'
  /** Live messages that arrive while the catch-up is being read. */
  private pending: TaskMessage[] = []
  /** Replies to client frames that arrived before the connection went live (see `whenLive`). */
  private early: Array<() => void> = []
  private lastSentSeq = 0
  /** Armed while the task is unknown; see `waitForUnknownTask`. */
  private unknownTimer: ReturnType<typeof setTimeout> | null = null

  constructor(
    private readonly socket: WebSocket,
    private readonly context: ConnectionContext,
    init: ConnectionInit,
  ) {
    this.id = init.id
    this.taskId = init.taskId
    this.since = init.since
    this.sinceProblem = init.sinceProblem
    this.origin = init.origin
    this.remoteAddress = init.remoteAddress
    this.rateLimiter = init.rateLimiter
    socket.on('message', (data, isBinary) => this.onClientFrame(data, isBinary))
    this.done = new Promise((resolve) => {
      socket.once('close', () => {
        this.onClosed()
        resolve()
      })
    })
    // ws reports protocol violations (oversized or invalid frames) here after it has
    // already closed the socket with the matching code; without a listener it would throw.
    socket.on('error', (error) => {
      this.context.logger.debug('stream socket error', { connection: this.id, task: this.taskId, error: error.message })
    })
  }

  get closed(): boolean {
    return this.phase === 'closed'
  }

  /** Sends `connected` and the catch-up, then goes live. */
  async start(): Promise<void> {
    const { fanout, store } = this.context
    let state: TaskState | null
    try {
      await fanout.join(this.taskId, this)
      if (this.closed) return
      state = await store.get(this.taskId)
    } catch (error) {
      this.storeFailed(error)
      return
    }
    if (this.closed) return
    if (state === null && !this.context.allowUnknownTasks) {
      this.close(CloseCode.TaskNotFound, `task ${this.taskId} not found`)
      return
    }
    if (state === null) this.waitForUnknownTask()

    const connected: ConnectedMessage = {
      type: 'connected',
      project_id: this.taskId,
      timestamp: new Date().toISOString(),
      last_seq: state?.lastSeq ?? 0,
      capabilities: this.context.capabilities,
    }
    if (state !== null) connected.status = state.status
    if (state?.epoch !== undefined) connected.epoch = state.epoch
    this.sendFrame(JSON.stringify(connected))
    if (this.sinceProblem !== null) this.sendConnectionError('bad_request', this.sinceProblem)

    let catchUp: TaskMessage[]
    try {
      catchUp = await this.readCatchUp(state)
    } catch (error) {
      this.storeFailed(error)
      return
    }
    if (this.closed) return
    for (const message of catchUp) this.sendTask(message)
    for (const message of this.pending) this.sendTask(message)
    this.pending = []
    this.phase = 'live'
    const early = this.early
    this.early = []
    for (const action of early) action()
  }

  /** Live messages from the fan-out. */
  deliver(message: TaskMessage, frame: Buffer): void {
    this.stopWaitingForTask()
    if (this.phase === 'starting') this.pending.push(message)
    else if (this.phase === 'live') this.sendTask(message, frame)
  }

  /** `ClientConnection.send`, for `onClientMessage` handlers. */
  send(message: ServerMessage): void {
    this.sendFrame(JSON.stringify(message))
  }

  /** Drops the socket without a close handshake (dead peers, shutdown timeout). */
  terminate(): void {
    this.socket.terminate()
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) {
      this.socket.close(code, closeReason(reason))
    }
  }

  /**
   * What a new subscriber is owed: with `since`, every held message after it (or the
   * current state when the history no longer reaches back that far, or when the
   * client is ahead because the server lost its history); without `since`, the
   * current state.
   */
  private async readCatchUp(state: TaskState | null): Promise<TaskMessage[]> {
    if (state === null) return []
    const current = state.latest === undefined ? [] : [state.latest]
    if (this.since === undefined || this.since > state.lastSeq) return current
    if (this.since === state.lastSeq) return []
    const history = await this.context.store.readSince(this.taskId, this.since)
    return history.complete ? history.messages : current
  }

  private sendTask(message: TaskMessage, frame?: Buffer): void {
    const seq = message.seq ?? 0
    if (seq <= this.lastSentSeq) return
    this.lastSentSeq = seq
    this.sendFrame(frame ?? JSON.stringify(message))
  }

  private sendFrame(frame: string | Buffer): void {
    if (this.socket.readyState !== this.socket.OPEN) return
    if (this.socket.bufferedAmount > this.context.maxBufferedBytes) {
      this.context.logger.warn('closing a stream whose client does not keep up', {
        connection: this.id,
        task: this.taskId,
        bufferedBytes: this.socket.bufferedAmount,
      })
      this.close(CloseCode.TryAgainLater, 'client is not reading fast enough')
      return
    }
    this.context.counters.sent += 1
    // A Buffer is sent as is (ws masks nothing on the server side), as a text frame.
    this.socket.send(frame, { binary: false })
  }

  private sendConnectionError(code: ConnectionErrorCode, error: string): void {
    const message: ErrorMessage = {
      type: 'error',
      project_id: this.taskId,
      error,
      details: { scope: 'connection', code },
      timestamp: new Date().toISOString(),
    }
    this.send(message)
  }

  private onClientFrame(data: RawData, isBinary: boolean): void {
    // Frames that were already in flight when the server began closing are ignored.
    if (this.socket.readyState !== this.socket.OPEN) return
    this.context.counters.received += 1
    if (this.rateLimiter) {
      const decision = this.rateLimiter.take()
      if (decision === 'close') {
        this.close(CloseCode.RateLimited, 'too many messages')
        return
      }
      if (decision === 'reject-first') {
        this.whenLive(() => {
          this.sendConnectionError('rate_limited', 'too many messages; this one and the next ones are dropped until the rate falls')
        })
      }
      if (decision !== 'accept') return
    }
    this.whenLive(() => this.handleClientFrame(data, isBinary))
  }

  /**
   * Runs a reply now, or after `connected` and the catch-up have gone out if the
   * connection is still starting, so `connected` is always the first message even
   * when the store is slow.
   */
  private whenLive(action: () => void): void {
    if (this.phase === 'live') action()
    else if (this.phase === 'starting') {
      // Bounded even without a rate limit: a client has no reason to send much before `connected`.
      if (this.early.length >= MAX_EARLY_FRAMES) this.close(CloseCode.RateLimited, 'too many messages before connected')
      else this.early.push(action)
    }
  }

  private handleClientFrame(data: RawData, isBinary: boolean): void {
    const parsed = parseClientMessage(isBinary ? rawToBuffer(data) : rawToBuffer(data).toString('utf8'), {
      maxBytes: this.context.maxMessageBytes,
    })
    if (!parsed.ok) {
      this.sendConnectionError('bad_request', parsed.error.message)
      return
    }
    const message = parsed.value
    if (isPingMessage(message)) {
      this.send({ type: 'pong', timestamp: new Date().toISOString() })
      return
    }
    this.handleApplicationMessage(message)
  }

  private handleApplicationMessage(message: JsonRecord): void {
    const handler = this.context.onClientMessage
    if (handler === undefined) {
      this.sendConnectionError('unsupported', 'this server accepts only {"type":"ping"} on the stream')
      return
    }
    const failed = (error: unknown): void => {
      this.context.logger.error('onClientMessage failed', {
        connection: this.id,
        task: this.taskId,
        error: error instanceof Error ? error.message : String(error),
      })
      this.sendConnectionError('internal', 'the server failed to handle the message')
    }
    try {
      const result = handler(this.taskId, message, this)
      if (result instanceof Promise) result.catch(failed)
    } catch (error) {
      failed(error)
    }
  }

  /**
   * A socket on a task nobody has created or published to is held for
   * `unknownTaskTimeout` at most: otherwise sockets on made-up ids (which answer pings,
   * so the heartbeat keeps them) would be held for ever. When the time is up and the
   * store still does not know the task, the socket is closed with 4004.
   */
  private waitForUnknownTask(): void {
    const timeout = this.context.unknownTaskTimeout
    if (timeout === false) return
    this.unknownTimer = setTimeout(() => {
      this.unknownTimer = null
      this.context.store.get(this.taskId).then(
        (state) => {
          if (state === null) this.close(CloseCode.TaskNotFound, `task ${this.taskId} not found: nothing published it for ${Math.round(timeout / 1000)} s`)
        },
        (error: unknown) => this.storeFailed(error),
      )
    }, timeout)
    // Only bounds a socket's life; never the reason a process stays up.
    this.unknownTimer.unref()
  }

  private stopWaitingForTask(): void {
    if (this.unknownTimer === null) return
    clearTimeout(this.unknownTimer)
    this.unknownTimer = null
  }

  private storeFailed(error: unknown): void {
    this.context.logger.error('task store failed while a client connected', {
      connection: this.id,
      task: this.taskId,
      error: error instanceof Error ? error.message : String(error),
    })
    this.close(CloseCode.TryAgainLater, 'task store unavailable')
  }

  private onClosed(): void {
    this.phase = 'closed'
    this.stopWaitingForTask()
    this.pending = []
    this.early = []
    this.context.fanout.leave(this.taskId, this)
  }
}

function rawToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}
