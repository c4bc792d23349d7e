/**
 * A backend whose WebSocket upgrades are refused while its HTTP endpoints work: an
 * HTTP proxy in front of the real server that forwards every request and destroys
 * every upgrade (the browser sees an abnormal close, 1006, as with a proxy or a
 * firewall that does not pass WebSockets). It records what it saw, so tests count
 * status requests and refused upgrades on the server side.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface ProxiedRequest {
  method: string
  path: string
  /** `performance.now()` when the request arrived. */
  at: number
}

export interface RefusingProxy {
  /** `127.0.0.1:<port>`, the form pages take as `backendUrl`. */
  readonly backendUrl: string
  readonly port: number
  /** Every HTTP request forwarded, in order of arrival. */
  readonly requests: readonly ProxiedRequest[]
  /** Upgrade requests refused so far. */
  readonly refusedUpgrades: number
  /** Forwarded requests to the status endpoint of `taskId`. */
  statusRequests(taskId: string): ProxiedRequest[]
  close(): Promise<void>
}

export async function startRefusingProxy(targetPort: number): Promise<RefusingProxy> {
  const requests: ProxiedRequest[] = []
  let refusedUpgrades = 0
  const sockets = new Set<Socket>()

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ method: req.method ?? 'GET', path: req.url ?? '', at: performance.now() })
    const upstream = httpRequest(
      { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' })
      res.end(`proxy: ${error.message}`)
    })
    req.pipe(upstream)
  }

  const server: Server = createServer(forward)
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('upgrade', (_req, socket) => {
    refusedUpgrades++
    socket.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port

  return {
    backendUrl: `127.0.0.1:${port}`,
    port,
    requests,
    get refusedUpgrades() {
      return refusedUpgrades
    },
    statusRequests(taskId) {
      const path = `/api/v1/projects/${encodeURIComponent(taskId)}/status`
      return requests.filter((entry) => entry.path.split('?')[0] === path)
    },
    close() {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
