/**
 * The tab-lock name, in a module of its own: the tab client needs only this from the
 * broker core, and importing it from tab-hub.ts would put the whole hub into the
 * bundle every page loads.
 */

/** The tab-lock name: a tab holds it for its whole life. */
export function tabLockName(tabId: string): string {
  return `tabcast:tab:${tabId}`
}
