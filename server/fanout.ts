/**
 * One store subscription per followed task, shared by all of its sockets in this
 * process. Each message is serialised and UTF-8 encoded once, and the same bytes go to
 * every socket, so the cost of a message grows with the number of sockets, not with
 * sockets × JSON.
 */
import type { TaskMessage } from '../src/protocol.js'
import type { TaskStore, Unsubscribe } from './store.js'

export interface TaskSubscriber {
  /** Must not throw; `frame` is `message` as UTF-8 JSON, shared by all subscribers (do not modify). */
  deliver(message: TaskMessage, frame: Buffer): void
}

interface Channel {
  readonly subscribers: Set<TaskSubscriber>
  ready: Promise<void>
  unsubscribe: Unsubscribe | null
  /** Set when the last subscriber left; a subscription that arrives late is dropped at once. */
  closed: boolean
}

export class TaskFanout {
  private readonly channels = new Map<string, Channel>()

  constructor(
    private readonly store: TaskStore,
    private readonly onSubscriberError: (error: unknown, taskId: string) => void,
  ) {}

  /**
   * Adds a subscriber and resolves once the store subscription is active: messages
   * appended after that reach `deliver`, so history read afterwards leaves no gap.
   * Rejects (and removes the subscriber) when the store cannot subscribe.
   */
  async join(taskId: string, subscriber: TaskSubscriber): Promise<void> {
    let channel = this.channels.get(taskId)
    if (!channel) channel = this.open(taskId)
    channel.subscribers.add(subscriber)
    try {
      await channel.ready
    } catch (error) {
      channel.subscribers.delete(subscriber)
      throw error
    }
  }

  leave(taskId: string, subscriber: TaskSubscriber): void {
    const channel = this.channels.get(taskId)
    if (!channel || !channel.subscribers.delete(subscriber)) return
    if (channel.subscribers.size > 0) return
    channel.closed = true
    this.channels.delete(taskId)
    channel.unsubscribe?.()
  }

  /** Subscribers per followed task. */
  counts(): Map<string, number> {
    const counts = new Map<string, number>()
    for (const [taskId, channel] of this.channels) counts.set(taskId, channel.subscribers.size)
    return counts
  }

  /** Drops every store subscription (server shutdown). */
  clear(): void {
    for (const channel of this.channels.values()) {
      channel.closed = true
      channel.unsubscribe?.()
    }
    this.channels.clear()
  }

  private open(taskId: string): Channel {
    const channel: Channel = { subscribers: new Set(), ready: Promise.resolve(), unsubscribe: null, closed: false }
    this.channels.set(taskId, channel)
    channel.ready = this.store
      .subscribe(taskId, (message) => this.publish(taskId, channel, message))
      .then(
        (unsubscribe) => {
          if (channel.closed) unsubscribe()
          else channel.unsubscribe = unsubscribe
        },
        (error: unknown) => {
          channel.closed = true
          if (this.channels.get(taskId) === channel) this.channels.delete(taskId)
          throw error
        },
      )
    return channel
  }

  private publish(taskId: string, channel: Channel, message: TaskMessage): void {
    if (channel.closed) return
    const frame = Buffer.from(JSON.stringify(message))
    for (const subscriber of channel.subscribers) {
      try {
        subscriber.deliver(message, frame)
      } catch (error) {
        this.onSubscriberError(error, taskId)
      }
    }
  }
}
