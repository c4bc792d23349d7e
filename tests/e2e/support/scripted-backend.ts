/**
 * A hand-driven stand-in for a backend: a raw `ws` server on the stream path whose
 * every frame the test writes itself, so it can send what no correct server sends
 * (malformed JSON, progress 7, unknown types). It counts upgrade attempts and open
 * sockets per task, which is what the tests assert on.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'

const STREAM_PATH = /^\/api\/v1\/ws\/projects\/([^/?]*)\/stream/

export interface ScriptedBackend {
  /** `127.0.0.1:<port>`, the form pages take as `backendUrl`. */
  readonly backendUrl: string
  /** Every upgrade request the server received, accepted or not. */
  readonly upgradeAttempts: number
  /** HTTP (non-upgrade) requests received, by path. */
  readonly httpRequests: readonly string[]
  /** Open sockets for a task. */
  openSockets(taskId: string): number
  /** Sends one raw text frame to every open socket of the task; returns how many got it. */
  sendRaw(taskId: string, frame: string): number
  /** Sends a JSON message to every open socket of the task. */
  send(taskId: string, message: Record<string, unknown>): number
  /** Closes every open socket of the task with `code` (as a restarting server does); returns how many. */
  closeSockets(taskId: string, code: number, reason?: string): number
  close(): Promise<void>
}

export interface ScriptedBackendOptions {
  /**
   * The messages each new socket gets first (`connection` counts the task's sockets from 1).
   * @default a `connected` with `last_seq: 0`
   */
  greet?: (taskId: string, connection: number) => Record<string, unknown>[]
  /**
   * Answer `{"type":"ping"}` with `{"type":"pong"}` like the reference server; false plays
   * a server that went silent.
   * @default true
   */
  answerPings?: boolean
  /**
   * Upgrades of the tasks it picks are never answered (the connection stays open, silent),
   * as from a backend stuck before accepting one task's stream.
   * @default none
   */
  hold?: (taskId: string) => boolean
}

export async function startScriptedBackend(options: ScriptedBackendOptions = {}): Promise<ScriptedBackend> {
  const greet = options.greet ?? ((taskId: string) => [{ type: 'connected', project_id: taskId, last_seq: 0 }])
  const answerPings = options.answerPings ?? true
  const connectionsPerTask = new Map<string, number>()
  const sockets = new Map<string, Set<WebSocket>>()
  const httpRequests: string[] = []
  const connections = new Set<Socket>()
  let upgradeAttempts = 0

  const server: Server = createServer((req, res) => {
    httpRequests.push(req.url ?? '')
    res.writeHead(404, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' })
    res.end('{"error":"the scripted backend has no HTTP endpoints"}')
  })
  server.on('connection', (socket) => {
    connections.add(socket)
    socket.on('close', () => connections.delete(socket))
  })
  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req, socket, head) => {
    upgradeAttempts++
    const match = STREAM_PATH.exec(req.url ?? '')
    if (!match) {
      socket.destroy()
      return
    }
    const taskId = decodeURIComponent(match[1] ?? '')
    if (options.hold?.(taskId)) return
    wss.handleUpgrade(req, socket, head, (ws) => {
      let set = sockets.get(taskId)
      if (!set) sockets.set(taskId, (set = new Set()))
      set.add(ws)
      ws.on('close', () => set.delete(ws))
      ws.on('error', () => {})
      // Answer keep-alive pings like the reference server, so nothing else is needed.
      ws.on('message', (data) => {
        if (answerPings && String(data).includes('"ping"')) ws.send('{"type":"pong"}')
      })
      const connection = (connectionsPerTask.get(taskId) ?? 0) + 1
      connectionsPerTask.set(taskId, connection)
      for (const message of greet(taskId, connection)) ws.send(JSON.stringify(message))
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port

  const sendRaw = (taskId: string, frame: string): number => {
    let sent = 0
    for (const ws of sockets.get(taskId) ?? []) {
      if (ws.readyState === ws.OPEN) {
        ws.send(frame)
        sent++
      }
    }
    return sent
  }

  return {
    backendUrl: `127.0.0.1:${port}`,
    get upgradeAttempts() {
      return upgradeAttempts
    },
    httpRequests,
    openSockets: (taskId) => [...(sockets.get(taskId) ?? [])].filter((ws) => ws.readyState === ws.OPEN).length,
    sendRaw,
    send: (taskId, message) => sendRaw(taskId, JSON.stringify(message)),
    closeSockets(taskId, code, reason) {
      let closed = 0
      for (const ws of sockets.get(taskId) ?? []) {
        if (ws.readyState === ws.OPEN) {
          ws.close(code, reason)
          closed++
        }
      }
      return closed
    },
    async close() {
      for (const set of sockets.values()) for (const ws of set) ws.terminate()
      for (const socket of connections) socket.destroy()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
