/**
 * Tokens in one task's channel (issue 12, client credentials), against fake sockets, a
 * fake fetch and an injected clock. The token sources stand in for tabs: each answers
 * through its own function, with the deadline the channel gives it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { resolveOptions, validateBearerToken, type AuthContext, type TaskOptions, type TaskSnapshot } from 'tabcast'
import { AUTH_REQUEST_TIMEOUT, TaskChannel, type TokenSource } from '../../src/core/task-channel.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { settle } from '../support/fake-fetch.js'

const TASK = 'audio_generation_12345'
const STATUS = `http://localhost:8000/api/v1/projects/${TASK}/status`
const BACKEND = { ws: 'ws://localhost:8000', http: 'http://localhost:8000' }

interface Tab extends TokenSource {
  asked: AuthContext[]
  timeouts: number[]
}

/** A tab whose auth function answers with `answer`; `'never'` stands for a tab that never answers (it rejects at the deadline, as `TabSession.request` does). */
function tab(id: string, answer: ((context: AuthContext) => string | null | Promise<string | null>) | 'never', env: FakeEnv): Tab {
  const asked: AuthContext[] = []
  const timeouts: number[] = []
  return {
    id,
    asked,
    timeouts,
    get: (context, timeout) => {
      asked.push(context)
      timeouts.push(timeout)
      if (answer === 'never') {
        return new Promise((_resolve, reject) => {
          env.clock.setTimeout(() => reject(new Error(`tab ${id} did not answer token within ${timeout} ms`)), timeout)
        })
      }
      return Promise.resolve().then(() => answer(context))
    },
  }
}

let env: FakeEnv
let channel: TaskChannel | null = null

function follow(tabs: TokenSource[], options: TaskOptions = {}): TaskChannel {
  env ??= fakeEnv()
  const resolved = resolveOptions(options)
  channel = new TaskChannel({ key: 'k', projectId: TASK, backend: BACKEND }, resolved, env.env)
  if (tabs.length === 0) channel.addSubscriber(1, resolved, () => {})
  tabs.forEach((source, index) => channel?.addSubscriber(index + 1, resolved, () => {}, source))
  return channel
}

function snapshot(): TaskSnapshot {
  if (!channel) throw new Error('no channel')
  return channel.getSnapshot()
}

afterEach(() => {
  channel?.stop()
  channel = null
  env = fakeEnv()
})

/** Opens the newest socket and plays the server's `connected`. */
function openLatest(): void {
  const socket = env.sockets.last
  socket.open()
  socket.receive({ type: 'connected', project_id: TASK, last_seq: 0 })
}

describe('a token before each connect, reconnect and status read', () => {
  it('connects only once the token came, offering it as the second subprotocol', async () => {
    env = fakeEnv()
    const a = tab('tab-a', () => 'v1.abc.123.sig', env)
    follow([a], { backendUrl: 'localhost:8000' })
    expect(env.sockets.count).toBe(0)
    await settle()
    expect(env.sockets.count).toBe(1)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.v1.abc.123.sig'])
    expect(env.sockets.last.url).not.toContain('v1.abc')
    expect(a.asked).toEqual([{ projectId: TASK, backendUrl: 'localhost:8000', reason: 'connect' }])
    expect(a.timeouts).toEqual([AUTH_REQUEST_TIMEOUT])
  })

  it('without an auth function no token is asked and no subprotocol offered (guide-only backends)', () => {
    env = fakeEnv()
    follow([])
    expect(env.sockets.count).toBe(1)
    expect(env.sockets.last.protocols).toBeUndefined()
  })

  it('a null token connects without one', async () => {
    env = fakeEnv()
    follow([tab('tab-a', () => null, env)])
    await settle()
    expect(env.sockets.count).toBe(1)
    expect(env.sockets.last.protocols).toBeUndefined()
  })

  it('a reconnect asks again (reason "reconnect") and uses the new token', async () => {
    env = fakeEnv()
    let n = 0
    const a = tab('tab-a', () => `token-${++n}`, env)
    follow([a], { reconnectBaseDelay: 100, pollingInterval: 100_000 })
    await settle()
    openLatest()
    env.sockets.last.drop(1006)
    env.clock.advance(100)
    await settle()
    expect(env.sockets.count).toBe(2)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.token-3'])
    expect(a.asked.map((context) => context.reason)).toEqual(['connect', 'status', 'reconnect'])
  })

  it('a status read asks for a token and sends it as Authorization: Bearer, with the credentials option', async () => {
    env = fakeEnv()
    const a = tab('tab-a', () => 'tok-1', env)
    follow([a], { reconnectBaseDelay: 1000, credentials: 'include' })
    await settle()
    env.sockets.last.drop(1006)
    await settle()
    const read = env.http.last
    expect(read.url).toBe(STATUS)
    expect(read.headers['Authorization']).toBe('Bearer tok-1')
    expect(read.credentials).toBe('include')
    expect(a.asked.at(-1)?.reason).toBe('status')
  })

  it('status reads without auth send no Authorization header, with credentials same-origin by default', async () => {
    env = fakeEnv()
    follow([], { reconnectBaseDelay: 1000 })
    env.sockets.last.drop(1006)
    await settle()
    expect(env.http.last.headers['Authorization']).toBeUndefined()
    expect(env.http.last.credentials).toBe('same-origin')
  })
})

describe('refusals: 4401 and 401 retry once with a fresh token, 4403 and 403 are fatal', () => {
  it('4401: a fresh token (reason "refresh") and one retry at once; a second 4401 waits for the backoff', async () => {
    env = fakeEnv()
    let n = 0
    const a = tab('tab-a', () => `t${++n}`, env)
    follow([a], { reconnectBaseDelay: 1000, pollingInterval: 100_000 })
    await settle()
    env.sockets.last.open()
    env.sockets.last.drop(4401, 'token expired')
    await settle()
    // At once: no clock advance.
    expect(env.sockets.count).toBe(2)
    expect(a.asked.at(-1)?.reason).toBe('refresh')
    expect(env.sockets.last.protocols).toEqual(['tabcast', `tabcast.bearer.t${n}`])
    expect(snapshot().connectionError).toContain('close code 4401')
    env.sockets.last.drop(4401)
    await settle()
    env.clock.flush()
    await settle()
    expect(env.sockets.count).toBe(2)
    expect(snapshot().connection).toBe('reconnecting')
    env.clock.advance(1000)
    await settle()
    expect(env.sockets.count).toBe(3)
    // The backoff step's attempt is an ordinary reconnect, and a 4401 there does not get another at-once retry.
    expect(a.asked.at(-1)?.reason).toBe('reconnect')
    env.sockets.last.drop(4401)
    await settle()
    env.clock.flush()
    await settle()
    expect(env.sockets.count).toBe(3)
  })

  it('4403: the forbidden state, once: no retry, no further token requests', async () => {
    env = fakeEnv()
    const a = tab('tab-a', () => 'other-task-token', env)
    follow([a], { reconnectBaseDelay: 100 })
    await settle()
    env.sockets.last.open()
    env.sockets.last.drop(4403, 'forbidden')
    await settle()
    env.clock.advance(600_000)
    await settle()
    expect(env.sockets.count).toBe(1)
    expect(a.asked).toHaveLength(1)
    expect(env.http.requests).toHaveLength(0)
    expect(snapshot()).toMatchObject({ status: 'failed', connection: 'closed' })
    expect(snapshot().error).toMatch(/^forbidden: .*close code 4403/)
    expect(channel?.done).toBe(true)
  })

  it('HTTP 401 on a status read: one fresh token, one more read', async () => {
    env = fakeEnv()
    let n = 0
    const a = tab('tab-a', () => `t${++n}`, env)
    follow([a], { reconnectBaseDelay: 1000 })
    await settle()
    env.sockets.last.drop(1006)
    await settle()
    expect(env.http.requests).toHaveLength(1)
    env.http.last.respond({ status: 401, body: { error: 'expired' } })
    await settle()
    await settle()
    expect(env.http.requests).toHaveLength(2)
    expect(a.asked.at(-1)?.reason).toBe('refresh')
    expect(env.http.last.headers['Authorization']).toBe(`Bearer t${n}`)
    env.http.last.respond({ status: 401, body: { error: 'expired' } })
    await settle()
    await settle()
    // Once only: the second 401 is named and waits for the next backoff step.
    expect(env.http.requests).toHaveLength(2)
    expect(snapshot().connectionError).toMatch(/^unauthenticated: .*HTTP 401.*a fresh token was refused too/)
  })

  it('polls refused even with a fresh token back off, doubling up to a minute; a read that passes resets it', async () => {
    env = fakeEnv()
    let n = 0
    const a = tab('tab-a', () => `t${++n}`, env)
    let accept = false
    env.http.auto = (request) =>
      accept ? request.respond({ body: { project_id: TASK, status: 'running', progress: 0.5 } }) : request.respond({ status: 401, body: { error: 'expired' } })
    follow([a], { maxReconnectAttempts: 0, pollingInterval: 2000, socketRetryInterval: 0 })
    await settle()
    env.sockets.last.drop(1006)
    const askedWithin = async (ms: number): Promise<number> => {
      const before = a.asked.length
      for (let t = 0; t < ms; t += 500) {
        env.clock.advance(500)
        await settle()
        await settle()
      }
      return a.asked.length - before
    }
    await askedWithin(500)
    expect(snapshot()).toMatchObject({ connection: 'polling' })
    expect(snapshot().connectionError).toMatch(/^unauthenticated: .*a fresh token was refused too/)
    // Every 2 s this would be 60 token requests a minute; backed off (4, 8, 16, 32 s) it is 4 polls, 2 requests each.
    expect(await askedWithin(60_000)).toBe(8)
    // At the cap, one poll a minute.
    await askedWithin(60_000)
    expect(await askedWithin(60_000)).toBe(2)
    accept = true
    await askedWithin(60_000)
    expect(snapshot()).toMatchObject({ progress: 0.5, connectionError: null })
    // Back to every pollingInterval.
    expect(await askedWithin(10_000)).toBe(5)
  })

  it('HTTP 403 on a read that carried a token is fatal', async () => {
    env = fakeEnv()
    follow([tab('tab-a', () => 't', env)], { reconnectBaseDelay: 1000 })
    await settle()
    env.sockets.last.drop(1006)
    await settle()
    env.http.last.respond({ status: 403, body: { error: 'this token does not allow access' } })
    await settle()
    env.clock.advance(600_000)
    await settle()
    expect(snapshot()).toMatchObject({ status: 'failed', connection: 'closed' })
    expect(snapshot().error).toMatch(/^forbidden: .*HTTP 403/)
    expect(env.sockets.count).toBe(1)
  })
})

describe('which tab answers', () => {
  it('a tab that does not answer costs its deadline, then the next tab gives the token; that tab is asked first next time', async () => {
    env = fakeEnv()
    const frozen = tab('tab-frozen', 'never', env)
    const b = tab('tab-b', () => 'from-b', env)
    follow([frozen, b], { reconnectBaseDelay: 100, pollingInterval: 100_000 })
    await settle()
    expect(env.sockets.count).toBe(0)
    env.clock.advance(AUTH_REQUEST_TIMEOUT - 1)
    await settle()
    expect(env.sockets.count).toBe(0)
    env.clock.advance(1)
    await settle()
    await settle()
    expect(env.sockets.count).toBe(1)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.from-b'])
    openLatest()
    env.sockets.last.drop(1006)
    await settle()
    env.clock.advance(100)
    await settle()
    expect(env.sockets.count).toBe(2)
    expect(frozen.asked).toHaveLength(1)
  })

  it('tabs that never answer: at connectTimeout the error says the time went to the token, naming the tabs asked', async () => {
    env = fakeEnv()
    const tabs = [tab('tab-a', 'never', env), tab('tab-b', 'never', env), tab('tab-c', 'never', env)]
    follow(tabs, { connectTimeout: 10_000, reconnectBaseDelay: 1000, pollingInterval: 100_000 })
    await settle()
    env.clock.advance(AUTH_REQUEST_TIMEOUT)
    await settle()
    env.clock.advance(10_000 - AUTH_REQUEST_TIMEOUT)
    await settle()
    expect(env.sockets.count).toBe(0)
    expect(snapshot()).toMatchObject({ connection: 'reconnecting', reconnectAttempts: 1 })
    expect(snapshot().connectionError).toBe(
      `auth error: no token for task ${TASK} within connectTimeout (10000 ms): asked tab tab-a, tab tab-b; none answered in time`,
    )
    // The third tab's late token belongs to an attempt that is over: no socket opens with it.
    env.clock.advance(4999)
    await settle()
    expect(env.sockets.count).toBe(0)
  })

  it('a tab whose auth function throws: the next tab is asked at once', async () => {
    env = fakeEnv()
    const failing = tab('tab-a', () => Promise.reject(new Error('signed out')), env)
    const b = tab('tab-b', () => 'from-b', env)
    follow([failing, b])
    await settle()
    await settle()
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.from-b'])
  })

  it('no tab able to answer: an auth error names it, the status stays as known, and the channel backs off instead of looping', async () => {
    env = fakeEnv()
    let fail = false
    const a = tab('tab-a', () => (fail ? Promise.reject(new Error('signed out')) : 't1'), env)
    follow([a], { reconnectBaseDelay: 1000, pollingInterval: 100_000 })
    await settle()
    openLatest()
    env.sockets.last.receive({ type: 'progress', project_id: TASK, progress: 0.4 })
    fail = true
    env.sockets.last.drop(1006)
    await settle()
    env.clock.advance(1000)
    await settle()
    await settle()
    expect(snapshot()).toMatchObject({ status: 'running', progress: 0.4, connection: 'reconnecting' })
    expect(snapshot().connectionError).toMatch(/^auth error: no token for task audio_generation_12345 \(tab tab-a: signed out\)/)
    const asked = a.asked.length
    env.clock.flush()
    await settle()
    expect(a.asked).toHaveLength(asked)
    expect(env.sockets.count).toBe(1)
    // The next step comes after the backoff delay (2 s for attempt 2), not before.
    env.clock.advance(1999)
    await settle()
    expect(a.asked).toHaveLength(asked)
    env.clock.advance(1)
    await settle()
    expect(a.asked.length).toBeGreaterThan(asked)
  })

  it('a token with characters a subprotocol cannot hold is refused with a clear error that does not quote it', async () => {
    env = fakeEnv()
    follow([tab('tab-a', () => 'secret token/with=bad', env)], { reconnectBaseDelay: 1000 })
    await settle()
    env.clock.flush()
    expect(env.sockets.count).toBe(0)
    expect(snapshot().connectionError).toContain('not an RFC 7230 token character at position 6')
    expect(snapshot().connectionError).not.toContain('secret')
  })
})

describe('validateBearerToken', () => {
  it('accepts RFC 7230 token characters: signed tokens, base64url, JWT-shaped', () => {
    for (const token of ['v1.am9iOjE.1700003600.x4--p0TaqZ6QSdVyvfQx_wLEUgyAb_cSWGizUFkXPEM', 'a', "!#$%&'*+-.^_`|~09AZaz"]) {
      expect(validateBearerToken(token)).toBeNull()
    }
  })

  it('refuses what a Sec-WebSocket-Protocol entry cannot hold, naming the place, never the token', () => {
    expect(validateBearerToken('')).toBe('the token is empty')
    expect(validateBearerToken('abc=')).toContain('position 3')
    expect(validateBearerToken('ab/c')).toContain('position 2')
    expect(validateBearerToken('a b')).toContain('position 1')
    expect(validateBearerToken('jwt,x')).toContain('position 3')
    expect(validateBearerToken('é')).toContain('position 0')
    expect(validateBearerToken(42)).toMatch(/not a string/)
    expect(validateBearerToken('x'.repeat(4097))).toMatch(/4097 characters long; the limit is 4096/)
  })
})
