/**
 * Tokens through a real host: tabs reach a SharedWorker host over Comlink on real
 * `MessageChannel`s, the host asks them for tokens on their events ports (the `auth`
 * function never crosses: a function cannot be cloned), and the scope keeps two
 * identities apart.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { AuthContext, TaskOptions } from 'tabcast'
import { createLocalLink } from '../../src/client/local-link.js'
import type { TabClient } from '../../src/client/tab-client.js'
import type { TabHub } from '../../src/core/tab-hub.js'
import { startSharedWorkerHost, type SharedWorkerScope } from '../../worker/shared-worker-host.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { openPortLink, tabOnLink } from '../support/port-links.js'

const TASK = 'voice_1'
const WAIT = { timeout: 2000, interval: 5 }

const closers: (() => void)[] = []
afterEach(() => {
  for (const close of closers.splice(0)) close()
})

function sharedWorker(): { env: FakeEnv; hub: TabHub; tab: (tabId: string, auth?: TaskOptions['auth']) => TabClient } {
  const env = fakeEnv()
  const listeners: ((event: { ports: readonly MessagePort[] }) => void)[] = []
  const scope: SharedWorkerScope = { addEventListener: (_type, listener) => listeners.push(listener) }
  const hub = startSharedWorkerHost(scope, env.env)
  closers.push(() => hub.close())
  const tab = (tabId: string, auth?: TaskOptions['auth']): TabClient => {
    const link = openPortLink((port) => {
      for (const listener of listeners) listener({ ports: [port] })
    }, closers)
    return tabOnLink(link, tabId, auth ? { auth } : {})
  }
  return { env, hub, tab }
}

describe('tokens through the SharedWorker host', () => {
  it("the host asks the tab's auth function (which stays in the tab) and opens the socket with its token", async () => {
    const { env, tab } = sharedWorker()
    const asked: AuthContext[] = []
    tab('tab-1').subscribe(TASK, {}, {
      auth: (context) => {
        asked.push(context)
        return Promise.resolve('tok-1')
      },
      backendUrl: 'localhost:8000',
    })
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.tok-1'])
    expect(asked).toEqual([{ projectId: TASK, backendUrl: 'localhost:8000', reason: 'connect' }])
  })

  it('a client-wide auth serves subscriptions that give none', async () => {
    const { env, tab } = sharedWorker()
    tab('tab-1', () => 'client-wide').subscribe(TASK, {})
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.client-wide'])
  })

  it('a tab that closes while it is the one being asked does not stall the others: the next tab is asked at once', async () => {
    const { env, hub, tab } = sharedWorker()
    let askedA = 0
    const a = tab('tab-a')
    // Tab A's auth never answers: only its departure (not the 5 s deadline, the fake clock stands still) moves on.
    a.subscribe(TASK, {}, { auth: () => (askedA++, new Promise<string>(() => {})) })
    await vi.waitFor(() => expect(askedA).toBe(1), WAIT)
    tab('tab-b').subscribe(TASK, {}, { auth: () => 'from-b' })
    await vi.waitFor(() => expect(hub.liveTabs()).toHaveLength(2), WAIT)
    expect(env.sockets.count).toBe(0)
    // The page closes: its lock (here its `bye`) releases the session, which rejects the open request.
    hub.liveTabs().find((session) => session.tabId === 'tab-a')?.release()
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.from-b'])
  })

  it('two identities (authScope) in one browser never share a connection; one identity does', async () => {
    const { env, hub, tab } = sharedWorker()
    tab('tab-1').subscribe(TASK, {}, { authScope: 'alice', auth: () => 'a' })
    tab('tab-2').subscribe(TASK, {}, { authScope: 'bob', auth: () => 'b' })
    tab('tab-3').subscribe(TASK, {}, { authScope: 'alice', auth: () => 'a' })
    const subscribers = (): number => hub.stats().tasks.reduce((sum, task) => sum + task.subscribers, 0)
    await vi.waitFor(() => expect(subscribers()).toBe(3), WAIT)
    // One handshake to a backend at a time: the second identity's socket comes once the first is open.
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    env.sockets.last.open()
    await vi.waitFor(() => expect(env.sockets.all.filter((socket) => socket.protocols).length).toBe(2), WAIT)
    expect(hub.stats().tasks.map((task) => task.subscribers).sort()).toEqual([1, 2])
    expect(env.sockets.count).toBe(2)
    const offered = env.sockets.all.map((socket) => socket.protocols?.[1]).sort()
    expect(offered).toEqual(['tabcast.bearer.a', 'tabcast.bearer.b'])
  })
})

describe('tokens for a task followed only through once()', () => {
  it("the host's once-watcher asks the registering tab for a token, so once() alone can follow a task behind auth", async () => {
    const { env, tab } = sharedWorker()
    const asked: AuthContext[] = []
    tab('tab-1').once(TASK, 'completed', () => {}, {
      backendUrl: 'localhost:8000',
      auth: (context) => {
        asked.push(context)
        return 'once-token'
      },
    })
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.once-token'])
    expect(asked).toEqual([{ projectId: TASK, backendUrl: 'localhost:8000', reason: 'connect' }])
  })

  it('a later registration with auth gives the watcher a token source without closing the channel', async () => {
    const { env, hub, tab } = sharedWorker()
    tab('tab-1').once(TASK, 'completed', () => {})
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    expect(env.sockets.last.protocols).toBeUndefined()
    tab('tab-2').once(TASK, 'completed', () => {}, { auth: () => 'late-token' })
    await vi.waitFor(() => expect(hub.liveTabs()).toHaveLength(2), WAIT)
    // The watcher was replaced, not the channel: still one socket and one subscriber.
    await vi.waitFor(() => expect(hub.broker.stats().tasks.map((task) => task.subscribers)).toEqual([1]), WAIT)
    expect(env.sockets.count).toBe(1)
    expect(env.sockets.last.isClosed).toBe(false)
    // The next connection (here after the server drops this one) asks tab-2 for its token.
    env.sockets.last.open()
    env.sockets.last.drop(1006)
    env.clock.advance(2000)
    await vi.waitFor(() => expect(env.sockets.count).toBe(2), WAIT)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.late-token'])
  })

  it('when the registering tab leaves, the next tab with a once-handler and auth is asked', async () => {
    const { env, hub, tab } = sharedWorker()
    let askedA = 0
    tab('tab-a').once(TASK, 'completed', () => {}, { auth: () => (askedA++, new Promise<string>(() => {})) })
    await vi.waitFor(() => expect(askedA).toBe(1), WAIT)
    tab('tab-b').once(TASK, 'completed', () => {}, { auth: () => 'from-b' })
    await vi.waitFor(() => expect(hub.liveTabs()).toHaveLength(2), WAIT)
    expect(env.sockets.count).toBe(0)
    hub.liveTabs().find((session) => session.tabId === 'tab-a')?.release()
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.from-b'])
  })
})

describe('tokens through the per-tab (in-page) host', () => {
  it('the same token request reaches the tab over the in-page transport', async () => {
    const env = fakeEnv()
    const link = createLocalLink(env.env, 'per-tab', 'test')
    closers.push(() => link.dispose())
    const client = tabOnLink(link)
    client.subscribe(TASK, {}, { auth: async () => 'in-page' })
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    expect(env.sockets.last.protocols).toEqual(['tabcast', 'tabcast.bearer.in-page'])
  })
})
