/**
 * A transport to a broker host in this very page: the per-tab broker, and the leader
 * tab's own registration with the broker it runs. Calls are direct; the events port is
 * a pair of in-page ends that deliver on a later microtask, like a real port, so no
 * caller is re-entered.
 */
import { createSessionApi } from '../core/session-api.js'
import type { EventsPort, SessionApi, TabEventsPort } from '../core/session-protocol.js'
import type { TabHub } from '../core/tab-hub.js'
import type { SessionTransport } from './session-link.js'

type Listener = (event: { data: unknown }) => void

class LoopbackEnd {
  peer: LoopbackEnd | null = null
  closed = false
  private readonly listeners: Listener[] = []

  postMessage(message: unknown): void {
    const peer = this.peer
    if (this.closed || !peer) return
    queueMicrotask(() => {
      if (!this.closed && !peer.closed) for (const listener of peer.listeners) listener({ data: message })
    })
  }

  addEventListener(_type: 'message', listener: Listener): void {
    this.listeners.push(listener)
  }

  close(): void {
    this.closed = true
  }
}

/** Two connected in-page port ends: the host's and the tab's. */
export function loopbackPorts(): { host: EventsPort; tab: TabEventsPort } {
  const host = new LoopbackEnd()
  const tab = new LoopbackEnd()
  host.peer = tab
  tab.peer = host
  return { host, tab }
}

/** Runs a call now and returns its outcome as a promise, like a remote call would. */
function settle<T>(call: () => T): Promise<T> {
  return new Promise<T>((resolve) => resolve(call()))
}

/** A transport to `hub` in this page, through the same `createSessionApi` every host uses. */
export function inPageTransport(hub: TabHub, onDispose?: () => void): SessionTransport {
  const api: SessionApi = createSessionApi(hub)
  return {
    connect(tabId, protocolVersion, serve) {
      const ports = loopbackPorts()
      serve(ports.tab)
      return settle(() => api.hello(tabId, ports.host, protocolVersion))
    },
    remote: {
      locked: () => settle(() => api.locked()),
      subscribe: (subId, projectId, options, seed) => settle(() => api.subscribe(subId, projectId, options, seed)),
      unsubscribe: (subId) => settle(() => api.unsubscribe(subId)),
      send: (projectId, options, message) => settle(() => api.send(projectId, options, message)),
      stats: () => settle(() => api.stats()),
      ping: () => settle(() => api.ping()),
      suspend: () => settle(() => api.suspend()),
      resume: () => settle(() => api.resume()),
      bye: () => settle(() => api.bye()),
      registerOnce: (regId, projectId, event, options, once) => settle(() => api.registerOnce(regId, projectId, event, options, once)),
      unregisterOnce: (regId) => settle(() => api.unregisterOnce(regId)),
      setPresence: (presence) => settle(() => api.setPresence(presence)),
    },
    dispose() {
      api.bye()
      onDispose?.()
    },
  }
}
