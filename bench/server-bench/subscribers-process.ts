/**
 * A benchmark subscriber process: holds many WebSocket subscribers (plain `ws`
 * clients, like the one socket a tabcast SharedWorker holds per task) and records the
 * delivery latency of every progress message from the `sent_at` the server stamped.
 */
import WebSocket from 'ws'
import { preciseNow, serveRequests } from './ipc.js'

export interface ConnectArgs {
  /** `ws://127.0.0.1:<port>` */
  base: string
  /** Task id of each subscriber to open. */
  taskIds: string[]
  /** Handshakes in flight at once. */
  concurrency: number
  /** Whether to offer permessage-deflate (the server decides whether it is used). */
  offerCompression: boolean
}

export interface ConnectResult {
  connected: number
  failed: number
  firstError: string | null
  compressionNegotiated: number
}

export interface ReportResult {
  received: number
  /** Delivery latencies in milliseconds. */
  latencies: number[]
  /** Bytes read from the sockets since `resetCounters` (frames, no handshakes). */
  wireBytes: number
  /** Sockets that closed while they should have stayed open. */
  dropped: number
  /** CPU time this process used since `resetCounters`, in milliseconds. */
  cpuMs: number
  /** Wall time since `resetCounters`, in milliseconds. */
  elapsedMs: number
}

const sockets: WebSocket[] = []
let latencies: number[] = []
let received = 0
let dropped = 0
let closing = false
let cpuAtReset = process.cpuUsage()
let resetAt = performance.now()
const bytesAtReset = new Map<WebSocket, number>()

function bytesRead(socket: WebSocket): number {
  // `ws` keeps the net.Socket private; its byte counter is what crossed the wire.
  return (socket as unknown as { _socket?: { bytesRead: number } })._socket?.bytesRead ?? 0
}

function open(base: string, taskId: string, offerCompression: boolean): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${base}/api/v1/ws/projects/${taskId}/stream`, { perMessageDeflate: offerCompression })
    let connected = false
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as { type: string; metadata?: { sent_at?: number } }
      if (!connected) {
        if (message.type === 'connected') {
          connected = true
          resolve(socket)
        }
        return
      }
      const sentAt = message.metadata?.sent_at
      if (message.type === 'progress' && typeof sentAt === 'number') {
        received += 1
        latencies.push(preciseNow() - sentAt)
      }
    })
    socket.on('error', (error) => {
      if (!connected) reject(error)
    })
    socket.on('close', () => {
      if (connected && !closing) dropped += 1
    })
  })
}

serveRequests({
  async connect(args: ConnectArgs): Promise<ConnectResult> {
    let next = 0
    let failed = 0
    let firstError: string | null = null
    const worker = async (): Promise<void> => {
      while (next < args.taskIds.length) {
        const taskId = args.taskIds[next++] as string
        try {
          sockets.push(await open(args.base, taskId, args.offerCompression))
        } catch (error) {
          failed += 1
          firstError ??= error instanceof Error ? error.message : String(error)
        }
      }
    }
    await Promise.all(Array.from({ length: args.concurrency }, worker))
    return {
      connected: sockets.length,
      failed,
      firstError,
      compressionNegotiated: sockets.filter((socket) => socket.extensions.includes('permessage-deflate')).length,
    }
  },

  resetCounters() {
    latencies = []
    received = 0
    dropped = 0
    cpuAtReset = process.cpuUsage()
    resetAt = performance.now()
    for (const socket of sockets) bytesAtReset.set(socket, bytesRead(socket))
    return {}
  },

  /** Resolves once `expected` messages arrived, or after `timeoutMs`. */
  async drain(args: { expected: number; timeoutMs: number }) {
    const started = Date.now()
    while (received < args.expected && Date.now() - started < args.timeoutMs) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return { received }
  },

  report(): ReportResult {
    let wireBytes = 0
    for (const socket of sockets) wireBytes += bytesRead(socket) - (bytesAtReset.get(socket) ?? 0)
    const cpu = process.cpuUsage(cpuAtReset)
    return { received, latencies, wireBytes, dropped, cpuMs: (cpu.user + cpu.system) / 1000, elapsedMs: performance.now() - resetAt }
  },

  close() {
    closing = true
    for (const socket of sockets) socket.terminate()
    setImmediate(() => process.exit(0))
    return {}
  },
})
