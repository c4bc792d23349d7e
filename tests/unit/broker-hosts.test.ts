/**
 * The three broker hosts (the SharedWorker, the per-tab broker, and — in
 * leader-election.test.ts — the leader tab) are wired the same way: `createBrokerHost`
 * plus one `createSessionApi` per tab. Here: environment signals reach each host, the
 * session API's guards, and host → tab requests with a deadline over each transport.
 */
import * as Comlink from 'comlink'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { TaskSnapshot } from 'tabcast'
import type { BrokerLink } from '../../src/client/link.js'
import { inPageTransport, loopbackPorts } from '../../src/client/in-page.js'
import { createLocalLink } from '../../src/client/local-link.js'
import { createSessionLink, serveEvents } from '../../src/client/session-link.js'
import type { TabClient } from '../../src/client/tab-client.js'
import { createBrokerHost } from '../../src/core/broker-host.js'
import { createSessionApi } from '../../src/core/session-api.js'
import type { EventsPort, HostToTab, SessionApi } from '../../src/core/session-protocol.js'
import { LOCK_REPORT_TIMEOUT, type TabHub } from '../../src/core/tab-hub.js'
import { PROTOCOL_VERSION } from '../../src/protocol-version.js'
import { startSharedWorkerHost, type SharedWorkerScope } from '../../worker/shared-worker-host.js'
import { FakeLocks } from '../support/fake-browser.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { openPortLink, tabOnLink } from '../support/port-links.js'
import { settle } from '../support/fake-fetch.js'

const TASK = 'voice_1'
const WAIT = { timeout: 2000, interval: 5 }

const closers: (() => void)[] = []
afterEach(() => {
  for (const close of closers.splice(0)) close()
})

interface Host {
  env: FakeEnv
  /** A new tab's link to this host. */
  link: () => BrokerLink
  /** Stops the host. */
  close: () => void
}

/** Stands in for a SharedWorker's global scope: the test fires `connect`. */
function fakeScope(): { scope: SharedWorkerScope; connect: (port: MessagePort) => void } {
  const listeners: ((event: { ports: readonly MessagePort[] }) => void)[] = []
  return {
    scope: { addEventListener: (_type, listener) => listeners.push(listener) },
    connect: (port) => {
      for (const listener of listeners) listener({ ports: [port] })
    },
  }
}

/** The SharedWorker host on a fake scope: each link is a tab connecting with its own port. */
function sharedWorkerHost(): Host & { hub: () => TabHub } {
  const env = fakeEnv()
  const { scope, connect } = fakeScope()
  const hub = startSharedWorkerHost(scope, env.env)
  closers.push(() => hub.close())
  return {
    env,
    hub: () => hub,
    close: () => hub.close(),
    link: () => openPortLink(connect, closers),
  }
}

/** The per-tab broker: the tab and its host are one page; disposing the link stops the host. */
function perTabHost(): Host {
  const env = fakeEnv()
  let link: BrokerLink | null = null
  return {
    env,
    close: () => link?.dispose(),
    link: () => {
      link = createLocalLink(env.env, 'per-tab', 'test')
      closers.push(() => link?.dispose())
      return link
    },
  }
}

describe.each([
  ['the SharedWorker', sharedWorkerHost],
  ['the per-tab broker', perTabHost],
])('%s host', (_name, makeHost) => {
  it('hears `online`: a task waiting out its reconnect delay tries again at once', async () => {
    const host = makeHost()
    const seen: TaskSnapshot[] = []
    tabOnLink(host.link()).subscribe(TASK, { snapshot: (snapshot) => seen.push(snapshot) })
    await vi.waitFor(() => expect(host.env.sockets.count).toBe(1), WAIT)
    host.env.sockets.last.drop()
    await settle()
    // Nothing else would open a socket before the 1 s reconnect delay is over.
    expect(host.env.sockets.count).toBe(1)
    expect(host.env.clock.pendingDelays()).toContain(1000)
    host.env.signal('online')
    expect(host.env.sockets.count).toBe(2)
  })

  it('stops hearing signals when it closes', async () => {
    const host = makeHost()
    tabOnLink(host.link()).subscribe(TASK, {})
    await vi.waitFor(() => expect(host.env.sockets.count).toBe(1), WAIT)
    expect(host.env.signalListeners).toBe(1)
    host.close()
    expect(host.env.signalListeners).toBe(0)
    expect(host.env.sockets.last.isClosed).toBe(true)
  })
})

describe('host → tab requests', () => {
  it('over a SharedWorker port: the host asks a tab and gets its answer', async () => {
    const host = sharedWorkerHost()
    tabOnLink(host.link(), 'tab-7').subscribe(TASK, {})
    await vi.waitFor(() => expect(host.hub().liveTabs()).toHaveLength(1), WAIT)
    const [tab] = host.hub().liveTabs()
    await expect(tab!.request('ping', [], 1000)).resolves.toBe('tab-7')
  })

  it('in the page: the host asks its own tab', async () => {
    const env = fakeEnv()
    const hub = createBrokerHost({ env: env.env, mode: 'per-tab', modeReason: 'test', locks: null })
    closers.push(() => hub.close())
    tabOnLink(createSessionLink(inPageTransport(hub)), 'tab-8').subscribe(TASK, {})
    await vi.waitFor(() => expect(hub.liveTabs()).toHaveLength(1), WAIT)
    await expect(hub.liveTabs()[0]!.request('ping', [], 1000)).resolves.toBe('tab-8')
  })

  it('the tab answers a request it does not know, or whose handler fails, with an error, and acks batches', async () => {
    const ports = loopbackPorts()
    const replies: unknown[] = []
    ports.host.addEventListener('message', (event) => replies.push(event.data))
    const batches: number[] = []
    serveEvents(ports.tab, {
      batch: (batch) => batches.push(batch.id),
      requests: {
        ping: () => {
          throw new Error('busy')
        },
        token: () => null,
        runOnce: () => 'no-handler',
        onceSettled: () => true,
      },
    })
    ports.host.postMessage({ type: 'request', id: 1, name: 'nope', args: [] } as unknown as HostToTab)
    ports.host.postMessage({ type: 'request', id: 2, name: 'ping', args: [] })
    ports.host.postMessage({ type: 'batch', id: 9, instanceId: 'h', events: [] })
    await vi.waitFor(() => expect(replies).toHaveLength(3), WAIT)
    expect(replies).toEqual(
      expect.arrayContaining([
        { type: 'reply', id: 1, ok: false, error: 'tabcast: this tab does not know the request "nope"' },
        { type: 'reply', id: 2, ok: false, error: 'busy' },
        { type: 'ack', id: 9 },
      ]),
    )
    expect(batches).toEqual([9])
  })

  it('a tab that never answers is given up at the deadline, on the injected clock', async () => {
    const { api, env, posted, hub } = bareSession()
    api.hello('tab-1', posted.port, PROTOCOL_VERSION)
    const answer = hub.liveTabs()[0]!.request('ping', [], 5000)
    let outcome: unknown = 'pending'
    answer.then(
      (value) => (outcome = value),
      (error: Error) => (outcome = error.message),
    )
    expect(posted.messages).toEqual([{ type: 'request', id: 1, name: 'ping', args: [] }])
    env.clock.advance(4999)
    await settle()
    expect(outcome).toBe('pending')
    env.clock.advance(1)
    await settle()
    expect(outcome).toBe('tab tab-1 did not answer ping within 5000 ms')
    // A late answer changes nothing.
    posted.reply({ type: 'reply', id: 1, ok: true, value: 'late' })
    await settle()
    expect(outcome).toBe('tab tab-1 did not answer ping within 5000 ms')
  })

  it('a reply settles its request; an error reply rejects it with the tab’s message', async () => {
    const { api, posted, hub } = bareSession()
    api.hello('tab-1', posted.port, PROTOCOL_VERSION)
    const session = hub.liveTabs()[0]!
    const first = session.request('ping', [], 5000)
    const second = session.request('ping', [], 5000)
    posted.reply({ type: 'reply', id: 2, ok: false, error: 'no token here' })
    posted.reply({ type: 'reply', id: 1, ok: true, value: 'tab-1' })
    await expect(first).resolves.toBe('tab-1')
    await expect(second).rejects.toThrow('no token here')
  })

  it('requests to a tab that leaves or is suspended reject at once, not at the deadline', async () => {
    const { api, posted, hub } = bareSession()
    api.hello('tab-1', posted.port, PROTOCOL_VERSION)
    const session = hub.liveTabs()[0]!
    const pending = session.request('ping', [], 60_000)
    api.suspend()
    await expect(session.request('ping', [], 60_000)).rejects.toThrow('tab tab-1 is suspended')
    api.bye()
    await expect(pending).rejects.toThrow('tab tab-1 is gone')
    await expect(session.request('ping', [], 60_000)).rejects.toThrow('tab tab-1 is gone')
  })
})

describe('tab locks: the SharedWorker host watches a tab from its lock report, or from the deadline', () => {
  /** A SharedWorker host with Web Locks, and a tab whose lock request the test lets through when it likes. */
  function lockedWorld(): { env: FakeEnv; hub: TabHub; locks: FakeLocks; tab: TabClient; grant: () => void } {
    const env = fakeEnv()
    const locks = new FakeLocks()
    const { scope, connect } = fakeScope()
    const hub = startSharedWorkerHost({ ...scope, navigator: { locks: locks.forTab('worker') } }, env.env)
    closers.push(() => hub.close())
    const tabLocks = locks.forTab('tab-1')
    let release: () => void = () => {}
    const granted = new Promise<void>((resolve) => (release = resolve))
    const tab = tabOnLink(openPortLink(connect, closers), 'tab-1', {
      // The browser's grant takes its time: the request reaches the lock manager when the test says.
      locks: { request: (name, options, callback) => granted.then(() => tabLocks.request(name, options, callback)) },
    })
    return { env, hub, locks, tab, grant: release }
  }

  it('a tab whose lock is granted late is registered at once and not released early', async () => {
    const { env, hub, locks, tab, grant } = lockedWorld()
    const seen: TaskSnapshot[] = []
    tab.subscribe(TASK, { snapshot: (snapshot) => seen.push(snapshot) })
    // Registered and served before its lock is held.
    await vi.waitFor(() => expect(seen.length).toBeGreaterThan(0), WAIT)
    expect(hub.liveTabs().map((session) => session.stats())).toEqual([{ tabId: 'tab-1', subscriptions: 1, backlog: 0 }])
    expect(locks.holder('tabcast:tab:tab-1')).toBeUndefined()
    grant()
    await vi.waitFor(() => expect(locks.holder('tabcast:tab:tab-1')).toBe('tab-1'), WAIT)
    // The report arrived and the host watches, queued behind the tab: still registered,
    // also past the deadline.
    env.clock.advance(LOCK_REPORT_TIMEOUT)
    await settle()
    expect(hub.liveTabs()).toHaveLength(1)
    // The document dies: the host is granted the lock and releases the tab.
    locks.kill('tab-1')
    await vi.waitFor(() => expect(hub.liveTabs()).toHaveLength(0), WAIT)
    expect(hub.broker.stats().tasks.map((task) => task.subscribers)).toEqual([0])
  })

  it('a tab that dies before its lock report is released at the deadline', async () => {
    const { env, hub, locks, tab } = lockedWorld()
    tab.subscribe(TASK, {})
    await vi.waitFor(() => expect(hub.liveTabs()).toHaveLength(1), WAIT)
    await vi.waitFor(() => expect(env.sockets.count).toBe(1), WAIT)
    // Dies before its lock was ever granted: no report will come.
    locks.kill('tab-1')
    await settle()
    expect(hub.liveTabs()).toHaveLength(1)
    env.clock.advance(LOCK_REPORT_TIMEOUT - 1)
    await settle()
    expect(hub.liveTabs()).toHaveLength(1)
    env.clock.advance(1)
    await vi.waitFor(() => expect(hub.liveTabs()).toHaveLength(0), WAIT)
    expect(hub.broker.stats().tasks.map((task) => task.subscribers)).toEqual([0])
  })
})

/** A session API with a recording events port: the tab side is the test. */
function bareSession(): {
  api: SessionApi
  env: FakeEnv
  hub: TabHub
  posted: { port: EventsPort; messages: HostToTab[]; reply(data: unknown): void; closed: boolean }
} {
  const env = fakeEnv()
  const hub = createBrokerHost({ env: env.env, mode: 'shared-worker', modeReason: 'test', locks: null })
  closers.push(() => hub.close())
  const listeners: ((event: { data: unknown }) => void)[] = []
  const posted = {
    messages: [] as HostToTab[],
    closed: false,
    port: {
      postMessage: (message: HostToTab) => posted.messages.push(message),
      addEventListener: (_type: 'message', listener: (event: { data: unknown }) => void) => listeners.push(listener),
      close: () => (posted.closed = true),
    },
    reply: (data: unknown) => {
      for (const listener of listeners) listener({ data })
    },
  }
  return { api: createSessionApi(hub), env, hub, posted }
}

describe('the session API guards, for every host', () => {
  it('refuses a tab of another protocol version, naming both', () => {
    const { api, posted } = bareSession()
    expect(() => api.hello('tab-1', posted.port, PROTOCOL_VERSION + 1)).toThrow(
      `tabcast protocol mismatch: the tab speaks version ${PROTOCOL_VERSION + 1}, the host ${PROTOCOL_VERSION}`,
    )
  })

  it('refuses a missing or oversized tab id', () => {
    const { api, posted } = bareSession()
    expect(() => api.hello('', posted.port, PROTOCOL_VERSION)).toThrow('hello() needs a tab id')
    expect(() => api.hello('x'.repeat(201), posted.port, PROTOCOL_VERSION)).toThrow('hello() needs a tab id')
    expect(() => api.hello(7 as unknown as string, posted.port, PROTOCOL_VERSION)).toThrow('hello() needs a tab id')
  })

  it('refuses subscribe and send before hello, and after bye', () => {
    const { api, posted } = bareSession()
    expect(() => api.subscribe(1, TASK, {})).toThrow('call hello() before subscribing')
    expect(() => api.send(TASK, {}, 'x')).toThrow('call hello() before subscribing')
    api.hello('tab-1', posted.port, PROTOCOL_VERSION)
    api.subscribe(1, TASK, {})
    api.bye()
    expect(posted.closed).toBe(true)
    expect(() => api.subscribe(2, TASK, {})).toThrow('call hello() before subscribing')
  })

  it('refuses a subscription id that is not an integer', () => {
    const { api, posted } = bareSession()
    api.hello('tab-1', posted.port, PROTOCOL_VERSION)
    expect(() => api.subscribe('1' as unknown as number, TASK, {})).toThrow('a subscription id must be an integer')
  })

  it('over Comlink (the SharedWorker) the refusal reaches the tab as a rejected hello', async () => {
    const env = fakeEnv()
    const { scope, connect } = fakeScope()
    const hub = startSharedWorkerHost(scope, env.env)
    closers.push(() => hub.close())
    const { port1, port2 } = new MessageChannel()
    const events = new MessageChannel()
    closers.push(() => [port1, port2, events.port1, events.port2].forEach((port) => port.close()))
    connect(port1)
    const remote = Comlink.wrap<SessionApi>(port2)
    await expect(remote.hello('tab-1', Comlink.transfer(events.port2, [events.port2]) as unknown as EventsPort, 0)).rejects.toThrow(
      'tabcast protocol mismatch',
    )
  })
})
