/**
 * Catching a followed task up from its Redis stream: after a reconnect, a
 * resubscription, or a gap in the live messages, deliver in `seq` order everything
 * after the last delivered message, first what the stream holds, then the live messages
 * that arrived meanwhile, each once.
 */
import type { TaskMessage } from '../src/protocol.js'
import type { Logger } from './logger.js'
import { errorText } from './store-errors.js'
import type { TaskListener } from './store.js'

/**
 * How many stream reads one catch-up makes while held live messages still lie beyond a
 * gap. A second read picks up what was appended while the first one ran; a message
 * still missing after that is not in the stream any more (trimmed by `historyLimit`, or
 * lost by a Redis restart without persistence), so waiting longer would only hold back
 * the live messages: the held ones are then delivered across the gap.
 */
export const MAX_CATCH_UP_READS = 3

/** A task this process follows: one channel subscription shared by its listeners. */
export interface Follow {
  readonly taskId: string
  readonly channel: string
  readonly listeners: Set<TaskListener>
  /** Resolves once the subscription is active and `last` is known. */
  ready: Promise<void>
  /** `seq` of the newest message handed to the listeners; null until known. */
  last: number | null
  /** A catch-up from the stream is running; live messages wait in `held`. */
  catchingUp: boolean
  /** Run the catch-up once more when the current one ends. */
  again: boolean
  /** A catch-up failed (Redis was down); it is retried when Redis is back. */
  needsCatchUp: boolean
  held: TaskMessage[]
  closed: boolean
}

/** What a catch-up reads from Redis. */
export interface StreamReader {
  /** The stream's messages from `seq` on, oldest first. */
  readFrom(taskId: string, seq: number): Promise<TaskMessage[]>
  /** The task's current `seq` in the state hash (0 when the task is gone). */
  currentSeq(taskId: string): Promise<number>
}

/** Hands one message to the follow's listeners and records it as delivered. */
export type Deliver = (follow: Follow, message: TaskMessage) => void

/**
 * Delivers, in order, everything after `follow.last`. Serialised per task: a call while
 * one runs makes the running one go round once more. On a Redis failure the follow is
 * marked `needsCatchUp`, to be retried when the command connection is back.
 */
export async function catchUp(follow: Follow, reader: StreamReader, deliver: Deliver, logger: Logger): Promise<void> {
  if (follow.catchingUp) {
    follow.again = true
    return
  }
  follow.catchingUp = true
  follow.needsCatchUp = false
  try {
    let reads = 0
    do {
      follow.again = false
      reads += 1
      const from = (follow.last ?? 0) + 1
      const messages = await reader.readFrom(follow.taskId, from)
      if (follow.closed) return
      const first = messages[0]
      if (first !== undefined && (first.seq ?? 0) > from) {
        logger.warn('messages of a followed task were trimmed or lost before this process caught up', {
          task: follow.taskId,
          missing: `${from}–${(first.seq ?? 0) - 1}`,
        })
      }
      if (messages.length === 0) {
        const current = await reader.currentSeq(follow.taskId)
        if (follow.closed) return
        if (current < from - 1) {
          // Redis lost the task (restarted without persistence, or it expired): follow
          // its new numbering rather than waiting for seqs that will never come.
          logger.warn('a followed task went back in Redis (data lost?); following its new numbering', {
            task: follow.taskId,
            delivered: from - 1,
            redis: current,
          })
          follow.last = current
        }
      }
      for (const message of messages) {
        if ((message.seq ?? 0) > (follow.last ?? 0)) deliver(follow, message)
      }
      deliverHeld(follow, deliver, reads < MAX_CATCH_UP_READS)
    } while (follow.again && !follow.closed)
  } catch (error) {
    follow.needsCatchUp = true
    logger.warn('catching a followed task up failed; retrying when Redis is back', { task: follow.taskId, error: errorText(error) })
  } finally {
    follow.catchingUp = false
  }
}

/**
 * Delivers the held live messages that follow on from `follow.last`. At a gap it keeps
 * the rest held for another read when `mayReadAgain`, and delivers across the gap
 * otherwise.
 */
function deliverHeld(follow: Follow, deliver: Deliver, mayReadAgain: boolean): void {
  const held = follow.held.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0))
  follow.held = []
  for (let i = 0; i < held.length; i += 1) {
    const message = held[i] as TaskMessage
    const seq = message.seq ?? 0
    const last = follow.last ?? 0
    if (seq <= last) continue
    if (seq > last + 1 && mayReadAgain) {
      follow.held = held.slice(i)
      follow.again = true
      return
    }
    deliver(follow, message)
  }
}
