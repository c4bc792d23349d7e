/**
 * What a tab client talks to: a broker host, reached over a SharedWorker port, a
 * leader tab, or running in the page itself. Every call may fail or time out; the
 * tab client decides what that means. Each link is a `createSessionLink` over a
 * transport to the host's `createSessionApi`.
 */
import type { Batch, Hello, RemoteSession, TabRequestHandlers } from '../core/session-protocol.js'

/** What the tab gives its host at `hello`: where batches go, and how it answers the host's requests. */
export interface TabEndpoint {
  batch(batch: Batch): void
  requests: TabRequestHandlers
}

export interface BrokerLink extends Omit<RemoteSession, 'hello'> {
  /** Registers this tab; its batches arrive at `tab.batch` and the host's requests at `tab.requests` from then on. */
  hello(tabId: string, tab: TabEndpoint): Promise<Hello>
  /** Called when the host behind this link changed (a new leader): the tab registers again. */
  onReset?(listener: (reason: string) => void): void
  /** A failure of this link is passing (a leader changing hands): retry it, don't move on. */
  keepOnFailure?: boolean
  /** Drops local resources (ports, workers) of this link. */
  dispose(): void
}
