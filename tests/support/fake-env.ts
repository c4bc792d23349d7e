/** A `BrokerEnv` made of the fakes, for tests of the broker core. */
import type { BrokerEnv } from '../../src/core/env.js'
import { FakeClock } from './fake-clock.js'
import { FakeFetch } from './fake-fetch.js'
import { FakeSockets } from './fake-socket.js'

export interface FakeEnv {
  env: BrokerEnv
  clock: FakeClock
  sockets: FakeSockets
  http: FakeFetch
}

export function fakeEnv({ secure = false, random = () => 0.5 }: { secure?: boolean; random?: () => number } = {}): FakeEnv {
  const clock = new FakeClock()
  const sockets = new FakeSockets()
  const http = new FakeFetch()
  return { clock, sockets, http, env: { clock, createSocket: sockets.create, fetch: http.fetch, random, secure } }
}
