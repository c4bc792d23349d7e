/**
 * The API a SharedWorker exposes to each connected tab over Comlink. One object per
 * tab connection; the tab talks to it only through `src/client/port-link.ts`.
 */
import { PROTOCOL_VERSION } from '../src/protocol.js'
import type { SendResult } from '../src/core/task-channel.js'
import type { Ack, Batch, Hello, TabHub, TabSession } from '../src/core/tab-hub.js'
import type { BrokerStats, TaskOptions, TaskSnapshot } from '../src/types.js'

/** The part of `MessagePort` used here, so the same code runs on Node's ports in tests. */
export interface EventsPort {
  postMessage(message: Batch): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  start?(): void
  close(): void
}

export interface TabApi {
  hello(tabId: string, events: EventsPort, protocolVersion: number): Hello
  subscribe(subId: number, projectId: string, options: TaskOptions, seed?: TaskSnapshot): void
  unsubscribe(subId: number): void
  send(projectId: string, options: TaskOptions, message: unknown): SendResult
  stats(): BrokerStats
  /** Cheap liveness check; returns the instance id so a tab notices a restarted worker. */
  ping(): string
  suspend(): void
  resume(): void
  bye(): void
}

function isAck(data: unknown): data is Ack {
  return typeof data === 'object' && data !== null && (data as { type?: unknown }).type === 'ack' && typeof (data as { id?: unknown }).id === 'number'
}

export function createTabApi(hub: TabHub): TabApi {
  let session: TabSession | null = null
  let events: EventsPort | null = null

  const current = (): TabSession => {
    if (!session || session.isReleased) throw new Error('tabcast: call hello() before subscribing (the tab was released)')
    return session
  }

  return {
    hello(tabId, port, protocolVersion) {
      if (protocolVersion !== PROTOCOL_VERSION) {
        throw new Error(`tabcast protocol mismatch: the tab speaks version ${protocolVersion}, the worker ${PROTOCOL_VERSION}; close every tab of the old version`)
      }
      if (typeof tabId !== 'string' || tabId.length === 0 || tabId.length > 200) throw new Error('tabcast: hello() needs a tab id')
      // A repeated hello (after bfcache or a lost worker) replaces the earlier registration.
      session?.release()
      events?.close()
      events = port
      const attached = hub.attach(tabId, (batch) => port.postMessage(batch))
      session = attached
      port.addEventListener('message', (event) => {
        if (isAck(event.data)) attached.ack(event.data.id)
      })
      port.start?.()
      return hub.hello()
    },
    subscribe(subId, projectId, options, seed) {
      current().subscribe(subId, projectId, options ?? {}, seed)
    },
    unsubscribe(subId) {
      session?.unsubscribe(subId)
    },
    send(projectId, options, message) {
      return current().send(projectId, options ?? {}, message)
    },
    stats() {
      return hub.stats()
    },
    ping() {
      return hub.broker.instanceId
    },
    suspend() {
      session?.suspend()
    },
    resume() {
      session?.resume()
    },
    bye() {
      session?.release()
      session = null
      events?.close()
      events = null
    },
  }
}
