/**
 * The SharedWorker as a broker host, apart from the worker entry so that tests can
 * start it on a fake scope: one hub for every tab of this origin, and one
 * `createSessionApi(hub)` exposed with Comlink on each connecting tab's port.
 */
import * as Comlink from 'comlink'
import { createBrokerHost } from '../src/core/broker-host.js'
import type { BrokerEnv } from '../src/core/env.js'
import { createSessionApi } from '../src/core/session-api.js'
import type { TabHub } from '../src/core/tab-hub.js'
import type { LocksLike } from '../src/core/tab-lock.js'

/** The part of a `SharedWorkerGlobalScope` used here. */
export interface SharedWorkerScope {
  addEventListener(type: 'connect', listener: (event: { ports: readonly MessagePort[] }) => void): void
  navigator?: { locks?: LocksLike }
}

/** Registers the `connect` listener synchronously, before returning (comlink#463). */
export function startSharedWorkerHost(scope: SharedWorkerScope, env: BrokerEnv): TabHub {
  // The lock of a tab is granted to the worker exactly when that tab's document is gone.
  const hub = createBrokerHost({ env, mode: 'shared-worker', modeReason: 'SharedWorker available', locks: scope.navigator?.locks ?? null })
  scope.addEventListener('connect', (event) => {
    const port = event.ports[0]
    if (port) Comlink.expose(createSessionApi(hub), port)
  })
  return hub
}
