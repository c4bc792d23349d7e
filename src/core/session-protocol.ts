/**
 * The host ↔ tab protocol: everything that crosses between a tab and the broker host
 * it registered with (the SharedWorker, a leader tab, or the tab's own in-page broker).
 * Types and guards only, so both sides (and `worker/`) import it without pulling in
 * the broker.
 *
 * Two channels per tab:
 * - calls, tab → host: the `SessionApi` below, reached over Comlink, a
 *   `BroadcastChannel`, or directly in the page. Every call may fail or never settle
 *   (a dead worker): the tab puts a deadline on each.
 * - the events port, host → tab and back: the host posts `Batch`es without waiting
 *   (the tab acknowledges each with an `Ack`), and `HostRequest`s that the tab answers
 *   with a `TabReply`. The host never calls into the tab through Comlink, whose calls
 *   to a closed tab never settle; a request has a deadline on the host instead.
 */
import type { OnceEvent, OnceRegistrationState, OnceRunRequest, OnceSettled, TabPresence } from './once-coordinator.js'
import type { ServerMessage } from '../protocol.js'
import type { AuthContext, BrokerMode, BrokerStats, SubscribeOptions, TaskSnapshot } from '../types.js'
import type { SendResult } from './task-channel.js'

/** One event of a subscription, as the host posts it. */
export type WireEvent =
  | { sub: number; type: 'message'; message: ServerMessage }
  | { sub: number; type: 'snapshot'; snapshot: TaskSnapshot }

/** Host → tab: the events of one flush, in order. */
export interface Batch {
  type: 'batch'
  id: number
  instanceId: string
  events: WireEvent[]
}

/** Tab → host: batch `id` arrived. */
export interface Ack {
  type: 'ack'
  id: number
}

/** The host's answer to `hello`. */
export interface Hello {
  instanceId: string
  protocolVersion: number
  mode: BrokerMode
  modeReason: string
}

/**
 * What a host may ask a tab, by name: the request's arguments and the answer's type.
 * A new question (a fresh auth token, a run-once handler) is one entry here, one
 * handler in the tab client (`TabRequestHandlers`), and calls of
 * `TabSession.request` on the host.
 */
export interface TabRequests {
  /** Is this tab alive and answering? Answers with its tab id. */
  ping: { args: []; result: string }
  /**
   * A fresh token for the task of subscription or once-registration `subId` (the tab's
   * ids are one sequence), from the tab's `auth` function (or null: none). The tab may
   * answer from another of its subscriptions of the same task.
   */
  token: { args: [subId: number, context: AuthContext]; result: string | null }
  /**
   * Run this tab's once-handlers of a task's terminal event, now, unless the request
   * came after its `runBy` (`late`) or the tab has no such handler (`no-handler`).
   * Answered as soon as the handlers returned (a promise they return is not awaited).
   */
  runOnce: { args: [OnceRunRequest]; result: OnceRunAnswer }
  /** A task's once-effect was done (here or in another tab): drop its once-handlers. */
  onceSettled: { args: [OnceSettled]; result: true }
}

/** A tab's answer to `runOnce`. */
export type OnceRunAnswer = 'ran' | 'no-handler' | 'late'

export type TabRequestName = keyof TabRequests

/** The request names, checked on arrival (a name the tab does not know is answered with an error). */
export const TAB_REQUEST_NAMES: readonly TabRequestName[] = ['ping', 'token', 'runOnce', 'onceSettled']

/** Host → tab: a question with an id; the host gives up on it after its deadline. */
export type HostRequest = {
  [K in TabRequestName]: { type: 'request'; id: number; name: K; args: TabRequests[K]['args'] }
}[TabRequestName]

/** Tab → host: the answer to request `id`, or why there is none. */
export type TabReply = { type: 'reply'; id: number; ok: true; value: unknown } | { type: 'reply'; id: number; ok: false; error: string }

/** What the host posts on a tab's events port. */
export type HostToTab = Batch | HostRequest

/** What a tab posts back on its events port. */
export type TabToHost = Ack | TabReply

/** How a tab answers each request; a throw or a rejection goes back as the error. */
export type TabRequestHandlers = {
  [K in TabRequestName]: (...args: TabRequests[K]['args']) => TabRequests[K]['result'] | Promise<TabRequests[K]['result']>
}

/**
 * The host's end of a tab's events port: a `MessagePort` handed over in `hello`, or
 * its stand-in over a `BroadcastChannel` or in the page. Only this part is used, so the
 * same code runs on Node's ports in tests.
 */
export interface EventsPort {
  postMessage(message: HostToTab): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  start?(): void
  close(): void
}

/** The tab's end of its events port. */
export interface TabEventsPort {
  postMessage(message: TabToHost): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  start?(): void
  close?(): void
}

/**
 * Task options as they cross to the host: data only. The `auth` function stays in the
 * tab; `withAuth` says it is there, so the host asks this tab for tokens.
 */
export type WireTaskOptions = Omit<SubscribeOptions, 'auth'> & { withAuth?: boolean }

/**
 * The calls a tab makes on its host: one `SessionApi` object per tab connection,
 * made by `createSessionApi(hub)` in every host.
 */
export interface SessionApi {
  /**
   * Registers the tab; events reach it on `events` from then on. The tab need not hold
   * its tab lock yet (it says so with `locked`). A repeated hello replaces the earlier
   * registration. Throws on a protocol version other than the host's, or a missing tab
   * id. Synchronous on every host, so a tab may send its next calls (subscriptions,
   * `locked`) right behind it without waiting for the answer.
   */
  hello(tabId: string, events: EventsPort, protocolVersion: number): Hello
  /**
   * The tab now holds its tab lock (`tabLockName`): the host starts watching it, and is
   * granted it when the tab's document dies. A tab that never says so (it died first,
   * or has no Web Locks) is watched from `LOCK_REPORT_TIMEOUT` after hello instead.
   * Ignored before hello and once watching.
   */
  locked(): void
  /**
   * Idempotent per `subId`. `options.delivery` says what the tab needs of it (see
   * `Delivery`). `seed`: the last snapshot the tab saw, so a new host resumes where the
   * old one was.
   */
  subscribe(subId: number, projectId: string, options: WireTaskOptions, seed?: TaskSnapshot): void
  unsubscribe(subId: number): void
  send(projectId: string, options: WireTaskOptions, message: unknown): SendResult
  stats(): BrokerStats
  /** Cheap liveness check; returns the instance id so a tab notices a restarted host. */
  ping(): string
  /** The page went into the back/forward cache: hold its events. */
  suspend(): void
  resume(): void
  /** The tab is leaving: release it now instead of waiting for its lock. */
  bye(): void
  /**
   * Registers a once-handler of this tab (`regId`, the tab's own id for it) for a task's
   * terminal event; the host follows the task from then on. `done`: the tab knows the
   * effect was done already (a host restarted). Answers `done` when the effect was done
   * (or the task ended with the other event), so the tab can drop the handler.
   */
  registerOnce(regId: number, projectId: string, event: OnceEvent, options: WireTaskOptions, once: OnceHostOptions): OnceRegistrationState
  unregisterOnce(regId: number): void
  /** How visible this tab is, for choosing which tab runs a once-handler. */
  setPresence(presence: TabPresence): void
}

/** The data options of a once-registration that the host reads. */
export interface OnceHostOptions {
  /** How long (ms) the host waits for this tab to acknowledge a run. @default 5000 */
  ackTimeout?: number
  /** The tab already knows the effect was done. @default false */
  done?: boolean
  /** With `done`: the tab id of the tab that ran it, when the tab knows. @default undefined */
  ranIn?: string
}

export type SessionMethod = keyof SessionApi

/** The session API as a tab reaches it: every call is asynchronous and may fail. */
export type RemoteSession = {
  [K in SessionMethod]: (...args: Parameters<SessionApi[K]>) => Promise<ReturnType<SessionApi[K]>>
}

function isRecord(data: unknown): data is Record<string, unknown> {
  return typeof data === 'object' && data !== null
}

export function isBatch(data: unknown): data is Batch {
  return isRecord(data) && data.type === 'batch' && typeof data.id === 'number' && Array.isArray(data.events)
}

export function isAck(data: unknown): data is Ack {
  return isRecord(data) && data.type === 'ack' && typeof data.id === 'number'
}

export function isHostRequest(data: unknown): data is HostRequest {
  return isRecord(data) && data.type === 'request' && typeof data.id === 'number' && typeof data.name === 'string' && Array.isArray(data.args)
}

export function isTabReply(data: unknown): data is TabReply {
  return isRecord(data) && data.type === 'reply' && typeof data.id === 'number' && typeof data.ok === 'boolean'
}
