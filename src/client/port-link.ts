/**
 * A `BrokerLink` over a MessagePort whose other end exposes `createSessionApi(hub)`
 * under Comlink: the port of a SharedWorker, or a `MessageChannel` port in tests.
 *
 * Calls go tab → host through Comlink; events come host → tab on a second,
 * dedicated port handed over in `hello`, posted without waiting and acknowledged
 * batch by batch, and the host's requests travel on that port too. The host never
 * calls into the tab through Comlink, so a closed tab leaves no pending call behind.
 */
import * as Comlink from 'comlink'
import type { EventsPort, RemoteSession, SessionApi, TabEventsPort } from '../core/session-protocol.js'
import type { BrokerLink } from './link.js'
import { createSessionLink } from './session-link.js'

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
  const remote = Comlink.wrap<SessionApi>(port as unknown as Comlink.Endpoint) as unknown as RemoteSession
  return createSessionLink({
    connect(tabId, protocolVersion, serve) {
      const channel = createChannel()
      serve(channel.port1 as TabEventsPort)
      const hostEnd = Comlink.transfer(channel.port2, [channel.port2 as unknown as Transferable]) as unknown as EventsPort
      return remote.hello(tabId, hostEnd, protocolVersion)
    },
    remote,
    ...(onDispose ? { dispose: onDispose } : {}),
  })
}
