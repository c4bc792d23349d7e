/**
 * The baseline bench page: what a tab pays without a broker. Each tab opens its own
 * WebSocket per task and writes the DOM on every message, with the reconnect a
 * careful hand-written client would have: tabcast's default schedule (at once after
 * a server's "going away", then 1, 2, 4 … s up to 30 s) and `?since=` so the server
 * replays what was missed.
 *
 * `?catchup=0` in the address ignores the current state the reference server sends
 * a new socket, as a backend without catch-up would: such a tab waits for the task's
 * next live message (the late-join comparison of issue 7).
 */
import { forget, installBenchApi, mark, recordMessage, render, type ProbedMessage } from './probe.js'

const GOING_AWAY = 1001
const FATAL_CODES = new Set([1008, 4000, 4004])

interface WireMessage extends ProbedMessage {
  progress?: number
  last_seq?: number
}

class DirectTask {
  private socket: WebSocket | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  private attempt = 0
  private lastSeq = 0
  private progress = 0
  private status = 'idle'
  private connection = 'connecting'
  private stopped = false
  private everOpened = false
  /** Catch-up messages to ignore (`?catchup=0`): seqs up to this one, on the first socket only. */
  private ignoreUpTo = -1

  constructor(
    private readonly taskId: string,
    private readonly backendUrl: string,
    private readonly catchUp: boolean,
    private readonly onFirstOpen: () => void,
  ) {
    this.paint()
    this.connect()
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.socket?.close(1000)
    this.socket = null
  }

  private connect(): void {
    const since = this.lastSeq > 0 ? `?since=${this.lastSeq}` : ''
    const socket = new WebSocket(`ws://${this.backendUrl}/api/v1/ws/projects/${encodeURIComponent(this.taskId)}/stream${since}`)
    this.socket = socket
    socket.onopen = () => {
      if (!this.everOpened) {
        this.everOpened = true
        this.onFirstOpen()
      }
      this.attempt = 0
      this.connection = 'live'
      this.paint()
    }
    socket.onmessage = (event: MessageEvent<string>) => this.onMessage(JSON.parse(event.data) as WireMessage)
    socket.onclose = (event) => this.onClose(event.code)
  }

  private onMessage(message: WireMessage): void {
    if (message.type === 'connected') {
      if (!this.catchUp && this.ignoreUpTo < 0) this.ignoreUpTo = message.last_seq ?? 0
      recordMessage(this.taskId, message)
      return
    }
    if (message.seq !== undefined) {
      if (message.seq <= this.lastSeq) return
      this.lastSeq = message.seq
      if (message.seq <= this.ignoreUpTo) return
    }
    recordMessage(this.taskId, message)
    if (message.type === 'progress') {
      this.status = 'running'
      this.progress = Math.max(this.progress, message.progress ?? this.progress)
    } else if (message.type === 'completed') {
      this.status = 'completed'
      this.progress = 1
    } else if (message.type === 'error' && message.details?.['scope'] !== 'connection') {
      this.status = 'failed'
    } else {
      return
    }
    if (this.status === 'completed' || this.status === 'failed') {
      this.stopped = true
      this.connection = 'closed'
      this.socket?.close(1000)
    }
    this.paint()
  }

  private onClose(code: number): void {
    this.socket = null
    if (this.stopped) return
    if (FATAL_CODES.has(code)) {
      this.connection = 'closed'
      this.paint()
      return
    }
    this.attempt++
    const delay = code === GOING_AWAY && this.attempt === 1 ? 0 : Math.min(1000 * 2 ** (this.attempt - 1), 30_000)
    this.connection = 'reconnecting'
    this.paint()
    this.timer = setTimeout(() => {
      this.timer = null
      this.connect()
    }, delay)
  }

  private paint(): void {
    render(this.taskId, { seq: this.lastSeq, progress: this.progress, status: this.status, connection: this.connection })
  }
}

let following: DirectTask[] = []
let followedIds: string[] = []

installBenchApi('baseline', {
  follow(taskIds, backendUrl, params) {
    const catchUp = params.get('catchup') !== '0'
    let opening = taskIds.length
    // Every socket of this follow is open: the baseline's counterpart of tabcast's handshake.
    const opened = (): void => {
      if (--opening === 0) mark('ready')
    }
    for (const taskId of taskIds) {
      following.push(new DirectTask(taskId, backendUrl, catchUp, opened))
      followedIds.push(taskId)
    }
  },
  unfollow() {
    for (const task of following) task.stop()
    for (const taskId of followedIds) forget(taskId)
    following = []
    followedIds = []
  },
})
