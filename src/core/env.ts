/**
 * The environment the broker core runs in, injected so the same core runs in a
 * SharedWorker, in a tab, and in a Vitest process with fakes.
 */

export type TimerHandle = unknown

export interface Clock {
  now(): number
  setTimeout(callback: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
}

/** The part of the WebSocket API the core uses. */
export interface SocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null
  onerror: ((event: unknown) => void) | null
}

export type SocketFactory = (url: string) => SocketLike

export interface ResponseLike {
  readonly status: number
  readonly headers: { get(name: string): string | null }
  text(): Promise<string>
  /** The body as a stream, when the environment has one: read with a byte limit. */
  readonly body?: ReadableStream<Uint8Array> | null
}

export type FetchLike = (
  url: string,
  /** `mode: 'no-cors'` only asks whether the server answers at all (the answer is opaque). */
  init: { signal: AbortSignal; headers: Record<string, string>; mode?: 'cors' | 'no-cors' },
) => Promise<ResponseLike>

export interface BrokerEnv {
  clock: Clock
  createSocket: SocketFactory
  fetch: FetchLike
  /** 0 ≤ x < 1, for reconnect jitter. */
  random: () => number
  /** Whether bare `host:port` backends should use wss/https (the page is served over https). */
  secure: boolean
  /** The page's origin (`location.origin`), to name it when a backend refuses it. */
  origin?: string | null
}

/** The real environment of a browser page or worker (or Node 22+, which has WebSocket). */
export function globalEnv(): BrokerEnv {
  const g = globalThis as unknown as {
    WebSocket: new (url: string) => SocketLike
    fetch: FetchLike
    location?: { protocol?: string; origin?: string }
  }
  return {
    // Never capture the global functions themselves: tests and polyfills may replace them later.
    clock: {
      now: () => Date.now(),
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    },
    createSocket: (url) => new g.WebSocket(url),
    fetch: (url, init) => g.fetch(url, init),
    random: () => Math.random(),
    secure: g.location?.protocol === 'https:',
    origin: g.location?.origin ?? null,
  }
}
