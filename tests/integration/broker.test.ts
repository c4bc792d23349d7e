/**
 * The broker core as the SharedWorker runs it (TabHub + Comlink over real
 * MessageChannels, real timers, `ws` sockets, global fetch) against the real
 * reference server on port 0. Counting happens on the server, as in a browser.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ServerMessage, TaskOptions } from 'tabcast'
import { createTabcastServer, MemoryTaskStore, silentLogger, type TabcastServer, type TabcastServerOptions } from 'tabcast/server'
import { BrokerHost, type Following } from '../support/simulated-tabs.js'

const WAIT = { timeout: 5000, interval: 5 }

let host: BrokerHost | null = null
const servers: TabcastServer[] = []
const closeAfter: (() => Promise<void>)[] = []

async function startServer(options: TabcastServerOptions = {}, port = 0): Promise<{ server: TabcastServer; url: string; port: number }> {
  const server = createTabcastServer({ logger: silentLogger, demo: false, ...options })
  servers.push(server)
  const address = await server.listen(port, '127.0.0.1')
  return { server, url: address.url, port: address.port }
}

afterEach(async () => {
  host?.close()
  host = null
  await Promise.all(servers.splice(0).map((server) => server.close()))
  await Promise.all(closeAfter.splice(0).map((close) => close()))
})

function options(backendUrl: string, extra: TaskOptions = {}): TaskOptions {
  return {
    backendUrl,
    reconnectBaseDelay: 20,
    reconnectMaxDelay: 100,
    maxReconnectAttempts: 100,
    pollingInterval: 50,
    linger: 50,
    connectTimeout: 2000,
    ...extra,
  }
}

function seqs(messages: ServerMessage[]): (number | null)[] {
  return messages.filter((m) => m.type !== 'pong').map((m) => m.seq ?? null)
}

async function live(...followers: Following[]): Promise<void> {
  await vi.waitFor(() => {
    for (const f of followers) expect(f.latest.connection).toBe('live')
  }, WAIT)
}

describe('broker over MessageChannel + Comlink, with the reference server', () => {
  it('several tabs following one task share exactly one WebSocket and see the same messages and final snapshot', async () => {
    const { server, url } = await startServer()
    await server.createTask({ taskId: 'share_1', taskName: 'audio' })
    const tabHost = (host = new BrokerHost())
    const tabs = ['a', 'b', 'c', 'd', 'e'].map((id) => tabHost.openTab(`tab-${id}`).follow('share_1', options(url)))
    await live(...tabs)
    expect(server.stats().connectionsByTask).toEqual({ share_1: 1 })

    await server.progress('share_1', 0.25, 'step 1')
    await server.progress('share_1', 0.5, 'step 2')
    await server.progress('share_1', 0.75, 'step 3')
    await server.complete('share_1', { audio_id: 'audio_123' })
    await vi.waitFor(() => {
      for (const tab of tabs) expect(tab.latest.status).toBe('completed')
    }, WAIT)

    const reference = tabs[0]
    if (!reference) throw new Error('no tab')
    expect(reference.messages.map((m) => m.type)).toEqual(['connected', 'progress', 'progress', 'progress', 'completed'])
    expect(seqs(reference.messages)).toEqual([null, 1, 2, 3, 4])
    expect(reference.latest).toMatchObject({ progress: 1, result: { audio_id: 'audio_123' }, taskName: 'audio', seq: 4 })
    for (const tab of tabs) {
      expect(tab.messages).toEqual(reference.messages)
      expect(tab.latest).toEqual(reference.latest)
    }
    await vi.waitFor(() => expect(server.stats().connections).toBe(0), WAIT)
  })

  it('a tab that joins late gets the current progress at once, without a new connection', async () => {
    const { server, url } = await startServer()
    await server.createTask({ taskId: 'late_1' })
    host = new BrokerHost()
    const first = host.openTab('tab-first').follow('late_1', options(url))
    await live(first)
    await server.progress('late_1', 0.4, 'halfway-ish')
    await vi.waitFor(() => expect(first.latest.progress).toBe(0.4), WAIT)
    const sent = server.stats().messagesSent

    const late = host.openTab('tab-late').follow('late_1', options(url))
    await vi.waitFor(() => expect(late.snapshots.length).toBeGreaterThan(0), WAIT)
    expect(late.latest).toMatchObject({ progress: 0.4, message: 'halfway-ish', connection: 'live', status: 'running' })
    expect(server.stats().connectionsByTask).toEqual({ late_1: 1 })
    expect(server.stats().messagesSent).toBe(sent)

    await server.progress('late_1', 0.6, 'more')
    await vi.waitFor(() => expect(late.latest.progress).toBe(0.6), WAIT)
    expect(first.latest.progress).toBe(0.6)
    expect(seqs(late.messages)).toEqual([2])
  })

  it('a dead tab is released: its subscriptions go at once, and the socket closes after the linger when it was the last', async () => {
    const { server, url } = await startServer()
    await server.createTask({ taskId: 'dead_1' })
    host = new BrokerHost()
    const tabA = host.openTab('tab-a')
    const tabB = host.openTab('tab-b')
    const a = tabA.follow('dead_1', options(url))
    const b = tabB.follow('dead_1', options(url))
    tabB.follow('dead_2', options(url))
    await live(a, b)
    expect(host.hub.stats().tabs).toBe(2)

    host.kill(tabA)
    expect(host.hub.stats().tabDetails.map((tab) => tab.tabId)).toEqual(['tab-b'])
    expect(host.broker.stats().tasks.find((task) => task.projectId === 'dead_1')?.subscribers).toBe(1)
    await server.progress('dead_1', 0.3, 'still followed')
    await vi.waitFor(() => expect(b.latest.progress).toBe(0.3), WAIT)
    expect(server.stats().connectionsByTask).toMatchObject({ dead_1: 1 })
    expect(a.messages.some((m) => m.type === 'progress')).toBe(false)

    host.kill(tabB)
    expect(host.hub.stats().tabs).toBe(0)
    expect(host.broker.stats().tasks.map((task) => task.subscribers)).toEqual([0, 0])
    await vi.waitFor(() => expect(server.stats().connections).toBe(0), WAIT)
    expect(host.broker.stats().tasks).toEqual([])
  })

  it('send() queues while the server is down and flushes in order after it restarts on the same port', async () => {
    const store = new MemoryTaskStore()
    const received: unknown[] = []
    const onClientMessage = (_taskId: string, message: unknown): void => {
      received.push(message)
    }
    const first = await startServer({ store, onClientMessage })
    await first.server.createTask({ taskId: 'queue_1' })
    host = new BrokerHost()
    const tab = host.openTab('tab-q')
    const following = tab.follow('queue_1', options(first.url))
    await live(following)
    await tab.client.send('queue_1', { n: 0 }, options(first.url))
    await vi.waitFor(() => expect(received).toEqual([{ n: 0 }]), WAIT)

    await first.server.close()
    await vi.waitFor(() => expect(following.latest.connection).toBe('reconnecting'), WAIT)
    for (let n = 1; n <= 3; n++) await tab.client.send('queue_1', { n }, options(first.url))
    expect(host.broker.stats().tasks[0]?.queued).toBe(3)

    const second = await startServer({ store, onClientMessage }, first.port)
    await vi.waitFor(() => expect(received).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]), WAIT)
    expect(host.broker.stats().tasks[0]?.queued).toBe(0)
    await second.server.complete('queue_1', { ok: true })
    await vi.waitFor(() => expect(following.latest).toMatchObject({ status: 'completed', connection: 'closed' }), WAIT)
  })

  it('a reconnect with ?since= loses nothing the server holds, and delivers nothing twice', async () => {
    const store = new MemoryTaskStore()
    const first = await startServer({ store })
    await first.server.createTask({ taskId: 'since_1' })
    host = new BrokerHost()
    const tabs = [host.openTab('tab-1').follow('since_1', options(first.url)), host.openTab('tab-2').follow('since_1', options(first.url))]
    await live(...tabs)
    await first.server.progress('since_1', 0.1, 'one')
    await first.server.progress('since_1', 0.2, 'two')
    await vi.waitFor(() => {
      for (const tab of tabs) expect(tab.latest.seq).toBe(2)
    }, WAIT)

    await first.server.close()
    await vi.waitFor(() => expect(tabs[0]?.latest.connection).toBe('reconnecting'), WAIT)
    // The job goes on while no server listens: the store holds steps 3 and 4.
    const second = createTabcastServer({ logger: silentLogger, demo: false, store })
    servers.push(second)
    await second.progress('since_1', 0.3, 'three')
    await second.progress('since_1', 0.4, 'four')
    await second.listen(first.port, '127.0.0.1')

    await vi.waitFor(() => {
      for (const tab of tabs) expect(tab.latest).toMatchObject({ connection: 'live', seq: 4, progress: 0.4, message: 'four' })
    }, WAIT)
    await second.complete('since_1', { done: true })
    await vi.waitFor(() => {
      for (const tab of tabs) expect(tab.latest.status).toBe('completed')
    }, WAIT)
    for (const tab of tabs) {
      const steps = tab.messages.filter((m) => m.type === 'progress' || m.type === 'completed')
      expect(steps.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5])
      expect(steps.map((m) => m.message ?? null)).toEqual(['one', 'two', 'three', 'four', null])
      expect(tab.messages.filter((m) => m.type === 'connected')).toHaveLength(2)
    }
    // Finished: the shared socket is closed, not left to linger.
    await vi.waitFor(() => expect(second.stats().connections).toBe(0), WAIT)
  })

  it('with the WebSocket refused, the tabs share one poller that stops at completion', async () => {
    // The reference server on an HTTP server that takes no upgrades: sockets fail, the status endpoint works.
    const http = createServer()
    const server = createTabcastServer({ logger: silentLogger, demo: false, server: http })
    servers.push(server)
    http.removeAllListeners('upgrade')
    const polls = new Map<string, number>()
    http.on('request', (req: IncomingMessage) => {
      const task = /\/projects\/([^/]+)\/status$/.exec(req.url ?? '')?.[1]
      if (task) polls.set(task, (polls.get(task) ?? 0) + 1)
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    closeAfter.push(() => new Promise<void>((resolve) => http.close(() => resolve())))
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
    await server.createTask({ taskId: 'poll_1' })
    await server.createTask({ taskId: 'poll_2' })
    const polling = options(url, { maxReconnectAttempts: 2, socketRetryInterval: 0 })

    host = new BrokerHost()
    const tabs = [host.openTab('tab-p1').follow('poll_1', polling), host.openTab('tab-p2').follow('poll_1', polling)]
    await vi.waitFor(() => {
      for (const tab of tabs) expect(tab.latest).toMatchObject({ connection: 'polling', isFallback: true })
    }, WAIT)
    expect(host.broker.stats()).toMatchObject({ sockets: 0, pollers: 1 })

    await server.progress('poll_1', 0.5, 'polled')
    await vi.waitFor(() => {
      for (const tab of tabs) expect(tab.latest).toMatchObject({ progress: 0.5, message: 'polled', status: 'running' })
    }, WAIT)
    await server.complete('poll_1', { ok: 1 })
    await vi.waitFor(() => {
      for (const tab of tabs) expect(tab.latest).toMatchObject({ status: 'completed', connection: 'closed', result: { ok: 1 } })
    }, WAIT)
    // Polls become messages (how many progress ones depends on when the first poll landed).
    for (const tab of tabs) {
      expect(tab.messages).toEqual(tabs[0]?.messages)
      expect(tab.messages.map((m) => m.type).slice(-2)).toEqual(['progress', 'completed'])
      expect(tab.messages.filter((m) => m.type === 'progress').at(-1)).toMatchObject({ progress: 0.5, message: 'polled' })
    }
    const pollsAtCompletion = polls.get('poll_1')
    expect(host.broker.stats().pollers).toBe(0)

    // A second task polls at the same interval: by its 5th poll, a poller left running
    // for the first task would have polled again several times.
    host.openTab('tab-p3').follow('poll_2', polling)
    await vi.waitFor(() => expect(polls.get('poll_2') ?? 0).toBeGreaterThanOrEqual(5), WAIT)
    expect(polls.get('poll_1')).toBe(pollsAtCompletion)
  })
})
