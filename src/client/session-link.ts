/**
 * The tab's side of the host ↔ tab protocol, once for every transport: a `BrokerLink`
 * over a transport's calls, plus the tab end of the events port, where batches are
 * acknowledged on arrival and the host's requests are answered.
 */
import { errorText } from '../error-text.js'
import { PROTOCOL_VERSION } from '../protocol-version.js'
import {
  isBatch,
  isHostRequest,
  TAB_REQUEST_NAMES,
  type Hello,
  type HostRequest,
  type RemoteSession,
  type TabEventsPort,
  type TabReply,
  type TabRequestHandlers,
} from '../core/session-protocol.js'
import type { BrokerLink, TabEndpoint } from './link.js'

/** How a link reaches one host: Comlink on a port, a `BroadcastChannel`, or a direct call. */
export interface SessionTransport {
  /**
   * Opens a fresh events channel, hands its tab end to `serve` (before anything can
   * arrive on it), then calls the host's `hello` with the other end.
   */
  connect(tabId: string, protocolVersion: number, serve: (events: TabEventsPort) => void): Promise<Hello>
  /** Every other call of the session API. */
  remote: Omit<RemoteSession, 'hello'>
  /** Drops what the transport holds (a worker's port, an in-page broker). */
  dispose?(): void
}

export function createSessionLink(transport: SessionTransport): BrokerLink {
  let events: TabEventsPort | null = null
  const { remote } = transport
  return {
    hello(tabId, tab) {
      events?.close?.()
      return transport.connect(tabId, PROTOCOL_VERSION, (port) => {
        events = port
        serveEvents(port, tab)
      })
    },
    locked: () => remote.locked(),
    subscribe: (subId, projectId, options, seed) => remote.subscribe(subId, projectId, options, seed),
    unsubscribe: (subId) => remote.unsubscribe(subId),
    send: (projectId, options, message) => remote.send(projectId, options, message),
    stats: () => remote.stats(),
    ping: () => remote.ping(),
    suspend: () => remote.suspend(),
    resume: () => remote.resume(),
    bye: () => remote.bye(),
    registerOnce: (regId, projectId, event, options, once) => remote.registerOnce(regId, projectId, event, options, once),
    unregisterOnce: (regId) => remote.unregisterOnce(regId),
    setPresence: (presence) => remote.setPresence(presence),
    dispose() {
      events?.close?.()
      events = null
      transport.dispose?.()
    },
  }
}

/** The tab end of an events port: acknowledge and deliver batches, answer requests. */
export function serveEvents(port: TabEventsPort, tab: TabEndpoint): void {
  port.addEventListener('message', (event) => {
    const data = event.data
    if (isBatch(data)) {
      // Acknowledge on arrival: the host only needs to know the tab is still taking events.
      port.postMessage({ type: 'ack', id: data.id })
      tab.batch(data)
    } else if (isHostRequest(data)) {
      void answer(port, data, tab.requests)
    }
  })
  port.start?.()
}

async function answer(port: TabEventsPort, request: HostRequest, handlers: TabRequestHandlers): Promise<void> {
  let reply: TabReply
  try {
    if (!TAB_REQUEST_NAMES.includes(request.name)) throw new Error(`tabcast: this tab does not know the request ${JSON.stringify(request.name)}`)
    const handler = handlers[request.name] as (...args: readonly unknown[]) => unknown
    reply = { type: 'reply', id: request.id, ok: true, value: await handler(...request.args) }
  } catch (error) {
    reply = { type: 'reply', id: request.id, ok: false, error: errorText(error) }
  }
  try {
    port.postMessage(reply)
  } catch {
    // The port closed while the handler ran; the host's deadline covers the missing answer.
  }
}
