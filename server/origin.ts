/**
 * Which web pages may use the server, and the CORS headers that tell browsers so.
 *
 * The WebSocket handshake is not covered by the browser's same-origin policy: any page
 * can open a socket to any server, with the user's cookies. Checking `Origin` on the
 * upgrade is the server's only defence against cross-site WebSocket hijacking, so the
 * default admits local development pages only.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'

/**
 * Exact origins (`"https://studio.example.com"`), `"*"` for any origin, or a predicate.
 */
export type AllowedOrigins = '*' | readonly string[] | ((origin: string) => boolean)

export type OriginCheck = (origin: string | undefined) => boolean

// http or https, a loopback host name, any port, nothing after.
const LOCALHOST_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/i

/** The default policy: pages served from localhost, 127.0.0.1 or [::1], on any port. */
export function isLocalhostOrigin(origin: string): boolean {
  return LOCALHOST_ORIGIN.test(origin)
}

/**
 * Builds the check used for every request. A request without an `Origin` header does
 * not come from a browser page (curl, a backend, a test client) and is allowed: the
 * header exists to tell a server which page is asking, and such clients have no page.
 */
export function createOriginCheck(allowed: AllowedOrigins): OriginCheck {
  if (allowed === '*') return () => true
  if (typeof allowed === 'function') {
    return (origin) => origin === undefined || allowed(origin)
  }
  // Origins compare case-insensitively in scheme and host; browsers send them lowercase.
  const set = new Set(allowed.map((origin) => origin.replace(/\/+$/, '').toLowerCase()))
  return (origin) => origin === undefined || set.has(origin.toLowerCase())
}

/**
 * The `Origin` header, or `undefined` when absent. Node joins a repeated `Origin` with
 * ", ", which matches no allowed origin, so such requests are refused.
 */
export function requestOrigin(headers: IncomingHttpHeaders): string | undefined {
  const origin = headers.origin
  return typeof origin === 'string' && origin !== '' ? origin : undefined
}

/**
 * Sets the CORS headers for an allowed cross-origin request. The origin is echoed
 * rather than `*`, and `Vary: Origin` keeps shared caches from mixing answers. With
 * `credentials`, pages may send cookies (`fetch(…, { credentials: 'include' })`) and
 * read the answer; this is only ever said to an origin that passed the check.
 */
export function setCorsHeaders(res: ServerResponse, origin: string | undefined, preflight: boolean, credentials: boolean): void {
  res.setHeader('Vary', 'Origin')
  if (origin === undefined) return
  res.setHeader('Access-Control-Allow-Origin', origin)
  if (credentials) res.setHeader('Access-Control-Allow-Credentials', 'true')
  if (preflight) {
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS')
    // Authorization: the bearer token of status reads and task creation.
    res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization')
    res.setHeader('Access-Control-Max-Age', '600')
  }
}
