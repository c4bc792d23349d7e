/**
 * Reading a task's status endpoint, bounded: the answer becomes a `ReadResult` (a
 * validated status, or a problem that names the endpoint and what went wrong, and
 * whether the request failed before any HTTP answer), and a body past the size limit is
 * refused while it streams in. Also the `no-cors` probe that tells a backend that is down
 * from one that refuses this page. Neither function rejects.
 */
import { parseStatusResponse } from '../protocol.js'
import type { ReadResult } from './channel-reducer.js'
import type { BrokerEnv, ResponseLike } from './env.js'

/** The abort reason of a request that ran out of time. */
export class RequestTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`)
    this.name = 'RequestTimeout'
  }
}

export interface ReadOptions {
  /** Aborts the request; abort with a `RequestTimeout` to have it reported as a timeout. */
  signal: AbortSignal
  /** Largest body accepted, in bytes. */
  maxBytes: number
  /** Sent as `Authorization: Bearer <token>`; null: no header. @default null */
  token?: string | null
  /** `fetch`'s credentials (cookies for another origin with `'include'`). @default 'same-origin' */
  credentials?: 'omit' | 'same-origin' | 'include'
}

/** GETs the status and validates it. */
export async function readStatus(
  env: BrokerEnv,
  url: string,
  { signal, maxBytes, token = null, credentials = 'same-origin' }: ReadOptions,
): Promise<ReadResult> {
  let response: ResponseLike
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token !== null) headers['Authorization'] = `Bearer ${token}`
  try {
    response = await env.fetch(url, { signal, headers, credentials })
  } catch (error) {
    return failure(url, signal, error, true)
  }
  try {
    return await readBody(url, response, maxBytes, signal)
  } catch (error) {
    return failure(url, signal, error, false)
  }
}

/** Whether the backend answers at all: a `no-cors` request resolves (opaquely) from any server that is up. */
export async function probeReachable(env: BrokerEnv, url: string, signal: AbortSignal): Promise<boolean> {
  try {
    await env.fetch(url, { signal, headers: {}, mode: 'no-cors' })
    return true
  } catch {
    return false
  }
}

function failure(url: string, signal: AbortSignal, error: unknown, beforeAnswer: boolean): ReadResult {
  const reason: unknown = signal.reason
  if (signal.aborted && reason instanceof RequestTimeout) {
    return { ok: false, problem: `status endpoint ${url} did not answer within ${reason.ms} ms`, network: false }
  }
  return { ok: false, problem: `status request to ${url} failed: ${errorText(error)}`, network: beforeAnswer }
}

async function readBody(url: string, res: ResponseLike, limit: number, signal: AbortSignal): Promise<ReadResult> {
  const contentType = res.headers.get('content-type')
  const tooLarge = (size: string): ReadResult => ({
    ok: false,
    problem: `status endpoint ${url} sent ${size}; the limit is ${limit} bytes`,
    network: false,
  })
  const declared = Number(res.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > limit) {
    void res.body?.cancel().catch(() => {})
    return tooLarge(`${declared} bytes`)
  }
  let body: string
  if (res.body) {
    const reader = res.body.getReader()
    const decoder = new TextDecoder()
    let size = 0
    body = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > limit) {
        // Stop reading (and downloading) at once: a runaway body must not fill the worker's memory.
        void reader.cancel().catch(() => {})
        return tooLarge(`more than ${limit} bytes`)
      }
      body += decoder.decode(value, { stream: true })
      if (signal.aborted) throw signal.reason
    }
    body += decoder.decode()
  } else {
    body = await res.text()
  }
  if (res.status < 200 || res.status > 299) {
    return {
      ok: false,
      problem: `status endpoint ${url} answered HTTP ${res.status}${statusDetail(body, contentType)}`,
      network: false,
      httpStatus: res.status,
    }
  }
  const parsed = parseStatusResponse(body, { contentType, maxBytes: limit })
  if (!parsed.ok) return { ok: false, problem: `status endpoint ${url}: ${parsed.error.message}`, network: false }
  return { ok: true, status: parsed.value }
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
