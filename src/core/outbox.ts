/**
 * The messages waiting for one tab while it takes no batches (frozen, throttled,
 * stalled), bounded for every kind of message at O(1) per message:
 *
 * - `pong`, `connected` and connection-scoped `error`: only the latest of each kind is
 *   kept per subscription (a newer one replaces the queued one, at the newer one's
 *   place in the order). Each says something about the connection *now*, so an older
 *   one is stale once a newer one exists;
 * - the first terminal message (`completed`, task `error`) of a subscription: never
 *   dropped;
 * - everything else (`progress`, unknown types, repeated terminal messages): at most
 *   `limit` in all, the oldest dropped first. A tab that missed a step gets the newest
 *   snapshot anyway.
 *
 * So a backend that floods pongs or connection errors at a stalled tab costs a few
 * entries per subscription, not one per message, and no push rescans the queue.
 */
import { isConnectionScopedError, type ServerMessage } from '../protocol.js'
import type { WireEvent } from './session-protocol.js'

type MessageEvent = Extract<WireEvent, { type: 'message' }>

interface Entry {
  event: MessageEvent
  prev: Entry | null
  next: Entry | null
}

/** The kinds of which only the latest per subscription is kept. */
function latestOnlyKind(message: ServerMessage): string | null {
  if (message.type === 'pong' || message.type === 'connected') return message.type
  return isConnectionScopedError(message) ? 'connection-error' : null
}

function isTerminal(message: ServerMessage): boolean {
  return message.type === 'completed' || message.type === 'error'
}

export class Outbox {
  private readonly limit: number
  private head: Entry | null = null
  private tail: Entry | null = null
  private count = 0
  /** `kind sub` → the queued latest-only entry of that kind. */
  private readonly latest = new Map<string, Entry>()
  /** Droppable entries, oldest first, from `droppableHead` on (a queue without shifting). */
  private droppable: (Entry | undefined)[] = []
  private droppableHead = 0
  /** Subscriptions whose first terminal message is queued. */
  private readonly terminal = new Set<number>()

  /** @param limit How many droppable messages are kept at most. */
  constructor(limit: number) {
    this.limit = limit
  }

  /** Messages waiting. */
  get length(): number {
    return this.count
  }

  push(event: MessageEvent): void {
    const kind = latestOnlyKind(event.message)
    if (kind !== null) {
      const key = `${kind} ${event.sub}`
      const queued = this.latest.get(key)
      if (queued) this.unlink(queued)
      this.latest.set(key, this.append(event))
      return
    }
    if (isTerminal(event.message) && !this.terminal.has(event.sub)) {
      this.terminal.add(event.sub)
      this.append(event)
      return
    }
    this.droppable.push(this.append(event))
    if (this.droppable.length - this.droppableHead > this.limit) {
      const oldest = this.droppable[this.droppableHead]
      this.droppable[this.droppableHead++] = undefined
      if (oldest) this.unlink(oldest)
      // Reclaim the consumed front now and then: amortised O(1), and the array stays bounded.
      if (this.droppableHead > this.limit) {
        this.droppable = this.droppable.slice(this.droppableHead)
        this.droppableHead = 0
      }
    }
  }

  /** Every waiting message, in order; the outbox is empty afterwards. */
  take(): WireEvent[] {
    const events: WireEvent[] = []
    for (let entry = this.head; entry; entry = entry.next) events.push(entry.event)
    this.clear()
    return events
  }

  clear(): void {
    this.head = this.tail = null
    this.count = 0
    this.latest.clear()
    this.droppable = []
    this.droppableHead = 0
    this.terminal.clear()
  }

  private append(event: MessageEvent): Entry {
    const entry: Entry = { event, prev: this.tail, next: null }
    if (this.tail) this.tail.next = entry
    else this.head = entry
    this.tail = entry
    this.count++
    return entry
  }

  private unlink(entry: Entry): void {
    if (entry.prev) entry.prev.next = entry.next
    else this.head = entry.next
    if (entry.next) entry.next.prev = entry.prev
    else this.tail = entry.prev
    entry.prev = entry.next = null
    this.count--
  }
}
