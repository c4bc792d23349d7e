/**
 * The protocol version, in a module of its own: the tab client needs only this from
 * the protocol, and importing it from protocol.ts would put every parser into the
 * bundle every page loads. protocol.ts re-exports it.
 */

/** Bumped when the shape of the tab ↔ worker handshake or the wire changes incompatibly. */
export const PROTOCOL_VERSION = 1
