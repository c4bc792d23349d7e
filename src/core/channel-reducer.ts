/**
 * Every decision of one task's channel, as a pure reducer: the connection state machine
 * (`reduceConnection`), the task state (`applyMessage` / `applyStatus`), when to read
 * the status (gap fills, new epochs, backoff steps, polls), what a close or a failed
 * read means for `connectionError`, and when a running task is stalled.
 *
 * `reduceChannel(state, input, context)` returns the next state and the effects for
 * `TaskChannel` to run (open or close a socket, arm a timer, read the status, deliver
 * a message). Nothing here touches a socket, a clock or `fetch`.
 */
import { CloseCode, hasCapability, type ServerMessage, type StatusResponse } from '../protocol.js'
import type { ResolvedTaskOptions, TaskSnapshot } from '../types.js'
import { INITIAL_LINK, reduceConnection, type ConnectionEffect, type ConnectionEvent, type Link, type TimerName } from './connection.js'
import {
  INITIAL_TASK,
  applyMessage,
  applyStatus,
  isFinished,
  staleDeadline,
  withConnectionError,
  withFatalError,
  withStaleness,
  type TaskState,
} from './task-state.js'

/**
 * Why the status is read: the polling fallback, a backoff step, once after a reconnect
 * to fill a gap, or once when the server's numbering restarted (a new epoch).
 */
export type ReadPurpose = 'poll' | 'backoff' | 'gap' | 'epoch'

export type ChannelTimer = TimerName | 'stale'

export interface ChannelState {
  link: Link
  task: TaskState
  /** Read the status once the new socket's first message shows whether the server replays. */
  gapDue: boolean
  /** Started from a tab's snapshot: the first socket that opens fills the gap. */
  seeded: boolean
  /** The latest socket failed before it opened (refused upgrade, unreachable host). */
  refusedBeforeOpen: boolean
  /** When the latest poll or backoff read started: they are spaced by `pollingInterval`. */
  lastReadAt: number | null
  /** When the armed stale timer falls due, or null when none is armed. */
  staleDue: number | null
  /**
   * While the socket fails before opening and status reads fail at the network level:
   * whether the backend answers a no-cors request (up, but refusing this page) or not
   * (down). Null when not known.
   */
  reachable: boolean | null
  /** A reachability probe is under way. */
  probing: boolean
  /** The latest status read's network-level failure, explained again once a probe answers. */
  networkProblem: string | null
  /** Polls in a row refused although a fresh token was sent: each doubles the wait before the next. */
  refusedPolls: number
}

export const INITIAL_CHANNEL: ChannelState = Object.freeze({
  link: INITIAL_LINK,
  task: INITIAL_TASK,
  gapDue: false,
  seeded: false,
  refusedBeforeOpen: false,
  lastReadAt: null,
  staleDue: null,
  reachable: null,
  probing: false,
  networkProblem: null,
  refusedPolls: 0,
})

/**
 * The state of a channel that a new host (a new leader, a restarted worker) starts from
 * what the tabs last saw: the stream resumes after `seed.seq`, progress cannot go back
 * below it within `seed.epoch` (a server that names another epoch on connect starts a
 * new one), and the first open reads the status to fill the gap.
 */
export function seededChannel(projectId: string, seed: TaskSnapshot | undefined): ChannelState {
  if (!seed || seed.projectId !== projectId || (seed.status === 'idle' && seed.seq === null)) return INITIAL_CHANNEL
  return {
    ...INITIAL_CHANNEL,
    seeded: true,
    task: {
      ...INITIAL_TASK,
      status: seed.status,
      progress: seed.progress,
      message: seed.message,
      taskName: seed.taskName,
      result: seed.result,
      error: seed.error,
      details: seed.details,
      seq: seed.seq,
      epoch: seed.epoch,
      lastMessageAt: seed.lastMessageAt,
      lastUpdateAt: seed.stalledSince ?? seed.lastMessageAt,
      stalledSince: seed.stalledSince,
    },
  }
}

export type ReadResult =
  | { ok: true; status: StatusResponse }
  /**
   * `network`: the request itself failed (no HTTP answer the page may read), as CORS
   * refusals do. `forbidden`: a read that carried a token got 403, which is fatal.
   * `httpStatus`: the answer's status, when there was one.
   */
  | { ok: false; problem: string; network: boolean; forbidden?: boolean; httpStatus?: number; unauthenticated?: boolean }

/**
 * The longest wait between polls whose reads are refused even with a fresh token (an
 * expired session): they back off up to this, so an app's token endpoint is not asked
 * twice per `pollingInterval` for as long as the tab stays open.
 */
export const REFUSED_POLL_MAX_DELAY = 60_000

export type ChannelInput =
  | Exclude<ConnectionEvent, { type: 'pong' } | { type: 'socketMessage' } | { type: 'answersPings' } | { type: 'timer' }>
  | { type: 'timer'; name: ChannelTimer }
  | { type: 'received'; message: ServerMessage }
  /** A frame that failed validation; `error` names the problem. */
  | { type: 'badMessage'; error: string }
  /** The WebSocket constructor threw (bad URL, a blocked port). */
  | { type: 'socketUnavailable'; error: string }
  /** No tab gave a usable token for a connect: a failed attempt (with backoff), named. */
  | { type: 'tokenUnavailable'; error: string }
  | { type: 'statusRead'; purpose: ReadPurpose; result: ReadResult }
  /** The answer to a `probe` effect: whether the backend answered at all. */
  | { type: 'probed'; reachable: boolean }
  | { type: 'sendFailed'; error: string }

export type ChannelEffect =
  | Exclude<ConnectionEffect, { type: 'poll' } | { type: 'readStatus' } | { type: 'fillGap' } | { type: 'arm' } | { type: 'cancel' }>
  | { type: 'arm'; name: ChannelTimer; ms: number }
  | { type: 'cancel'; name: ChannelTimer }
  | { type: 'readStatus'; purpose: ReadPurpose }
  /** Tell every subscriber about a server message (or one equivalent to a status change). */
  | { type: 'deliver'; message: ServerMessage }
  /** Ask the status endpoint in `no-cors` mode whether the backend answers at all. */
  | { type: 'probe' }

export interface ChannelContext {
  options: ResolvedTaskOptions
  now: number
  random: () => number
  /** The page's origin, when known. */
  pageOrigin: string | null
  /** The backend's origin (`http(s)://host:port`). */
  backendOrigin: string
}

export interface ChannelTransition {
  state: ChannelState
  effects: ChannelEffect[]
}

/** The reducer. */
export function reduceChannel(state: ChannelState, input: ChannelInput, context: ChannelContext): ChannelTransition {
  const step = new Step(state, context)
  switch (input.type) {
    case 'received':
      step.receive(input.message)
      break
    case 'badMessage':
      step.s.task = withConnectionError(step.s.task, `ignored a bad message from the server: ${input.error}`)
      step.connection({ type: 'socketMessage' })
      break
    case 'socketUnavailable':
      step.s.task = withConnectionError(step.s.task, input.error)
      step.socketClosed(CloseCode.Abnormal, 'socket could not be created', false)
      break
    case 'socketClose':
      step.socketClosed(input.code, input.reason, true)
      break
    case 'tokenUnavailable':
      // Not a refused socket (no origin diagnosis): the app's auth function could not answer.
      step.s.task = withConnectionError(step.s.task, input.error)
      step.connection({ type: 'socketClose', code: CloseCode.Abnormal, reason: 'no token' })
      break
    case 'socketOpen':
      step.s.refusedBeforeOpen = false
      step.s.reachable = null
      step.s.networkProblem = null
      step.connection(input)
      break
    case 'statusRead':
      step.statusRead(input.purpose, input.result)
      break
    case 'probed':
      step.s.probing = false
      step.s.reachable = input.reachable
      if (step.s.networkProblem !== null) step.s.task = withConnectionError(step.s.task, step.explain(step.s.networkProblem))
      break
    case 'stop':
      // Its requests, the probe included, are dropped with it.
      step.s.probing = false
      step.connection(input)
      break
    case 'sendFailed':
      step.s.task = withConnectionError(step.s.task, `sending failed: ${input.error}`)
      break
    case 'timer':
      if (input.name === 'stale') step.s.staleDue = null
      else if (input.name === 'pongTimeout' && state.link.kind === 'live') {
        step.s.task = withConnectionError(step.s.task, `no pong within ${context.options.pongTimeout} ms of a ping: replacing the connection`)
        step.connection({ type: 'timer', name: input.name })
      } else step.connection({ type: 'timer', name: input.name })
      break
    default:
      step.connection(input)
  }
  return step.finish()
}

/** One reduction in progress: the fields it changes, and the effects it collects in order. */
class Step {
  /** A copy of the state before, changed in place while the reduction runs. */
  readonly s: ChannelState
  readonly effects: ChannelEffect[] = []
  private readonly reads = new Set<ReadPurpose>()

  constructor(
    private readonly before: ChannelState,
    private readonly context: ChannelContext,
  ) {
    this.s = { ...before }
  }

  receive(message: ServerMessage): void {
    const applied = applyMessage(this.s.task, message, this.context.now)
    this.s.task = applied.task
    if (applied.newEpoch) {
      // The server's numbering restarted, so its replay cannot be trusted to cover what
      // happened; its status is the truth (and answers a gap fill as well).
      this.s.gapDue = false
      this.read('epoch')
    } else if (this.s.gapDue) {
      this.s.gapDue = false
      // A server that announces `last_seq` replays everything after `?since=` on this socket.
      // Reading the status as well could overtake that replay (a slow store) and make its
      // steps look like duplicates that `onMessage` never hears; only other servers need it.
      if (message.type !== 'connected' || message.last_seq === undefined) this.read('gap')
    }
    if (applied.deliver) this.effects.push({ type: 'deliver', message })
    this.connection({ type: message.type === 'pong' ? 'pong' : 'socketMessage' })
    if (hasCapability(message, 'pong')) this.connection({ type: 'answersPings' })
    if (isFinished(this.s.task)) this.connection({ type: 'finished' })
  }

  socketClosed(code: number, reason: string, nameIt: boolean): void {
    const link = this.s.link
    if (link.kind === 'connecting' || (link.kind === 'polling' && link.probing)) this.s.refusedBeforeOpen = true
    // Normal and going-away closes are orderly; anything else is worth naming.
    if (nameIt && code === CloseCode.Unauthenticated) {
      this.s.task = withConnectionError(
        this.s.task,
        `unauthenticated: the server refused the token or wants one (close code 4401${reason ? `: ${reason}` : ''}); asking for a fresh token`,
      )
    } else if (nameIt && code !== CloseCode.Normal && code !== CloseCode.GoingAway) {
      this.s.task = withConnectionError(this.s.task, `WebSocket closed (code ${code}${reason ? `: ${reason}` : ''})`)
    }
    this.connection({ type: 'socketClose', code, reason })
  }

  statusRead(purpose: ReadPurpose, result: ReadResult): void {
    // A backoff read that answers after the socket came back is older than what the socket
    // says: only an end it reports still counts (an end is never lost).
    const late = purpose === 'backoff' && this.s.link.kind === 'live'
    if (!result.ok && result.forbidden) {
      // As fatal as a 4403 close: this identity may not follow the task; retrying cannot help.
      this.connection({ type: 'refused', reason: result.problem })
      return
    }
    if (result.ok && late && result.status.status === 'running') {
      // Ignored.
    } else if (result.ok) {
      this.s.reachable = null
      this.s.networkProblem = null
      this.s.refusedPolls = 0
      const { task, messages } = applyStatus(this.s.task, result.status, this.context.now, { advanceSeq: purpose !== 'backoff' })
      this.s.task = task
      for (const message of messages) {
        // A backoff read keeps the seq, so that the stream replays what was missed once it
        // is back; the replay brings this step too, as the server sent it. Delivering the
        // read's copy as well would hand `onMessage` the step twice: the bar shows it at
        // once (the snapshot), `onMessage` hears it from the replay. An end is delivered
        // at once: after it the channel closes and nothing is replayed.
        if (purpose === 'backoff' && message.type === 'progress') continue
        this.effects.push({ type: 'deliver', message })
      }
      if (isFinished(this.s.task)) this.connection({ type: 'finished' })
    } else if (purpose !== 'gap' && !late && !isFinished(this.s.task)) {
      // A failed gap fill is not worth alarming anyone: the stream itself is live again, and a
      // guide-only backend may have no status endpoint at all. A failed poll or backoff read
      // is all the user has to go on, so it is named, with the likely cause when there is one.
      const suspicious = result.network && this.s.refusedBeforeOpen && this.crossOrigin()
      this.s.networkProblem = suspicious ? result.problem : null
      // After a restart that lost the task's history, a 404 says the job may be gone with it.
      const problem = purpose === 'epoch' ? `the server's numbering restarted (a new epoch); ${result.problem}` : result.problem
      this.s.task = withConnectionError(this.s.task, suspicious ? this.explain(problem) : problem)
      // Up but refusing does not heal by itself; down may: ask again until it answers.
      if (suspicious && this.s.reachable !== true && !this.s.probing) {
        this.s.probing = true
        this.effects.push({ type: 'probe' })
      }
    }
    if (purpose !== 'poll') return
    if (!result.ok && result.unauthenticated === true) this.s.refusedPolls++
    const { pollingInterval } = this.context.options
    const refused = this.s.refusedPolls
    this.connection(refused === 0 ? { type: 'pollDone' } : { type: 'pollDone', ms: Math.max(pollingInterval, Math.min(pollingInterval * 2 ** refused, REFUSED_POLL_MAX_DELAY)) })
  }

  private crossOrigin(): boolean {
    const { pageOrigin, backendOrigin } = this.context
    return pageOrigin !== null && pageOrigin !== backendOrigin
  }

  /**
   * A socket that never opens plus status reads that fail before any HTTP answer, from a
   * page on another origin than the backend: the browser hides the 403 of a refused
   * Origin and the missing CORS headers alike (a backend's 404 for a wrong path prefix
   * often has none either), and a backend that is down looks the same.
   * A `no-cors` probe tells them apart (it gets an opaque answer from any server that is up).
   */
  explain(problem: string): string {
    const { pageOrigin, backendOrigin } = this.context
    const page = pageOrigin ?? 'this page'
    if (this.s.reachable === true) {
      return (
        `${problem}. ${backendOrigin} is up but refuses this page: its Origin allow-list or CORS ` +
        `does not allow this page's origin ${page}, or it serves nothing at this path (check the path in backendUrl); ` +
        `the WebSocket fails before opening too`
      )
    }
    if (this.s.reachable === false) {
      return `${problem}. ${backendOrigin} does not answer at all (the WebSocket fails before opening too): it is down or unreachable from ${page}`
    }
    return (
      `${problem}. The WebSocket to ${backendOrigin} also fails before opening: the backend is down, ` +
      `its Origin allow-list or CORS does not allow this page's origin ${page}, or it serves nothing at this path`
    )
  }

  connection(event: ConnectionEvent): void {
    const before = this.s.link
    const { link, effects } = reduceConnection(this.s.link, event, this.context.options, this.context.random)
    this.s.link = link
    for (const effect of effects) {
      switch (effect.type) {
        case 'poll':
          this.read('poll')
          break
        case 'readStatus':
          this.read('backoff')
          break
        case 'fillGap':
          this.s.gapDue = true
          break
        case 'openSocket':
          // The new socket's own open decides whether it has a gap to fill.
          this.s.gapDue = false
          this.effects.push(effect)
          break
        default:
          this.effects.push(effect)
      }
    }
    if (this.s.seeded && link.kind === 'live') {
      this.s.seeded = false
      this.s.gapDue = true
    }
    if (link !== before && link.kind === 'closed' && link.reason !== null && !isFinished(this.s.task)) {
      this.s.task = link.fatal ? withFatalError(this.s.task, link.reason) : withConnectionError(this.s.task, link.reason)
    }
  }

  /** Queues a status read; polls and backoff reads are never closer than `pollingInterval`. */
  private read(purpose: ReadPurpose): void {
    if (this.reads.has(purpose)) return
    const { now, options } = this.context
    if (purpose !== 'gap' && this.s.lastReadAt !== null && now - this.s.lastReadAt < options.pollingInterval) {
      // Too soon after the previous read. A poll waits out the rest of the interval; a backoff
      // step simply has had its read.
      if (purpose === 'poll') this.effects.push({ type: 'arm', name: 'poll', ms: this.s.lastReadAt + options.pollingInterval - now })
      return
    }
    if (purpose !== 'gap') this.s.lastReadAt = now
    this.reads.add(purpose)
    this.effects.push({ type: 'readStatus', purpose })
  }

  finish(): ChannelTransition {
    const { now, options } = this.context
    this.s.task = withStaleness(this.s.task, now, options.staleAfter)
    // The stale timer runs while a running task is followed and not yet stalled.
    const due = this.s.link.kind === 'closed' ? null : staleDeadline(this.s.task, options.staleAfter)
    if (due !== this.s.staleDue) {
      this.effects.push(due === null ? { type: 'cancel', name: 'stale' } : { type: 'arm', name: 'stale', ms: Math.max(0, due - now) })
      this.s.staleDue = due
    }
    const next = this.s
    const unchanged = (Object.keys(next) as (keyof ChannelState)[]).every((key) => Object.is(next[key], this.before[key]))
    return { state: unchanged ? this.before : next, effects: this.effects }
  }
}
