'use client'
/**
 * Which `TabcastClient` the hook and the component use: the one a `TabcastProvider`
 * supplies, or else the page's shared client from `getTabcastClient()`.
 */
import { createContext, useContext, type ReactNode } from 'react'
import { getTabcastClient } from '../client/index.js'
import { initialSnapshot } from '../options.js'
import { taskKey } from '../task-key.js'
import type { OnceEventName, OnceOptions } from '../once-types.js'
import type { TabcastClient, TaskOptions, TaskSnapshot } from '../types.js'

const TabcastClientContext = createContext<TabcastClient | null>(null)

export interface TabcastProviderProps {
  /**
   * The client every `useWebSocket` and `<ProgressBar />` below uses: a custom one, a
   * test double, or the page's shared client. Without a provider they use
   * `getTabcastClient()`.
   */
  client: TabcastClient
  children?: ReactNode
}

/** Supplies a `TabcastClient` to the hooks and components below it. */
export function TabcastProvider({ client, children }: TabcastProviderProps): ReactNode {
  return <TabcastClientContext.Provider value={client}>{children}</TabcastClientContext.Provider>
}

let sharedClient: TabcastClient | null = null
// Idle snapshots handed out before the shared client exists. They must be the same
// object on every call (useSyncExternalStore requires it); the map is dropped as soon
// as the real client is created, which happens on the first subscription.
const placeholders = new Map<string, TaskSnapshot>()

function realClient(): TabcastClient {
  if (sharedClient !== null) return sharedClient
  const created: TabcastClient = getTabcastClient()
  sharedClient = created
  placeholders.clear()
  return created
}

function placeholderSnapshot(projectId: string, options: TaskOptions | undefined): TaskSnapshot {
  // Keyed like the tab client's cache: one snapshot per task, whichever options name it.
  const key = taskKey(projectId, options)
  const known = placeholders.get(key)
  if (known) return known
  const snapshot = initialSnapshot(projectId, options)
  placeholders.set(key, snapshot)
  return snapshot
}

/**
 * Stands in for `getTabcastClient()` and creates it only when something subscribes,
 * sends or asks for stats. `useSyncExternalStore` calls `getSnapshot` during render,
 * and creating the client (a SharedWorker, locks, sockets) is a side effect that must
 * not happen in render, let alone during server rendering. Until then it reports idle
 * snapshots.
 */
const lazySharedClient: TabcastClient = {
  subscribe: (projectId, listener, options) => realClient().subscribe(projectId, listener, options),
  getSnapshot: (projectId, options) =>
    sharedClient === null ? placeholderSnapshot(projectId, options) : sharedClient.getSnapshot(projectId, options),
  send: (projectId, message, options) => realClient().send(projectId, message, options),
  stats: () => realClient().stats(),
  once: (projectId: string, event: OnceEventName, handler: (value: never) => void, options?: OnceOptions) =>
    realClient().once(projectId, event, handler, options),
}

/**
 * The client of the nearest `TabcastProvider`, or else the page's shared client
 * (`getTabcastClient()`, created lazily on first subscription, never during render).
 */
export function useTabcastClient(): TabcastClient {
  return useContext(TabcastClientContext) ?? lazySharedClient
}
