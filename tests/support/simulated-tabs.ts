/**
 * The broker as the SharedWorker hosts it, in a Vitest process: a `Broker` with real
 * timers, `ws` sockets and global `fetch`, behind a `TabHub`, with one Comlink-exposed
 * `createSessionApi` per simulated tab on a Node `MessageChannel`. A tab is a real
 * `TabClient` over `createPortLink`. Tab death is signalled the way the worker learns
 * it in a browser, through the injected lock watcher, never through port `close`.
 */
import * as Comlink from 'comlink'
import { WebSocket } from 'ws'
import type { ServerMessage, TaskOptions, TaskSnapshot } from 'tabcast'
import { createPortLink, type ChannelLike } from '../../src/client/port-link.js'
import { TabClient } from '../../src/client/tab-client.js'
import { Broker } from '../../src/core/broker.js'
import type { BrokerEnv, SocketLike } from '../../src/core/env.js'
import { createSessionApi } from '../../src/core/session-api.js'
import { TabHub } from '../../src/core/tab-hub.js'

/** Node 20 has no global WebSocket: the core gets `ws` sockets, whose `on…` properties fit `SocketLike`. */
export function nodeEnv(): BrokerEnv {
  return {
    clock: {
      now: () => Date.now(),
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    },
    createSocket: (url, protocols) => {
      const socket = protocols ? new WebSocket(url, protocols) : new WebSocket(url)
      // `ws` throws an 'error' event nobody listens to (closing while connecting, a refused
      // connection after the core dropped its handlers); browsers just fire `close`.
      socket.on('error', () => {})
      return socket as unknown as SocketLike
    },
    fetch: (url, init) => fetch(url, init),
    random: () => Math.random(),
    secure: false,
    // No network changes in a test process.
    signals: () => () => {},
  }
}

interface Closable {
  close(): void
}

export interface Following {
  readonly messages: ServerMessage[]
  readonly snapshots: TaskSnapshot[]
  /** The newest snapshot delivered (throws before the first). */
  readonly latest: TaskSnapshot
  stop(): void
}

export class SimulatedTab {
  readonly tabId: string
  readonly client: TabClient
  private readonly ports: Closable[]

  constructor(tabId: string, client: TabClient, ports: Closable[]) {
    this.tabId = tabId
    this.client = client
    this.ports = ports
  }

  follow(taskId: string, options: TaskOptions): Following {
    const messages: ServerMessage[] = []
    const snapshots: TaskSnapshot[] = []
    const stop = this.client.subscribe(taskId, { message: (m) => messages.push(m), snapshot: (s) => snapshots.push(s) }, options)
    return {
      messages,
      snapshots,
      get latest() {
        const last = snapshots[snapshots.length - 1]
        if (!last) throw new Error(`no snapshot of ${taskId} yet`)
        return last
      },
      stop,
    }
  }

  /** Closes this tab's ports (what a closed document leaves behind). */
  closePorts(): void {
    for (const port of this.ports.splice(0)) port.close()
  }
}

export class BrokerHost {
  readonly broker: Broker
  readonly hub: TabHub
  /** The watcher's `onGone` per tab id: calling it is the tab's lock being granted to the host. */
  readonly gone = new Map<string, () => void>()
  private readonly tabs: SimulatedTab[] = []

  constructor(env: BrokerEnv = nodeEnv()) {
    this.broker = new Broker(env, { mode: 'shared-worker', modeReason: 'test' })
    this.hub = new TabHub(this.broker, (tabId, onGone) => this.gone.set(tabId, onGone))
  }

  /** A tab connecting to the worker: one port per tab, like a SharedWorker `connect` event. */
  openTab(tabId: string): SimulatedTab {
    const { port1, port2 } = new MessageChannel()
    Comlink.expose(createSessionApi(this.hub), port1)
    const ports: Closable[] = [port1, port2]
    const newChannel = (): ChannelLike => {
      const channel = new MessageChannel()
      ports.push(channel.port1, channel.port2)
      return channel
    }
    const client = new TabClient({
      links: [() => createPortLink(port2, newChannel)],
      tabId,
      // Each tab holds its own lock at once (a real grant takes a round trip); the
      // host watches it once the tab reports it (`locked`), and `kill` is that lock's grant.
      locks: { request: (_name, _options, callback) => Promise.resolve(callback({})) },
      scheduleFrame: (callback) => setImmediate(callback),
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
      healthInterval: 0,
    })
    const tab = new SimulatedTab(tabId, client, ports)
    this.tabs.push(tab)
    return tab
  }

  /** The tab's document died (closed, crashed): its lock goes to the host, its ports go quiet. */
  kill(tab: SimulatedTab): void {
    const onGone = this.gone.get(tab.tabId)
    if (!onGone) throw new Error(`tab ${tab.tabId} never registered`)
    onGone()
    tab.closePorts()
  }

  close(): void {
    for (const tab of this.tabs.splice(0)) tab.closePorts()
    this.broker.close()
  }
}
