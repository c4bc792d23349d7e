/**
 * A `TabcastClient` test double: records every subscription with its options, and lets
 * a test push snapshots and messages the way the real client delivers them.
 */
import { renderHook } from '@testing-library/react'
import { createElement, StrictMode, type ReactNode } from 'react'
import { TabcastProvider, useWebSocket, type UseWebSocketOptions } from 'tabcast/react'
import {
  initialSnapshot,
  type BrokerStats,
  type OnceEventName,
  type OnceOptions,
  type ServerMessage,
  type SubscribeOptions,
  type TabcastClient,
  type TaskListener,
  type TaskOptions,
  type TaskSnapshot,
} from 'tabcast'

export interface FakeOnce {
  projectId: string
  event: OnceEventName
  handler: (value: unknown) => void
  options: OnceOptions | undefined
  active: boolean
}

export interface FakeSubscription {
  projectId: string
  listener: TaskListener
  options: SubscribeOptions | undefined
  active: boolean
}

export interface SentMessage {
  projectId: string
  message: unknown
  options: TaskOptions | undefined
}

export class FakeClient implements TabcastClient {
  readonly subscriptions: FakeSubscription[] = []
  readonly sent: SentMessage[] = []
  readonly getSnapshotCalls: string[] = []
  readonly onces: FakeOnce[] = []
  private readonly snapshots = new Map<string, TaskSnapshot>()

  subscribe(projectId: string, listener: TaskListener, options?: SubscribeOptions): () => void {
    const subscription: FakeSubscription = { projectId, listener, options, active: true }
    this.subscriptions.push(subscription)
    return () => {
      subscription.active = false
    }
  }

  getSnapshot(projectId: string, options?: TaskOptions): TaskSnapshot {
    this.getSnapshotCalls.push(projectId)
    let snapshot = this.snapshots.get(projectId)
    if (!snapshot) {
      snapshot = initialSnapshot(projectId, options)
      this.snapshots.set(projectId, snapshot)
    }
    return snapshot
  }

  send(projectId: string, message: unknown, options?: TaskOptions): Promise<void> {
    this.sent.push({ projectId, message, options })
    return Promise.resolve()
  }

  once(projectId: string, event: OnceEventName, handler: (value: never) => void, options?: OnceOptions): () => void {
    const entry: FakeOnce = { projectId, event, handler: handler as (value: unknown) => void, options, active: true }
    this.onces.push(entry)
    return () => {
      entry.active = false
    }
  }

  stats(): Promise<BrokerStats> {
    return Promise.reject(new Error('not implemented in the fake client'))
  }

  /** Replaces a task's snapshot with a changed copy and notifies its subscribers. */
  update(projectId: string, patch: Partial<TaskSnapshot>): TaskSnapshot {
    const next = { ...this.getSnapshot(projectId), ...patch }
    // Keep the derived flags consistent, as the real client does.
    next.isConnected = next.connection === 'live'
    next.isFallback = next.connection === 'polling'
    this.snapshots.set(projectId, next)
    for (const subscription of this.active(projectId)) subscription.listener.snapshot?.(next)
    return next
  }

  /** Delivers a server message to the task's current subscribers. */
  emit(projectId: string, message: ServerMessage): void {
    for (const subscription of this.active(projectId)) subscription.listener.message?.(message)
  }

  active(projectId?: string): FakeSubscription[] {
    return this.subscriptions.filter((s) => s.active && (projectId === undefined || s.projectId === projectId))
  }
}

/** `useWebSocket` rendered under a `TabcastProvider` with a fresh `FakeClient` (in StrictMode with `strict`). */
export function renderUseWebSocket(initialProps: UseWebSocketOptions, { strict = false } = {}) {
  const client = new FakeClient()
  const wrapper = ({ children }: { children: ReactNode }) => {
    const provided = createElement(TabcastProvider, { client }, children)
    return strict ? createElement(StrictMode, null, provided) : provided
  }
  const hook = renderHook((props: UseWebSocketOptions) => useWebSocket(props), { initialProps, wrapper })
  return { client, ...hook }
}
