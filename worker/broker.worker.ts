/**
 * The SharedWorker entry: one broker for every tab of this origin. Each tab that
 * connects gets its own Comlink-exposed API object on its port.
 *
 * The `connect` listener is registered synchronously at the top level, before
 * anything asynchronous, or tabs that connect early would hang (comlink#463). No
 * top-level `await`: a consumer's Vite may bundle this file as an iife.
 */
import * as Comlink from 'comlink'
import { Broker } from '../src/core/broker.js'
import { globalEnv } from '../src/core/env.js'
import { TabHub, tabLockName, type TabWatcher } from '../src/core/tab-hub.js'
import { createTabApi } from './tab-api.js'

interface LockManagerLike {
  request(name: string, callback: () => unknown): Promise<unknown>
}

interface SharedWorkerScope {
  addEventListener(type: 'connect', listener: (event: { ports: readonly MessagePort[] }) => void): void
  addEventListener(type: 'online', listener: () => void): void
  navigator?: { locks?: LockManagerLike }
}

const scope = globalThis as unknown as SharedWorkerScope

const locks = scope.navigator?.locks
// The lock of a tab is granted to the worker exactly when that tab's document is gone.
const watchTab: TabWatcher | null = locks
  ? (tabId, onGone) => {
      void locks.request(tabLockName(tabId), () => onGone())
    }
  : null

const hub = new TabHub(new Broker(globalEnv(), { mode: 'shared-worker', modeReason: 'SharedWorker available' }), watchTab)

scope.addEventListener('connect', (event) => {
  const port = event.ports[0]
  if (port) Comlink.expose(createTabApi(hub), port)
})

scope.addEventListener('online', () => hub.broker.online())
