/**
 * The one way to wire a broker host: a `Broker` in the given environment behind a
 * `TabHub`, which hears the environment's signals (`online`) and, where Web Locks
 * exist, learns of dead tabs through their locks. The SharedWorker, a leader tab and
 * a lone tab all start their broker here; tabs then reach it through
 * `createSessionApi(hub)`.
 */
import { Broker } from './broker.js'
import type { BrokerEnv } from './env.js'
import type { BrokerMode } from '../types.js'
import { TabHub } from './tab-hub.js'
import { lockWatcher, type LocksLike } from './tab-lock.js'

export interface BrokerHostConfig {
  env: BrokerEnv
  mode: BrokerMode
  /** Why this mode was chosen, shown in `stats().modeReason`. */
  modeReason: string
  /** The host's Web Locks, to learn when a tab is gone; null where there are none (a lone tab serves only itself). */
  locks: LocksLike | null
}

export function createBrokerHost(config: BrokerHostConfig): TabHub {
  const broker = new Broker(config.env, { mode: config.mode, modeReason: config.modeReason })
  return new TabHub(broker, config.locks ? lockWatcher(config.locks) : null)
}
