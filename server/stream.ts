/**
 * The WebSocket endpoint: the upgrade (origin check, per-address cap, task-id check,
 * `authorize`), the set of live connections, the heartbeat, and the going-away
 * shutdown.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { CloseCode, validateTaskId } from '../src/protocol.js'
import { selectSubprotocol, streamToken, type AuthDecision } from './auth.js'
import { serverCapabilities } from './capabilities.js'
import type { TaskFanout } from './fanout.js'
import { Heartbeat } from './heartbeat.js'
import type { ResolvedServerOptions } from './options.js'
import { requestOrigin } from './origin.js'
import { AddressCounts, RateLimiter } from './rate-limit.js'
import { matchRoute, parseTarget, type TaskIdSegment } from './routes.js'
import { closeReason, StreamConnection, type ConnectionContext } from './stream-connection.js'
import type { TaskStore } from './store.js'

/** Answers an upgrade request with a plain HTTP error and drops the socket. */
export function refuseUpgrade(socket: Duplex, status: number, error: string): void {
  const body = JSON.stringify({ error })
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  )
}

/** A `?since=` value: a non-negative integer, or a reason why not. */
function parseSince(raw: string | null): { since: number | undefined; problem: string | null } {
  if (raw === null) return { since: undefined, problem: null }
  const since = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(since)) {
    return { since: undefined, problem: `since must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}; it was ignored` }
  }
  return { since, problem: null }
}

/** What the upgrade decided before the socket was accepted. */
type Admission = AuthDecision | 'invalid_id' | 'error'

/** Accepted and closed at once with a code the browser can read (it cannot read an HTTP status). */
function refuseSocket(ws: WebSocket, code: number, reason: string): void {
  ws.on('error', () => {})
  ws.close(code, closeReason(reason))
}

export class StreamEndpoint {
  private readonly wss: WebSocketServer
  private readonly connections = new Set<StreamConnection>()
  private readonly heartbeat: Heartbeat | null
  private readonly context: ConnectionContext
  /** Open sockets and pending upgrades per client address (`maxConnectionsPerAddress`). */
  private readonly perAddress: AddressCounts | null
  private nextId = 1
  private closing = false

  constructor(
    private readonly options: ResolvedServerOptions,
    store: TaskStore,
    fanout: TaskFanout,
    counters: ConnectionContext['counters'],
  ) {
    this.perAddress = options.maxConnectionsPerAddress === false ? null : new AddressCounts(options.maxConnectionsPerAddress)
    this.wss = new WebSocketServer({
      noServer: true,
      // The server tracks its own connections (with their task ids) for stats() and close().
      clientTracking: false,
      maxPayload: options.maxMessageBytes,
      perMessageDeflate: options.perMessageDeflate,
      // `tabcast` when offered; never the `tabcast.bearer.<token>` entry, which the
      // response would echo (and ws picks the first offered protocol by default).
      handleProtocols: selectSubprotocol,
    })
    this.context = {
      store,
      fanout,
      logger: options.logger,
      allowUnknownTasks: options.allowUnknownTasks,
      maxMessageBytes: options.maxMessageBytes,
      maxBufferedBytes: options.maxBufferedBytes,
      unknownTaskTimeout: options.unknownTaskTimeout,
      onClientMessage: options.onClientMessage,
      capabilities: serverCapabilities({ auth: options.authorize !== null }),
      counters,
    }
    this.heartbeat =
      options.heartbeatInterval === false
        ? null
        : new Heartbeat(options.heartbeatInterval, () => {
            options.logger.debug('terminated a socket that stopped answering pings')
          })
  }

  /** Handles the upgrade if it is for the stream path; returns false otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const target = parseTarget(req.url)
    const route = target && matchRoute(target.pathname, this.options.basePath)
    if (!target || route?.kind !== 'stream') return false
    const origin = requestOrigin(req.headers)
    if (!this.options.originCheck(origin)) {
      this.options.logger.info('refused a stream from a disallowed origin', { origin })
      refuseUpgrade(socket, 403, `origin ${origin ?? ''} is not allowed`)
      return true
    }
    if (this.closing) {
      refuseUpgrade(socket, 503, 'the server is shutting down')
      return true
    }
    const address = this.options.clientAddress(req) ?? 'unknown'
    if (this.perAddress && !this.perAddress.take(address)) {
      // Refused before the upgrade: an accepted socket would linger in its close
      // handshake, uncounted, for up to 30 s. Clients retry a failed handshake with backoff.
      const cap = String(this.options.maxConnectionsPerAddress)
      this.options.logger.info('refused a stream: too many connections from one address', { cap })
      refuseUpgrade(socket, 429, `too many connections from this address (at most ${cap})`)
      return true
    }
    // The raw socket closes however the upgrade ends (accepted, refused, dropped).
    socket.once('close', () => this.perAddress?.give(address))
    // Node takes its own error listener off an upgraded socket; a reset while
    // `authorize` runs must not become an uncaught 'error'.
    socket.on('error', () => socket.destroy())
    this.admit(route.segment, req)
      .then((admission) => {
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          this.accept(ws, admission, route.segment, target.query, origin, req.socket.remoteAddress)
        })
      })
      .catch((error: unknown) => {
        this.options.logger.error('a stream upgrade failed', { error: error instanceof Error ? error.message : String(error) })
        socket.destroy()
      })
    return true
  }

  /**
   * Decides before accepting: `authorize`, for a valid task id. The token is read here
   * and goes nowhere but `authorize`.
   */
  private async admit(segment: TaskIdSegment, req: IncomingMessage): Promise<Admission> {
    if (!segment.ok || validateTaskId(segment.taskId) !== null) return 'invalid_id'
    const authorize = this.options.authorize
    if (authorize === null) return 'allow'
    try {
      const origin = requestOrigin(req.headers) ?? null
      const decision = await authorize({ action: 'stream', taskId: segment.taskId, token: streamToken(req.headers), origin, request: req })
      if (decision === 'allow' || decision === 'unauthenticated' || decision === 'forbidden') return decision
      throw new TypeError(`authorize returned ${JSON.stringify(decision)}; expected "allow", "unauthenticated" or "forbidden"`)
    } catch (error) {
      this.options.logger.error('authorize failed for a stream', {
        task: segment.taskId,
        error: error instanceof Error ? error.message : String(error),
      })
      return 'error'
    }
  }

  /** Connections per task id, and the total. */
  connectionCounts(): { total: number; byTask: Record<string, number> } {
    const byTask: Record<string, number> = {}
    for (const connection of this.connections) {
      byTask[connection.taskId] = (byTask[connection.taskId] ?? 0) + 1
    }
    return { total: this.connections.size, byTask }
  }

  /**
   * Closes every socket with 1001 (going away) so clients reconnect at once, waits for
   * their close handshakes, and drops the sockets still open after `closeTimeout`.
   */
  async close(): Promise<void> {
    this.closing = true
    this.heartbeat?.stop()
    const connections = [...this.connections]
    for (const connection of connections) connection.close(CloseCode.GoingAway, 'server shutting down')
    const allClosed = Promise.all(connections.map((connection) => connection.done))
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.closeTimeout)
    })
    const outcome = await Promise.race([allClosed, timeout])
    clearTimeout(timer)
    if (outcome === 'timeout') {
      for (const connection of this.connections) connection.terminate()
      await allClosed
    }
    this.wss.close()
  }

  private accept(
    ws: WebSocket,
    admission: Admission,
    segment: TaskIdSegment,
    query: URLSearchParams,
    origin: string | undefined,
    remoteAddress: string | undefined,
  ): void {
    // Refusals come after the upgrade is accepted: a browser cannot read the status of
    // a failed handshake, but it can read a close code and reason.
    const problem = segment.ok ? validateTaskId(segment.taskId) : segment.error
    if (!segment.ok || problem !== null) {
      refuseSocket(ws, CloseCode.InvalidTaskId, problem ?? 'invalid task id')
      return
    }
    if (this.closing) {
      refuseSocket(ws, CloseCode.GoingAway, 'server shutting down')
      return
    }
    if (admission === 'unauthenticated') {
      refuseSocket(ws, CloseCode.Unauthenticated, 'a valid token is required (none was sent, or it is invalid or expired)')
      return
    }
    if (admission === 'forbidden') {
      refuseSocket(ws, CloseCode.Forbidden, `this token does not allow access to task ${segment.taskId}`)
      return
    }
    if (admission === 'error') {
      refuseSocket(ws, 1011, 'internal error')
      return
    }
    const { since, problem: sinceProblem } = parseSince(query.get('since'))
    const rate = this.options.rateLimit
    const connection = new StreamConnection(ws, this.context, {
      id: this.nextId++,
      taskId: segment.taskId,
      since,
      sinceProblem,
      origin,
      remoteAddress,
      rateLimiter: rate === false ? null : new RateLimiter(rate.perSecond, rate.burst, rate.closeAfter),
    })
    this.connections.add(connection)
    this.heartbeat?.add(ws)
    void connection.done.then(() => {
      this.connections.delete(connection)
      this.heartbeat?.remove(ws)
    })
    connection.start().catch((error: unknown) => {
      this.options.logger.error('a stream failed to start', {
        task: segment.taskId,
        error: error instanceof Error ? error.message : String(error),
      })
      connection.close(1011, 'internal error')
    })
  }
}
