/**
 * A `BrokerLink` to a broker running in this very page: the last resort when no
 * sharing is possible (mode `per-tab`), and the broker of a leader tab.
 */
import { Broker } from '../core/broker.js'
import type { BrokerEnv } from '../core/env.js'
import { TabHub, type TabSession } from '../core/tab-hub.js'
import type { BrokerMode } from '../types.js'
import type { BrokerLink } from './link.js'

export function createLocalLink(env: BrokerEnv, mode: BrokerMode, modeReason: string): BrokerLink {
  const hub = new TabHub(new Broker(env, { mode, modeReason }), null)
  let session: TabSession | null = null
  const current = (): TabSession => {
    if (!session) throw new Error('tabcast: call hello() first')
    return session
  }
  return {
    async hello(tabId, onBatch) {
      session?.release()
      const attached = hub.attach(tabId, (batch) => {
        // Delivered on a later microtask, like a port would, so no caller is re-entered.
        queueMicrotask(() => {
          attached.ack(batch.id)
          onBatch(batch)
        })
      })
      session = attached
      return hub.hello()
    },
    subscribe: async (subId, projectId, options, seed) => current().subscribe(subId, projectId, options, seed),
    unsubscribe: async (subId) => session?.unsubscribe(subId),
    send: async (projectId, options, message) => current().send(projectId, options, message),
    stats: async () => hub.stats(),
    ping: async () => hub.broker.instanceId,
    suspend: async () => session?.suspend(),
    resume: async () => session?.resume(),
    bye: async () => {
      session?.release()
      session = null
    },
    dispose() {
      session?.release()
      session = null
      hub.broker.close()
    },
  }
}
