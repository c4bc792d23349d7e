/**
 * Once-handlers through every host, with real tab clients: the SharedWorker host over
 * Comlink and MessageChannels, the leader tab over a broadcast bus, and the per-tab
 * broker. Tab deaths reach the host through injected Web Locks; time is a fake clock
 * shared by the host and its tabs (one browser reads one wall clock).
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { OnceOutcome } from 'tabcast'
import { LeaderElection, createLeaderLink } from '../../src/client/leader-link.js'
import type { BrokerLink } from '../../src/client/link.js'
import { createLocalLink } from '../../src/client/local-link.js'
import { createPortLink, type ChannelLike } from '../../src/client/port-link.js'
import { TabClient, type PresenceSource } from '../../src/client/tab-client.js'
import type { TabPresence } from '../../src/core/once-coordinator.js'
import type { TabHub } from '../../src/core/tab-hub.js'
import { MAX_ONCE_HANDLERS_PER_TAB } from '../../src/once-types.js'
import { startSharedWorkerHost, type SharedWorkerScope } from '../../worker/shared-worker-host.js'
import { FakeBusNetwork, FakeLocks } from '../support/fake-browser.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { quiesce, until } from '../support/deferred.js'
import type { FakeSocket } from '../support/fake-socket.js'

const TASK = 'audio_1'
const OPTIONS = { backendUrl: '127.0.0.1:9', linger: 0 }

const closers: (() => void)[] = []
afterEach(() => {
  for (const close of closers.splice(0)) close()
})


class Presence implements PresenceSource {
  value: TabPresence = { visible: false, focused: false }
  private listener: (() => void) | null = null
  current(): TabPresence {
    return this.value
  }
  onChange(listener: () => void): void {
    this.listener = listener
  }
  set(value: TabPresence): void {
    this.value = value
    this.listener?.()
  }
}

interface Tab {
  id: string
  client: TabClient
  presence: Presence
  /** Values the once-handler was called with in this tab. */
  calls: unknown[]
  outcomes: OnceOutcome[]
  /** The tab's document dies: its lock goes to the host, its ports go quiet. */
  kill(): void
}

interface TabOptions {
  /** The tab's clock. @default the browser's */
  now?: () => number
  presence?: TabPresence
  /** Register the test's once-handler. @default true */
  handler?: boolean
}

interface World {
  env: FakeEnv
  locks: FakeLocks
  open(id: string, options?: TabOptions): Tab
  /** The host's socket of the task (in the leader's page, for leader mode). */
  socket(): FakeSocket
}

function makeTab(
  world: { env: FakeEnv; locks: FakeLocks },
  id: string,
  link: () => BrokerLink,
  onKill: () => void,
  options: TabOptions,
): Tab {
  const { env, locks } = world
  const presence = new Presence()
  if (options.presence) presence.value = options.presence
  const dead = { value: false }
  const client = new TabClient({
    links: [link],
    tabId: id,
    locks: locks.forTab(id),
    presence,
    scheduleFrame: (callback) => queueMicrotask(callback),
    setTimeout: (callback, ms) =>
      env.clock.setTimeout(() => {
        if (!dead.value) callback()
      }, ms),
    clearTimeout: (handle) => env.clock.clearTimeout(handle),
    now: options.now ?? (() => env.clock.now()),
    healthInterval: 0,
  })
  const tab: Tab = {
    id,
    client,
    presence,
    calls: [],
    outcomes: [],
    kill: () => {
      dead.value = true
      locks.kill(id)
      onKill()
    },
  }
  if (options.handler !== false) {
    client.once(TASK, 'completed', (result) => tab.calls.push(result), { ...OPTIONS, onSettled: (outcome) => tab.outcomes.push(outcome) })
  }
  return tab
}

/** The SharedWorker host on a fake scope; each tab connects with its own port. */
function sharedWorkerWorld(): World & { hub: TabHub } {
  const env = fakeEnv()
  const locks = new FakeLocks()
  const listeners: ((event: { ports: readonly MessagePort[] }) => void)[] = []
  const scope: SharedWorkerScope = { addEventListener: (_type, listener) => listeners.push(listener), navigator: { locks: locks.forTab('worker') } }
  const hub = startSharedWorkerHost(scope, env.env)
  closers.push(() => hub.close())
  return {
    env,
    locks,
    hub,
    socket: () => env.sockets.last,
    open: (id, options = {}) => {
      const ports: { close(): void }[] = []
      closers.push(() => ports.forEach((port) => port.close()))
      const link = (): BrokerLink => {
        const { port1, port2 } = new MessageChannel()
        ports.push(port1, port2)
        for (const listener of listeners) listener({ ports: [port1] })
        return createPortLink(port2, (): ChannelLike => {
          const channel = new MessageChannel()
          ports.push(channel.port1, channel.port2)
          return channel
        })
      }
      // A dead document's ports carry nothing more, in either direction.
      return makeTab({ env, locks }, id, link, () => ports.forEach((port) => port.close()), options)
    },
  }
}

/** Leader mode: every tab has its own page (environment), one of them hosts the broker. */
function leaderWorld(): World {
  const locks = new FakeLocks()
  const network = new FakeBusNetwork()
  // One clock for the browser; each page has its own sockets.
  const shared = fakeEnv()
  const pages: FakeEnv[] = []
  return {
    env: shared,
    locks,
    // The socket of the page that leads now: a dead page's sockets were closed by the browser.
    socket: () => {
      const page = pages.find((env) => env.sockets.count > 0 && !env.sockets.last.isClosed)
      if (!page) throw new Error('no socket in any page')
      return page.sockets.last
    },
    open: (id, options = {}) => {
      const env = fakeEnv()
      pages.push(env)
      const pageEnv = { ...env.env, clock: shared.clock }
      const election = new LeaderElection({ env: pageEnv, locks: locks.forTab(id), createBus: () => network.create(id), tabId: id, reason: 'test', handoverDelay: 0 })
      const tab = makeTab({ env: shared, locks }, id, () => createLeaderLink(election), () => {
        network.kill(id)
        for (const socket of env.sockets.openSockets) socket.close(1001, 'tab closed')
      }, options)
      closers.push(() => election.leaderHub()?.close())
      return tab
    },
  }
}

async function complete(world: World, result: unknown): Promise<void> {
  await until(() => {
    try {
      return world.socket() !== undefined
    } catch {
      return false
    }
  }, 'a socket')
  const socket = world.socket()
  socket.open()
  socket.receive({ type: 'connected', project_id: TASK, last_seq: 0 })
  socket.receive({ type: 'completed', seq: 1, result })
}

function totalCalls(tabs: Tab[]): number {
  return tabs.reduce((sum, tab) => sum + tab.calls.length, 0)
}

describe.each([
  ['SharedWorker', sharedWorkerWorld],
  ['leader tab', leaderWorld],
])('once-handlers through the %s host', (_name, makeWorld) => {
  it('3 tabs with a handler: it runs once, in the visible and focused tab; every tab learns where', async () => {
    const world = makeWorld()
    const tabs = [
      world.open('t1'),
      world.open('t2', { presence: { visible: true, focused: true } }),
      world.open('t3', { presence: { visible: true, focused: false } }),
    ]
    await quiesce()
    await complete(world, { url: '/a.mp3' })
    await until(() => tabs.every((tab) => tab.outcomes.length === 1), 'every tab settled')
    await quiesce()
    expect(tabs.map((tab) => tab.calls)).toEqual([[], [{ url: '/a.mp3' }], []])
    expect(tabs.map((tab) => tab.outcomes[0])).toEqual([
      { event: 'completed', ranHere: false, ranIn: 't2' },
      { event: 'completed', ranHere: true, ranIn: 't2' },
      { event: 'completed', ranHere: false, ranIn: 't2' },
    ])
  })

  it(`client.once refuses a tab's handler past ${MAX_ONCE_HANDLERS_PER_TAB} with a RangeError; the host keeps serving`, async () => {
    const world = makeWorld()
    const greedy = world.open('t1')
    const other = world.open('t2', { presence: { visible: true, focused: true } })
    // t1 has the test's handler already.
    for (let i = 1; i < MAX_ONCE_HANDLERS_PER_TAB; i++) greedy.client.once(TASK, 'completed', () => {}, OPTIONS)
    expect(() => greedy.client.once(TASK, 'completed', () => {}, OPTIONS)).toThrow(
      `tabcast: this tab has ${MAX_ONCE_HANDLERS_PER_TAB} once-handlers registered already (the limit); remove some before adding more`,
    )
    await quiesce()
    await complete(world, { url: '/b.mp3' })
    await until(() => totalCalls([greedy, other]) === 1, 'one call')
    expect(other.calls).toEqual([{ url: '/b.mp3' }])
  })

  it('follows a change of visibility: the tab shown last before the end runs it', async () => {
    const world = makeWorld()
    const tabs = [world.open('t1', { presence: { visible: true, focused: true } }), world.open('t2')]
    await quiesce()
    tabs[0]!.presence.set({ visible: false, focused: false })
    tabs[1]!.presence.set({ visible: true, focused: true })
    await quiesce()
    await complete(world, {})
    await until(() => totalCalls(tabs) === 1, 'one call')
    expect(tabs[1]!.calls).toHaveLength(1)
  })

  it('the chosen tab dies before acknowledging: another tab runs it, once, without waiting for the deadline', async () => {
    const world = makeWorld()
    // The chosen tab's clock reads past every deadline, so it never runs it (it answers "late");
    // only its death can move the host on before the deadline.
    // Opened first, so that in leader mode this tab hosts the broker, and not the one that dies.
    const first = world.open('o1')
    await quiesce()
    const stuck = world.open('stuck', { presence: { visible: true, focused: true }, now: () => Number.MAX_SAFE_INTEGER })
    const others = [first, world.open('o2')]
    await quiesce()
    await complete(world, {})
    await quiesce()
    expect(totalCalls([stuck, ...others])).toBe(0)
    stuck.kill()
    await until(() => totalCalls(others) === 1, 'one call in another tab')
    await quiesce()
    expect(totalCalls([stuck, ...others])).toBe(1)
  })

  it('a tab that does not acknowledge in time is replaced at the deadline', async () => {
    const world = makeWorld()
    const other = world.open('other')
    await quiesce()
    const stuck = world.open('stuck', { presence: { visible: true, focused: true }, now: () => Number.MAX_SAFE_INTEGER })
    await quiesce()
    await complete(world, {})
    await quiesce()
    expect(other.calls).toHaveLength(0)
    world.env.clock.advance(5000)
    await until(() => other.calls.length === 1, 'the other tab ran it')
    expect(stuck.calls).toHaveLength(0)
  })

  it('a tab opened after it ran does not run it again', async () => {
    const world = makeWorld()
    const first = world.open('first')
    await quiesce()
    await complete(world, {})
    await until(() => first.calls.length === 1, 'ran in the first tab')
    const late = world.open('late', { presence: { visible: true, focused: true } })
    await quiesce()
    world.env.clock.advance(60_000)
    await quiesce()
    expect(late.calls).toHaveLength(0)
    expect(first.calls).toHaveLength(1)
    // The late tab is told where it ran.
    expect(late.outcomes).toEqual([{ event: 'completed', ranHere: false, ranIn: 'first' }])
    // The tab that ran it, registering again (a remount), runs nothing and hears it ran here.
    const again: OnceOutcome[] = []
    const handler = vi.fn()
    first.client.once(TASK, 'completed', handler, { ...OPTIONS, onSettled: (outcome) => again.push(outcome) })
    await quiesce()
    expect(handler).not.toHaveBeenCalled()
    expect(again).toEqual([{ event: 'completed', ranHere: true, ranIn: 'first' }])
  })
})

describe('once-handlers, host-specific', () => {
  it('SharedWorker: a task that ended while nobody had a handler runs in the first tab that registers, then never again', async () => {
    const world = sharedWorkerWorld()
    const viewer = world.open('viewer', { handler: false })
    const seen: string[] = []
    viewer.client.subscribe(TASK, { snapshot: (snapshot) => seen.push(snapshot.status) }, OPTIONS)
    await quiesce()
    await complete(world, { url: '/late.mp3' })
    await until(() => seen.includes('completed'), 'the viewer saw the task complete')
    const late = world.open('late')
    await until(() => late.calls.length === 1, 'the late tab ran it')
    expect(late.calls).toEqual([{ url: '/late.mp3' }])
    const later = world.open('later')
    await until(() => world.hub.once.state(TASK, OPTIONS)?.tabs.length === 0, 'no registration left')
    await quiesce()
    expect(later.calls).toHaveLength(0)
    expect(world.hub.once.state(TASK, OPTIONS)?.done).toEqual({ event: 'completed', ranIn: 'late' })
  })

  it('SharedWorker: the host follows the task for a once-handler alone, and stops when it is removed', async () => {
    const world = sharedWorkerWorld()
    const tab = world.open('solo', { handler: false })
    const remove = tab.client.once(TASK, 'completed', () => {}, OPTIONS)
    await until(() => world.env.sockets.count === 1, 'a socket for the handler alone')
    remove()
    await until(() => world.env.sockets.last.isClosed, 'the socket closed after the last handler went')
  })

  it("SharedWorker: the host's following is not counted as a tab's subscription in stats", async () => {
    const world = sharedWorkerWorld()
    const tab = world.open('solo', { handler: false })
    tab.client.once(TASK, 'completed', () => {}, OPTIONS)
    await until(() => world.env.sockets.count === 1, 'a socket for the handler alone')
    expect(world.hub.stats().tasks.map((task) => task.subscribers)).toEqual([0])
    tab.client.subscribe(TASK, {}, OPTIONS)
    await until(() => world.hub.stats().tasks[0]?.subscribers === 1, 'one tab subscription')
    await quiesce()
    expect(world.hub.stats().tasks.map((task) => task.subscribers)).toEqual([1])
  })

  it('leader tab: a new leader, told by the tabs what was done, does not run it again', async () => {
    const world = leaderWorld()
    const leader = world.open('leader', { presence: { visible: true, focused: true } })
    await quiesce()
    const follower = world.open('follower')
    // The follower shows the task too, so the next leader follows it.
    follower.client.subscribe(TASK, {}, OPTIONS)
    await quiesce()
    await complete(world, { url: '/a.mp3' })
    await until(() => leader.calls.length === 1 && follower.outcomes.length === 1, 'ran in the leader, the follower told')
    leader.kill()
    // The follower leads now, with a broker of its own: it resumes the task from the
    // follower's last snapshot (completed), but knows nothing of once-effects except what
    // the tabs tell it.
    await until(() => follower.client !== undefined && world.locks.holder('tabcast:leader:v1') === 'follower', 'the follower leads')
    await quiesce()
    const late = world.open('late', { presence: { visible: true, focused: true } })
    await quiesce()
    world.env.clock.advance(60_000)
    await quiesce()
    expect([leader, follower, late].map((tab) => tab.calls.length)).toEqual([1, 0, 0])
    // The follower told the new leader where it ran, so the late tab hears that too.
    expect(late.outcomes).toEqual([{ event: 'completed', ranHere: false, ranIn: 'leader' }])
  })

  it('per-tab mode: each tab is its own browser, so each runs its own handler', async () => {
    const env = fakeEnv()
    const locks = new FakeLocks()
    const tabs: Tab[] = []
    for (const id of ['p1', 'p2']) {
      const page = fakeEnv()
      const link = createLocalLink({ ...page.env, clock: env.clock }, 'per-tab', 'test')
      closers.push(() => link.dispose())
      tabs.push(makeTab({ env, locks }, id, () => link, () => {}, {}))
      await until(() => page.sockets.count === 1, 'a socket in the page')
      const socket = page.sockets.last
      socket.open()
      socket.receive({ type: 'completed', seq: 1, result: {} })
    }
    await until(() => tabs.every((tab) => tab.calls.length === 1), 'one call per tab')
  })
})
