import { describe, expect, it } from 'vitest'
import {
  DEFAULT_ONCE_ACK_TIMEOUT,
  OnceCoordinator,
  RECENT_RUNS,
  type OnceRunRequest,
  type OnceSettled,
} from '../../src/core/once-coordinator.js'
import { MAX_ONCE_HANDLERS_PER_TAB } from '../../src/once-types.js'
import { FakeClock } from '../support/fake-clock.js'

const TASK = 'ws://localhost:8000 render_1'
const OTHER = 'ws://localhost:8000 render_2'

interface World {
  clock: FakeClock
  once: OnceCoordinator
  runs: Array<{ tab: string; request: OnceRunRequest }>
  settled: Array<{ tab: string; settled: OnceSettled }>
  /** Tabs whose port refuses messages. */
  broken: Set<string>
}

function setup(maxRememberedTasks?: number): World {
  const clock = new FakeClock()
  const runs: World['runs'] = []
  const settled: World['settled'] = []
  const broken = new Set<string>()
  const once = new OnceCoordinator({
    clock,
    sendRun: (tab, request) => {
      if (broken.has(tab)) throw new Error('port closed')
      runs.push({ tab, request })
    },
    sendSettled: (tab, value) => settled.push({ tab, settled: value }),
    ...(maxRememberedTasks === undefined ? {} : { maxRememberedTasks }),
  })
  return { clock, once, runs, settled, broken }
}

function lastRun(world: World): { tab: string; request: OnceRunRequest } {
  const run = world.runs.at(-1)
  if (!run) throw new Error('no run was sent')
  return run
}

/** A fake of `navigator.locks` for tab locks: a request is granted when the tab holding the lock dies. */
class FakeTabLocks {
  private readonly waiting = new Map<string, Array<() => void>>()

  request(name: string, _options: object, callback: (lock: unknown) => unknown): Promise<unknown> {
    return new Promise((resolve) => {
      const list = this.waiting.get(name) ?? []
      list.push(() => resolve(callback({ name })))
      this.waiting.set(name, list)
    })
  }

  kill(tabId: string): void {
    const name = `tabcast:tab:${tabId}`
    for (const grant of this.waiting.get(name) ?? []) grant()
    this.waiting.delete(name)
  }
}

describe('OnceCoordinator: which tab runs it', () => {
  it('asks one tab, the visible and focused one before a visible one before a hidden one', () => {
    const world = setup()
    world.once.setPresence('hidden', { visible: false, focused: false })
    world.once.setPresence('visible', { visible: true, focused: false })
    world.once.setPresence('focused', { visible: true, focused: true })
    for (const tab of ['hidden', 'visible', 'focused']) world.once.register(tab, 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', { url: '/a.mp3' })
    expect(world.runs).toHaveLength(1)
    expect(lastRun(world).tab).toBe('focused')
    expect(lastRun(world).request).toMatchObject({ task: TASK, regIds: [1], event: 'completed', value: { url: '/a.mp3' } })
  })

  it('prefers a visible tab to a hidden one when none is focused, and the earliest registration among equals', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('b', 1, { task: TASK, event: 'completed' })
    world.once.register('c', 1, { task: TASK, event: 'completed' })
    world.once.setPresence('c', { visible: true, focused: false })
    world.once.terminal(TASK, 'completed', null)
    expect(lastRun(world).tab).toBe('c')

    const second = setup()
    second.once.register('a', 1, { task: TASK, event: 'completed' })
    second.once.register('b', 1, { task: TASK, event: 'completed' })
    second.once.terminal(TASK, 'completed', null)
    expect(lastRun(second).tab).toBe('a')
  })

  it('runs only the handlers of the event that happened, and tells the other ones to drop theirs', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('b', 1, { task: TASK, event: 'failed' })
    world.once.terminal(TASK, 'failed', 'boom')
    expect(world.runs.map((run) => run.tab)).toEqual(['b'])
    expect(world.settled).toEqual([{ tab: 'a', settled: { task: TASK, regIds: [1], event: 'failed', ranIn: null } }])
    expect(world.once.register('c', 1, { task: TASK, event: 'completed' })).toEqual({ state: 'done', event: 'failed', ranIn: null })
  })

  it('names every handler of the chosen tab for that task and event, and only those', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('a', 2, { task: OTHER, event: 'completed' })
    world.once.register('a', 3, { task: TASK, event: 'completed' })
    world.once.register('a', 4, { task: TASK, event: 'failed' })
    world.once.terminal(TASK, 'completed', null)
    expect(lastRun(world).request.regIds).toEqual([1, 3])
  })

  it('keeps tasks apart', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('b', 2, { task: OTHER, event: 'completed' })
    world.once.terminal(OTHER, 'completed', null)
    expect(world.runs.map((run) => [run.tab, run.request.task])).toEqual([['b', OTHER]])
    expect(world.once.isDone(TASK)).toBe(false)
  })

  it('sends nothing before the terminal event, and nothing for a task nobody registered for', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.terminal(OTHER, 'completed', null)
    expect(world.runs).toEqual([])
  })
})

describe('OnceCoordinator: acknowledgement and failover', () => {
  it('marks the task done on the acknowledgement and tells every registered tab who ran it', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('b', 7, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    world.once.acknowledge('a', lastRun(world).request.id)
    expect(world.once.state(TASK)).toMatchObject({ done: { event: 'completed', ranIn: 'a' }, running: null, tabs: [] })
    expect(world.settled.map((entry) => entry.tab).sort()).toEqual(['a', 'b'])
    expect(world.settled.find((entry) => entry.tab === 'b')?.settled).toEqual({ task: TASK, regIds: [7], event: 'completed', ranIn: 'a' })
    world.clock.advance(DEFAULT_ONCE_ACK_TIMEOUT * 10)
    expect(world.runs).toHaveLength(1)
    expect(world.clock.pendingCount).toBe(0)
  })

  it('asks the next tab when the chosen one does not acknowledge within its deadline', () => {
    const world = setup()
    world.once.setPresence('a', { visible: true, focused: true })
    world.once.register('a', 1, { task: TASK, event: 'completed', ackTimeout: 2000 })
    world.once.register('b', 1, { task: TASK, event: 'completed', ackTimeout: 2000 })
    world.once.terminal(TASK, 'completed', null)
    expect(lastRun(world).tab).toBe('a')
    world.clock.advance(1999)
    expect(world.runs).toHaveLength(1)
    world.clock.advance(1)
    expect(world.runs.map((run) => run.tab)).toEqual(['a', 'b'])
    world.once.acknowledge('b', lastRun(world).request.id)
    expect(world.once.state(TASK)?.done).toEqual({ event: 'completed', ranIn: 'b' })
  })

  it('gives the tab half its deadline to start (runBy), so its answer can arrive in time', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed', ackTimeout: 3000 })
    world.once.terminal(TASK, 'completed', null)
    expect(lastRun(world).request.runBy).toBe(world.clock.now() + 1500)
  })

  it('asks the next tab at once when the chosen one is released, e.g. when its Web Lock is granted to the host', async () => {
    const world = setup()
    const locks = new FakeTabLocks()
    // The host's wiring: the tab's lock, granted when the tab dies, releases it.
    for (const tab of ['a', 'b']) void locks.request(`tabcast:tab:${tab}`, {}, () => world.once.release(tab))
    world.once.setPresence('a', { visible: true, focused: true })
    world.once.register('a', 1, { task: TASK, event: 'completed', ackTimeout: 60_000 })
    world.once.register('b', 1, { task: TASK, event: 'completed', ackTimeout: 60_000 })
    world.once.terminal(TASK, 'completed', null)
    expect(lastRun(world).tab).toBe('a')
    locks.kill('a')
    await Promise.resolve()
    expect(world.runs.map((run) => run.tab)).toEqual(['a', 'b'])
    // No time passed: the failover did not wait for the deadline.
    expect(world.clock.pendingDelays()).toEqual([60_000])
  })

  it('asks the next tab when the chosen one has no handler left, and not that tab again', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('b', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    world.once.refuse('a', lastRun(world).request.id, 'no-handler')
    expect(lastRun(world).tab).toBe('b')
    world.clock.advance(DEFAULT_ONCE_ACK_TIMEOUT)
    expect(world.runs.map((run) => run.tab)).toEqual(['a', 'b', 'b'])
  })

  it('waits for the deadline when a tab answers it read the request too late, so a late tab cannot make the host spin', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    world.once.refuse('a', lastRun(world).request.id, 'late')
    expect(world.runs).toHaveLength(1)
    world.clock.advance(DEFAULT_ONCE_ACK_TIMEOUT)
    expect(world.runs).toHaveLength(2)
  })

  it('asks the next tab when the chosen tab\'s port cannot take the request', () => {
    const world = setup()
    world.broken.add('a')
    world.once.setPresence('a', { visible: true, focused: true })
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('b', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    expect(world.runs.map((run) => run.tab)).toEqual(['b'])
  })

  it('at least once: a lone tab that timed out is asked again while it is registered', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed', ackTimeout: 1000 })
    world.once.terminal(TASK, 'completed', null)
    world.clock.advance(1000)
    world.clock.advance(1000)
    expect(world.runs.map((run) => run.tab)).toEqual(['a', 'a', 'a'])
    world.once.acknowledge('a', lastRun(world).request.id)
    world.clock.advance(10_000)
    expect(world.runs).toHaveLength(3)
  })

  it('tries every other tab before asking a timed-out tab again, whatever its visibility', () => {
    const world = setup()
    world.once.setPresence('a', { visible: true, focused: true })
    for (const tab of ['a', 'b', 'c']) world.once.register(tab, 1, { task: TASK, event: 'completed', ackTimeout: 1000 })
    world.once.terminal(TASK, 'completed', null)
    world.clock.advance(3000)
    expect(world.runs.map((run) => run.tab)).toEqual(['a', 'b', 'c', 'a'])
  })

  it('at most once: an acknowledgement that arrives after its deadline still counts, and stops the next attempt', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed', ackTimeout: 1000 })
    world.once.register('b', 1, { task: TASK, event: 'completed', ackTimeout: 1000 })
    world.once.terminal(TASK, 'completed', null)
    const first = lastRun(world).request.id
    world.clock.advance(1000)
    expect(lastRun(world).tab).toBe('b')
    world.once.acknowledge('a', first)
    expect(world.once.state(TASK)?.done).toEqual({ event: 'completed', ranIn: 'a' })
    world.once.acknowledge('b', lastRun(world).request.id)
    expect(world.once.state(TASK)?.done?.ranIn).toBe('a')
    world.clock.advance(10_000)
    expect(world.runs).toHaveLength(2)
  })

  it('keeps only the latest run ids of a task whose tabs keep timing out', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed', ackTimeout: 1000 })
    world.once.terminal(TASK, 'completed', null)
    world.clock.advance(1000 * RECENT_RUNS * 3)
    expect(world.runs.length).toBeGreaterThan(RECENT_RUNS * 2)
    expect(world.once.trackedRuns).toBe(RECENT_RUNS)
    // The oldest run's acknowledgement is forgotten; the latest still counts.
    world.once.acknowledge('a', world.runs[0]?.request.id ?? -1)
    expect(world.once.isDone(TASK)).toBe(false)
    world.once.acknowledge('a', lastRun(world).request.id)
    expect(world.once.isDone(TASK)).toBe(true)
    expect(world.once.trackedRuns).toBe(0)
  })

  it('ignores acknowledgements of unknown runs and from another tab', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    world.once.acknowledge('a', 12345)
    expect(world.once.isDone(TASK)).toBe(false)
  })

  it('waits with no tab registered, and runs in the next tab that registers', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', 'value')
    world.once.unregister('a', 1)
    world.once.release('a')
    expect(world.runs.map((run) => run.tab)).toEqual(['a'])
    expect(world.once.register('b', 3, { task: TASK, event: 'completed' })).toEqual({ state: 'pending' })
    expect(world.runs.map((run) => run.tab)).toEqual(['a', 'b'])
  })
})

describe('OnceCoordinator: late tabs', () => {
  it('a tab registering after the effect was done does not run it', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    world.once.acknowledge('a', lastRun(world).request.id)
    world.once.release('a')
    expect(world.once.register('late', 1, { task: TASK, event: 'completed' })).toMatchObject({ state: 'done' })
    expect(world.runs).toHaveLength(1)
    expect(world.once.state(TASK)?.tabs).toEqual([])
  })

  it('a tab registering after the task ended, when nobody had a handler, runs it once', () => {
    const world = setup()
    world.once.terminal(TASK, 'completed', { url: '/a.mp3' })
    expect(world.runs).toEqual([])
    expect(world.once.register('late', 1, { task: TASK, event: 'completed' })).toEqual({ state: 'pending' })
    expect(lastRun(world)).toMatchObject({ tab: 'late', request: { value: { url: '/a.mp3' } } })
    world.once.acknowledge('late', lastRun(world).request.id)
    expect(world.once.register('later', 1, { task: TASK, event: 'completed' })).toEqual({ state: 'done', event: 'completed', ranIn: 'late' })
    expect(world.runs).toHaveLength(1)
  })

  it('a tab that registers again with `done` (a restarted host) stops the effect from running again', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed', done: true })
    world.once.register('b', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    expect(world.runs).toEqual([])
    expect(world.once.state(TASK)?.done).toEqual({ event: 'completed', ranIn: null })
  })

  it('a repeated terminal event does not run it again', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    world.once.terminal(TASK, 'completed', null)
    world.once.terminal(TASK, 'failed', null)
    expect(world.runs).toHaveLength(1)
  })
})

describe('OnceCoordinator: memory', () => {
  it(`holds at most ${MAX_ONCE_HANDLERS_PER_TAB} registrations per tab, and refuses the next with the reason`, () => {
    const world = setup()
    for (let regId = 1; regId <= MAX_ONCE_HANDLERS_PER_TAB; regId++) world.once.register('a', regId, { task: `task-${regId}`, event: 'completed' })
    expect(() => world.once.register('a', MAX_ONCE_HANDLERS_PER_TAB + 1, { task: TASK, event: 'completed' })).toThrow(
      `tabcast: tab a has ${MAX_ONCE_HANDLERS_PER_TAB} once-handlers registered already (the limit)`,
    )
    expect(world.once.state(TASK)).toBeNull()
    // Registering one again (a new host's re-registration) is not a new one; other tabs are not limited by this one.
    expect(world.once.register('a', 1, { task: 'task-1', event: 'completed' })).toEqual({ state: 'pending' })
    expect(world.once.register('b', 1, { task: TASK, event: 'completed' })).toEqual({ state: 'pending' })
    world.once.unregister('a', 2)
    expect(world.once.register('a', MAX_ONCE_HANDLERS_PER_TAB + 1, { task: TASK, event: 'completed' })).toEqual({ state: 'pending' })
  })

  it('remembers at most maxRememberedTasks finished tasks, forgetting the oldest', () => {
    const world = setup(3)
    for (let i = 0; i < 10; i++) {
      const task = `task-${i}`
      world.once.register('a', i, { task, event: 'completed' })
      world.once.terminal(task, 'completed', null)
      world.once.acknowledge('a', lastRun(world).request.id)
    }
    expect(world.once.rememberedTasks).toBe(3)
    expect(world.once.isDone('task-9')).toBe(true)
    expect(world.once.isDone('task-6')).toBe(false)
  })

  it('never forgets a task with a registration or a run in flight', () => {
    const world = setup(1)
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.register('b', 1, { task: OTHER, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    for (let i = 0; i < 5; i++) world.once.terminal(`ended-${i}`, 'completed', null)
    expect(world.once.state(TASK)?.running).toBe('a')
    expect(world.once.state(OTHER)?.tabs).toEqual(['b'])
    world.once.acknowledge('a', lastRun(world).request.id)
    expect(world.once.isDone(TASK)).toBe(true)
    expect(world.once.rememberedTasks).toBe(2)
  })

  it('forgets a released tab with everything it registered', () => {
    const world = setup()
    world.once.setPresence('a', { visible: true, focused: true })
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.release('a')
    world.once.register('b', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    expect(world.runs.map((run) => run.tab)).toEqual(['b'])
    expect(world.once.state(TASK)?.tabs).toEqual(['b'])
  })

  it('refuses a bound that is not a positive integer', () => {
    expect(() => setup(0)).toThrow(/maxRememberedTasks must be a positive integer, got 0/)
  })

  it('stops its timers on close', () => {
    const world = setup()
    world.once.register('a', 1, { task: TASK, event: 'completed' })
    world.once.terminal(TASK, 'completed', null)
    world.once.close()
    expect(world.clock.pendingCount).toBe(0)
  })
})
