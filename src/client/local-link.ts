/**
 * A `BrokerLink` to a broker running in this very page: the last resort when no
 * sharing is possible (mode `per-tab`).
 */
import { createBrokerHost } from '../core/broker-host.js'
import type { BrokerEnv } from '../core/env.js'
import type { BrokerMode } from '../types.js'
import { inPageTransport } from './in-page.js'
import type { BrokerLink } from './link.js'
import { createSessionLink } from './session-link.js'

export function createLocalLink(env: BrokerEnv, mode: BrokerMode, modeReason: string): BrokerLink {
  // A lone tab serves only itself, so no lock watcher: the page and its broker die together.
  const hub = createBrokerHost({ env, mode, modeReason, locks: null })
  return createSessionLink(inPageTransport(hub, () => hub.close()))
}
