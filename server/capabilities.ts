/**
 * What the reference server announces on `connected` (PROTOCOL.md, "`connected`"):
 * its `capabilities` and the task's `epoch`. The fields are typed here, on the server
 * side, as additions to the protocol's message types.
 */
import type { ConnectedMessage, StatusResponse } from '../src/protocol.js'

/** Fields the server adds to `connected`. */
export interface ConnectedAdditions {
  /** The task's numbering history (see `TaskState.epoch`); absent for an unknown task. */
  epoch?: string
  capabilities?: string[]
}

export type ConnectedFrame = ConnectedMessage & ConnectedAdditions

/** The status response with the task's `epoch`. */
export type StatusFrame = StatusResponse & { epoch?: string }

export interface CapabilityOptions {
  /** Streams need a token (the `auth` capability). */
  auth?: boolean
}

/**
 * The server's capabilities: JSON pongs, `seq`, `since` replay and epochs always; the
 * options add the rest (`auth` when streams need a token).
 */
export function serverCapabilities(options: CapabilityOptions = {}): string[] {
  const capabilities = ['pong', 'seq', 'since', 'epoch']
  if (options.auth === true) capabilities.push('auth')
  return capabilities
}
