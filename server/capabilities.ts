/**
 * What the reference server announces in `connected`'s `capabilities` (PROTOCOL.md,
 * "`connected`"); the field itself is typed in src/protocol.ts.
 */
import type { ServerCapability } from '../src/protocol.js'

export interface CapabilityOptions {
  /** Streams need a token (the `auth` capability). */
  auth?: boolean
}

/**
 * The server's capabilities: JSON pongs, `seq`, `since` replay and epochs always; the
 * options add the rest (`auth` when streams need a token).
 */
export function serverCapabilities(options: CapabilityOptions = {}): ServerCapability[] {
  const capabilities: ServerCapability[] = ['pong', 'seq', 'since', 'epoch']
  if (options.auth === true) capabilities.push('auth')
  return capabilities
}
