/**
 * The connection state machine of one task, as a pure reducer.
 *
 * `reduceConnection(state, event, options)` returns the next state and the effects
 * to run (open or close a socket, arm or cancel a timer, poll, ping). The task
 * channel interprets the effects; nothing here touches a socket or a clock, so every
 * transition is tested with plain values.
 */
import { CloseCode, isFatalCloseCode } from '../protocol.js'
import type { ConnectionState, ResolvedTaskOptions } from '../types.js'
import { reconnectDelay } from './backoff.js'

export type Link =
  /**
   * A socket is opening. `attempt` 0 is the first connection, n > 0 the n-th reconnect.
   * `refreshed`: the at-once retry with a fresh token after a 4401 was used (it comes
   * back once a socket is live), so another 4401 backs off.
   */
  | { kind: 'connecting'; attempt: number; refreshed?: boolean }
  /**
   * The socket is open. `pongSeen`: the server answered a ping, or announced on
   * `connected` that it answers them, so a missing pong means a dead link.
   */
  | {
      kind: 'live'
      pongSeen: boolean
      /**
       * Open, but no message yet: the attempt it came from. A server that refuses a token
       * accepts the upgrade and closes with 4401 before sending anything, so such a close
       * is that attempt failing (no new at-once retry, the backoff keeps growing).
       */
      unproven?: { attempt: number; refreshed: boolean }
    }
  /**
   * Waiting `delay` ms before reconnect attempt `attempt`. `refreshed`: the at-once
   * retry after a 4401 was used up (it comes back once a socket is live).
   */
  | { kind: 'waiting'; attempt: number; delay: number; refreshed?: boolean }
  /** Reconnects exhausted: polling the status endpoint; `probing` while a socket retry is under way. */
  | { kind: 'polling'; probing: boolean }
  /** Not following. `reason` says why (null: not started or stopped by the client). */
  | { kind: 'closed'; reason: string | null; fatal: boolean }

export type TimerName = 'retry' | 'connectTimeout' | 'ping' | 'pongTimeout' | 'poll' | 'probe'

export type ConnectionEvent =
  | { type: 'start' }
  | { type: 'socketOpen' }
  | { type: 'socketMessage' }
  | { type: 'pong' }
  /** `connected` announced the `pong` capability: hold the server to it from the first ping. */
  | { type: 'answersPings' }
  | { type: 'socketClose'; code: number; reason: string }
  | { type: 'timer'; name: TimerName }
  /** `ms`: wait this long for the next poll instead of `pollingInterval`. */
  | { type: 'pollDone'; ms?: number }
  | { type: 'online' }
  /** The task reached `completed` or `failed`: nothing more will come. */
  | { type: 'finished' }
  /** Nobody follows the task any more. */
  | { type: 'stop' }
  /** The server refused this client for good outside a socket (a status read answered 403). */
  | { type: 'refused'; reason: string }

export type ConnectionEffect =
  /** `refresh`: the at-once retry after a 4401, for which a fresh token is asked. */
  | { type: 'openSocket'; refresh?: boolean }
  | { type: 'closeSocket'; code: number; reason: string }
  | { type: 'arm'; name: TimerName; ms: number }
  | { type: 'cancel'; name: TimerName }
  | { type: 'ping' }
  | { type: 'poll' }
  /** Read the status once while waiting to reconnect, so tabs show the task's real state meanwhile. */
  | { type: 'readStatus' }
  /** Send what `send()` queued while the socket was down. */
  | { type: 'flushQueue' }
  /** Read the status endpoint once, to fill what a reconnect may have missed. */
  | { type: 'fillGap' }

export interface Transition {
  link: Link
  effects: ConnectionEffect[]
}

export const INITIAL_LINK: Link = { kind: 'closed', reason: null, fatal: false }

const ALL_TIMERS: readonly TimerName[] = ['retry', 'connectTimeout', 'ping', 'pongTimeout', 'poll', 'probe']

function cancelAll(): ConnectionEffect[] {
  return ALL_TIMERS.map((name) => ({ type: 'cancel', name }))
}

function openAttempt(attempt: number, options: ResolvedTaskOptions, refreshed = false): Transition {
  return {
    link: refreshed ? { kind: 'connecting', attempt, refreshed } : { kind: 'connecting', attempt },
    effects: [{ type: 'openSocket' }, { type: 'arm', name: 'connectTimeout', ms: options.connectTimeout }],
  }
}

function startPolling(options: ResolvedTaskOptions): Transition {
  const effects: ConnectionEffect[] = [{ type: 'poll' }]
  if (options.socketRetryInterval > 0) effects.push({ type: 'arm', name: 'probe', ms: options.socketRetryInterval })
  return { link: { kind: 'polling', probing: false }, effects }
}

/**
 * What to do after a socket failed. `previousAttempt` is the attempt that just
 * failed (0 for the first connection or a live socket that dropped).
 */
function afterFailure(
  previousAttempt: number,
  code: number,
  reason: string,
  goingAway: boolean,
  options: ResolvedTaskOptions,
  random: () => number,
  refreshed = false,
): Transition {
  if (isFatalCloseCode(code)) {
    const why = code === CloseCode.Forbidden
      ? `forbidden: the server does not allow this client to follow the task${reason ? ` (${reason})` : ''} (close code ${code})`
      : reason ? `${reason} (close code ${code})` : `the server refused the connection (close code ${code})`
    return { link: { kind: 'closed', reason: why, fatal: true }, effects: cancelAll() }
  }
  if (code === CloseCode.Unauthenticated && !refreshed) {
    // No token, or an expired one: a fresh token usually fixes it, so the same attempt is
    // made once more at once (the channel asks for that token first). A second 4401 in a
    // row is an ordinary failure with backoff, so a token that never works cannot loop.
    return {
      link: { kind: 'connecting', attempt: previousAttempt, refreshed: true },
      effects: [{ type: 'openSocket', refresh: true }, { type: 'arm', name: 'connectTimeout', ms: options.connectTimeout }],
    }
  }
  const attempt = previousAttempt + 1
  if (!options.autoReconnect || attempt > options.maxReconnectAttempts) {
    if (options.pollingFallback) return startPolling(options)
    const why = options.autoReconnect
      ? `gave up after ${options.maxReconnectAttempts} reconnect attempts`
      : 'the connection closed and autoReconnect is off'
    return { link: { kind: 'closed', reason: why, fatal: false }, effects: cancelAll() }
  }
  // A server that says it is going away (a deploy, a restart) is best reconnected to at once.
  const delay = goingAway && previousAttempt === 0
    ? 0
    : reconnectDelay(attempt, options.reconnectBaseDelay, options.reconnectMaxDelay, options.reconnectJitter, random)
  const effects: ConnectionEffect[] = [{ type: 'arm', name: 'retry', ms: delay }]
  // A reconnect at once will fill the gap itself; a backoff step may last 30 s.
  if (delay > 0) effects.push({ type: 'readStatus' })
  return { link: refreshed ? { kind: 'waiting', attempt, delay, refreshed } : { kind: 'waiting', attempt, delay }, effects }
}

const SOCKET_TIMERS: ConnectionEffect[] = [
  { type: 'cancel', name: 'connectTimeout' },
  { type: 'cancel', name: 'ping' },
  { type: 'cancel', name: 'pongTimeout' },
]

/**
 * The reducer. `random` only feeds the optional jitter; it is a parameter so that the
 * function stays pure.
 */
export function reduceConnection(
  link: Link,
  event: ConnectionEvent,
  options: ResolvedTaskOptions,
  random: () => number = () => 0.5,
): Transition {
  const same: Transition = { link, effects: [] }
  switch (event.type) {
    case 'start':
      if (link.kind !== 'closed' || link.fatal) return same
      return openAttempt(0, options)

    case 'socketOpen': {
      if (link.kind !== 'connecting' && !(link.kind === 'polling' && link.probing)) return same
      const reconnected = link.kind === 'polling' || link.attempt > 0
      const effects: ConnectionEffect[] = [
        { type: 'cancel', name: 'connectTimeout' },
        { type: 'cancel', name: 'poll' },
        { type: 'cancel', name: 'probe' },
        { type: 'flushQueue' },
      ]
      if (options.pingInterval > 0) effects.push({ type: 'arm', name: 'ping', ms: options.pingInterval })
      if (reconnected) effects.push({ type: 'fillGap' })
      const live: Link = link.kind === 'connecting'
        ? { kind: 'live', pongSeen: false, unproven: { attempt: link.attempt, refreshed: link.refreshed === true } }
        : { kind: 'live', pongSeen: false }
      return { link: live, effects }
    }

    case 'socketMessage':
      // Any message proves the link is alive, so an outstanding pong deadline is moot.
      if (link.kind !== 'live') return same
      return { link: link.unproven ? { kind: 'live', pongSeen: link.pongSeen } : link, effects: [{ type: 'cancel', name: 'pongTimeout' }] }

    case 'pong':
    case 'answersPings':
      if (link.kind !== 'live') return same
      return { link: { kind: 'live', pongSeen: true }, effects: [{ type: 'cancel', name: 'pongTimeout' }] }

    case 'socketClose': {
      // Both say "this server is going down on purpose": another one is likely already up.
      const goingAway = event.code === CloseCode.GoingAway || event.code === CloseCode.ServiceRestart
      if (link.kind === 'live' && link.unproven && event.code === CloseCode.Unauthenticated) {
        const { attempt, refreshed } = link.unproven
        return withPrefix(SOCKET_TIMERS, afterFailure(attempt, event.code, event.reason, false, options, random, refreshed))
      }
      if (link.kind === 'live') {
        return withPrefix(SOCKET_TIMERS, afterFailure(0, event.code, event.reason, goingAway, options, random))
      }
      if (link.kind === 'connecting') {
        return withPrefix(SOCKET_TIMERS, afterFailure(link.attempt, event.code, event.reason, false, options, random, link.refreshed === true))
      }
      if (link.kind === 'polling' && link.probing) {
        if (isFatalCloseCode(event.code)) return afterFailure(0, event.code, event.reason, false, options, random)
        const effects: ConnectionEffect[] = [{ type: 'cancel', name: 'connectTimeout' }]
        if (options.socketRetryInterval > 0) effects.push({ type: 'arm', name: 'probe', ms: options.socketRetryInterval })
        return { link: { kind: 'polling', probing: false }, effects }
      }
      return same
    }

    case 'timer':
      return onTimer(link, event.name, options, random)

    case 'pollDone':
      if (link.kind !== 'polling') return same
      return { link, effects: [{ type: 'arm', name: 'poll', ms: event.ms ?? options.pollingInterval }] }

    case 'online':
      // The network is back: do not sit out the rest of a long backoff.
      if (link.kind === 'waiting') return withPrefix([{ type: 'cancel', name: 'retry' }], openAttempt(link.attempt, options, link.refreshed === true))
      if (link.kind === 'polling' && !link.probing) {
        return {
          link: { kind: 'polling', probing: true },
          effects: [{ type: 'cancel', name: 'probe' }, { type: 'openSocket' }, { type: 'arm', name: 'connectTimeout', ms: options.connectTimeout }],
        }
      }
      return same

    case 'finished':
      if (link.kind === 'closed') return same
      return {
        link: { kind: 'closed', reason: 'the task finished', fatal: false },
        effects: [...cancelAll(), { type: 'closeSocket', code: CloseCode.Normal, reason: 'task finished' }],
      }

    case 'refused':
      if (link.kind === 'closed') return same
      return {
        link: { kind: 'closed', reason: event.reason, fatal: true },
        effects: [...cancelAll(), { type: 'closeSocket', code: CloseCode.Normal, reason: 'refused' }],
      }

    case 'stop':
      if (link.kind === 'closed') return same
      return {
        link: { kind: 'closed', reason: null, fatal: false },
        effects: [...cancelAll(), { type: 'closeSocket', code: CloseCode.Normal, reason: 'no subscribers' }],
      }
  }
}

function onTimer(link: Link, name: TimerName, options: ResolvedTaskOptions, random: () => number): Transition {
  const same: Transition = { link, effects: [] }
  switch (name) {
    case 'retry':
      return link.kind === 'waiting' ? openAttempt(link.attempt, options, link.refreshed === true) : same
    case 'connectTimeout':
      if (link.kind === 'connecting') {
        return withPrefix(
          [{ type: 'closeSocket', code: CloseCode.Normal, reason: 'connect timeout' }, ...SOCKET_TIMERS],
          afterFailure(link.attempt, CloseCode.Abnormal, 'connect timeout', false, options, random, link.refreshed === true),
        )
      }
      if (link.kind === 'polling' && link.probing) {
        const effects: ConnectionEffect[] = [{ type: 'closeSocket', code: CloseCode.Normal, reason: 'connect timeout' }]
        if (options.socketRetryInterval > 0) effects.push({ type: 'arm', name: 'probe', ms: options.socketRetryInterval })
        return { link: { kind: 'polling', probing: false }, effects }
      }
      return same
    case 'ping': {
      if (link.kind !== 'live') return same
      const effects: ConnectionEffect[] = [{ type: 'ping' }, { type: 'arm', name: 'ping', ms: options.pingInterval }]
      // Only a server that has shown it answers pings can be judged by a missing pong.
      if (link.pongSeen) effects.push({ type: 'arm', name: 'pongTimeout', ms: options.pongTimeout })
      return { link, effects }
    }
    case 'pongTimeout':
      if (link.kind !== 'live') return same
      return withPrefix(
        [{ type: 'closeSocket', code: CloseCode.Normal, reason: 'no pong' }, ...SOCKET_TIMERS],
        afterFailure(0, CloseCode.Abnormal, 'no pong', false, options, random),
      )
    case 'poll':
      return link.kind === 'polling' ? { link, effects: [{ type: 'poll' }] } : same
    case 'probe':
      if (link.kind !== 'polling' || link.probing) return same
      return {
        link: { kind: 'polling', probing: true },
        effects: [{ type: 'openSocket' }, { type: 'arm', name: 'connectTimeout', ms: options.connectTimeout }],
      }
  }
}

function withPrefix(prefix: ConnectionEffect[], transition: Transition): Transition {
  return { link: transition.link, effects: [...prefix, ...transition.effects] }
}

/** The public connection state a link shows as. */
export function connectionState(link: Link): ConnectionState {
  switch (link.kind) {
    case 'connecting':
      return link.attempt === 0 ? 'connecting' : 'reconnecting'
    case 'live':
      return 'live'
    case 'waiting':
      return 'reconnecting'
    case 'polling':
      return 'polling'
    case 'closed':
      return 'closed'
  }
}

/** Reconnect attempts shown to users ("reconnecting 2/5"). */
export function attemptsOf(link: Link, options: ResolvedTaskOptions): number {
  switch (link.kind) {
    case 'connecting':
    case 'waiting':
      return link.attempt
    case 'polling':
      return options.maxReconnectAttempts
    default:
      return 0
  }
}
