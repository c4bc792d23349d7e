/**
 * The measuring half of a bench page, the same in both variants: it draws one row per
 * task with the same DOM writes, counts what the page's listeners receive, and stamps
 * every DOM write with the time it reached the screen.
 *
 * Paint time: the rendering of a frame (animation-frame callbacks, style, layout,
 * paint) runs as one task on the main thread, and a message posted from inside it is
 * handled right after it. So a write made inside an animation-frame callback (tabcast
 * writes in one) is painted by the current frame; a write made anywhere else (the
 * baseline writes from its socket's message handler) by the next one. Either way the
 * probe posts itself a message from inside the frame that paints the write and stamps
 * the write when that message arrives: both variants are timed the same way, at the
 * end of the frame's rendering work on the main thread.
 */
import type { BenchPageApi, Delivery, PageMarks, PageReport, TaskProbeReport, Variant } from './api.js'

/** Epoch milliseconds with sub-millisecond resolution; the server stamps `sentAt` the same way. */
export const clock = (): number => performance.timeOrigin + performance.now()

const marks: PageMarks = { script: performance.now() }

/** Notes the first time a moment of the page's start happened (see `PageMarks`). */
export function mark(name: keyof PageMarks): void {
  marks[name] ??= performance.now()
}

let inFrame = 0
const nativeRequestFrame = window.requestAnimationFrame.bind(window)
// Installed before any page code runs, so tabcast's frame scheduling goes through it too.
window.requestAnimationFrame = (callback: FrameRequestCallback): number =>
  nativeRequestFrame((time) => {
    inFrame++
    try {
      callback(time)
    } finally {
      inFrame--
    }
  })

/** What a row shows. Both variants pass the same fields. */
export interface TaskView {
  seq: number | null
  /** 0 – 1. */
  progress: number
  status: string
  connection: string
}

/** The parts of a server message the probe counts. */
export interface ProbedMessage {
  type: string
  seq?: number
  metadata?: Record<string, unknown>
  details?: Record<string, unknown>
}

interface Row {
  root: HTMLElement
  fill: HTMLElement
  percent: HTMLElement
  state: HTMLElement
}

class TaskProbe {
  readonly taskId: string
  readonly row: Row
  readonly received = new Set<number>()
  messages: Record<string, number> = {}
  terminal = 0
  renders = 0
  paintedSeq = 0
  writtenSeq = 0
  paintedConnection = ''
  status = 'idle'
  connectionLog: { state: string; at: number }[] = []
  paints: { seq: number; at: number }[] = []
  writes: { seq: number; at: number }[] = []

  constructor(taskId: string, row: Row) {
    this.taskId = taskId
    this.row = row
  }

  reset(): void {
    this.messages = {}
    this.terminal = 0
    this.renders = 0
    this.connectionLog = []
    this.paints = []
    this.writes = []
  }
}

interface PendingPaint {
  task: TaskProbe
  seq: number
  connection: string
}

const container = document.getElementById('tasks') ?? document.body
const tasks = new Map<string, TaskProbe>()
const errors: string[] = []
let arrivals: number[] = []
let delivery: Delivery = 'messages'
let paintedFrames = 0
let pending: PendingPaint[] = []
let stampPosted = false
let frameRequested = false
const stampChannel = new MessageChannel()

window.addEventListener('error', (event) => errors.push(event.message))
window.addEventListener('unhandledrejection', (event) => errors.push(String(event.reason)))

function createRow(taskId: string): Row {
  const root = document.createElement('div')
  root.className = 'task'
  root.dataset['task'] = taskId
  const name = document.createElement('span')
  name.className = 'name'
  name.textContent = taskId
  const bar = document.createElement('div')
  bar.className = 'bar'
  const fill = document.createElement('div')
  fill.className = 'fill'
  bar.append(fill)
  const percent = document.createElement('span')
  percent.className = 'percent'
  const state = document.createElement('span')
  state.className = 'state'
  root.append(name, bar, percent, state)
  container.append(root)
  return { root, fill, percent, state }
}

function task(taskId: string): TaskProbe {
  let probe = tasks.get(taskId)
  if (!probe) {
    probe = new TaskProbe(taskId, createRow(taskId))
    tasks.set(taskId, probe)
  }
  return probe
}

stampChannel.port1.onmessage = () => {
  stampPosted = false
  const at = clock()
  const painted = pending
  pending = []
  if (painted.length > 0) paintedFrames++
  const newest = new Map<TaskProbe, number>()
  for (const { task: probe, seq, connection } of painted) {
    if (connection !== probe.paintedConnection) {
      probe.paintedConnection = connection
      probe.connectionLog.push({ state: connection, at })
    }
    if (seq > probe.paintedSeq) {
      // Every message up to this seq is on screen now, the skipped ones included (the
      // driver turns these stamps into latencies with the send times it knows).
      probe.paintedSeq = seq
      newest.set(probe, seq)
    }
  }
  for (const [probe, seq] of newest) probe.paints.push({ seq, at })
}

function scheduleStamp(): void {
  if (stampPosted) return
  if (inFrame > 0) {
    stampPosted = true
    stampChannel.port2.postMessage(0)
    return
  }
  if (frameRequested) return
  frameRequested = true
  nativeRequestFrame(() => {
    frameRequested = false
    if (stampPosted) return
    stampPosted = true
    stampChannel.port2.postMessage(0)
  })
}

/** A message reached the page's message listener. */
export function recordMessage(taskId: string, message: ProbedMessage): void {
  const probe = task(taskId)
  probe.messages[message.type] = (probe.messages[message.type] ?? 0) + 1
  if (message.type === 'completed' || (message.type === 'error' && message.details?.['scope'] !== 'connection')) probe.terminal++
  if (message.seq === undefined) return
  probe.received.add(message.seq)
  const sentAt = message.metadata?.['sentAt']
  if (message.type === 'progress' && typeof sentAt === 'number') arrivals.push(clock() - sentAt)
}

/** Writes a task's row: the same writes in both variants. */
export function render(taskId: string, view: TaskView): void {
  const probe = task(taskId)
  const percent = Math.round(view.progress * 1000) / 10
  const { row } = probe
  row.fill.style.width = `${percent}%`
  row.percent.textContent = `${percent.toFixed(1)} %`
  row.state.textContent = `${view.status} · ${view.connection}`
  row.root.dataset['status'] = view.status
  row.root.dataset['connection'] = view.connection
  probe.status = view.status
  probe.renders++
  const seq = view.seq ?? 0
  if (seq > probe.writtenSeq) {
    probe.writtenSeq = seq
    probe.writes.push({ seq, at: clock() })
  }
  pending.push({ task: probe, seq: view.seq ?? 0, connection: view.connection })
  scheduleStamp()
}

/** Drops a task's row and records. */
export function forget(taskId: string): void {
  const probe = tasks.get(taskId)
  if (!probe) return
  probe.row.root.remove()
  tasks.delete(taskId)
  pending = pending.filter((entry) => entry.task !== probe)
}

function report(options: { latencies?: boolean; paints?: boolean } = {}): PageReport {
  const taskReports: TaskProbeReport[] = [...tasks.values()].map((probe) => ({
    taskId: probe.taskId,
    connection: probe.paintedConnection,
    status: probe.status,
    paintedSeq: probe.paintedSeq,
    messages: { ...probe.messages },
    terminal: probe.terminal,
    renders: probe.renders,
    connectionLog: probe.connectionLog.slice(),
    paints: options.paints === false ? [] : probe.paints.slice(),
    writes: options.paints === false ? [] : probe.writes.slice(),
  }))
  return {
    variant: window.tabcastBench?.variant ?? 'baseline',
    timeOrigin: performance.timeOrigin,
    visibility: document.visibilityState,
    tasks: taskReports,
    delivery,
    arrivals: options.latencies === false ? [] : arrivals.slice(),
    marks: { ...marks },
    paintedFrames,
    errors: errors.slice(),
  }
}

function deliveryFrom(params: URLSearchParams): Delivery {
  return params.get('delivery') === 'snapshots' ? 'snapshots' : 'messages'
}

export interface Follower {
  follow(taskIds: readonly string[], backendUrl: string, params: URLSearchParams, delivery: Delivery): void
  unfollow(): void
}

/**
 * Installs `window.tabcastBench` and follows the tasks named in the address
 * (`?tasks=a,b&backend=127.0.0.1:8000`), so a tab opened on a task follows it from
 * its first script. Unless the address says `keeper=0`, it also adds the frame keeper
 * (style.css), so the window renders like a visible one.
 */
export function installBenchApi(variant: Variant, follower: Follower): void {
  const api: BenchPageApi = {
    variant,
    follow: (taskIds, backendUrl, asked) => {
      mark('follow')
      const params = new URLSearchParams(location.search)
      delivery = asked ?? deliveryFrom(params)
      follower.follow(taskIds, backendUrl, params, delivery)
    },
    unfollow: () => follower.unfollow(),
    reset() {
      arrivals = []
      paintedFrames = 0
      for (const probe of tasks.values()) probe.reset()
    },
    report,
    missing(taskId, from, to) {
      const probe = tasks.get(taskId)
      let missing = 0
      for (let seq = from; seq <= to; seq++) if (!probe?.received.has(seq)) missing++
      return missing
    },
    now: clock,
  }
  window.tabcastBench = api
  const params = new URLSearchParams(location.search)
  if (params.get('keeper') !== '0') {
    const keeper = document.createElement('div')
    keeper.className = 'frame-keeper'
    document.body.append(keeper)
  }
  const initial = (params.get('tasks') ?? '').split(',').filter((id) => id !== '')
  const backend = params.get('backend')
  if (initial.length > 0 && backend) {
    mark('follow')
    delivery = deliveryFrom(params)
    follower.follow(initial, backend, params, delivery)
  }
}
