/**
 * The SharedWorker entry: one broker for every tab of this origin. Each tab that
 * connects gets its own Comlink-exposed session API on its port.
 *
 * The `connect` listener is registered synchronously at the top level, before
 * anything asynchronous, or tabs that connect early would hang (comlink#463). No
 * top-level `await`: a consumer's Vite may bundle this file as an iife.
 */
import { globalEnv } from '../src/global-env.js'
import { startSharedWorkerHost, type SharedWorkerScope } from './shared-worker-host.js'

// `online` reaches the hub through `globalEnv().signals`, like in every other host.
startSharedWorkerHost(globalThis as unknown as SharedWorkerScope, globalEnv())
