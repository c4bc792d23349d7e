/**
 * Browser primitives for tests of several tabs in one process: Web Locks (exclusive,
 * FIFO, released when a document dies) and BroadcastChannel (asynchronous, cloned).
 */
import type { BusLike } from '../../src/client/leader-link.js'
import type { LocksLike } from '../../src/core/tab-lock.js'

/**
 * Web Locks semantics: exclusive, FIFO, released when the callback's promise settles or
 * the holder's document dies; `steal` takes a held lock and rejects the holder's request.
 */
interface LockRequest {
  owner: string
  callback: (lock: unknown) => unknown
  resolve: (value: unknown) => void
  reject: (error: Error) => void
}

export class FakeLocks {
  private readonly held = new Map<string, LockRequest>()
  private readonly queues = new Map<string, LockRequest[]>()
  private readonly dead = new Set<string>()

  forTab(owner: string): LocksLike {
    return {
      request: (name, options, callback) => {
        // A dead document runs no more code: its requests are never answered.
        if (this.dead.has(owner)) return new Promise(() => {})
        return new Promise((resolve, reject) => {
          const request: LockRequest = { owner, callback, resolve, reject }
          const holder = this.held.get(name)
          if (holder && options.steal) {
            this.held.delete(name)
            holder.reject(new Error('AbortError: the lock was stolen'))
            this.grant(name, request)
          } else if (!holder) {
            this.grant(name, request)
          } else if (options.ifAvailable) {
            resolve(callback(null))
          } else {
            const queue = this.queues.get(name) ?? []
            queue.push(request)
            this.queues.set(name, queue)
          }
        })
      },
    }
  }

  holder(name: string): string | undefined {
    return this.held.get(name)?.owner
  }

  /** The tab's document is gone: its locks are released and its queued requests dropped. */
  kill(owner: string): void {
    this.dead.add(owner)
    for (const [name, queue] of this.queues) this.queues.set(name, queue.filter((entry) => entry.owner !== owner))
    for (const [name, holder] of [...this.held]) if (holder.owner === owner) this.release(name)
  }

  private grant(name: string, request: LockRequest): void {
    this.held.set(name, request)
    void Promise.resolve(request.callback({ name })).then((value) => {
      if (this.held.get(name) === request) this.release(name)
      request.resolve(value)
    })
  }

  private release(name: string): void {
    this.held.delete(name)
    const next = this.queues.get(name)?.shift()
    if (next) this.grant(name, next)
  }
}

/** BroadcastChannel semantics: asynchronous, cloned, delivered to every other open member. */
export class FakeBusNetwork {
  private readonly members: { owner: string; bus: FakeBus }[] = []

  create(owner: string): BusLike {
    const bus = new FakeBus(this, owner)
    this.members.push({ owner, bus })
    return bus
  }

  deliver(from: FakeBus, data: unknown): void {
    for (const { bus } of this.members) {
      if (bus !== from && !bus.closed) {
        const copy = structuredClone(data)
        queueMicrotask(() => bus.dispatch(copy))
      }
    }
  }

  kill(owner: string): void {
    for (const member of this.members) if (member.owner === owner) member.bus.close()
  }
}

class FakeBus implements BusLike {
  closed = false
  private readonly listeners: ((event: { data: unknown }) => void)[] = []
  private readonly network: FakeBusNetwork
  readonly owner: string

  constructor(network: FakeBusNetwork, owner: string) {
    this.network = network
    this.owner = owner
  }

  postMessage(message: unknown): void {
    if (!this.closed) this.network.deliver(this, message)
  }

  addEventListener(_type: 'message', listener: (event: { data: unknown }) => void): void {
    this.listeners.push(listener)
  }

  dispatch(data: unknown): void {
    if (!this.closed) for (const listener of this.listeners) listener({ data })
  }

  close(): void {
    this.closed = true
  }
}
