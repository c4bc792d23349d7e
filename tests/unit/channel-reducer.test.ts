/**
 * `reduceChannel` with plain values: every decision the channel makes (what a close
 * means for `connectionError`, when the status is read, when a task is stalled) is made
 * here, so it is tested without sockets, timers or fetch.
 */
import { describe, expect, it } from 'vitest'
import { resolveOptions, type ServerMessage, type TaskOptions } from 'tabcast'
import {
  INITIAL_CHANNEL,
  reduceChannel,
  seededChannel,
  type ChannelContext,
  type ChannelEffect,
  type ChannelInput,
  type ChannelState,
} from '../../src/core/channel-reducer.js'
import { initialSnapshot } from '../../src/options.js'

const T0 = 1_000_000

function context(now: number, options: TaskOptions = {}, pageOrigin: string | null = null): ChannelContext {
  return { options: resolveOptions(options), now, random: () => 0.5, pageOrigin, backendOrigin: 'http://localhost:8000' }
}

/** Runs inputs at the given times; returns the final state and every effect. */
function run(inputs: [number, ChannelInput][], from: ChannelState = INITIAL_CHANNEL, options: TaskOptions = {}) {
  let state = from
  const effects: ChannelEffect[] = []
  for (const [now, input] of inputs) {
    const next = reduceChannel(state, input, context(now, options))
    state = next.state
    effects.push(...next.effects)
  }
  return { state, effects }
}

const received = (message: ServerMessage): ChannelInput => ({ type: 'received', message })
const reads = (effects: ChannelEffect[]) => effects.flatMap((effect) => (effect.type === 'readStatus' ? [effect.purpose] : []))

const LIVE: [number, ChannelInput][] = [
  [T0, { type: 'start' }],
  [T0, { type: 'socketOpen' }],
  [T0, received({ type: 'connected', last_seq: 0 })],
]

describe('reduceChannel: closes and errors', () => {
  it('an abnormal close is named; a normal or going-away one is not', () => {
    const live = run(LIVE).state
    expect(run([[T0, { type: 'socketClose', code: 1006, reason: '' }]], live).state.task.connectionError).toBe('WebSocket closed (code 1006)')
    expect(run([[T0, { type: 'socketClose', code: 1011, reason: 'boom' }]], live).state.task.connectionError).toBe('WebSocket closed (code 1011: boom)')
    for (const code of [1000, 1001]) expect(run([[T0, { type: 'socketClose', code, reason: '' }]], live).state.task.connectionError).toBeNull()
  })

  it('a fatal close fails the task with the reason', () => {
    const { state } = run([[T0, { type: 'start' }], [T0, { type: 'socketClose', code: 4004, reason: 'task not found' }]])
    expect(state.task).toMatchObject({ status: 'failed', error: 'task not found (close code 4004)' })
    expect(state.link).toMatchObject({ kind: 'closed', fatal: true })
  })

  it('a socket that could not be created keeps its own error, not a close code', () => {
    const { state } = run([[T0, { type: 'start' }], [T0, { type: 'socketUnavailable', error: 'WebSocket to x could not be created: blocked' }]])
    expect(state.task.connectionError).toBe('WebSocket to x could not be created: blocked')
    expect(state.link).toMatchObject({ kind: 'waiting', attempt: 1 })
    expect(state.refusedBeforeOpen).toBe(true)
  })

  it('a socket that opened resets refusedBeforeOpen', () => {
    const refused = run([[T0, { type: 'start' }], [T0, { type: 'socketClose', code: 1006, reason: '' }]]).state
    expect(refused.refusedBeforeOpen).toBe(true)
    expect(run([[T0 + 1000, { type: 'timer', name: 'retry' }], [T0 + 1000, { type: 'socketOpen' }]], refused).state.refusedBeforeOpen).toBe(false)
  })

  it('a failed gap read says nothing; a failed poll or backoff read is named', () => {
    const failed = { ok: false as const, problem: 'status request failed: x', network: false }
    const live = run(LIVE).state
    expect(run([[T0, { type: 'statusRead', purpose: 'gap', result: failed }]], live).state.task.connectionError).toBeNull()
    const waiting = run([[T0, { type: 'socketClose', code: 1006, reason: '' }]], live).state
    expect(run([[T0, { type: 'statusRead', purpose: 'backoff', result: failed }]], waiting).state.task.connectionError).toBe('status request failed: x')
  })

  it('the refused-origin explanation needs all three: refused before open, a network failure, another origin', () => {
    const refused = run([[T0, { type: 'start' }], [T0, { type: 'socketClose', code: 1006, reason: '' }]]).state
    const read = (network: boolean, origin: string | null, from: ChannelState) =>
      reduceChannel(from, { type: 'statusRead', purpose: 'backoff', result: { ok: false, problem: 'failed', network } }, context(T0, {}, origin)).state
        .task.connectionError
    expect(read(true, 'http://127.0.0.1:3020', refused)).toMatch(/Origin allow-list or CORS does not allow this page's origin http:\/\/127\.0\.0\.1:3020/)
    expect(read(false, 'http://127.0.0.1:3020', refused)).toBe('failed')
    expect(read(true, 'http://localhost:8000', refused)).toBe('failed')
    expect(read(true, null, refused)).toBe('failed')
    expect(read(true, 'http://127.0.0.1:3020', { ...refused, refusedBeforeOpen: false })).toBe('failed')
  })
})

describe('reduceChannel: the reachability probe', () => {
  const refused = () => {
    const start = reduceChannel(INITIAL_CHANNEL, { type: 'start' }, context(T0, {}, 'http://127.0.0.1:3020')).state
    return reduceChannel(start, { type: 'socketClose', code: 1006, reason: '' }, context(T0, {}, 'http://127.0.0.1:3020')).state
  }
  const failNetwork: ChannelInput = { type: 'statusRead', purpose: 'backoff', result: { ok: false, problem: 'failed', network: true } }

  it('a suspicious failure asks for one probe; its answer re-explains the error', () => {
    const read = reduceChannel(refused(), failNetwork, context(T0, {}, 'http://127.0.0.1:3020'))
    expect(read.effects).toContainEqual({ type: 'probe' })
    expect(read.state.probing).toBe(true)
    const again = reduceChannel(read.state, failNetwork, context(T0, {}, 'http://127.0.0.1:3020'))
    expect(again.effects).not.toContainEqual({ type: 'probe' })
    const up = reduceChannel(read.state, { type: 'probed', reachable: true }, context(T0, {}, 'http://127.0.0.1:3020')).state
    expect(up.task.connectionError).toMatch(/is up but refuses this page/)
    const down = reduceChannel(read.state, { type: 'probed', reachable: false }, context(T0, {}, 'http://127.0.0.1:3020')).state
    expect(down.task.connectionError).toMatch(/does not answer at all/)
  })

  it('an open socket or a good read forgets what the probe said; stop forgets a probe in flight', () => {
    const probing = reduceChannel(refused(), failNetwork, context(T0, {}, 'http://127.0.0.1:3020')).state
    const up = { ...probing, probing: false, reachable: true }
    const good = { type: 'statusRead', purpose: 'backoff', result: { ok: true, status: { project_id: 't', status: 'running', progress: 0 } } } as const
    expect(reduceChannel(up, good, context(T0)).state).toMatchObject({ reachable: null, networkProblem: null })
    expect(reduceChannel(probing, { type: 'stop' }, context(T0)).state.probing).toBe(false)
  })
})

describe('reduceChannel: when the status is read', () => {
  it('after a reconnect, a server that announces last_seq replays: no read; one that does not gets one read', () => {
    const live = run(LIVE).state
    const reopened = run([[T0, { type: 'socketClose', code: 1001, reason: '' }], [T0, { type: 'timer', name: 'retry' }], [T0, { type: 'socketOpen' }]], live)
    expect(reopened.state.gapDue).toBe(true)
    expect(reads(run([[T0, received({ type: 'connected', last_seq: 0 })]], reopened.state).effects)).toEqual([])
    expect(reads(run([[T0, received({ type: 'connected' })]], reopened.state).effects)).toEqual(['gap'])
  })

  it('a new epoch reads once, even on the first connection', () => {
    const seeded = seededChannel('t', { ...initialSnapshot('t'), status: 'running', progress: 0.5, seq: 5 })
    const { effects, state } = run(
      [
        [T0, { type: 'start' }],
        [T0, { type: 'socketOpen' }],
        [T0, received({ type: 'connected', last_seq: 4 })],
      ],
      seeded,
    )
    expect(reads(effects)).toEqual(['epoch'])
    expect(state.task).toMatchObject({ seq: null, renumbered: true })
  })

  it('a seeded channel fills the gap on its first open', () => {
    const seeded = seededChannel('t', { ...initialSnapshot('t'), status: 'running', progress: 0.5, seq: 5 })
    expect(seeded.seeded).toBe(true)
    const { state } = run([[T0, { type: 'start' }], [T0, { type: 'socketOpen' }]], seeded)
    expect(state).toMatchObject({ seeded: false, gapDue: true })
    expect(seededChannel('other', { ...initialSnapshot('t'), status: 'running', seq: 5 })).toBe(INITIAL_CHANNEL)
  })

  it('a poll due sooner than pollingInterval after the last read waits out the rest', () => {
    const start = run([[T0, { type: 'start' }], [T0, { type: 'socketClose', code: 1006, reason: '' }]], INITIAL_CHANNEL, {
      maxReconnectAttempts: 1,
      pollingInterval: 2000,
    })
    expect(reads(start.effects)).toEqual(['backoff'])
    const polling = run(
      [
        [T0 + 1000, { type: 'timer', name: 'retry' }],
        [T0 + 1200, { type: 'socketClose', code: 1006, reason: '' }],
      ],
      start.state,
      { maxReconnectAttempts: 1, pollingInterval: 2000 },
    )
    expect(polling.state.link).toMatchObject({ kind: 'polling' })
    expect(reads(polling.effects)).toEqual([])
    expect(polling.effects).toContainEqual({ type: 'arm', name: 'poll', ms: 800 })
  })
})

describe('reduceChannel: the stale timer', () => {
  it('a running task arms it at staleAfter; when it fires the task is stalled; the end cancels it', () => {
    const options = { staleAfter: 5000 }
    const running = run([...LIVE, [T0 + 10, received({ type: 'progress', progress: 0.2, seq: 1 })]], INITIAL_CHANNEL, options)
    expect(running.effects).toContainEqual({ type: 'arm', name: 'stale', ms: 5000 })
    expect(running.state.staleDue).toBe(T0 + 5010)
    const fired = run([[T0 + 5010, { type: 'timer', name: 'stale' }]], running.state, options)
    expect(fired.state.task.stalledSince).toBe(T0 + 10)
    expect(fired.state.staleDue).toBeNull()
    const done = run([[T0 + 6000, received({ type: 'completed', seq: 2 })]], fired.state, options)
    expect(done.state.task.stalledSince).toBeNull()
    const again = run([[T0 + 10, received({ type: 'completed', seq: 2 })]], running.state, options)
    expect(again.effects).toContainEqual({ type: 'cancel', name: 'stale' })
  })

  it('an update moves the deadline', () => {
    const options = { staleAfter: 5000 }
    const running = run([...LIVE, [T0, received({ type: 'progress', progress: 0.2, seq: 1 })]], INITIAL_CHANNEL, options)
    const moved = run([[T0 + 3000, received({ type: 'progress', progress: 0.3, seq: 2 })]], running.state, options)
    expect(moved.effects).toContainEqual({ type: 'arm', name: 'stale', ms: 5000 })
    expect(moved.state.staleDue).toBe(T0 + 8000)
  })

  it('a stopped channel has no stale timer', () => {
    const options = { staleAfter: 5000 }
    const running = run([...LIVE, [T0, received({ type: 'progress', progress: 0.2, seq: 1 })]], INITIAL_CHANNEL, options)
    const stopped = run([[T0 + 1, { type: 'stop' }]], running.state, options)
    expect(stopped.effects).toContainEqual({ type: 'cancel', name: 'stale' })
    expect(stopped.state.staleDue).toBeNull()
  })
})

describe('reduceChannel: identity', () => {
  it('an input that changes nothing returns the same state object', () => {
    const live = run(LIVE).state
    expect(reduceChannel(live, { type: 'online' }, context(T0)).state).toBe(live)
  })
})
