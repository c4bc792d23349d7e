/**
 * Leader mode over an injected lock manager and broadcast bus: election, one socket
 * for many tabs, failover when the leader's document dies, release of dead followers.
 */
import { describe, expect, it } from 'vitest'
import { LeaderElection, createLeaderLink } from '../../src/client/leader-link.js'
import { TabClient } from '../../src/client/tab-client.js'
import type { TaskSnapshot } from '../../src/types.js'
import { PROTOCOL_VERSION } from '../../src/protocol-version.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { quiesce, until } from '../support/deferred.js'
import { FakeBusNetwork, FakeLocks } from '../support/fake-browser.js'

interface Tab {
  id: string
  election: LeaderElection
  client: TabClient
  env: FakeEnv
  seen: TaskSnapshot[]
  stop: () => void
}

const locks = new FakeLocks()
const network = new FakeBusNetwork()
const deadTabs = new Set<string>()

const hidden = new Set<string>()
const visibilityListeners = new Map<string, () => void>()

/** Hides or shows a tab, as `visibilitychange` would. */
function setHidden(id: string, value: boolean): void {
  if (value) hidden.add(id)
  else hidden.delete(id)
  visibilityListeners.get(id)?.()
}

function openTab(id: string, projectId = 'task_1'): Tab {
  const env = fakeEnv()
  const election = new LeaderElection({
    env: env.env,
    locks: locks.forTab(id),
    createBus: () => network.create(id),
    tabId: id,
    reason: 'test',
    visibility: { isVisible: () => !hidden.has(id), onChange: (listener) => visibilityListeners.set(id, listener) },
    handoverDelay: 1000,
  })
  const client = new TabClient({
    links: [() => createLeaderLink(election)],
    tabId: id,
    locks: locks.forTab(id),
    scheduleFrame: (callback) => queueMicrotask(callback),
    // The tab's timers run on its fake clock, and never once its document is dead.
    setTimeout: (callback, ms) =>
      env.clock.setTimeout(() => {
        if (!deadTabs.has(id)) callback()
      }, ms),
    clearTimeout: (handle) => env.clock.clearTimeout(handle),
    now: () => env.clock.now(),
    callTimeout: 500,
    handshakeTimeout: 500,
    healthInterval: 0,
  })
  const seen: TaskSnapshot[] = []
  const stop = client.subscribe(projectId, { snapshot: (snapshot) => seen.push(snapshot) }, { backendUrl: '127.0.0.1:9', linger: 0 })
  return { id, election, client, env, seen, stop }
}

/** The tab's document dies: locks released, bus closed, its sockets dropped by the browser. */
function kill(tab: Tab): void {
  deadTabs.add(tab.id)
  locks.kill(tab.id)
  network.kill(tab.id)
  for (const socket of tab.env.sockets.openSockets) socket.close(1001, 'tab closed')
}


function openSockets(tabs: Tab[]): number {
  return tabs.reduce((sum, tab) => sum + tab.env.sockets.openSockets.length, 0)
}

function last(tab: Tab): TaskSnapshot | undefined {
  return tab.seen[tab.seen.length - 1]
}


describe('leader election', () => {
  it('elects one leader whose broker holds the only socket for a task followed by three tabs', async () => {
    const tabs = ['a1', 'a2', 'a3'].map((id) => openTab(id))
    await until(() => openSockets(tabs) === 1, 'one socket')
    const leader = tabs.find((tab) => tab.env.sockets.count === 1)
    expect(leader?.id).toBe('a1')
    expect(locks.holder('tabcast:leader:v1')).toBe('a1')

    const socket = leader!.env.sockets.last
    socket.open()
    socket.receive({ type: 'progress', progress: 0.4, message: 'TTS 생성 중', seq: 1 })
    await until(() => tabs.every((tab) => last(tab)?.progress === 0.4), 'progress in every tab')
    expect(tabs.map((tab) => last(tab)?.message)).toEqual(['TTS 생성 중', 'TTS 생성 중', 'TTS 생성 중'])
    const stats = await tabs[2]!.client.stats()
    expect(stats.mode).toBe('leader')
    expect(stats.tabs).toBe(3)
    expect(stats.sockets).toBe(1)
    for (const tab of tabs) kill(tab)
  })

  it('fails over when the leader dies: the next tab leads, resumes after the last seq, and completes everywhere', async () => {
    const tabs = ['b1', 'b2', 'b3'].map((id) => openTab(id, 'task_2'))
    await until(() => openSockets(tabs) === 1, 'one socket')
    const first = tabs[0]!.env.sockets.last
    first.open()
    first.receive({ type: 'progress', progress: 0.5, message: 'half', seq: 7 })
    await until(() => tabs.every((tab) => last(tab)?.seq === 7), 'seq 7 everywhere')

    kill(tabs[0]!)
    const survivors = tabs.slice(1)
    await until(() => openSockets(survivors) === 1, 'a new socket from the new leader')
    expect(locks.holder('tabcast:leader:v1')).toBe('b2')
    const resumed = tabs[1]!.env.sockets.last
    expect(resumed.url).toContain('/api/v1/ws/projects/task_2/stream?since=7')
    // Until the new socket says otherwise, nobody goes back below what they saw.
    expect(survivors.every((tab) => (last(tab)?.progress ?? 0) >= 0.5)).toBe(true)

    resumed.open()
    resumed.receive({ type: 'completed', result: { audio_id: 'audio_9' }, seq: 8 })
    await until(() => survivors.every((tab) => last(tab)?.status === 'completed'), 'completed in every remaining tab')
    expect(survivors.map((tab) => last(tab)?.result)).toEqual([{ audio_id: 'audio_9' }, { audio_id: 'audio_9' }])
    for (const tab of survivors) kill(tab)
  })

  it('releases a follower whose document died, through its tab lock', async () => {
    const tabs = ['c1', 'c2'].map((id) => openTab(id, 'task_3'))
    await until(() => openSockets(tabs) === 1, 'one socket')
    await until(() => tabs.every((tab) => tab.seen.length > 0), 'first snapshots')
    expect((await tabs[0]!.client.stats()).tabs).toBe(2)
    kill(tabs[1]!)
    await until(() => tabs[0]!.env.sockets.count === 1, 'leader unchanged')
    let after = await tabs[0]!.client.stats()
    for (let i = 0; i < 100 && after.tabs !== 1; i++) after = await tabs[0]!.client.stats()
    expect(after.tabs).toBe(1)
    expect(after.tasks[0]?.subscribers).toBe(1)
    kill(tabs[0]!)
  })

  it('a leader hidden for the handover delay hands over to a visible tab, which resumes after the last seq', async () => {
    const tabs = ['d1', 'd2', 'd3'].map((id) => openTab(id, 'task_4'))
    await until(() => openSockets(tabs) === 1, 'one socket')
    const [leader, hiddenFollower, visibleFollower] = tabs as [Tab, Tab, Tab]
    const first = leader.env.sockets.last
    first.open()
    first.receive({ type: 'progress', progress: 0.3, message: 'thirty', seq: 3 })
    await until(() => tabs.every((tab) => last(tab)?.seq === 3), 'seq 3 everywhere')

    setHidden(hiddenFollower.id, true)
    setHidden(leader.id, true)
    leader.env.clock.advance(999)
    await quiesce()
    expect(locks.holder('tabcast:leader:v1')).toBe('d1')
    leader.env.clock.advance(1)
    await until(() => locks.holder('tabcast:leader:v1') === 'd3', 'the visible follower leading')
    // The old leader closed its socket; the new one resumes after seq 3.
    await until(() => openSockets(tabs) === 1 && visibleFollower.env.sockets.count === 1, 'one socket, at the new leader')
    expect(first.isClosed).toBe(true)
    // The old leader's hub is closed: it no longer hears the environment's signals.
    expect(leader.env.signalListeners).toBe(0)
    expect(visibleFollower.env.signalListeners).toBe(1)
    const resumed = visibleFollower.env.sockets.last
    expect(resumed.url).toContain('stream?since=3')
    resumed.open()
    resumed.receive({ type: 'completed', result: { handed: 'over' }, seq: 4 })
    await until(() => tabs.every((tab) => last(tab)?.status === 'completed'), 'completed in every tab, the hidden ones included')
    const stats = await leader.client.stats()
    expect(stats.tabs).toBe(3)
    for (const tab of tabs) kill(tab)
  })

  it('a hidden leader keeps leading while no other tab is visible', async () => {
    const tabs = ['e1', 'e2'].map((id) => openTab(id, 'task_5'))
    await until(() => openSockets(tabs) === 1, 'one socket')
    setHidden('e2', true)
    setHidden('e1', true)
    tabs[0]!.env.clock.advance(5000)
    await quiesce()
    expect(locks.holder('tabcast:leader:v1')).toBe('e1')
    expect(tabs[0]!.env.sockets.openSockets.length).toBe(1)
    for (const tab of tabs) kill(tab)
  })
  it('the leader tab hears `online`: a task waiting out its reconnect delay tries again at once', async () => {
    const tabs = ['f1', 'f2'].map((id) => openTab(id, 'task_6'))
    await until(() => openSockets(tabs) === 1, 'one socket')
    const [leader, follower] = tabs as [Tab, Tab]
    leader.env.sockets.last.drop()
    await quiesce()
    expect(leader.env.sockets.count).toBe(1)
    // Only the leader runs a broker, so only its environment is listened to.
    expect(follower.env.signalListeners).toBe(0)
    leader.env.signal('online')
    expect(leader.env.sockets.count).toBe(2)
    for (const tab of tabs) kill(tab)
  })

  it('the leader asks a follower over the bus and gets its answer', async () => {
    const tabs = ['g1', 'g2'].map((id) => openTab(id, 'task_7'))
    await until(() => tabs.every((tab) => tab.seen.length > 0), 'first snapshots')
    const hub = tabs[0]!.election.leaderHub()
    const follower = hub?.liveTabs().find((session) => session.tabId === 'g2')
    await expect(follower!.request('ping', [], 1000)).resolves.toBe('g2')
    for (const tab of tabs) kill(tab)
  })

  it('a follower sends its subscription and lock report right behind hello, before the leader answers, and is released through its lock', async () => {
    const leader = openTab('i1', 'task_9')
    await until(() => leader.election.isLeader, 'a leader')
    const traffic: string[] = []
    const bus = network.create('i-observer')
    bus.addEventListener('message', (event) => {
      const data = event.data as { kind: string; from?: string; to?: string; method?: string }
      if (data.kind === 'call' && data.from === 'i2') traffic.push(`call ${data.method ?? '?'}`)
      if (data.kind === 'reply' && data.to === 'i2') traffic.push('reply')
    })
    const follower = openTab('i2', 'task_9')
    await until(() => follower.seen.length > 0, 'a snapshot in the follower')
    await quiesce()
    // One round trip on the bus, not two: subscribe does not wait for hello's answer.
    expect(traffic.slice(0, 2)).toEqual(['call hello', 'call subscribe'])
    expect(traffic).toContain('call locked')
    const hub = leader.election.leaderHub()
    expect(hub?.liveTabs().map((session) => session.stats())).toEqual([
      { tabId: 'i1', subscriptions: 1, backlog: 0 },
      { tabId: 'i2', subscriptions: 1, backlog: 0 },
    ])
    // Watched from its report: its death releases it, long before any deadline.
    kill(follower)
    await until(() => hub?.liveTabs().length === 1, 'the dead follower released')
    bus.close()
    kill(leader)
  })

  it('refuses a follower of another protocol version, like every host', async () => {
    const tabs = [openTab('h1', 'task_8')]
    await until(() => openSockets(tabs) === 1, 'one socket')
    const stranger = network.create('h9')
    const replies: unknown[] = []
    stranger.addEventListener('message', (event) => replies.push(event.data))
    stranger.postMessage({ kind: 'call', from: 'h9', callId: 1, method: 'hello', args: ['h9', PROTOCOL_VERSION + 1] })
    await until(() => replies.length > 0, 'a reply')
    expect(replies[0]).toMatchObject({ kind: 'reply', to: 'h9', ok: false, error: expect.stringContaining('tabcast protocol mismatch') })
    for (const tab of tabs) kill(tab)
  })
})
