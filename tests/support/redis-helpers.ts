/**
 * Small helpers of the Redis tests: awaiting an asynchronous condition (a health check,
 * a key expiring) without fixed sleeps, an admin connection to look inside Redis, and
 * unique key prefixes so tests sharing one Redis never see each other's tasks.
 */
import { Redis } from 'ioredis'

/** Upper bound on one wait: a broken server fails the test with a message instead of hanging it. */
const WAIT_LIMIT_MS = 8000

/** Calls `check` until it returns true (errors count as "not yet"), polling every 10 ms. */
export async function eventually(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const started = Date.now()
  let lastError: unknown = null
  for (;;) {
    try {
      if (await check()) return
    } catch (error) {
      lastError = error
    }
    if (Date.now() - started > WAIT_LIMIT_MS) {
      const because = lastError === null ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`
      throw new Error(`gave up waiting until ${what}${because}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

let prefixes = 0

/** A key prefix no other test in this run uses. */
export function uniquePrefix(name: string): string {
  prefixes += 1
  return `t${process.pid}-${prefixes}-${name}`.replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 60)
}

/** A plain connection for looking inside Redis (CLIENT LIST, PTTL, …). */
export function adminClient(url: string): Redis {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1, connectionName: 'tabcast-test-admin' })
  client.on('error', () => {})
  return client
}

/** Connections Redis holds per client name (CLIENT LIST). */
export async function connectionsByName(admin: Redis): Promise<Map<string, number>> {
  const list = (await admin.client('LIST')) as string
  const counts = new Map<string, number>()
  for (const line of list.split('\n')) {
    const name = /(?:^| )name=(\S*)/.exec(line)?.[1]
    if (name === undefined) continue
    counts.set(name, (counts.get(name) ?? 0) + 1)
  }
  return counts
}
