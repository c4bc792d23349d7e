/**
 * The HTTP side: the guide's status endpoint (the polling fallback), task creation for
 * the demo, the health check, CORS for pages on allowed origins, and `authorize` for
 * the status endpoint and task creation.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { validateTaskId, type StatusResponse } from '../src/protocol.js'
import { bearerToken, type AuthAction, type Authorize, type TaskTokens } from './auth.js'
import { DEMO_TASK_NAME, parseDemoRequest, type DemoJobs } from './demo-job.js'
import type { Logger } from './logger.js'
import { requestOrigin, setCorsHeaders, type OriginCheck } from './origin.js'
import type { AddressRateLimiter } from './rate-limit.js'
import { matchRoute, parseTarget, taskPaths, type Route, type TaskIdSegment } from './routes.js'
import { TaskStoreUnavailableError } from './store-errors.js'
import type { TaskState, TaskStore } from './store.js'
import { TaskStoreFullError } from './task-budget.js'
import { TaskUpdateError, type TaskPublisher } from './tasks.js'

/** Request bodies larger than this are refused with 413 (a demo task needs a few KiB). */
const MAX_BODY_BYTES = 64 * 1024

/**
 * After a 413, this much more of the refused body is read and dropped before the
 * connection is cut: closing a socket with unread data makes the kernel send a reset,
 * which can destroy the 413 before the client reads it.
 */
const MAX_DRAIN_BYTES = 1024 * 1024

export interface HttpRoutesContext {
  basePath: string
  originCheck: OriginCheck
  corsCredentials: boolean
  store: TaskStore
  publisher: TaskPublisher
  /** `null` when the demo is turned off. */
  demo: { jobs: DemoJobs; maxRunningTasks: number; maxDurationMs: number } | null
  /** `null` when every request is allowed. */
  authorize: Authorize | null
  /** Signed task tokens, handed out by task creation; `null` when off. */
  tokens: TaskTokens | null
  clientAddress: (request: IncomingMessage) => string | undefined
  /** Task creations per client address; `null` for no limit. */
  createLimiter: AddressRateLimiter | null
  logger: Logger
  /** Whether `/healthz` says more than ok / not ok. */
  healthDetails: boolean
  /** Extra facts for `/healthz` (with `healthDetails`). */
  health: () => Record<string, unknown>
}

/** The status endpoint's view of a task. */
export function toStatusResponse(state: TaskState): StatusResponse {
  const response: StatusResponse = {
    project_id: state.taskId,
    status: state.status,
    progress: state.progress,
    seq: state.lastSeq,
    timestamp: state.updatedAt,
  }
  if (state.message !== undefined) response.message = state.message
  if (state.taskName !== undefined) response.task_name = state.taskName
  if (state.result !== undefined) response.result = state.result
  if (state.error !== undefined) response.error = state.error
  if (state.details !== undefined) response.details = state.details
  if (state.epoch !== undefined) response.epoch = state.epoch
  return response
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    // Task state changes by the second; no cache may hold it.
    'Cache-Control': 'no-store',
    ...headers,
  })
  res.end(text)
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/** Reads the body up to `MAX_BODY_BYTES`; past that rejects with 413 and drops the rest. */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > MAX_BODY_BYTES) {
      drain(req)
      reject(new HttpError(413, `request body is ${declared} bytes; the limit is ${MAX_BODY_BYTES}`))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        // A chunked body announces no length: it is refused once it passes the limit.
        chunks.length = 0
        req.off('data', onData)
        drain(req)
        reject(new HttpError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

/** Reads and drops the rest of a refused body (see `MAX_DRAIN_BYTES`), then cuts a client that sends more. */
function drain(req: IncomingMessage): void {
  let dropped = 0
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length
    if (dropped > MAX_DRAIN_BYTES) req.socket.destroy()
  })
  req.resume()
}

/** The generated id of a task created without one (the job API's format). */
function newTaskId(): string {
  return `task_${randomUUID().replaceAll('-', '')}`
}

export class HttpRoutes {
  constructor(private readonly context: HttpRoutesContext) {}

  /**
   * Answers the request if its path is one of tabcast's and returns true; returns
   * false (and leaves the response alone) otherwise.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const target = parseTarget(req.url)
    const route = target && matchRoute(target.pathname, this.context.basePath)
    if (!route || route.kind === 'stream') return false
    const origin = requestOrigin(req.headers)
    if (!this.context.originCheck(origin)) {
      // Refused outright rather than answered without CORS headers: a simple POST from
      // any page would otherwise still create a task (CSRF), even if it could not read
      // the answer.
      sendJson(res, 403, { error: `origin ${origin ?? ''} is not allowed` }, { Vary: 'Origin' })
      return true
    }
    if (this.answerCors(req, res, origin)) return true
    this.dispatch(route, req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        if (!res.headersSent) sendJson(res, error.status, { error: error.message }, error.status === 413 ? { Connection: 'close' } : {})
        return
      }
      if (error instanceof TaskStoreFullError) {
        this.context.logger.warn('task refused: the task store is full of running tasks', { task: error.taskId })
        if (!res.headersSent) sendJson(res, 503, { error: 'the server holds too many running tasks; try again later' }, { 'Retry-After': '30' })
        return
      }
      if (error instanceof TaskStoreUnavailableError) {
        // Redis is away (see /healthz): retryable, not a server bug.
        this.context.logger.warn('HTTP request refused: the task store is unavailable', { method: req.method, url: req.url, error: error.message })
        if (!res.headersSent) sendJson(res, 503, { error: 'the task store is unavailable; try again later' }, { 'Retry-After': '2' })
        else res.destroy()
        return
      }
      this.context.logger.error('HTTP handler failed', {
        method: req.method,
        url: req.url,
        error: error instanceof Error ? error.message : String(error),
      })
      if (!res.headersSent) sendJson(res, 500, { error: 'internal server error' })
      else res.destroy()
    })
    return true
  }

  /**
   * Any other path, on a server that serves nothing else: a 404 that an allowed page can
   * read. Without CORS headers the browser hides it, and a page whose `backendUrl` has a
   * wrong path prefix could only guess between that and an origin refusal. The preflight
   * of a read with a token is answered, so the read itself comes and gets its 404.
   */
  notFound(req: IncomingMessage, res: ServerResponse): void {
    const origin = requestOrigin(req.headers)
    if (!this.context.originCheck(origin)) res.setHeader('Vary', 'Origin')
    else if (this.answerCors(req, res, origin)) return
    sendJson(res, 404, { error: 'not found: no tabcast route at this path' })
  }

  /**
   * The CORS headers for an allowed origin; a preflight (`OPTIONS`) is answered here
   * (true), any other request goes on to its answer (false).
   */
  private answerCors(req: IncomingMessage, res: ServerResponse, origin: string | undefined): boolean {
    const preflight = req.method === 'OPTIONS'
    setCorsHeaders(res, origin, preflight, this.context.corsCredentials)
    if (!preflight) return false
    res.writeHead(204, { 'Content-Length': '0' })
    res.end()
    return true
  }

  private async dispatch(route: Exclude<Route, { kind: 'stream' }>, req: IncomingMessage, res: ServerResponse): Promise<void> {
    switch (route.kind) {
      case 'status':
        if (req.method !== 'GET' && req.method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD, OPTIONS')
        return this.status(route.segment, req, res)
      case 'create':
        if (req.method !== 'POST') return this.methodNotAllowed(res, 'POST, OPTIONS')
        return this.create(req, res)
      case 'health':
        if (req.method !== 'GET' && req.method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD')
        return this.healthz(res)
    }
  }

  private methodNotAllowed(res: ServerResponse, allow: string): void {
    sendJson(res, 405, { error: `method not allowed; use ${allow}` }, { Allow: allow })
  }

  /**
   * Asks `authorize`; answers 401 / 403 and returns false when refused. Runs before the
   * store is read, so a refused client learns nothing about the task, not even whether
   * it exists.
   */
  private async allowed(action: AuthAction, taskId: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const authorize = this.context.authorize
    if (authorize === null) return true
    const token = bearerToken(req.headers)
    const decision = await authorize({ action, taskId, token, origin: requestOrigin(req.headers) ?? null, request: req })
    if (decision === 'allow') return true
    if (decision === 'forbidden') {
      sendJson(res, 403, { error: `this token does not allow access to task ${taskId}`, project_id: taskId })
      return false
    }
    if (decision === 'unauthenticated') {
      // RFC 6750: say which scheme, and whether the token that came was the problem.
      const challenge = token === null ? 'Bearer realm="tabcast"' : 'Bearer realm="tabcast", error="invalid_token"'
      const error = token === null ? 'a bearer token is required (Authorization: Bearer <token>)' : 'the token is invalid or expired'
      sendJson(res, 401, { error, project_id: taskId }, { 'WWW-Authenticate': challenge })
      return false
    }
    throw new TypeError(`authorize returned ${JSON.stringify(decision)}; expected "allow", "unauthenticated" or "forbidden"`)
  }

  private async status(segment: TaskIdSegment, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const problem = segment.ok ? validateTaskId(segment.taskId) : segment.error
    if (!segment.ok || problem !== null) {
      sendJson(res, 400, { error: problem ?? 'invalid task id' })
      return
    }
    const taskId = segment.taskId
    if (!(await this.allowed('status', taskId, req, res))) return
    const state = await this.context.store.get(taskId)
    if (state === null) {
      sendJson(res, 404, { error: `task ${taskId} not found`, project_id: taskId })
      return
    }
    sendJson(res, 200, toStatusResponse(state))
  }

  private async create(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const demo = this.context.demo
    if (demo === null) {
      sendJson(res, 404, { error: 'this server does not create demo tasks' })
      return
    }
    // Before the body is read: a refused flood costs as little as possible.
    const wait = this.context.createLimiter?.take(this.context.clientAddress(req) ?? 'unknown') ?? 0
    if (wait > 0) {
      sendJson(res, 429, { error: `too many tasks created from this address; try again in ${wait} s` }, { 'Retry-After': String(wait) })
      return
    }
    const text = await readBody(req)
    let body: unknown
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text)
      } catch {
        sendJson(res, 400, { error: 'request body is not valid JSON' })
        return
      }
    }
    const request = parseDemoRequest(body)
    if (!request.ok) {
      sendJson(res, 400, { error: request.error })
      return
    }
    const { steps, stepMs } = request.value.params
    if (steps * stepMs > demo.maxDurationMs) {
      sendJson(res, 400, { error: `steps × stepMs is ${steps * stepMs} ms; a demo task may run at most ${demo.maxDurationMs} ms` })
      return
    }
    const taskId = request.value.taskId ?? newTaskId()
    if (!(await this.allowed('create', taskId, req, res))) return
    if (demo.jobs.size >= demo.maxRunningTasks) {
      sendJson(res, 503, { error: `${demo.maxRunningTasks} demo tasks are already running; try again later` }, { 'Retry-After': '5' })
      return
    }
    let state: TaskState
    try {
      state = await this.context.publisher.createTask({ taskId, taskName: DEMO_TASK_NAME })
    } catch (error) {
      if (error instanceof TaskUpdateError && error.code === 'task_exists') {
        sendJson(res, 409, { error: error.message, project_id: error.taskId })
        return
      }
      throw error
    }
    demo.jobs.start(state.taskId, request.value.params)
    const paths = taskPaths(this.context.basePath, state.taskId)
    const created: Record<string, string> = { project_id: state.taskId, status_url: paths.status, stream_url: paths.stream }
    // The creator's token for this task: what its pages follow the task with.
    if (this.context.tokens !== null) {
      created['task_id'] = state.taskId
      created['token'] = this.context.tokens.sign(state.taskId)
    }
    sendJson(res, 201, created, { Location: paths.status })
  }

  private async healthz(res: ServerResponse): Promise<void> {
    let store
    try {
      store = await this.context.store.health()
    } catch (error) {
      store = { ok: false, kind: 'unknown', detail: error instanceof Error ? error.message : String(error) }
    }
    // By default only ok / not ok: store URLs, outage texts and counts help attackers more than clients.
    const body = this.context.healthDetails ? { ok: store.ok, store, ...this.context.health() } : { ok: store.ok }
    sendJson(res, store.ok ? 200 : 503, body)
  }
}
