/**
 * The reference backend, in this process, on 127.0.0.1 and a free port. Tests drive
 * tasks through its job API and count WebSocket connections on it: Playwright cannot
 * see a SharedWorker's traffic, so the server is where connections are counted.
 *
 * The tabcast server is attached to an HTTP server of the harness (its `server`
 * option), which also counts every stream upgrade it receives per task: `stats()`
 * tells how many sockets are open now, the upgrade count tells how many were ever
 * asked for, so "exactly one socket" also rules out extra sockets that came and went.
 */
import { createServer, type Server } from 'node:http'
import {
  createTabcastServer,
  MemoryTaskStore,
  silentLogger,
  type TabcastServer,
  type TabcastServerOptions,
} from 'tabcast/server'

const STREAM_PATH = /^\/api\/v1\/ws\/projects\/([^/?]*)\/stream/

export interface E2eBackend {
  /** The tabcast server (a new object after `stop()` and `start()`). */
  readonly server: TabcastServer
  /**
   * Job code that writes to the same store without serving anything (as a worker
   * process writes to a shared Redis): it reports progress while the server is down.
   */
  readonly jobs: TabcastServer
  readonly store: MemoryTaskStore
  readonly port: number
  /** `127.0.0.1:<port>`, the form pages take as `backendUrl`. */
  readonly backendUrl: string
  /** Open WebSocket connections of one task, as the server counts them (0 while stopped). */
  connections(taskId: string): number
  /** Open WebSocket connections of every task (0 while stopped). */
  totalConnections(): number
  /** Stream upgrade requests received for the task since the backend started. */
  upgrades(taskId: string): number
  /** Closes the server (every socket gets 1001, going away) and its port. Tasks stay in the store. */
  stop(): Promise<void>
  /** Starts a new server on the same port with the same store. */
  start(): Promise<void>
  /** Stops everything and releases the store. */
  close(): Promise<void>
}

interface Running {
  http: Server
  tabcast: TabcastServer
}

export type E2eBackendOptions = Omit<TabcastServerOptions, 'store' | 'logger' | 'server'>

export async function startBackend(options: E2eBackendOptions = {}): Promise<E2eBackend> {
  const store = new MemoryTaskStore()
  const upgrades = new Map<string, number>()

  const launch = async (port: number): Promise<Running> => {
    const http = createServer()
    http.on('upgrade', (req, socket) => {
      const match = STREAM_PATH.exec(req.url ?? '')
      if (!match) {
        // With this listener on the server, tabcast leaves upgrades to paths that are not
        // its own to it (an app's other socket server), so it answers them as an app would.
        if (options.basePath === undefined) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
        return
      }
      let taskId: string
      try {
        taskId = decodeURIComponent(match[1] ?? '')
      } catch {
        taskId = match[1] ?? ''
      }
      upgrades.set(taskId, (upgrades.get(taskId) ?? 0) + 1)
    })
    // The demo pages create tasks with POST /api/v1/projects, which is off unless asked for.
    const tabcast = createTabcastServer({ closeTimeout: 500, demo: true, ...options, store, logger: silentLogger, server: http })
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject)
      http.listen(port, '127.0.0.1', () => {
        http.off('error', reject)
        resolve()
      })
    })
    return { http, tabcast }
  }

  const shutdown = async ({ http, tabcast }: Running): Promise<void> => {
    const closed = new Promise<void>((resolve) => http.close(() => resolve()))
    await tabcast.close()
    http.closeAllConnections()
    await closed
  }

  // The same lease as the server's, so either may be the one that fails a silent task.
  const jobs = createTabcastServer({ store, logger: silentLogger, demo: false, heartbeatInterval: false, staleAfter: options.staleAfter ?? 60_000 })
  let running: Running | null = await launch(0)
  let last: TabcastServer = running.tabcast
  const address = running.http.address()
  if (address === null || typeof address === 'string') throw new Error('the backend is not listening on a port')
  const port = address.port

  return {
    get server() {
      return last
    },
    jobs,
    store,
    port,
    backendUrl: `127.0.0.1:${port}`,
    connections: (taskId) => running?.tabcast.stats().connectionsByTask[taskId] ?? 0,
    totalConnections: () => running?.tabcast.stats().connections ?? 0,
    upgrades: (taskId) => upgrades.get(taskId) ?? 0,
    async stop() {
      const current = running
      running = null
      if (current) await shutdown(current)
    },
    async start() {
      if (running) throw new Error('the backend is already running')
      running = await launch(port)
      last = running.tabcast
    },
    async close() {
      const current = running
      running = null
      if (current) await shutdown(current)
      await jobs.close()
      await store.close()
    },
  }
}
