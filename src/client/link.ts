/**
 * What a tab client talks to: a broker host, reached over a SharedWorker port, a
 * leader tab, or running in the page itself. Every call may fail or time out; the
 * tab client decides what that means.
 */
import type { SendResult } from '../core/task-channel.js'
import type { Batch, Hello } from '../core/tab-hub.js'
import type { BrokerStats, TaskOptions, TaskSnapshot } from '../types.js'

export interface BrokerLink {
  /** Registers this tab; batches of events for it arrive at `onBatch` from then on. */
  hello(tabId: string, onBatch: (batch: Batch) => void): Promise<Hello>
  /** `seed`: the last snapshot this tab saw, so a new host resumes where the old one was. */
  subscribe(subId: number, projectId: string, options: TaskOptions, seed?: TaskSnapshot): Promise<void>
  unsubscribe(subId: number): Promise<void>
  send(projectId: string, options: TaskOptions, message: unknown): Promise<SendResult>
  stats(): Promise<BrokerStats>
  /** Returns the host's instance id. */
  ping(): Promise<string>
  suspend(): Promise<void>
  resume(): Promise<void>
  bye(): Promise<void>
  /** Called when the host behind this link changed (a new leader): the tab registers again. */
  onReset?(listener: (reason: string) => void): void
  /** A failure of this link is passing (a leader changing hands): retry it, don't move on. */
  keepOnFailure?: boolean
  /** Drops local resources (ports, workers) of this link. */
  dispose(): void
}
