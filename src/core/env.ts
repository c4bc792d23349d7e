/**
 * The environment the broker core runs in, injected so the same core runs in a
 * SharedWorker, in a tab, and in a Vitest process with fakes. The core never reads a
 * browser global itself (lint holds it to that); `globalEnv()` in src/global-env.ts
 * builds the real one.
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

/**
 * Opens a WebSocket. `protocols` is given only when there is a token to send
 * (`['tabcast', 'tabcast.bearer.<token>']`): a guide-only backend that selects no
 * subprotocol would make the browser fail a handshake that offered some.
 */
export type SocketFactory = (url: string, protocols?: string[]) => SocketLike

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
  init: {
    signal: AbortSignal
    headers: Record<string, string>
    mode?: 'cors' | 'no-cors'
    /** The subscription's `credentials` option (status reads). */
    credentials?: 'omit' | 'same-origin' | 'include'
  },
) => Promise<ResponseLike>

/**
 * A change in the environment that the broker reacts to. `online`: the network is
 * back, so a task waiting out a reconnect delay tries at once.
 */
export type EnvSignal = 'online'

/** Subscribes to the environment's signals; returns the function that stops listening. */
export type SignalSource = (listener: (signal: EnvSignal) => void) => () => void

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
  /** Where the host hears `online` (the window's or the worker's global events). */
  signals: SignalSource
}
