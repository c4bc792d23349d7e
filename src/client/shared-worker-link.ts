/**
 * The link to the SharedWorker broker. Detection is by trying: a missing constructor,
 * a constructor that throws (opaque origins), an `error` event (site data blocked, a
 * worker script that fails to load) and the handshake deadline of the tab client.
 */
import { errorText } from '../error-text.js'
import { PROTOCOL_VERSION } from '../protocol-version.js'
import type { BrokerLink } from './link.js'
import { createPortLink } from './port-link.js'

/** Versioned, so tabs of an incompatible release never share a worker with this one. */
export const WORKER_NAME = `tabcast-broker-v${PROTOCOL_VERSION}`

export function createSharedWorkerLink(): BrokerLink {
  if (typeof SharedWorker === 'undefined') throw new Error('SharedWorker unavailable: this browser has no SharedWorker')
  let worker: SharedWorker
  try {
    // Vite detects and bundles exactly this form (a literal `type`), in dev and in build.
    worker = new SharedWorker(new URL('../../worker/broker.worker.ts', import.meta.url), { type: 'module', name: WORKER_NAME })
  } catch (error) {
    throw new Error(`SharedWorker unavailable: ${errorText(error)}`, { cause: error })
  }
  let failed: (error: Error) => void = () => {}
  const failure = new Promise<never>((_, reject) => {
    failed = reject
  })
  failure.catch(() => {})
  worker.addEventListener('error', (event) => {
    const detail = event instanceof ErrorEvent && event.message ? `: ${event.message}` : ''
    failed(new Error(`SharedWorker unavailable: the worker failed to start${detail}`))
  })
  const link = createPortLink(worker.port, undefined, () => worker.port.close())
  return {
    ...link,
    hello: (tabId, onBatch) => Promise.race([link.hello(tabId, onBatch), failure]),
  }
}
