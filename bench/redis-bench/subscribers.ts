/**
 * The subscriber process of the Redis benchmark: many plain `ws` clients (one per
 * followed task and browser, as a tabcast SharedWorker holds), recording the delivery
 * latency of every progress message from its `sent_at`, and checking that each socket
 * sees `seq` strictly increasing (order and exactly-once, across processes).
 */
import WebSocket from 'ws'
import { preciseNow, serveRequests } from './ipc.js'

export interface ConnectArgs {
  /** `ws://127.0.0.1:<port>` */
  base: string
  taskIds: string[]
  concurrency: number
}

export interface SubscribersReport {
  received: number
  latencies: number[]
  /** Receive time of the last message, epoch ms. */
  lastReceivedAt: number
  /** Messages whose seq was not above the previous one on the same socket. */
  outOfOrder: number
  /** Sockets that closed while they should have stayed open. */
  dropped: number
}

const sockets: WebSocket[] = []
let latencies: number[] = []
let received = 0
let lastReceivedAt = 0
let outOfOrder = 0
let dropped = 0
let closing = false

function open(base: string, taskId: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${base}/api/v1/ws/projects/${taskId}/stream`)
    let connected = false
    let lastSeq = 0
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as { type: string; seq?: number; metadata?: { sent_at?: number } }
      if (!connected) {
        if (message.type === 'connected') {
          connected = true
          resolve(socket)
        }
        return
      }
      if (message.seq !== undefined) {
        if (message.seq <= lastSeq) outOfOrder += 1
        lastSeq = Math.max(lastSeq, message.seq)
      }
      const sentAt = message.metadata?.sent_at
      if (message.type === 'progress' && typeof sentAt === 'number') {
        const now = preciseNow()
        received += 1
        lastReceivedAt = now
        latencies.push(now - sentAt)
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
  async connect(args: ConnectArgs) {
    let next = 0
    let failed = 0
    const worker = async (): Promise<void> => {
      while (next < args.taskIds.length) {
        const taskId = args.taskIds[next++] as string
        try {
          sockets.push(await open(args.base, taskId))
        } catch {
          failed += 1
        }
      }
    }
    await Promise.all(Array.from({ length: args.concurrency }, worker))
    return { connected: sockets.length, failed }
  },

  reset() {
    latencies = []
    received = 0
    lastReceivedAt = 0
    outOfOrder = 0
    dropped = 0
    return {}
  },

  /** Resolves once `expected` messages arrived, or after `timeoutMs`. */
  async drain(args: { expected: number; timeoutMs: number }) {
    const started = Date.now()
    while (received < args.expected && Date.now() - started < args.timeoutMs) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    return { received }
  },

  report(): SubscribersReport {
    return { received, latencies, lastReceivedAt, outOfOrder, dropped }
  },

  close() {
    closing = true
    for (const socket of sockets) socket.terminate()
    setImmediate(() => process.exit(0))
    return {}
  },
})
