/**
 * The HTTP side: the guide's status endpoint (the polling fallback), task creation for
 * the demo, the health check, and CORS for pages on allowed origins.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { validateTaskId, type StatusResponse } from '../src/protocol.js'
import { DEMO_TASK_NAME, parseDemoRequest, type DemoJobs } from './demo-job.js'
import type { StatusFrame } from './capabilities.js'
import type { Logger } from './logger.js'
import { requestOrigin, setCorsHeaders, type OriginCheck } from './origin.js'
import { matchRoute, parseTarget, taskPaths, type Route, type TaskIdSegment } from './routes.js'
import { TaskStoreUnavailableError } from './store-errors.js'
import type { TaskState, TaskStore } from './store.js'
import { TaskUpdateError, type TaskPublisher } from './tasks.js'

/** Request bodies larger than this are refused with 413 (a demo task needs a few KiB). */
const MAX_BODY_BYTES = 64 * 1024

export interface HttpRoutesContext {
  basePath: string
  originCheck: OriginCheck
  store: TaskStore
  publisher: TaskPublisher
  /** `null` when the demo is turned off. */
  demo: { jobs: DemoJobs; maxRunningTasks: number } | null
  logger: Logger
  /** Extra facts for `/healthz`. */
  health: () => Record<string, unknown>
}

/** The status endpoint's view of a task. */
export function toStatusResponse(state: TaskState): StatusResponse {
  const response: StatusFrame = {
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

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > MAX_BODY_BYTES) {
      reject(new HttpError(413, `request body is ${declared} bytes; the limit is ${MAX_BODY_BYTES}`))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
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
    if (req.method === 'OPTIONS') {
      setCorsHeaders(res, origin, true)
      res.writeHead(204, { 'Content-Length': '0' })
      res.end()
      return true
    }
    setCorsHeaders(res, origin, false)
    this.dispatch(route, req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        if (!res.headersSent) sendJson(res, error.status, { error: error.message }, { Connection: 'close' })
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

  private async dispatch(route: Exclude<Route, { kind: 'stream' }>, req: IncomingMessage, res: ServerResponse): Promise<void> {
    switch (route.kind) {
      case 'status':
        if (req.method !== 'GET' && req.method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD, OPTIONS')
        return this.status(route.segment, res)
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

  private async status(segment: TaskIdSegment, res: ServerResponse): Promise<void> {
    const problem = segment.ok ? validateTaskId(segment.taskId) : segment.error
    if (!segment.ok || problem !== null) {
      sendJson(res, 400, { error: problem ?? 'invalid task id' })
      return
    }
    const taskId = segment.taskId
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
    if (demo.jobs.size >= demo.maxRunningTasks) {
      sendJson(res, 503, { error: `${demo.maxRunningTasks} demo tasks are already running; try again later` }, { 'Retry-After': '5' })
      return
    }
    let state: TaskState
    try {
      const options = request.value.taskId === undefined ? { taskName: DEMO_TASK_NAME } : { taskId: request.value.taskId, taskName: DEMO_TASK_NAME }
      state = await this.context.publisher.createTask(options)
    } catch (error) {
      if (error instanceof TaskUpdateError && error.code === 'task_exists') {
        sendJson(res, 409, { error: error.message, project_id: error.taskId })
        return
      }
      throw error
    }
    demo.jobs.start(state.taskId, request.value.params)
    const paths = taskPaths(this.context.basePath, state.taskId)
    sendJson(
      res,
      201,
      { project_id: state.taskId, status_url: paths.status, stream_url: paths.stream },
      { Location: paths.status },
    )
  }

  private async healthz(res: ServerResponse): Promise<void> {
    let store
    try {
      store = await this.context.store.health()
    } catch (error) {
      store = { ok: false, kind: 'unknown', detail: error instanceof Error ? error.message : String(error) }
    }
    sendJson(res, store.ok ? 200 : 503, { ok: store.ok, store, ...this.context.health() })
  }
}
