/**
 * The session API: what one tab may call on its broker host. Every host (the
 * SharedWorker, a leader tab serving its followers and itself, a lone tab) gives each
 * tab connection its own `createSessionApi(hub)`, so the guards and the lifecycle of a
 * registration are the same everywhere; only the transport differs (Comlink on a
 * port, a `BroadcastChannel`, a direct call).
 */
import { PROTOCOL_VERSION } from '../protocol.js'
import { isOnceEvent } from './once-coordinator.js'
import { isAck, isTabReply, type EventsPort, type SessionApi, type SessionMethod } from './session-protocol.js'
import type { TabHub, TabSession } from './tab-hub.js'

/** Longest tab id a host accepts (ours are UUIDs). */
export const MAX_TAB_ID_LENGTH = 200

/** Every method of `SessionApi`, for transports that dispatch by name (the leader's bus). */
export const SESSION_METHODS = [
  'hello',
  'locked',
  'subscribe',
  'unsubscribe',
  'send',
  'stats',
  'ping',
  'suspend',
  'resume',
  'bye',
  'registerOnce',
  'unregisterOnce',
  'setPresence',
] as const satisfies readonly SessionMethod[]

// Fails to compile when a method of SessionApi is missing from SESSION_METHODS.
type Missing = Exclude<SessionMethod, (typeof SESSION_METHODS)[number]>
const complete: [Missing] extends [never] ? true : Missing = true
void complete

export function isSessionMethod(name: unknown): name is SessionMethod {
  return (SESSION_METHODS as readonly unknown[]).includes(name)
}

function checkSubId(subId: unknown): void {
  if (typeof subId !== 'number' || !Number.isSafeInteger(subId)) throw new Error(`tabcast: a subscription id must be an integer, got ${String(subId)}`)
}

export function createSessionApi(hub: TabHub): SessionApi {
  let session: TabSession | null = null
  let events: EventsPort | null = null

  const current = (): TabSession => {
    if (!session || session.isReleased) throw new Error('tabcast: call hello() before subscribing (the tab was released)')
    return session
  }

  const release = (): void => {
    session?.release()
    session = null
    events?.close()
    events = null
  }

  return {
    hello(tabId, port, protocolVersion) {
      // Tabs of another release may meet this host during a deploy (a content-hashed
      // worker URL differs, a leader tab may be older): refuse rather than misread them.
      if (protocolVersion !== PROTOCOL_VERSION) {
        throw new Error(`tabcast protocol mismatch: the tab speaks version ${protocolVersion}, the host ${PROTOCOL_VERSION}; close every tab of the old version`)
      }
      if (typeof tabId !== 'string' || tabId.length === 0 || tabId.length > MAX_TAB_ID_LENGTH) throw new Error('tabcast: hello() needs a tab id')
      // A repeated hello (after bfcache or a lost host) replaces the earlier registration.
      release()
      events = port
      const attached = hub.attach(tabId, (message) => port.postMessage(message))
      session = attached
      port.addEventListener('message', (event) => {
        if (isAck(event.data) || isTabReply(event.data)) attached.receive(event.data)
      })
      port.start?.()
      return hub.hello()
    },
    locked() {
      if (session && !session.isReleased) hub.lockHeld(session)
    },
    subscribe(subId, projectId, options, seed) {
      checkSubId(subId)
      if (typeof projectId !== 'string') throw new Error('tabcast: subscribe() needs a task id')
      current().subscribe(subId, projectId, options ?? {}, seed ?? undefined)
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
      release()
    },
    registerOnce(regId, projectId, event, options, once) {
      checkSubId(regId)
      if (typeof projectId !== 'string') throw new Error('tabcast: once() needs a task id')
      if (!isOnceEvent(event)) throw new Error(`tabcast: once() follows 'completed' or 'failed', got ${JSON.stringify(event)}`)
      const ranIn: unknown = once?.ranIn
      if (ranIn !== undefined && (typeof ranIn !== 'string' || ranIn.length > MAX_TAB_ID_LENGTH)) throw new Error('tabcast: once() ranIn must be a tab id')
      return hub.once.register(current(), regId, projectId, event, options ?? {}, once ?? {})
    },
    unregisterOnce(regId) {
      if (session) hub.once.unregister(session, regId)
    },
    setPresence(presence) {
      hub.once.setPresence(current(), { visible: presence?.visible === true, focused: presence?.focused === true })
    },
  }
}

/** Runs a call by name, for transports that carry calls as data; one place for the one cast it needs. */
export function invokeSession(api: SessionApi, method: SessionMethod, args: readonly unknown[]): unknown {
  return (api[method] as (...args: unknown[]) => unknown).apply(api, [...args])
}
