/**
 * The one place where the broker core's environment is read from globals, kept out of
 * src/core, which only ever gets it injected. The SharedWorker entry and the in-page
 * fallbacks call it.
 */
import type { BrokerEnv, FetchLike, SocketLike } from './core/env.js'

/** The real environment of a browser page or worker (or Node 22+, which has WebSocket). */
export function globalEnv(): BrokerEnv {
  const g = globalThis as unknown as {
    WebSocket: new (url: string, protocols?: string[]) => SocketLike
    fetch: FetchLike
    location?: { protocol?: string; origin?: string }
    addEventListener?: (type: 'online', listener: () => void) => void
    removeEventListener?: (type: 'online', listener: () => void) => void
  }
  return {
    // Never capture the global functions themselves: tests and polyfills may replace them later.
    clock: {
      now: () => Date.now(),
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    },
    createSocket: (url, protocols) => (protocols ? new g.WebSocket(url, protocols) : new g.WebSocket(url)),
    fetch: (url, init) => g.fetch(url, init),
    random: () => Math.random(),
    secure: g.location?.protocol === 'https:',
    origin: g.location?.origin ?? null,
    // A window and a worker scope both fire `online` on their global object.
    signals: (listener) => {
      const onOnline = (): void => listener('online')
      g.addEventListener?.('online', onOnline)
      return () => g.removeEventListener?.('online', onOnline)
    },
  }
}
