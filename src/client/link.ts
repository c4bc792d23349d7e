/**
 * What a tab client talks to: a broker host, reached over a SharedWorker port, a
 * leader tab, or running in the page itself. Every call may fail or time out; the
 * tab client decides what that means.
 */
import type { SendResult } from '../core/task-channel.js'
import type { Batch, Hello } from '../core/tab-hub.js'
import type { BrokerStats, TaskOptions } from '../types.js'

export interface BrokerLink {
  /** Registers this tab; batches of events for it arrive at `onBatch` from then on. */
  hello(tabId: string, onBatch: (batch: Batch) => void): Promise<Hello>
  subscribe(subId: number, projectId: string, options: TaskOptions): Promise<void>
  unsubscribe(subId: number): Promise<void>
  send(projectId: string, options: TaskOptions, message: unknown): Promise<SendResult>
  stats(): Promise<BrokerStats>
  /** Returns the host's instance id. */
  ping(): Promise<string>
  suspend(): Promise<void>
  resume(): Promise<void>
  bye(): Promise<void>
  /** Drops local resources (ports, workers) of this link. */
  dispose(): void
}
