/**
 * A `fetch` stand-in for the status endpoint: every request waits until the test
 * answers it (or an `auto` responder does). Like the real `fetch`, a request rejects
 * with an `AbortError` when its signal aborts.
 */
import type { FetchLike, ResponseLike } from '../../src/core/env.js'

export interface Reply {
  status?: number
  body: string | object
  contentType?: string
  /** Extra response headers (lower-case names). */
  headers?: Record<string, string>
  /** A body stream offered as `response.body` (its `text()` then rejects: the reader must use the stream). */
  stream?: ReadableStream<Uint8Array>
}

export class FakeRequest {
  readonly url: string
  readonly signal: AbortSignal
  /** `'no-cors'` for a reachability probe. */
  readonly mode: 'cors' | 'no-cors'
  /** The request headers (`Authorization` for a read that carries a token). */
  headers: Record<string, string> = {}
  /** `credentials` as the client asked for it (undefined: not given). */
  credentials: string | undefined = undefined
  settled = false
  private resolveFn: (response: ResponseLike) => void = () => {}
  private rejectFn: (error: unknown) => void = () => {}
  readonly promise: Promise<ResponseLike>

  constructor(url: string, signal: AbortSignal, mode: 'cors' | 'no-cors' = 'cors') {
    this.url = url
    this.signal = signal
    this.mode = mode
    this.promise = new Promise<ResponseLike>((resolve, reject) => {
      this.resolveFn = resolve
      this.rejectFn = reject
    })
    signal.addEventListener('abort', () => this.reject(new DOMException('This operation was aborted', 'AbortError')))
  }

  respond(reply: Reply): void {
    if (this.settled) return
    this.settled = true
    const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
    const contentType = reply.contentType ?? (typeof reply.body === 'string' ? 'text/plain' : 'application/json')
    const headers: Record<string, string> = { 'content-type': contentType, ...reply.headers }
    this.resolveFn({
      status: reply.status ?? 200,
      headers: { get: (name) => headers[name.toLowerCase()] ?? null },
      text: () => (reply.stream ? Promise.reject(new Error('text() on a streamed body')) : Promise.resolve(body)),
      ...(reply.stream ? { body: reply.stream } : {}),
    })
  }

  reject(error: unknown): void {
    if (this.settled) return
    this.settled = true
    this.rejectFn(error)
  }
}

export class FakeFetch {
  readonly requests: FakeRequest[] = []
  /** When set, answers each request as it is made. */
  auto: ((request: FakeRequest) => void) | null = null

  readonly fetch: FetchLike = (url, init) => {
    const request = new FakeRequest(url, init.signal, init.mode)
    request.headers = { ...init.headers }
    request.credentials = init.credentials
    this.requests.push(request)
    this.auto?.(request)
    return request.promise
  }

  get last(): FakeRequest {
    const request = this.requests[this.requests.length - 1]
    if (!request) throw new Error('no request was made')
    return request
  }

  get pending(): FakeRequest[] {
    return this.requests.filter((request) => !request.settled)
  }
}

/** Lets every queued promise callback run (a macrotask turn), e.g. after a fetch answered. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
