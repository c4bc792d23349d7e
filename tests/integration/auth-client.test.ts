/**
 * Tokens from the broker core (TabHub + Comlink over real MessageChannels, `ws` sockets,
 * global fetch) to the reference server with signed task tokens, on port 0: the
 * subprotocol is accepted, an expired token gets 4401 and the fresh one asked for at
 * once works, another task's token gets 4403 once, and status reads carry the token.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { AuthContext, TaskOptions } from 'tabcast'
import { createTabcastServer, silentLogger, type TabcastServer } from 'tabcast/server'
import { BrokerHost } from '../support/simulated-tabs.js'

const WAIT = { timeout: 5000, interval: 5 }
const SECRET = 'integration-secret-that-is-at-least-32-bytes'

let host: BrokerHost | null = null
let server: TabcastServer | null = null

afterEach(async () => {
  host?.close()
  host = null
  await server?.close()
  server = null
})

async function start(): Promise<{ server: TabcastServer; url: string }> {
  server = createTabcastServer({ logger: silentLogger, demo: false, auth: { secret: SECRET } })
  const address = await server.listen(0, '127.0.0.1')
  return { server, url: address.url }
}

function options(backendUrl: string, extra: TaskOptions = {}): TaskOptions {
  return { backendUrl, reconnectBaseDelay: 20, reconnectMaxDelay: 100, maxReconnectAttempts: 100, pollingInterval: 50, linger: 50, ...extra }
}

describe('auth against the reference server', () => {
  it('an expired token is refused with 4401; the fresh one asked for at once is accepted', async () => {
    const { server, url } = await start()
    await server.createTask({ taskId: 'auth_1' })
    const reasons: AuthContext['reason'][] = []
    const auth = (context: AuthContext): string => {
      reasons.push(context.reason)
      // The first token has already expired.
      return reasons.length === 1 ? server.taskToken('auth_1', -60_000) : server.taskToken('auth_1')
    }
    const tab = (host = new BrokerHost()).openTab('tab-1')
    const following = tab.follow('auth_1', options(url, { auth }))
    // The server accepts the upgrade and then closes with 4401 (so the browser can read the code).
    await vi.waitFor(() => expect(reasons).toEqual(['connect', 'refresh']), WAIT)
    await server.progress('auth_1', 0.5, 'half')
    await vi.waitFor(() => expect(following.latest).toMatchObject({ connection: 'live', progress: 0.5 }), WAIT)
    expect(reasons).toEqual(['connect', 'refresh'])
  })

  it("another task's token: 4403, the task fails as forbidden, and the socket is not retried", async () => {
    const { server, url } = await start()
    await server.createTask({ taskId: 'auth_2' })
    await server.createTask({ taskId: 'auth_other' })
    let asked = 0
    const tab = (host = new BrokerHost()).openTab('tab-1')
    const following = tab.follow('auth_2', options(url, { auth: () => (asked++, server.taskToken('auth_other')) }))
    await vi.waitFor(() => expect(following.latest.status).toBe('failed'), WAIT)
    expect(following.latest.error).toMatch(/^forbidden: .*close code 4403/)
    expect(following.latest.connection).toBe('closed')
    expect(asked).toBe(1)
  })

  it('a token that is never accepted: one at-once retry, then the normal backoff until the attempts run out (no loop)', async () => {
    const { server, url } = await start()
    await server.createTask({ taskId: 'auth_4' })
    const reasons: AuthContext['reason'][] = []
    const tab = (host = new BrokerHost()).openTab('tab-1')
    const auth = (context: AuthContext): string => (reasons.push(context.reason), server.taskToken('auth_4', -60_000))
    const following = tab.follow('auth_4', options(url, { auth, maxReconnectAttempts: 3, pollingFallback: false }))
    await vi.waitFor(() => expect(following.latest.connection).toBe('closed'), WAIT)
    const count = (reason: AuthContext['reason']): number => reasons.filter((r) => r === reason).length
    // Sockets: the connect, its at-once retry, three reconnects. Status reads during the
    // backoff (at most one per step) each get one refresh after their 401, no more.
    expect(reasons.slice(0, 2)).toEqual(['connect', 'refresh'])
    expect(count('connect')).toBe(1)
    expect(count('reconnect')).toBe(3)
    expect(count('status')).toBeLessThanOrEqual(3)
    expect(count('refresh')).toBe(1 + count('status'))
    expect(following.latest.connectionError).toMatch(/gave up after 3 reconnect attempts/)
  })

  it('status reads carry the token (polling with the socket given up)', async () => {
    const { server, url } = await start()
    await server.createTask({ taskId: 'auth_3' })
    await server.progress('auth_3', 0.25, 'quarter')
    const reasons: AuthContext['reason'][] = []
    const tab = (host = new BrokerHost()).openTab('tab-1')
    // The socket gets no token (4401, then the refresh gets none either): reconnects are off, so it polls.
    const auth = (context: AuthContext): string | null => {
      reasons.push(context.reason)
      return context.reason === 'status' ? server.taskToken('auth_3') : null
    }
    const following = tab.follow('auth_3', options(url, { auth, autoReconnect: false, pollingFallback: true, socketRetryInterval: 0 }))
    await vi.waitFor(() => expect(following.latest).toMatchObject({ connection: 'polling', progress: 0.25, message: 'quarter' }), WAIT)
    // Once each: no loop of sockets after the refused refresh (the server opens, then closes with 4401).
    expect(reasons.slice(0, 3)).toEqual(['connect', 'refresh', 'status'])
    expect(reasons.filter((reason) => reason !== 'status')).toEqual(['connect', 'refresh'])
  })
})
