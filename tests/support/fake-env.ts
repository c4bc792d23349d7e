/** A `BrokerEnv` made of the fakes, for tests of the broker core. */
import type { BrokerEnv, EnvSignal } from '../../src/core/env.js'
import { FakeClock } from './fake-clock.js'
import { FakeFetch } from './fake-fetch.js'
import { FakeSockets } from './fake-socket.js'

export interface FakeEnv {
  env: BrokerEnv
  clock: FakeClock
  sockets: FakeSockets
  http: FakeFetch
  /** Fires an environment signal (`online`), as the window or worker scope would. */
  signal(signal: EnvSignal): void
  /** Listeners currently subscribed to the environment's signals. */
  readonly signalListeners: number
}

export function fakeEnv({ secure = false, random = () => 0.5 }: { secure?: boolean; random?: () => number } = {}): FakeEnv {
  const clock = new FakeClock()
  const sockets = new FakeSockets()
  const http = new FakeFetch()
  const listeners = new Set<(signal: EnvSignal) => void>()
  const signals: BrokerEnv['signals'] = (listener) => {
    // Wrapped, so one listener subscribed twice counts twice, as with addEventListener of two closures.
    const entry = (signal: EnvSignal): void => listener(signal)
    listeners.add(entry)
    return () => listeners.delete(entry)
  }
  return {
    clock,
    sockets,
    http,
    env: { clock, createSocket: sockets.create, fetch: http.fetch, random, secure, signals },
    signal: (signal) => {
      for (const listener of [...listeners]) listener(signal)
    },
    get signalListeners() {
      return listeners.size
    },
  }
}
