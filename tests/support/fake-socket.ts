/**
 * A WebSocket stand-in for the broker core: records every socket the core opens and
 * lets the test play the server (open, message, close).
 */
import type { SocketLike } from '../../src/core/env.js'

export class FakeSocket implements SocketLike {
  readyState = 0
  readonly url: string
  /** The subprotocols offered (undefined: none, as a socket without a token). */
  readonly protocols: string[] | undefined
  readonly sent: string[] = []
  /** Set when the client closed the socket. */
  closedBy: { code: number | undefined; reason: string | undefined } | null = null
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null

  constructor(url: string, protocols?: string[]) {
    this.url = url
    this.protocols = protocols
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error(`send on a socket in state ${this.readyState}`)
    this.sent.push(data)
  }

  close(code?: number, reason?: string): void {
    this.closedBy = { code, reason }
    this.readyState = 3
  }

  /** The server accepted the connection. */
  open(): void {
    this.readyState = 1
    this.onopen?.({})
  }

  /** The server sent a frame; objects are sent as JSON. */
  receive(data: unknown): void {
    this.onmessage?.({ data: typeof data === 'string' ? data : JSON.stringify(data) })
  }

  /** The server (or the network) closed the connection. */
  drop(code = 1006, reason = ''): void {
    this.readyState = 3
    this.onerror?.({})
    this.onclose?.({ code, reason, wasClean: code !== 1006 })
  }

  /** Application messages the client sent, without keep-alive pings. */
  get appMessages(): string[] {
    return this.sent.filter((data) => data !== '{"type":"ping"}')
  }

  get isClosed(): boolean {
    return this.readyState === 3
  }
}

export class FakeSockets {
  readonly all: FakeSocket[] = []
  /** When set, `create` throws this instead of opening a socket. */
  refuse: Error | null = null

  readonly create = (url: string, protocols?: string[]): SocketLike => {
    if (this.refuse) throw this.refuse
    const socket = new FakeSocket(url, protocols)
    this.all.push(socket)
    return socket
  }

  /** The newest socket; throws when none was opened. */
  get last(): FakeSocket {
    const socket = this.all[this.all.length - 1]
    if (!socket) throw new Error('no socket was opened')
    return socket
  }

  get count(): number {
    return this.all.length
  }

  /** Sockets neither side has closed. */
  get openSockets(): FakeSocket[] {
    return this.all.filter((socket) => !socket.isClosed)
  }
}
