/**
 * A tab's Comlink link to a SharedWorker host, over real `MessageChannel`s in this
 * process: `connect` hands the host its end, as the worker's `connect` event would.
 */
import type { BrokerLink } from '../../src/client/link.js'
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
