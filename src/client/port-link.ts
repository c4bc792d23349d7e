/**
 * A `BrokerLink` over a MessagePort whose other end runs `createTabApi` under
 * Comlink: the port of a SharedWorker, or a `MessageChannel` port in tests.
 *
 * Calls go tab → host through Comlink; events come host → tab on a second,
 * dedicated port, posted without waiting and acknowledged batch by batch. The host
 * never calls into the tab, so a closed tab leaves no pending Comlink call behind.
 */
import * as Comlink from 'comlink'
import type { Batch } from '../core/tab-hub.js'
import { PROTOCOL_VERSION } from '../protocol-version.js'
import type { EventsPort, TabApi } from '../../worker/tab-api.js'
import type { BrokerLink } from './link.js'

export interface PortLike {
  postMessage(message: unknown, transfer?: Transferable[]): void
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void
  removeEventListener(type: 'message', listener: (event: MessageEvent) => void): void
  start?(): void
  close?(): void
}

export interface ChannelLike {
  port1: PortLike
  port2: PortLike
}

export function createPortLink(port: PortLike, createChannel: () => ChannelLike = () => new MessageChannel(), onDispose?: () => void): BrokerLink {
  // Kept for the life of the link: a collected Comlink proxy can hang its pending call (comlink#692).
  const remote = Comlink.wrap<TabApi>(port as unknown as Comlink.Endpoint)
  let events: PortLike | null = null

  return {
    async hello(tabId, onBatch) {
      events?.close?.()
      const channel = createChannel()
      const local = channel.port1
      events = local
      local.addEventListener('message', (event: MessageEvent) => {
        const batch = event.data as Batch
        if (batch?.type !== 'batch') return
        // Acknowledge on arrival: the host only needs to know the tab is still taking events.
        local.postMessage({ type: 'ack', id: batch.id })
        onBatch(batch)
      })
      local.start?.()
      const transferred = Comlink.transfer(channel.port2, [channel.port2 as unknown as Transferable]) as unknown as EventsPort
      return remote.hello(tabId, transferred, PROTOCOL_VERSION)
    },
    subscribe: (subId, projectId, options, seed) => remote.subscribe(subId, projectId, options, seed),
    unsubscribe: (subId) => remote.unsubscribe(subId),
    send: (projectId, options, message) => remote.send(projectId, options, message),
    stats: () => remote.stats(),
    ping: () => remote.ping(),
    suspend: () => remote.suspend(),
    resume: () => remote.resume(),
    bye: () => remote.bye(),
    dispose() {
      events?.close?.()
      events = null
      onDispose?.()
    },
  }
}
