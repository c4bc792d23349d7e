/**
 * tabcast: follow server tasks from every tab over one shared connection per task.
 * This entry is framework-agnostic; the React hook and component live in `tabcast/react`.
 */
export * from './protocol.js'
export * from './endpoints.js'
export * from './options.js'
export type * from './types.js'
export type * from './once-types.js'
export { createTabcastClient, getTabcastClient, configureTabcast } from './client/index.js'
export type { ClientMode, ClientOptions, TabcastBrowserClient } from './client/index.js'
export { reconnectDelay } from './core/backoff.js'
