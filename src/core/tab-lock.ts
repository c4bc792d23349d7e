/**
 * Web Locks as tabcast uses them, in a module of its own: the tab client needs only
 * this from the broker core, and importing it from tab-hub.ts would put the whole hub
 * into the bundle every page loads.
 */

/** The options of `navigator.locks.request` that tabcast uses. */
export interface LockRequestOptions {
  ifAvailable?: boolean
  steal?: boolean
}

/**
 * The part of the Web Locks API (`navigator.locks`) that tabcast uses: the tab lock,
 * the host's watch on it, and the leader election all go through this one interface.
 */
export interface LocksLike {
  request(name: string, options: LockRequestOptions, callback: (lock: unknown) => unknown): Promise<unknown>
}

/** The tab-lock name: a tab holds it for its whole life. */
export function tabLockName(tabId: string): string {
  return `tabcast:tab:${tabId}`
}

/**
 * Calls `onGone` when the tab that holds `tabLockName(tabId)` is gone: the lock is
 * granted to the host exactly then, crashes included.
 */
export type TabWatcher = (tabId: string, onGone: () => void) => void

/** The watcher every host uses where Web Locks exist: ask for the tab's lock and wait. */
export function lockWatcher(locks: LocksLike): TabWatcher {
  return (tabId, onGone) => {
    void locks.request(tabLockName(tabId), {}, () => onGone())
  }
}
