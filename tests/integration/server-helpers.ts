/**
 * Helpers for the reference-server tests: a server on 127.0.0.1 port 0, and a `ws`
 * client that queues the messages it receives (validated with the client's own parser)
 * so a test can await "the next message" instead of sleeping.
 */
import { afterEach } from 'vitest'
import WebSocket from 'ws'
import { parseServerMessage, type ServerMessage, type TaskMessage } from 'tabcast'
import { createTabcastServer, MemoryTaskStore, silentLogger, type TabcastServer, type TabcastServerOptions, type TaskStore } from 'tabcast/server'

/** Upper bound on any single wait, so a broken server fails a test with a message instead of hanging it. */
const WAIT_LIMIT_MS = 5000

export interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (error: unknown) => void
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

function withLimit<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), WAIT_LIMIT_MS)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

/** Polls a condition on the server side (where no event tells the test it happened). */
export async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  const started = Date.now()
  while (!condition()) {
    if (Date.now() - started > WAIT_LIMIT_MS) throw new Error(`gave up waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

export interface RunningServer {
  server: TabcastServer
  /** `http://127.0.0.1:<port>` */
  http: string
  /** `ws://127.0.0.1:<port>` */
  ws: string
  streamUrl(taskId: string, since?: number): string
  statusUrl(taskId: string): string
}

export async function startServer(options: TabcastServerOptions = {}): Promise<RunningServer> {
  const server = createTabcastServer({ logger: silentLogger, ...options })
  const address = await server.listen(0, '127.0.0.1')
  const ws = address.url.replace(/^http/, 'ws')
  return {
    server,
    http: address.url,
    ws,
    streamUrl: (taskId, since) =>
      `${ws}/api/v1/ws/projects/${encodeURIComponent(taskId)}/stream${since === undefined ? '' : `?since=${since}`}`,
    statusUrl: (taskId) => `${address.url}/api/v1/projects/${encodeURIComponent(taskId)}/status`,
  }
}

export interface CloseEvent {
  code: number
  reason: string
}

export interface ClientOptions {
  origin?: string
  /** `false` stops the client answering protocol pings (a dead peer, for the heartbeat). */
  autoPong?: boolean
  /** Subprotocols to offer (`['tabcast', 'tabcast.bearer.<token>']` carries a token). */
  protocols?: string[]
}

/** A WebSocket client that records every message and lets tests await them in order. */
export class TestClient {
  readonly socket: WebSocket
  /** Every message received, parsed and validated. */
  readonly messages: ServerMessage[] = []
  /** Protocol-level pings received from the server. */
  pings = 0
  readonly opened: Promise<void>
  readonly closed: Promise<CloseEvent>
  /** Resolves with the HTTP status when the server refuses the upgrade. */
  readonly refused: Promise<number>
  private cursor = 0
  private readonly waiters = new Set<() => void>()
  private readonly pingWaiters = new Set<() => void>()

  constructor(url: string, options: ClientOptions = {}) {
    const wsOptions: WebSocket.ClientOptions = { autoPong: options.autoPong ?? true }
    if (options.origin !== undefined) wsOptions.origin = options.origin
    this.socket = new WebSocket(url, options.protocols ?? [], wsOptions)
    const opened = deferred<void>()
    const closed = deferred<CloseEvent>()
    const refused = deferred<number>()
    this.opened = opened.promise
    this.closed = closed.promise
    this.refused = refused.promise
    // Unobserved outcomes must not become unhandled rejections.
    opened.promise.catch(() => {})
    this.socket.on('open', () => opened.resolve())
    this.socket.on('unexpected-response', (_req, res) => {
      refused.resolve(res.statusCode ?? 0)
      res.resume()
      this.socket.terminate()
    })
    this.socket.on('error', (error) => opened.reject(error))
    this.socket.on('ping', () => {
      this.pings += 1
      for (const wake of this.pingWaiters) wake()
    })
    this.socket.on('message', (data, isBinary) => {
      const text = isBinary ? '<binary>' : data.toString()
      const parsed = parseServerMessage(text)
      if (!parsed.ok) throw new Error(`server sent an invalid message (${parsed.error.message}): ${text}`)
      this.messages.push(parsed.value)
      for (const wake of this.waiters) wake()
    })
    this.socket.on('close', (code, reason) => {
      closed.resolve({ code, reason: reason.toString() })
      for (const wake of this.waiters) wake()
    })
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN
  }

  /** The next message not yet read by `next`/`until`. */
  next(what = 'the next message'): Promise<ServerMessage> {
    return this.until(() => true, what).then((read) => read[read.length - 1] as ServerMessage)
  }

  /** Reads messages until one satisfies `predicate`; returns all read, that one included. */
  until(predicate: (message: ServerMessage) => boolean, what = 'a matching message'): Promise<ServerMessage[]> {
    const read: ServerMessage[] = []
    const attempt = (): boolean => {
      while (this.cursor < this.messages.length) {
        const message = this.messages[this.cursor] as ServerMessage
        this.cursor += 1
        read.push(message)
        if (predicate(message)) return true
      }
      return false
    }
    if (attempt()) return Promise.resolve(read)
    const done = deferred<ServerMessage[]>()
    const wake = (): void => {
      if (attempt()) {
        this.waiters.delete(wake)
        done.resolve(read)
      } else if (this.socket.readyState === WebSocket.CLOSED) {
        this.waiters.delete(wake)
        done.reject(new Error(`socket closed while waiting for ${what}; read ${JSON.stringify(read)}`))
      }
    }
    this.waiters.add(wake)
    return withLimit(done.promise, what)
  }

  /** Reads up to and including the task message with this `seq`; returns the task messages read. */
  async untilSeq(seq: number): Promise<TaskMessage[]> {
    const read = await this.until((message) => message.seq !== undefined && message.seq >= seq, `seq ${seq}`)
    return read.filter((message): message is TaskMessage => message.seq !== undefined)
  }

  /** Messages received but not read yet. */
  unread(): ServerMessage[] {
    return this.messages.slice(this.cursor)
  }

  async waitForPings(count: number): Promise<void> {
    if (this.pings >= count) return
    const done = deferred<void>()
    const wake = (): void => {
      if (this.pings >= count) {
        this.pingWaiters.delete(wake)
        done.resolve()
      }
    }
    this.pingWaiters.add(wake)
    await withLimit(done.promise, `${count} pings`)
  }

  waitClosed(): Promise<CloseEvent> {
    return withLimit(this.closed, 'the socket to close')
  }

  close(): Promise<CloseEvent> {
    if (this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate()
    else this.socket.close()
    return this.waitClosed()
  }
}

/** Opens a client and waits for its `connected` message. */
export async function connect(url: string, options: ClientOptions = {}): Promise<{ client: TestClient; connected: ServerMessage }> {
  const client = new TestClient(url, options)
  const connected = await client.next('connected')
  if (connected.type !== 'connected') throw new Error(`expected connected first, got ${JSON.stringify(connected)}`)
  return { client, connected }
}

/** The servers and clients of one test file, closed after each test. */
export interface TrackedServers {
  readonly running: RunningServer[]
  readonly clients: TestClient[]
  /** Starts a server on 127.0.0.1 port 0. */
  start(options?: TabcastServerOptions): Promise<RunningServer>
  /** A client, not waited for. */
  client(url: string, options?: ClientOptions): TestClient
  /** A client that has received `connected`. */
  follow(url: string, options?: ClientOptions): Promise<TestClient>
  /** `connect`, with the client closed after the test. */
  open(url: string, options?: ClientOptions): Promise<{ client: TestClient; connected: ServerMessage }>
}

/** Call once at the top of a test file: what it opens is closed after each test. */
export function trackServers(): TrackedServers {
  const running: RunningServer[] = []
  const clients: TestClient[] = []
  afterEach(async () => {
    for (const each of clients.splice(0)) each.socket.terminate()
    await Promise.all(running.splice(0).map((server) => server.server.close()))
  })
  const open = async (url: string, options: ClientOptions = {}): Promise<{ client: TestClient; connected: ServerMessage }> => {
    const result = await connect(url, options)
    clients.push(result.client)
    return result
  }
  return {
    running,
    clients,
    async start(options = {}) {
      const server = await startServer(options)
      running.push(server)
      return server
    },
    client(url, options = {}) {
      const created = new TestClient(url, options)
      clients.push(created)
      return created
    },
    follow: async (url, options = {}) => (await open(url, options)).client,
    open,
  }
}

/** Task messages only (what must be identical for every subscriber). */
export function taskMessages(messages: readonly ServerMessage[]): TaskMessage[] {
  return messages.filter((message): message is TaskMessage => message.seq !== undefined)
}

export interface GatedStore {
  store: TaskStore
  inner: MemoryTaskStore
  /** Resolves when the server has called `get` (its snapshot is already taken). */
  getCalled: Promise<void>
  /** Lets `get` answer. */
  openGet: () => void
  readCalled: Promise<void>
  openRead: () => void
}

/**
 * A store with latency, like a network store: `get` and `readSince` take their snapshot
 * at once but answer only when the test opens their gate, so a test can append
 * messages (or send frames) in between.
 */
export function gatedStore(): GatedStore {
  const inner = new MemoryTaskStore()
  const getCalled = deferred<void>()
  const getGate = deferred<void>()
  const readCalled = deferred<void>()
  const readGate = deferred<void>()
  const store: TaskStore = {
    create: (...args) => inner.create(...args),
    append: (...args) => inner.append(...args),
    subscribe: (...args) => inner.subscribe(...args),
    health: () => inner.health(),
    close: () => inner.close(),
    get: async (taskId) => {
      const snapshot = await inner.get(taskId)
      getCalled.resolve()
      await getGate.promise
      return snapshot
    },
    readSince: async (taskId, since) => {
      const snapshot = await inner.readSince(taskId, since)
      readCalled.resolve()
      await readGate.promise
      return snapshot
    },
  }
  return {
    store,
    inner,
    getCalled: getCalled.promise,
    openGet: () => getGate.resolve(),
    readCalled: readCalled.promise,
    openRead: () => readGate.resolve(),
  }
}
