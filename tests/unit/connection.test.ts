import { describe, expect, it } from 'vitest'
import { resolveOptions, type TaskOptions } from 'tabcast'
import {
  INITIAL_LINK,
  attemptsOf,
  connectionState,
  reduceConnection,
  type ConnectionEffect,
  type ConnectionEvent,
  type Link,
  type TimerName,
} from '../../src/core/connection.js'

const ALL_TIMERS: TimerName[] = ['retry', 'connectTimeout', 'ping', 'pongTimeout', 'poll', 'probe']

function options(overrides: TaskOptions = {}) {
  return resolveOptions(overrides)
}

/** Runs events from `link`, returning the final link and the effects of the last event. */
function run(link: Link, events: ConnectionEvent[], overrides: TaskOptions = {}) {
  let current = link
  let effects: ConnectionEffect[] = []
  for (const event of events) {
    const next = reduceConnection(current, event, options(overrides))
    current = next.link
    effects = next.effects
  }
  return { link: current, effects }
}

const start: ConnectionEvent = { type: 'start' }
const open: ConnectionEvent = { type: 'socketOpen' }
const drop = (code = 1006, reason = ''): ConnectionEvent => ({ type: 'socketClose', code, reason })
const timer = (name: TimerName): ConnectionEvent => ({ type: 'timer', name })

const LIVE: Link = { kind: 'live', pongSeen: false }

function armed(effects: ConnectionEffect[]): Partial<Record<TimerName, number>> {
  const out: Partial<Record<TimerName, number>> = {}
  for (const effect of effects) if (effect.type === 'arm') out[effect.name] = effect.ms
  return out
}

function cancelled(effects: ConnectionEffect[]): TimerName[] {
  return effects.flatMap((effect) => (effect.type === 'cancel' ? [effect.name] : []))
}

function types(effects: ConnectionEffect[]): ConnectionEffect['type'][] {
  return effects.map((effect) => effect.type)
}

/** Fails the socket of every attempt from a live link, collecting the reconnect delays. */
function failRepeatedly(overrides: TaskOptions, failures: number) {
  const delays: number[] = []
  let { link, effects } = run(LIVE, [drop()], overrides)
  for (let i = 0; i < failures; i++) {
    if (link.kind !== 'waiting') break
    delays.push(link.delay)
    expect(armed(effects).retry).toBe(link.delay)
    ;({ link, effects } = run(link, [timer('retry'), drop()], overrides))
  }
  return { delays, link, effects }
}

describe('reduceConnection: first connection', () => {
  it('start opens a socket with a connect deadline', () => {
    const { link, effects } = run(INITIAL_LINK, [start])
    expect(link).toEqual({ kind: 'connecting', attempt: 0 })
    expect(effects).toEqual([{ type: 'openSocket' }, { type: 'arm', name: 'connectTimeout', ms: 10_000 }])
    expect(connectionState(link)).toBe('connecting')
  })

  it('start does nothing once the link is busy or closed for good', () => {
    const connecting: Link = { kind: 'connecting', attempt: 0 }
    expect(reduceConnection(connecting, start, options())).toEqual({ link: connecting, effects: [] })
    const fatal: Link = { kind: 'closed', reason: 'refused', fatal: true }
    expect(reduceConnection(fatal, start, options())).toEqual({ link: fatal, effects: [] })
  })

  it('open goes live, arms the ping, flushes the queue, and does not fill a gap on the first connection', () => {
    const { link, effects } = run(INITIAL_LINK, [start, open])
    // Unproven until its first message (a server refusing a token closes before any).
    expect(link).toEqual({ kind: 'live', pongSeen: false, unproven: { attempt: 0, refreshed: false } })
    expect(run(link, [{ type: 'socketMessage' }]).link).toEqual({ kind: 'live', pongSeen: false })
    expect(connectionState(link)).toBe('live')
    expect(cancelled(effects)).toContain('connectTimeout')
    expect(types(effects)).toContain('flushQueue')
    expect(armed(effects)).toEqual({ ping: 30_000 })
    expect(types(effects)).not.toContain('fillGap')
  })

  it('open after a reconnect also fills the gap', () => {
    const { effects } = run({ kind: 'connecting', attempt: 2 }, [open])
    expect(types(effects)).toEqual(expect.arrayContaining(['flushQueue', 'fillGap']))
  })

  it('pingInterval 0 arms no ping', () => {
    const { effects } = run(INITIAL_LINK, [start, open], { pingInterval: 0 })
    expect(armed(effects)).toEqual({})
  })

  it('ignores a stray open when not connecting', () => {
    const waiting: Link = { kind: 'waiting', attempt: 1, delay: 1000 }
    expect(reduceConnection(waiting, open, options())).toEqual({ link: waiting, effects: [] })
  })
})

describe('reduceConnection: reconnect schedule', () => {
  it('a live socket that drops waits 1000 ms before attempt 1', () => {
    const { link, effects } = run(LIVE, [drop()])
    expect(link).toEqual({ kind: 'waiting', attempt: 1, delay: 1000 })
    expect(cancelled(effects)).toEqual(expect.arrayContaining(['connectTimeout', 'ping', 'pongTimeout']))
    expect(armed(effects)).toEqual({ retry: 1000 })
    expect(connectionState(link)).toBe('reconnecting')
    expect(attemptsOf(link, options())).toBe(1)
  })

  it('the retry timer opens the attempt it waited for', () => {
    const { link, effects } = run({ kind: 'waiting', attempt: 3, delay: 4000 }, [timer('retry')])
    expect(link).toEqual({ kind: 'connecting', attempt: 3 })
    expect(types(effects)).toContain('openSocket')
    expect(connectionState(link)).toBe('reconnecting')
  })

  it('the first connection failing counts like a drop', () => {
    const { link } = run(INITIAL_LINK, [start, drop()])
    expect(link).toEqual({ kind: 'waiting', attempt: 1, delay: 1000 })
  })

  it('waits 1, 2, 4, 8, 16 s, then polls after the 5th failed attempt', () => {
    const { delays, link, effects } = failRepeatedly({}, 10)
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000])
    expect(link).toEqual({ kind: 'polling', probing: false })
    expect(types(effects)).toContain('poll')
    expect(armed(effects)).toEqual({ probe: 30_000 })
    expect(connectionState(link)).toBe('polling')
    expect(attemptsOf(link, options())).toBe(5)
  })

  it('gives up (closed, not fatal) after the 5th failed attempt when pollingFallback is off', () => {
    const { delays, link, effects } = failRepeatedly({ pollingFallback: false }, 10)
    expect(delays).toHaveLength(5)
    expect(link).toEqual({ kind: 'closed', reason: 'gave up after 5 reconnect attempts', fatal: false })
    expect(cancelled(effects)).toEqual(expect.arrayContaining(ALL_TIMERS))
    expect(types(effects)).not.toContain('poll')
  })

  it('autoReconnect false polls straight away, or closes without polling', () => {
    const polling = run(LIVE, [drop()], { autoReconnect: false })
    expect(polling.link).toEqual({ kind: 'polling', probing: false })
    expect(types(polling.effects)).toContain('poll')
    const closed = run(LIVE, [drop()], { autoReconnect: false, pollingFallback: false })
    expect(closed.link).toMatchObject({ kind: 'closed', fatal: false })
    expect(closed.link.kind === 'closed' && closed.link.reason).toMatch(/autoReconnect is off/)
  })

  it('caps delays at reconnectMaxDelay beyond the 5th attempt', () => {
    const { delays, link } = failRepeatedly({ maxReconnectAttempts: 10 }, 20)
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000])
    expect(link.kind).toBe('polling')
  })

  it('a server going away (1001) from live is retried at once', () => {
    const { link, effects } = run(LIVE, [drop(1001, 'restart')])
    expect(link).toEqual({ kind: 'waiting', attempt: 1, delay: 0 })
    expect(armed(effects)).toEqual({ retry: 0 })
  })

  it('a server restarting (1012, as uvicorn closes) from live is retried at once too', () => {
    const { link } = run(LIVE, [drop(1012, 'Service Restart')])
    expect(link).toEqual({ kind: 'waiting', attempt: 1, delay: 0 })
  })

  it('any other drop from live waits the first backoff step', () => {
    const { link } = run(LIVE, [drop(1006)])
    expect(link).toEqual({ kind: 'waiting', attempt: 1, delay: 1000 })
  })

  it('a 1001 on a reconnect attempt backs off as usual', () => {
    const { link } = run({ kind: 'connecting', attempt: 1 }, [drop(1001)])
    expect(link).toEqual({ kind: 'waiting', attempt: 2, delay: 2000 })
  })

  it.each([4000, 4004, 1008])('close code %i is fatal: closed, no retry', (code) => {
    for (const from of [LIVE, { kind: 'connecting', attempt: 0 } as Link, { kind: 'connecting', attempt: 3 } as Link]) {
      const { link, effects } = run(from, [drop(code, 'nope')])
      expect(link).toEqual({ kind: 'closed', reason: `nope (close code ${code})`, fatal: true })
      expect(armed(effects)).toEqual({})
      expect(cancelled(effects)).toEqual(expect.arrayContaining(ALL_TIMERS))
    }
  })

  it('a fatal code without a reason still names the code', () => {
    const { link } = run(LIVE, [drop(4004)])
    expect(link.kind === 'closed' && link.reason).toMatch(/close code 4004/)
  })

  it.each([1006, 1011, 1013, 4008])('close code %i is retried', (code) => {
    expect(run(LIVE, [drop(code)]).link.kind).toBe('waiting')
  })

  it('a connect timeout closes the socket and counts as a failed attempt', () => {
    const { link, effects } = run({ kind: 'connecting', attempt: 2 }, [timer('connectTimeout')])
    expect(effects[0]).toEqual({ type: 'closeSocket', code: 1000, reason: 'connect timeout' })
    expect(link).toEqual({ kind: 'waiting', attempt: 3, delay: 4000 })
  })

  it('a connect timeout on the last attempt falls back to polling', () => {
    const { link } = run({ kind: 'connecting', attempt: 5 }, [timer('connectTimeout')])
    expect(link).toEqual({ kind: 'polling', probing: false })
  })

  it('a close while already waiting changes nothing', () => {
    const waiting: Link = { kind: 'waiting', attempt: 2, delay: 2000 }
    expect(reduceConnection(waiting, drop(), options())).toEqual({ link: waiting, effects: [] })
  })
})

describe('reduceConnection: keep-alive', () => {
  it('the ping timer pings and re-arms, without a pong deadline before any pong was seen', () => {
    const { link, effects } = run(LIVE, [timer('ping')])
    expect(link).toEqual(LIVE)
    expect(effects).toEqual([{ type: 'ping' }, { type: 'arm', name: 'ping', ms: 30_000 }])
  })

  it('after a pong, each ping arms a pong deadline', () => {
    const { link, effects } = run(LIVE, [{ type: 'pong' }, timer('ping')], { pongTimeout: 5000 })
    expect(link).toEqual({ kind: 'live', pongSeen: true })
    expect(armed(effects)).toEqual({ ping: 30_000, pongTimeout: 5000 })
  })

  it('a pong or any other message cancels the pong deadline', () => {
    expect(cancelled(run(LIVE, [{ type: 'pong' }]).effects)).toEqual(['pongTimeout'])
    expect(cancelled(run(LIVE, [{ type: 'socketMessage' }]).effects)).toEqual(['pongTimeout'])
  })

  it('a missed pong closes the socket and reconnects with backoff', () => {
    const { link, effects } = run({ kind: 'live', pongSeen: true }, [timer('pongTimeout')])
    expect(effects[0]).toEqual({ type: 'closeSocket', code: 1000, reason: 'no pong' })
    expect(link).toEqual({ kind: 'waiting', attempt: 1, delay: 1000 })
  })

  it('a stale ping or pong timer outside live does nothing', () => {
    const waiting: Link = { kind: 'waiting', attempt: 1, delay: 1000 }
    expect(run(waiting, [timer('ping')]).effects).toEqual([])
    expect(run(waiting, [timer('pongTimeout')]).link).toEqual(waiting)
  })
})

describe('reduceConnection: polling', () => {
  const POLLING: Link = { kind: 'polling', probing: false }

  it('each finished poll arms the next one at pollingInterval; the poll timer polls', () => {
    expect(run(POLLING, [{ type: 'pollDone' }], { pollingInterval: 750 }).effects).toEqual([{ type: 'arm', name: 'poll', ms: 750 }])
    expect(run(POLLING, [timer('poll')]).effects).toEqual([{ type: 'poll' }])
  })

  it('a poll that finishes after leaving polling arms nothing', () => {
    expect(run(LIVE, [{ type: 'pollDone' }]).effects).toEqual([])
    expect(run(LIVE, [timer('poll')]).effects).toEqual([])
  })

  it('the probe timer tries the socket again while polling continues', () => {
    const { link, effects } = run(POLLING, [timer('probe')])
    expect(link).toEqual({ kind: 'polling', probing: true })
    expect(types(effects)).toContain('openSocket')
    expect(cancelled(effects)).not.toContain('poll')
    expect(connectionState(link)).toBe('polling')
  })

  it('a probe that opens goes live, stops polling and fills the gap', () => {
    const { link, effects } = run(POLLING, [timer('probe'), open])
    expect(link).toEqual({ kind: 'live', pongSeen: false })
    expect(cancelled(effects)).toEqual(expect.arrayContaining(['poll', 'probe', 'connectTimeout']))
    expect(types(effects)).toEqual(expect.arrayContaining(['flushQueue', 'fillGap']))
  })

  it('a probe that fails goes back to polling and arms the next probe', () => {
    const { link, effects } = run(POLLING, [timer('probe'), drop()], { socketRetryInterval: 5000 })
    expect(link).toEqual(POLLING)
    expect(armed(effects)).toEqual({ probe: 5000 })
    const timedOut = run(POLLING, [timer('probe'), timer('connectTimeout')], { socketRetryInterval: 5000 })
    expect(timedOut.link).toEqual(POLLING)
    expect(timedOut.effects[0]).toEqual({ type: 'closeSocket', code: 1000, reason: 'connect timeout' })
    expect(armed(timedOut.effects)).toEqual({ probe: 5000 })
  })

  it('a probe refused with a fatal code ends following', () => {
    const { link } = run(POLLING, [timer('probe'), drop(4004)])
    expect(link).toMatchObject({ kind: 'closed', fatal: true })
  })

  it('socketRetryInterval 0 never probes', () => {
    const { link, effects } = failRepeatedly({ socketRetryInterval: 0 }, 10)
    expect(link).toEqual(POLLING)
    expect(armed(effects)).toEqual({})
  })
})

describe('reduceConnection: online, finished, stop', () => {
  it('online cuts a backoff short', () => {
    const { link, effects } = run({ kind: 'waiting', attempt: 4, delay: 8000 }, [{ type: 'online' }])
    expect(link).toEqual({ kind: 'connecting', attempt: 4 })
    expect(cancelled(effects)).toContain('retry')
    expect(types(effects)).toContain('openSocket')
  })

  it('online while polling probes the socket at once', () => {
    const { link, effects } = run({ kind: 'polling', probing: false }, [{ type: 'online' }])
    expect(link).toEqual({ kind: 'polling', probing: true })
    expect(types(effects)).toContain('openSocket')
  })

  it('online while live or connecting does nothing', () => {
    expect(run(LIVE, [{ type: 'online' }])).toEqual({ link: LIVE, effects: [] })
    const connecting: Link = { kind: 'connecting', attempt: 1 }
    expect(run(connecting, [{ type: 'online' }])).toEqual({ link: connecting, effects: [] })
  })

  const busy: Link[] = [
    { kind: 'connecting', attempt: 0 },
    LIVE,
    { kind: 'waiting', attempt: 2, delay: 2000 },
    { kind: 'polling', probing: true },
  ]

  it.each(busy)('finished from %o cancels every timer and closes the socket', (from) => {
    const { link, effects } = run(from, [{ type: 'finished' }])
    expect(link).toEqual({ kind: 'closed', reason: 'the task finished', fatal: false })
    expect(cancelled(effects).sort()).toEqual([...ALL_TIMERS].sort())
    expect(effects).toContainEqual({ type: 'closeSocket', code: 1000, reason: 'task finished' })
    expect(armed(effects)).toEqual({})
  })

  it.each(busy)('stop from %o cancels every timer and closes the socket', (from) => {
    const { link, effects } = run(from, [{ type: 'stop' }])
    expect(link).toEqual({ kind: 'closed', reason: null, fatal: false })
    expect(cancelled(effects).sort()).toEqual([...ALL_TIMERS].sort())
    expect(effects).toContainEqual({ type: 'closeSocket', code: 1000, reason: 'no subscribers' })
  })

  it('a stopped link can start again', () => {
    expect(run(LIVE, [{ type: 'stop' }, start]).link).toEqual({ kind: 'connecting', attempt: 0 })
  })
})

describe('reduceConnection: status during backoff and the pong capability', () => {
  it('every backoff step that waits asks for one status read, the first failure included', () => {
    const first = run(INITIAL_LINK, [start, drop()])
    expect(first.link).toMatchObject({ kind: 'waiting', attempt: 1 })
    expect(types(first.effects)).toContain('readStatus')
    const second = run(first.link, [timer('retry'), drop()])
    expect(second.link).toMatchObject({ kind: 'waiting', attempt: 2 })
    expect(types(second.effects).filter((type) => type === 'readStatus')).toHaveLength(1)
  })

  it('a reconnect at once (going away) reads nothing: the new socket fills the gap', () => {
    expect(types(run(LIVE, [drop(1001)]).effects)).not.toContain('readStatus')
  })

  it('a fatal close or polling reads through other paths, not a backoff read', () => {
    expect(types(run(LIVE, [drop(4004)]).effects)).not.toContain('readStatus')
    expect(types(run(LIVE, [drop()], { maxReconnectAttempts: 0 }).effects)).toEqual(['cancel', 'cancel', 'cancel', 'poll', 'arm'])
  })

  it('answersPings arms the pong deadline from the first ping, like a seen pong', () => {
    const { link } = run(LIVE, [{ type: 'answersPings' }])
    expect(link).toEqual({ kind: 'live', pongSeen: true })
    expect(armed(run(link, [timer('ping')]).effects).pongTimeout).toBe(10_000)
    expect(run({ kind: 'connecting', attempt: 0 }, [{ type: 'answersPings' }]).link).toEqual({ kind: 'connecting', attempt: 0 })
  })
})

describe('reduceConnection: jitter', () => {
  it('passes the injected random to the backoff', () => {
    const withJitter = options({ reconnectJitter: 0.5 })
    const low = reduceConnection(LIVE, drop(), withJitter, () => 0)
    const high = reduceConnection(LIVE, drop(), withJitter, () => 0.999)
    expect(low.link).toEqual({ kind: 'waiting', attempt: 1, delay: 500 })
    expect(high.link.kind === 'waiting' && high.link.delay).toBeGreaterThan(1400)
  })
})

describe('reduceConnection: 4401 and refusals', () => {
  it('4401 on a live socket: the same attempt again at once, asking for a fresh token', () => {
    const { link, effects } = run(LIVE, [drop(4401)])
    expect(link).toEqual({ kind: 'connecting', attempt: 0, refreshed: true })
    expect(effects).toContainEqual({ type: 'openSocket', refresh: true })
    expect(effects.some((effect) => effect.type === 'arm' && effect.name === 'retry')).toBe(false)
  })

  it('a second 4401 in a row backs off, and the backoff attempt does not retry at once again', () => {
    const second = run(LIVE, [drop(4401), drop(4401)], { reconnectBaseDelay: 1000 })
    expect(second.link).toEqual({ kind: 'waiting', attempt: 1, delay: 1000, refreshed: true })
    const third = run(second.link, [timer('retry'), drop(4401)], { reconnectBaseDelay: 1000 })
    expect(third.link).toMatchObject({ kind: 'waiting', attempt: 2 })
    expect(third.effects).not.toContainEqual({ type: 'openSocket', refresh: true })
  })

  it('the at-once retry comes back once a socket was live', () => {
    const { link } = run(LIVE, [drop(4401), drop(4401), timer('retry'), open, { type: 'socketMessage' }, drop(4401)], { reconnectBaseDelay: 1000 })
    expect(link).toEqual({ kind: 'connecting', attempt: 0, refreshed: true })
  })

  it('a server that accepts the upgrade and closes with 4401 before any message: that attempt failed, no new at-once retry, the backoff grows', () => {
    const o = { reconnectBaseDelay: 1000 }
    const refreshed = run(LIVE, [drop(4401), open, drop(4401)], o)
    expect(refreshed.link).toEqual({ kind: 'waiting', attempt: 1, delay: 1000, refreshed: true })
    const next = run(refreshed.link, [timer('retry'), open, drop(4401)], o)
    expect(next.link).toEqual({ kind: 'waiting', attempt: 2, delay: 2000, refreshed: true })
    // Other closes of an open socket keep their meaning: a drop after opening starts the count again.
    expect(run(LIVE, [drop(4401), open, drop(1006)], o).link).toMatchObject({ kind: 'waiting', attempt: 1 })
  })

  it('4403 closes for good with a "forbidden" reason', () => {
    const { link } = run({ kind: 'connecting', attempt: 0 }, [drop(4403, 'token of another task')])
    expect(link).toMatchObject({ kind: 'closed', fatal: true })
    expect(link.kind === 'closed' ? link.reason : '').toMatch(/^forbidden: .*token of another task.*close code 4403/)
  })

  it('refused (a 403 status read) closes for good from any state but closed', () => {
    for (const from of [LIVE, { kind: 'waiting', attempt: 2, delay: 2000 } as Link, { kind: 'polling', probing: false } as Link]) {
      const { link, effects } = run(from, [{ type: 'refused', reason: 'forbidden: HTTP 403' }])
      expect(link).toEqual({ kind: 'closed', reason: 'forbidden: HTTP 403', fatal: true })
      expect(effects).toContainEqual({ type: 'closeSocket', code: 1000, reason: 'refused' })
    }
    expect(run(INITIAL_LINK, [{ type: 'refused', reason: 'x' }]).link).toBe(INITIAL_LINK)
  })
})
