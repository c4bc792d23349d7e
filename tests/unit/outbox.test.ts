/**
 * Issue 12, "Client: bounds": every kind of message in a tab's outbox is bounded at
 * O(1) per message. A backend that floods `pong`, `connected` or connection-scoped
 * `error` messages at a stalled tab used to grow the outbox by one entry per message
 * (30k pongs: +7.8 MiB of worker heap) and rescan it on every push.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { ServerMessage } from 'tabcast'
import { Broker } from '../../src/core/broker.js'
import { Outbox } from '../../src/core/outbox.js'
import { isBatch, type Batch, type WireEvent } from '../../src/core/session-protocol.js'
import { MAX_IN_FLIGHT, OUTBOX_LIMIT, TabHub } from '../../src/core/tab-hub.js'
import { fakeEnv } from '../support/fake-env.js'
import { settle } from '../support/fake-fetch.js'

const FLOOD = 30_000
/** Smaller through the whole broker, so that the unbounded outbox this guards against fails the test quickly. */
const SESSION_FLOOD = 5_000
const LIMIT = 50

const message = (sub: number, value: ServerMessage): Extract<WireEvent, { type: 'message' }> => ({ sub, type: 'message', message: value })
const progress = (seq: number): ServerMessage => ({ type: 'progress', progress: Math.min(1, seq / FLOOD), seq })
const connectionError = (text: string): ServerMessage => ({ type: 'error', error: text, details: { scope: 'connection', code: 'rate_limited' } })

function kinds(events: readonly WireEvent[]): string[] {
  return events.map((event) => (event.type === 'message' ? `${event.sub}:${event.message.type}` : `${event.sub}:snapshot`))
}

describe('Outbox', () => {
  it.each([
    ['pong', (): ServerMessage => ({ type: 'pong' })],
    ['connected', (): ServerMessage => ({ type: 'connected', last_seq: 0 })],
    ['connection-scoped error', (): ServerMessage => connectionError('slow down')],
  ])('a flood of %s keeps one entry per subscription, the latest, at its place in the order', (_name, make) => {
    const outbox = new Outbox(LIMIT)
    outbox.push(message(1, progress(1)))
    for (let i = 0; i < FLOOD; i++) {
      outbox.push(message(1, { ...make(), message: `#${i}` }))
      outbox.push(message(2, { ...make(), message: `#${i}` }))
    }
    outbox.push(message(1, progress(2)))
    expect(outbox.length).toBe(4)
    const events = outbox.take()
    expect(kinds(events)).toEqual(['1:progress', `1:${make().type}`, `2:${make().type}`, '1:progress'])
    expect(events.map((event) => (event.type === 'message' ? event.message.message : undefined))).toEqual([
      undefined,
      `#${FLOOD - 1}`,
      `#${FLOOD - 1}`,
      undefined,
    ])
    expect(outbox.length).toBe(0)
  })

  it('keeps at most `limit` other messages, the newest, in order', () => {
    const outbox = new Outbox(LIMIT)
    for (let seq = 1; seq <= FLOOD; seq++) outbox.push(message(1, progress(seq)))
    // A type this client does not know is bounded the same way.
    for (let i = 0; i < FLOOD; i++) outbox.push(message(1, { type: 'log', line: i } as unknown as ServerMessage))
    expect(outbox.length).toBe(LIMIT)
    const events = outbox.take()
    expect(kinds(events)).toEqual(Array.from({ length: LIMIT }, () => '1:log'))
  })

  it('never drops the first terminal message of a subscription; repeated ones are bounded like the rest', () => {
    const outbox = new Outbox(LIMIT)
    outbox.push(message(1, { type: 'completed', seq: 1, result: { ok: true } }))
    outbox.push(message(2, { type: 'error', seq: 1, error: 'the job crashed' }))
    for (let seq = 2; seq <= FLOOD; seq++) {
      outbox.push(message(1, { type: 'completed', seq, result: {} }))
      outbox.push(message(2, progress(seq)))
    }
    expect(outbox.length).toBe(LIMIT + 2)
    const events = outbox.take()
    expect(kinds(events.slice(0, 2))).toEqual(['1:completed', '2:error'])
    expect(events[0]).toEqual(message(1, { type: 'completed', seq: 1, result: { ok: true } }))
  })

  it('is empty again after take() and clear(), and bounds the next round the same way', () => {
    const outbox = new Outbox(LIMIT)
    for (let seq = 1; seq <= 3 * LIMIT; seq++) outbox.push(message(1, progress(seq)))
    expect(outbox.take()).toHaveLength(LIMIT)
    outbox.push(message(1, { type: 'completed', seq: 1 }))
    outbox.push(message(1, { type: 'pong' }))
    outbox.clear()
    expect(outbox.length).toBe(0)
    outbox.push(message(1, { type: 'completed', seq: 2 }))
    expect(kinds(outbox.take())).toEqual(['1:completed'])
  })
})

describe('TabSession outbox under a flood while the tab is stalled', () => {
  let hub: TabHub | null = null
  afterEach(() => hub?.close())

  it('floods of pongs, connected and connection errors leave a stalled tab a handful of entries; progress stays within OUTBOX_LIMIT', async () => {
    const world = fakeEnv()
    const broker = new Broker(world.env, { mode: 'shared-worker', modeReason: 'test' }, 'worker-1')
    hub = new TabHub(broker, null)
    const batches: Batch[] = []
    const session = hub.attach('tab-1', (posted) => {
      if (isBatch(posted)) batches.push(posted)
    })
    session.subscribe(1, 'flood_1', {})
    await settle()
    const socket = world.sockets.last
    socket.open()
    for (let seq = 1; batches.length < MAX_IN_FLIGHT; seq++) {
      socket.receive(progress(seq))
      await settle()
    }
    // The tab acknowledges nothing from here on.
    for (let i = 0; i < SESSION_FLOOD; i++) socket.receive({ type: 'pong' })
    for (let i = 0; i < SESSION_FLOOD; i++) socket.receive({ type: 'connected', last_seq: 10 })
    for (let i = 0; i < SESSION_FLOOD; i++) socket.receive(connectionError(`too fast #${i}`))
    await settle()
    // One pong, one connected, one connection error and the newest snapshot.
    expect(session.stats().backlog).toBeLessThanOrEqual(4)

    for (let seq = 10; seq < 10 + SESSION_FLOOD; seq++) socket.receive(progress(seq))
    socket.receive({ type: 'completed', seq: 10 + SESSION_FLOOD, result: { ok: true } })
    await settle()
    expect(session.stats().backlog).toBeLessThanOrEqual(OUTBOX_LIMIT + 5)

    // The tab wakes up: the completion is there, after the newest steps.
    for (const batch of [...batches]) session.ack(batch.id)
    await settle()
    const delivered = batches.slice(MAX_IN_FLIGHT).flatMap((batch) => batch.events)
    const messages = delivered.flatMap((event) => (event.type === 'message' ? [event.message] : []))
    expect(messages.filter((m) => m.type === 'completed')).toHaveLength(1)
    expect(messages.at(-1)?.type).toBe('completed')
    expect(messages.filter((m) => m.type === 'pong')).toHaveLength(1)
  })
})
