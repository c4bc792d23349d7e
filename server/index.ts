/**
 * `tabcast/server`: the reference backend of the tabcast protocol (PROTOCOL.md).
 *
 * Serves the guide's endpoints on Node's `http` with `ws`, either on its own server
 * (`listen()`) or attached to an existing one (the `server` option), and gives job
 * code a small API to report on tasks:
 *
 * ```ts
 * import { createTabcastServer } from 'tabcast/server'
 *
 * const tabcast = createTabcastServer({ allowedOrigins: ['https://studio.example.com'] })
 * await tabcast.listen(8000)
 * const task = await tabcast.createTask({ taskName: '오디오 생성' })
 * await tabcast.progress(task.taskId, 0.5, 'TTS 생성 중... (시도 2/5)')
 * await tabcast.complete(task.taskId, { audio_id: 'audio_123' })
 * ```
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { JsonRecord, TaskMessage } from '../src/protocol.js'
import { DemoJobs } from './demo-job.js'
import { TaskFanout } from './fanout.js'
import { HttpRoutes } from './http-routes.js'
import { LeaseMonitor } from './lease.js'
import { MemoryTaskStore } from './memory-store.js'
import { resolveServerOptions, type ResolvedServerOptions, type TabcastServerOptions } from './options.js'
import { AddressCounts, AddressRateLimiter } from './rate-limit.js'
import { openRedisTaskStore } from './redis-store.js'
import { refuseUpgrade, StreamEndpoint } from './stream.js'
import type { TaskState, TaskStore } from './store.js'
import { TaskPublisher, type CompleteExtra, type CreateTaskOptions, type ProgressExtra } from './tasks.js'

export type {
  AuthOptions,
  ClientConnection,
  ClientMessageHandler,
  CompressionOptions,
  DemoOptions,
  TabcastServerOptions,
  TaskLimits,
} from './options.js'
export type { AllowedOrigins } from './origin.js'
export { isLocalhostOrigin } from './origin.js'
export type { CreateRateLimitOptions, RateLimitOptions } from './rate-limit.js'
export {
  bearerToken,
  BEARER_SUBPROTOCOL_PREFIX,
  createTaskTokens,
  STREAM_SUBPROTOCOL,
  streamToken,
  type AuthAction,
  type AuthDecision,
  type Authorize,
  type AuthRequest,
  type TaskTokenOptions,
  type TaskTokens,
  type TokenCheck,
} from './auth.js'
export { TaskStoreFullError } from './task-budget.js'
export type {
  AppendOptions,
  AppendResult,
  CreateResult,
  CreateTaskInit,
  ExpiryOptions,
  HistoryRead,
  LeaseRenewal,
  StoreHealth,
  TaskLifecycle,
  TaskListener,
  TaskMessageInput,
  TaskState,
  TaskStore,
  Unsubscribe,
} from './store.js'
export { MemoryTaskStore, type MemoryTaskStoreOptions } from './memory-store.js'
export { createRedisTaskStore, RedisTaskStore, TaskStoreUnavailableError, type RedisTaskStoreOptions } from './redis-store.js'
export { TaskUpdateError, type CompleteExtra, type CreateTaskOptions, type ProgressExtra, type TaskUpdateErrorCode } from './tasks.js'
export { createConsoleLogger, silentLogger, type LogFields, type Logger, type LogLevel } from './logger.js'
export { toStatusResponse } from './http-routes.js'
export { DEMO_TASK_NAME, TTS_MAX_ATTEMPTS } from './demo-job.js'

/** The guide's backend port. */
export const DEFAULT_PORT = 8000
export const DEFAULT_HOST = '127.0.0.1'

export interface ListenAddress {
  port: number
  host: string
  /** `http://host:port` plus `basePath`: what clients use as `backendUrl`. */
  url: string
}

export interface ServerStats {
  /** Open WebSocket connections. */
  connections: number
  /** Open WebSocket connections per task id. */
  connectionsByTask: Record<string, number>
  /** Frames sent to clients since the server started. */
  messagesSent: number
  /** Frames received from clients since the server started. */
  messagesReceived: number
  /** Demo tasks running now. */
  demoTasksRunning: number
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}

export class TabcastServer {
  /** Where this server keeps tasks. */
  readonly store: TaskStore
  private readonly options: ResolvedServerOptions
  private readonly ownsStore: boolean
  private readonly publisher: TaskPublisher
  private readonly fanout: TaskFanout
  private readonly stream: StreamEndpoint
  private readonly routes: HttpRoutes
  private readonly demo: DemoJobs | null
  private readonly leases: LeaseMonitor | null = null
  private readonly counters = { sent: 0, received: 0 }
  private ownServer: HttpServer | null = null
  /** The own server's count of connections still sending their headers (`maxPendingConnectionsPerAddress`). */
  private headersDone: ((socket: Socket) => void) | null = null
  private detach: (() => void) | null = null
  private closing: Promise<void> | null = null

  constructor(options: TabcastServerOptions = {}) {
    this.options = resolveServerOptions(options)
    const logger = this.options.logger
    this.ownsStore = this.options.store === undefined
    const redis = this.options.redis
    this.store = this.options.store ?? (redis === undefined ? new MemoryTaskStore(this.options.taskLimits) : openRedisTaskStore(redis, logger))
    this.publisher = new TaskPublisher(this.store, {
      historyLimit: this.options.historyLimit,
      retention: this.options.retention,
      staleTaskTimeout: this.options.staleTaskTimeout,
      staleAfter: this.options.staleAfter,
      publishRetryFor: this.options.publishRetryFor,
      now: () => Date.now(),
    })
    if (this.options.staleAfter !== false) {
      this.leases = new LeaseMonitor(this.store, this.publisher, { staleAfter: this.options.staleAfter, logger })
      if (!this.leases.supported) logger.warn('the task store keeps no leases (no expiredLeases()): tasks whose job stops reporting are not failed')
      this.leases.start()
    }
    this.fanout = new TaskFanout(this.store, (error, taskId) => {
      logger.error('delivering a task message failed', { task: taskId, error: error instanceof Error ? error.message : String(error) })
    })
    this.stream = new StreamEndpoint(this.options, this.store, this.fanout, this.counters)
    const demoOptions = this.options.demo
    this.demo = demoOptions === false ? null : new DemoJobs(this.publisher, logger)
    const createLimit = this.options.createRateLimit
    this.routes = new HttpRoutes({
      basePath: this.options.basePath,
      originCheck: this.options.originCheck,
      corsCredentials: this.options.corsCredentials,
      store: this.store,
      publisher: this.publisher,
      demo: this.demo === null || demoOptions === false ? null : { jobs: this.demo, ...demoOptions },
      authorize: this.options.authorize,
      tokens: this.options.tokens,
      clientAddress: this.options.clientAddress,
      createLimiter: createLimit === false ? null : new AddressRateLimiter(createLimit.perMinute, createLimit.burst),
      logger,
      healthDetails: this.options.healthDetails,
      health: () => ({ connections: this.stream.connectionCounts().total }),
    })
    if (this.options.server) this.attach(this.options.server)
  }

  /**
   * Starts an HTTP server of its own and resolves once it listens. Rejects (and may be
   * called again) when the port is taken.
   * @param port The TCP port; `0` picks a free one. Default: 8000, the guide's.
   * @param host The interface to bind. Default: "127.0.0.1"; "0.0.0.0" accepts other machines.
   */
  async listen(port: number = DEFAULT_PORT, host: string = DEFAULT_HOST): Promise<ListenAddress> {
    if (this.options.server) throw new Error('this tabcast server is attached to an existing HTTP server; listen on that one')
    if (this.ownServer) throw new Error('listen() was already called')
    if (this.closing) throw new Error('the server is closed')
    const server = createServer()
    this.ownServer = server
    const pendingCap = this.options.maxPendingConnectionsPerAddress
    this.headersDone = pendingCap === false ? null : capPendingConnections(server, pendingCap)
    this.attach(server)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.off('error', reject)
          resolve()
        })
      })
    } catch (error) {
      // A port in use (say) leaves the object as it was, so listen() may be retried.
      this.detach?.()
      this.detach = null
      this.ownServer = null
      throw error
    }
    // Errors after listening (accept failures, for one) are logged; unhandled they would end the process.
    server.on('error', (error) => this.options.logger.error('HTTP server error', { error: error.message }))
    const address = server.address() as AddressInfo
    return { port: address.port, host, url: `http://${urlHost(host)}:${address.port}${this.options.basePath}` }
  }

  /**
   * Handles one HTTP request if it is for a tabcast route (returns true), for use
   * inside another framework's handler: `if (!tabcast.handleRequest(req, res)) next()`.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    return this.routes.handle(req, res)
  }

  /** Handles one HTTP upgrade if it is for the stream path (returns true). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    return this.stream.handleUpgrade(req, socket, head)
  }

  /** Whether streams and status reads need a token (`auth` or `authorize` is set). */
  get authEnabled(): boolean {
    return this.options.authorize !== null
  }

  /**
   * A signed token for `taskId` (the `auth` option must be set): what the backend that
   * starts a real job hands to the page that follows it.
   * @param ttlMs How long the token is valid. Default: `auth.ttlMs` (one hour).
   */
  taskToken(taskId: string, ttlMs?: number): string {
    if (this.options.tokens === null) throw new Error('taskToken() needs the auth option ({ secret }) to be set')
    return this.options.tokens.sign(taskId, ttlMs)
  }

  /** Registers a task before its first message (see `TaskPublisher.createTask`). */
  createTask(options?: CreateTaskOptions): Promise<TaskState> {
    return this.publisher.createTask(options)
  }

  /** Reports progress (0 – 1) with a message; rejects with `TaskUpdateError` after the task ended. */
  progress(taskId: string, fraction: number, message: string, extra?: ProgressExtra): Promise<TaskMessage> {
    return this.publisher.progress(taskId, fraction, message, extra)
  }

  /**
   * Renews the task's lease without publishing (see the `staleAfter` option), for jobs
   * with long silent phases. Rejects with `TaskUpdateError` for an unknown or ended task.
   */
  heartbeat(taskId: string): Promise<void> {
    return this.publisher.heartbeat(taskId)
  }

  /** Ends the task with its result. */
  complete(taskId: string, result: JsonRecord, extra?: CompleteExtra): Promise<TaskMessage> {
    return this.publisher.complete(taskId, result, extra)
  }

  /** Ends the task with a failure. */
  fail(taskId: string, error: string | Error, details?: JsonRecord): Promise<TaskMessage> {
    return this.publisher.fail(taskId, error, details)
  }

  /** The task's current state, or `null` when unknown or expired. */
  getTask(taskId: string): Promise<TaskState | null> {
    return this.store.get(taskId)
  }

  stats(): ServerStats {
    const counts = this.stream.connectionCounts()
    return {
      connections: counts.total,
      connectionsByTask: counts.byTask,
      messagesSent: this.counters.sent,
      messagesReceived: this.counters.received,
      demoTasksRunning: this.demo?.size ?? 0,
    }
  }

  /**
   * Stops the server: demo jobs stop, every socket is closed with 1001 (going away) and
   * awaited, the own HTTP server (if any) closes, an attached one is detached, and a
   * store the server created is closed. Safe to call more than once.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    this.demo?.stopAll()
    this.leases?.stop()
    this.publisher.close()
    const server = this.ownServer
    // Stop accepting before saying goodbye, so nobody connects into a closing server.
    const serverClosed =
      server === null
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            server.close(() => resolve())
            server.closeIdleConnections()
          })
    await this.stream.close()
    this.fanout.clear()
    this.detach?.()
    this.detach = null
    if (server !== null) {
      server.closeAllConnections()
      await serverClosed
    }
    if (this.ownsStore) await this.store.close()
  }

  /**
   * Serves tabcast's routes on `server`. Request listeners already on it keep getting
   * every request that is not tabcast's (the way socket.io attaches), so an app
   * created with `http.createServer(app)` keeps working.
   */
  private attach(server: HttpServer): void {
    const previous = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[]
    server.removeAllListeners('request')
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      this.headersDone?.(req.socket)
      if (this.routes.handle(req, res)) return
      if (previous.length === 0) {
        this.routes.notFound(req, res)
        return
      }
      for (const listener of previous) listener.call(server, req, res)
    }
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      this.headersDone?.(req.socket)
      if (this.stream.handleUpgrade(req, socket, head)) return
      // Another upgrade listener (a dev server's HMR socket, say) may want it.
      if (server.listenerCount('upgrade') === 1) refuseUpgrade(socket, 404, 'not found')
    }
    server.on('request', onRequest)
    server.on('upgrade', onUpgrade)
    this.detach = () => {
      server.off('request', onRequest)
      server.off('upgrade', onUpgrade)
      for (const listener of previous) server.on('request', listener)
    }
  }
}

/** Creates a tabcast server. Call `listen()` next, unless `options.server` was given. */
export function createTabcastServer(options: TabcastServerOptions = {}): TabcastServer {
  return new TabcastServer(options)
}

/**
 * Closes a new connection at once when its TCP peer already holds `cap` connections
 * whose request headers are not complete yet (a slowloris client): such connections cost
 * memory until Node's `headersTimeout`, and nothing else bounds how many one peer opens.
 * Returns what the request and upgrade handlers call once a connection's headers came.
 * (No 'request' or 'upgrade' listener of its own: `attach` reads those as the app's.)
 */
function capPendingConnections(server: HttpServer, cap: number): (socket: Socket) => void {
  const pending = new AddressCounts(cap)
  const waiting = new WeakMap<Socket, string>()
  const done = (socket: Socket): void => {
    const address = waiting.get(socket)
    if (address === undefined) return
    waiting.delete(socket)
    pending.give(address)
  }
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? ''
    if (!pending.take(address)) {
      socket.destroy()
      return
    }
    waiting.set(socket, address)
    socket.once('close', () => done(socket))
  })
  return done
}
