/**
 * Issue 15, "Deliver what is asked for": a host sends each tab only what its
 * subscriptions need. A `snapshots` subscription gets no messages and at most one
 * snapshot per frame (the first at once), plus connected / error / completed at once.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { ServerMessage } from 'tabcast'
import { Broker } from '../../src/core/broker.js'
import { FRAME_MS } from '../../src/core/delivery.js'
import { isBatch, type Batch, type WireEvent } from '../../src/core/session-protocol.js'
import { TabHub, type TabSession } from '../../src/core/tab-hub.js'
import { fakeEnv, type FakeEnv } from '../support/fake-env.js'
import { settle } from '../support/fake-fetch.js'

const TASK = 'deliver_1'

let world: FakeEnv
let hub: TabHub | null = null
afterEach(() => hub?.close())

interface Tab {
  session: TabSession
  batches: Batch[]
  readonly events: WireEvent[]
  /** Acknowledges every batch so far, as a live tab does on arrival. */
  ackAll(): void
}

function setup(): Tab {
  world = fakeEnv()
  hub = new TabHub(new Broker(world.env, { mode: 'shared-worker', modeReason: 'test' }, 'worker-1'), null)
  const batches: Batch[] = []
  const session = hub.attach('tab-1', (message) => {
    if (isBatch(message)) batches.push(message)
  })
  return {
    session,
    batches,
    get events() {
      return batches.flatMap((batch) => batch.events)
    },
    ackAll() {
      for (const batch of batches) session.ack(batch.id)
    },
  }
}

const progress = (seq: number): ServerMessage => ({ type: 'progress', progress: seq / 1000, seq })
const ofSub = (events: readonly WireEvent[], sub: number, type: WireEvent['type']): WireEvent[] =>
  events.filter((event) => event.sub === sub && event.type === type)
const progressOf = (events: readonly WireEvent[], sub: number): number[] =>
  ofSub(events, sub, 'snapshot').map((event) => (event.type === 'snapshot' ? event.snapshot.progress : Number.NaN))

/** Opens the task's socket and lets the tab take the resulting batches. */
async function live(tab: Tab): Promise<void> {
  await settle()
  world.sockets.last.open()
  world.sockets.last.receive({ type: 'connected', last_seq: 0 })
  await settle()
  tab.ackAll()
  // The next frame: pacing starts afresh.
  world.clock.advance(FRAME_MS)
  await settle()
}

describe('delivery modes on the host', () => {
  it('a snapshots subscription gets no messages; a messages subscription of the same tab gets every one', async () => {
    const tab = setup()
    tab.session.subscribe(1, TASK, { delivery: 'snapshots' })
    tab.session.subscribe(2, TASK, { delivery: 'messages' })
    await live(tab)
    for (let seq = 1; seq <= 50; seq++) {
      world.sockets.last.receive(progress(seq))
      await settle()
      tab.ackAll()
    }
    expect(ofSub(tab.events, 1, 'message')).toEqual([])
    expect(ofSub(tab.events, 2, 'message')).toHaveLength(51)
  })

  it('paces snapshots to one per frame: the first at once, then the newest when the frame is over', async () => {
    const tab = setup()
    tab.session.subscribe(1, TASK, { delivery: 'snapshots' })
    await live(tab)
    const before = tab.batches.length
    // A burst within one frame.
    for (let seq = 1; seq <= 100; seq++) {
      world.sockets.last.receive(progress(seq))
      await settle()
      tab.ackAll()
    }
    const during = tab.batches.slice(before).flatMap((batch) => batch.events)
    expect(progressOf(during, 1)).toEqual([0.001])
    world.clock.advance(FRAME_MS)
    await settle()
    const after = tab.batches.slice(before).flatMap((batch) => batch.events)
    expect(progressOf(after, 1)).toEqual([0.001, 0.1])
    // Quiet since: nothing more goes out, and no timer is left behind.
    world.clock.advance(10 * FRAME_MS)
    await settle()
    expect(tab.batches.slice(before).flatMap((batch) => batch.events)).toHaveLength(2)
  })

  it("paces each subscription on its own: one task's snapshot does not hold another task's for a frame", async () => {
    const tab = setup()
    tab.session.subscribe(1, TASK, { delivery: 'snapshots' })
    await live(tab)
    tab.session.subscribe(2, 'deliver_2', { delivery: 'snapshots' })
    await settle()
    const second = world.sockets.last
    second.open()
    second.receive({ type: 'connected', last_seq: 0 })
    await settle()
    tab.ackAll()
    world.clock.advance(FRAME_MS)
    await settle()
    const first = world.sockets.all[0]
    if (!first) throw new Error('no socket for the first task')
    const before = tab.batches.length
    // Both tasks step within the same millisecond, as five tasks of one page often do.
    first.receive(progress(1))
    await settle()
    second.receive(progress(2))
    await settle()
    const now = tab.batches.slice(before).flatMap((batch) => batch.events)
    expect(progressOf(now, 1)).toEqual([0.001])
    expect(progressOf(now, 2)).toEqual([0.002])
    // Each still gets at most one per frame: a second step of task 1 waits for its frame.
    first.receive(progress(3))
    await settle()
    expect(progressOf(tab.batches.slice(before).flatMap((batch) => batch.events), 1)).toEqual([0.001])
    world.clock.advance(FRAME_MS)
    await settle()
    expect(progressOf(tab.batches.slice(before).flatMap((batch) => batch.events), 1)).toEqual([0.001, 0.003])
  })

  it('a burst over many frames costs one snapshot per frame', async () => {
    const tab = setup()
    tab.session.subscribe(1, TASK, { delivery: 'snapshots' })
    await live(tab)
    const before = tab.batches.length
    const frames = 20
    // 1,000 messages per second: one per millisecond.
    for (let ms = 0; ms < frames * FRAME_MS; ms++) {
      world.sockets.last.receive(progress(ms + 1))
      await settle()
      tab.ackAll()
      world.clock.advance(1)
    }
    world.clock.advance(FRAME_MS)
    await settle()
    const snapshots = progressOf(tab.batches.slice(before).flatMap((batch) => batch.events), 1)
    expect(snapshots.length).toBeLessThanOrEqual(frames + 1)
    expect(snapshots.at(-1)).toBe((frames * FRAME_MS) / 1000)
  })

  /** A snapshot-only tab that has seen one step, acknowledged, with the step's frame still open. */
  async function snapshotTabAfterOneStep(): Promise<ReturnType<typeof setup>> {
    const tab = setup()
    tab.session.subscribe(1, TASK, { delivery: 'snapshots' })
    await live(tab)
    world.sockets.last.receive(progress(1))
    await settle()
    tab.ackAll()
    return tab
  }

  it('completion and connection changes leave at once, even within a frame', async () => {
    const tab = await snapshotTabAfterOneStep()
    world.sockets.last.receive(progress(2))
    await settle()
    world.sockets.last.receive({ type: 'completed', seq: 3, result: { ok: true } })
    await settle()
    // No time passed: the completion did not wait for the frame.
    const last = ofSub(tab.events, 1, 'snapshot').at(-1)
    expect(last?.type === 'snapshot' ? last.snapshot.status : null).toBe('completed')
    expect(ofSub(tab.events, 1, 'message')).toEqual([])
  })

  it('a lost connection leaves at once too', async () => {
    const tab = await snapshotTabAfterOneStep()
    world.sockets.last.drop(1006, 'gone')
    await settle()
    const last = ofSub(tab.events, 1, 'snapshot').at(-1)
    expect(last?.type === 'snapshot' ? last.snapshot.connection : null).toBe('reconnecting')
  })
})
