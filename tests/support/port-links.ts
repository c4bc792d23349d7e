/**
 * A tab's Comlink link to a SharedWorker host, over real `MessageChannel`s in this
 * process: `connect` hands the host its end, as the worker's `connect` event would.
 * And the tab client the host tests put on such a link (or any other).
 */
import type { BrokerLink } from '../../src/client/link.js'
import { TabClient, type TabClientConfig } from '../../src/client/tab-client.js'
import { createPortLink, type ChannelLike } from '../../src/client/port-link.js'

/** Opens a link; every port it creates (the tab's and each call's) is closed by `closers`. */
export function openPortLink(connect: (port: MessagePort) => void, closers: (() => void)[]): BrokerLink {
  const { port1, port2 } = new MessageChannel()
  connect(port1)
  const channels: ChannelLike[] = []
  closers.push(() => {
    port1.close()
    port2.close()
    for (const channel of channels) {
      channel.port1.close?.()
      channel.port2.close?.()
    }
  })
  return createPortLink(port2, () => {
    const channel = new MessageChannel()
    channels.push(channel)
    return channel
  })
}

/**
 * A tab client on one link, with real timers, frames as `setImmediate` and no health
 * checks: what the host tests run their tabs with. `extra` adds or overrides config.
 */
export function tabOnLink(link: BrokerLink, tabId = 'tab-1', extra: Partial<TabClientConfig> = {}): TabClient {
  return new TabClient({
    links: [() => link],
    tabId,
    scheduleFrame: (callback) => setImmediate(callback),
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    healthInterval: 0,
    ...extra,
  })
}
