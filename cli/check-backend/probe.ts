/**
 * The two ways `check-backend` talks to a backend: one WebSocket at a time on the
 * stream path (every frame parsed with the client's own `parseServerMessage`), and
 * single HTTP requests. Every wait is bounded, so a backend that never answers makes
 * a check fail instead of hanging the run.
 */
import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { parseServerMessage, type ParseResult, type ServerMessage } from '../../src/protocol.js'

export interface Frame {
  /** The frame as text (binary frames decoded as UTF-8 for the report). */
  text: string
  binary: boolean
  parsed: ParseResult<ServerMessage>
}

export interface Closed {
  code: number
  reason: string
}

export type OpenOutcome =
  | { ok: true; probe: StreamProbe }
  | { ok: false; kind: 'http'; status: number; body: string }
  | { ok: false; kind: 'timeout' }
  | { ok: false; kind: 'error'; message: string }

export interface OpenOptions {
  origin?: string | undefined
  protocols?: readonly string[] | undefined
  timeoutMs: number
}

/** Answers the probe reads of a refused upgrade: enough to name the page, never more. */
const MAX_REFUSAL_BODY = 2048

/** One open stream socket and everything it received. */
export class StreamProbe {
  readonly frames: Frame[] = []
  closed: Closed | null = null
  private readonly waiters = new Set<() => void>()

  private constructor(
    private readonly socket: WebSocket,
    readonly url: string,
  ) {
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      const text = data.toString('utf8')
      this.frames.push({ text, binary: isBinary, parsed: isBinary ? parseServerMessage(new Uint8Array(data)) : parseServerMessage(text) })
      this.wake()
    })
    socket.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString('utf8') }
      this.wake()
    })
  }

  /** The subprotocol the server selected ('' for none). */
  get protocol(): string {
    return this.socket.protocol
  }

  static open(url: string, options: OpenOptions): Promise<OpenOutcome> {
    return new Promise((resolve) => {
      const socket = new WebSocket(url, [...(options.protocols ?? [])], {
        ...(options.origin === undefined ? {} : { origin: options.origin }),
        handshakeTimeout: options.timeoutMs,
        // The client's own limit for server messages, so a flood cannot fill the checker's memory.
        maxPayload: 1024 * 1024,
        perMessageDeflate: false,
      })
      let settled = false
      const settle = (outcome: OpenOutcome): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(outcome)
      }
      // A backend that accepts the TCP connection and never answers: ws's handshakeTimeout
      // covers it, this timer covers a DNS or connect stall as well.
      const timer = setTimeout(() => {
        socket.terminate()
        settle({ ok: false, kind: 'timeout' })
      }, options.timeoutMs + 250)
      const probe = new StreamProbe(socket, url)
      socket.on('open', () => settle({ ok: true, probe }))
      socket.on('unexpected-response', (_request, response: IncomingMessage) => {
        let body = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => {
          if (body.length < MAX_REFUSAL_BODY) body += chunk
        })
        const done = (): void => {
          socket.terminate()
          settle({ ok: false, kind: 'http', status: response.statusCode ?? 0, body: body.slice(0, MAX_REFUSAL_BODY) })
        }
        response.on('end', done)
        response.on('error', done)
        setTimeout(done, Math.min(1000, options.timeoutMs)).unref()
      })
      socket.on('error', (error: Error) => {
        settle(/timed out/i.test(error.message) ? { ok: false, kind: 'timeout' } : { ok: false, kind: 'error', message: error.message })
      })
    })
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  /**
   * Waits until a frame at index `from` or later satisfies `match`; returns it, or null
   * when the socket closes or `timeoutMs` passes first.
   */
  waitFor(match: (frame: Frame) => boolean, timeoutMs: number, from = 0): Promise<Frame | null> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const found = this.frames.slice(from).find(match)
        if (found) {
          finish(found)
          return true
        }
        if (this.closed) {
          finish(null)
          return true
        }
        return false
      }
      const finish = (frame: Frame | null): void => {
        clearTimeout(timer)
        this.waiters.delete(onEvent)
        resolve(frame)
      }
      const onEvent = (): void => {
        check()
      }
      const timer = setTimeout(() => finish(null), timeoutMs)
      this.waiters.add(onEvent)
      check()
    })
  }

  /** Waits for the close; null when the socket is still open after `timeoutMs`. */
  waitClosed(timeoutMs: number): Promise<Closed | null> {
    return new Promise((resolve) => {
      if (this.closed) {
        resolve(this.closed)
        return
      }
      const finish = (): void => {
        if (!this.closed) return
        clearTimeout(timer)
        this.waiters.delete(finish)
        resolve(this.closed)
      }
      const timer = setTimeout(() => {
        this.waiters.delete(finish)
        resolve(this.closed)
      }, timeoutMs)
      this.waiters.add(finish)
    })
  }

  send(data: string | Buffer): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(data)
  }

  /** Closes politely, and for good after a short grace (a server that ignores the close frame). */
  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return
    this.socket.close(1000)
    if (!(await this.waitClosed(500))) this.socket.terminate()
  }
}

export interface HttpAnswer {
  status: number
  headers: Headers
  body: string
}

export type HttpOutcome = { ok: true; answer: HttpAnswer } | { ok: false; problem: string }

/** One HTTP request, bounded in time; the body is read as text. */
export async function httpRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs: number },
): Promise<HttpOutcome> {
  try {
    const response = await fetch(url, {
      method: init.method ?? 'GET',
      headers: init.headers ?? {},
      ...(init.body === undefined ? {} : { body: init.body }),
      signal: AbortSignal.timeout(init.timeoutMs),
      redirect: 'manual',
    })
    const body = await response.text()
    return { ok: true, answer: { status: response.status, headers: response.headers, body } }
  } catch (error) {
    const name = error instanceof Error ? error.name : ''
    if (name === 'TimeoutError' || name === 'AbortError') return { ok: false, problem: `no answer within ${init.timeoutMs} ms` }
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : ''
    return { ok: false, problem: `${error instanceof Error ? error.message : String(error)}${cause}` }
  }
}
