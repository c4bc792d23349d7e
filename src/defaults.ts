/**
 * The default backend, in a module of its own: the tab client and the option defaults
 * need it, and importing it from endpoints.ts would put the endpoint and task-id
 * validation (and with it the protocol parsers) into the bundle every page loads.
 * endpoints.ts re-exports it.
 */

/** The guide's default backend. */
export const DEFAULT_BACKEND_URL = 'localhost:8000'
