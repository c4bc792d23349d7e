/**
 * Server → client keep-alive: the canonical `ws` heartbeat. Every interval each socket
 * gets a protocol-level ping; a socket that has not answered the previous one is
 * terminated. Browsers answer pings by themselves, so this catches dead peers (a
 * laptop that slept, a dropped NAT entry) that would otherwise hold a socket and its
 * memory until TCP gives up, which can take hours.
 */
import type { WebSocket } from 'ws'

export class Heartbeat {
  /** Socket → whether it answered since the last ping. */
  private readonly sockets = new Map<WebSocket, boolean>()
  private timer: ReturnType<typeof setInterval> | null

  constructor(
    intervalMs: number,
    private readonly onTerminate: (socket: WebSocket) => void,
  ) {
    this.timer = setInterval(() => this.tick(), intervalMs)
    this.timer.unref()
  }

  add(socket: WebSocket): void {
    this.sockets.set(socket, true)
    socket.on('pong', () => {
      if (this.sockets.has(socket)) this.sockets.set(socket, true)
    })
  }

  remove(socket: WebSocket): void {
    this.sockets.delete(socket)
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.sockets.clear()
  }

  private tick(): void {
    for (const [socket, answered] of this.sockets) {
      if (!answered) {
        this.sockets.delete(socket)
        this.onTerminate(socket)
        socket.terminate()
        continue
      }
      this.sockets.set(socket, false)
      // On a socket that is already closing ws drops the ping instead of throwing.
      socket.ping()
    }
  }
}
