/**
 * Once-handlers: a task's completion or failure runs an app's side effect (a desktop
 * notification, a download, an analytics event) in exactly one tab of the browser,
 * however many tabs follow the task. The broker host keeps one `OnceCoordinator`; it
 * knows which tabs registered a once-handler for which task and event, how visible
 * each of them is, and whether a task's once-effect has been done.
 *
 * On a task's terminal event the coordinator picks one registered tab (visible and
 * focused, then visible, then any; tabs already tried go last), sends it a run request
 * without waiting for it, and waits for its acknowledgement until a deadline of the
 * injected clock. When the deadline passes, the tab refuses (it no longer has a
 * handler), or the tab is released (its Web Lock was granted to the host, or it said
 * goodbye), the next tab is chosen. The first acknowledgement, even one of an earlier
 * attempt that arrives after its deadline, marks the task done: every tab that
 * registered for it is told, and no tab runs it again while this coordinator lives.
 * Where the tabs are told about it, a new coordinator (a restarted host) learns it from
 * them (`OnceRegistration.done`).
 *
 * At most once: a run request carries `runBy`, half the deadline after it was sent
 * (host clock; host and tabs of one browser read the same wall clock). A tab starts
 * handlers only before `runBy`, and answers at once, so an acknowledgement is on its
 * way long before the host gives up on it. A tab that was frozen when the request
 * arrived, and wakes after the host moved on, refuses instead of running it late.
 *
 * At least once: while a registered tab lives, a run is outstanding; a tab that timed
 * out is tried again after the others.
 *
 * Memory: per task, only the outcome (done, or terminal and waiting for a
 * registration) is remembered once its registrations are gone, and at most
 * `maxRememberedTasks` such tasks are kept; past that the oldest are forgotten (a tab
 * registering for a forgotten task would run the effect again). Tasks with a
 * registration or a run in flight are never forgotten.
 *
 * Pure: no browser API, no timer of its own; the host injects the clock and the way
 * a run request reaches a tab, and tells the coordinator about acknowledgements,
 * refusals and tabs that are gone.
 */
import type { Clock, TimerHandle } from './env.js'
import { MAX_ONCE_HANDLERS_PER_TAB } from '../once-types.js'

/** The terminal events a once-handler can follow. */
export type OnceEvent = 'completed' | 'failed'

export function isOnceEvent(value: unknown): value is OnceEvent {
  return value === 'completed' || value === 'failed'
}

/** How visible a tab is; a tab that said nothing counts as hidden and unfocused. */
export interface TabPresence {
  visible: boolean
  focused: boolean
}

/** Host → tab: run your once-handlers of `event` for `task`, then acknowledge `id`. */
export interface OnceRunRequest {
  id: number
  /** The task key (`taskKey()`) on the host. */
  task: string
  /** This tab's registrations to run (its own ids for them). */
  regIds: number[]
  event: OnceEvent
  /** The task's `result` (completed) or `error` (failed), for the handler. */
  value: unknown
  /** Host clock (ms since epoch): a tab that reads the request later must not run it. */
  runBy: number
}

/** Host → tab, after the effect was done: drop your once-handlers for `task`. */
export interface OnceSettled {
  task: string
  /** This tab's registrations to drop. */
  regIds: number[]
  event: OnceEvent
  /** The tab that ran the handlers; null when a tab reported the effect done after a host restart. */
  ranIn: string | null
}

export interface OnceRegistration {
  task: string
  event: OnceEvent
  /** How long (ms) the host waits for this tab's acknowledgement. @default 5000 */
  ackTimeout?: number
  /**
   * The tab already knows the effect is done (it ran it, or was told so by an earlier
   * host): sent when registering again with a new host, so a restarted broker does
   * not run it twice.
   */
  done?: boolean
  /** With `done`: the tab key of the tab that ran it, when known (it may be gone). */
  doneIn?: string
}

/**
 * What a registration found: `pending` (it may run here), or `done` with the event
 * that ended the task and the tab that ran its effect (null: the task ended with the
 * other event, or a re-registering tab reported it done).
 */
export type OnceRegistrationState = { state: 'pending' } | { state: 'done'; event: OnceEvent; ranIn: string | null }

export interface OnceCoordinatorConfig {
  clock: Clock
  /**
   * Posts a run request to a tab, without waiting: the acknowledgement comes back
   * through `acknowledge`. `timeout` is the coordinator's own deadline for it. Throws
   * when the tab cannot be reached (it is then forgotten).
   */
  sendRun: (tab: string, request: OnceRunRequest, timeout: number) => void
  /** Tells a tab the effect was done (fire and forget). */
  sendSettled?: (tab: string, settled: OnceSettled) => void
  /** How many finished tasks are remembered, oldest forgotten first. @default 1000 */
  maxRememberedTasks?: number
}

export const DEFAULT_ONCE_ACK_TIMEOUT = 5000
export const DEFAULT_MAX_REMEMBERED_TASKS = 1000

/** What the coordinator knows about one task's once-effect, for stats and the demo's inspector. */
export interface OnceTaskState {
  task: string
  terminal: OnceEvent | null
  /** Done: the event and the tab that ran it (null when reported by a re-registering tab). */
  done: { event: OnceEvent; ranIn: string | null } | null
  /** The tab asked to run it now, if any. */
  running: string | null
  /** Tabs with a registration for this task. */
  tabs: string[]
}

interface Attempt {
  tab: string
  id: number
  timer: TimerHandle
}

interface TaskRecord {
  terminal: { event: OnceEvent; value: unknown } | null
  done: { event: OnceEvent; ranIn: string | null } | null
  attempt: Attempt | null
  /** Times each tab was asked; a tab asked fewer times goes first. */
  tries: Map<string, number>
  /** Tabs that answered they have no handler: not asked again unless they register again. */
  refused: Set<string>
  /** The latest run ids, whose late acknowledgements still count (at most `RECENT_RUNS`). */
  recentRuns: number[]
}

/** Run ids remembered per task: a tab frozen for hours is asked again every deadline, and must not grow this. */
export const RECENT_RUNS = 8

interface Registration {
  task: string
  event: OnceEvent
  ackTimeout: number
  /** Registration order, the last tie-break. */
  order: number
}

interface TabRecord {
  presence: TabPresence
  registrations: Map<number, Registration>
}

function presenceRank(presence: TabPresence): number {
  if (presence.visible && presence.focused) return 0
  return presence.visible ? 1 : 2
}

export class OnceCoordinator {
  private readonly config: OnceCoordinatorConfig
  private readonly tasks = new Map<string, TaskRecord>()
  private readonly tabs = new Map<string, TabRecord>()
  /** Run id → task, for the runs of tasks not done yet (a late acknowledgement still counts). */
  private readonly runs = new Map<number, string>()
  private nextRun = 1
  private nextOrder = 1

  constructor(config: OnceCoordinatorConfig) {
    const max = config.maxRememberedTasks ?? DEFAULT_MAX_REMEMBERED_TASKS
    if (!Number.isSafeInteger(max) || max < 1) throw new TypeError(`tabcast: maxRememberedTasks must be a positive integer, got ${String(max)}`)
    this.config = config
  }

  /**
   * Registers one once-handler of `tab` (`regId` is the tab's own id for it). Runs it
   * at once when the task already ended and nobody ran its effect.
   */
  register(tab: string, regId: number, registration: OnceRegistration): OnceRegistrationState {
    const registrations = this.tabs.get(tab)?.registrations
    if (registrations && !registrations.has(regId) && registrations.size >= MAX_ONCE_HANDLERS_PER_TAB) {
      throw new RangeError(`tabcast: tab ${tab} has ${MAX_ONCE_HANDLERS_PER_TAB} once-handlers registered already (the limit)`)
    }
    const record = this.task(registration.task)
    if (registration.done && !record.done) this.markDone(registration.task, record, registration.event, registration.doneIn ?? null)
    if (record.done) return { state: 'done', event: record.done.event, ranIn: record.done.ranIn }
    if (record.terminal && record.terminal.event !== registration.event) return { state: 'done', event: record.terminal.event, ranIn: null }
    const tabRecord = this.tab(tab)
    record.refused.delete(tab)
    tabRecord.registrations.set(regId, {
      task: registration.task,
      event: registration.event,
      ackTimeout: positive(registration.ackTimeout) ?? DEFAULT_ONCE_ACK_TIMEOUT,
      order: this.nextOrder++,
    })
    this.dispatch(registration.task, record)
    return { state: 'pending' }
  }

  unregister(tab: string, regId: number): void {
    const tabRecord = this.tabs.get(tab)
    const registration = tabRecord?.registrations.get(regId)
    if (!tabRecord || !registration) return
    tabRecord.registrations.delete(regId)
    // A run already sent to this tab stays: the tab refuses it if it has no handler left.
    this.prune()
  }

  /** The tab's visibility changed; it only matters for the next choice. */
  setPresence(tab: string, presence: TabPresence): void {
    // Kept for tabs without a registration too: a tab reports its presence before it registers.
    this.tab(tab).presence = { visible: presence.visible === true, focused: presence.focused === true }
  }

  /** The task ended: run its once-handlers in one tab, unless that was done. Repeats are ignored. */
  terminal(task: string, event: OnceEvent, value: unknown): void {
    const record = this.task(task)
    if (record.terminal) return
    record.terminal = { event, value }
    if (record.done) return
    // Handlers of the other event will never run: tell their tabs to drop them.
    for (const [tab, tabRecord] of this.tabs) {
      const regIds = this.take(tabRecord, (registration) => registration.task === task && registration.event !== event)
      if (regIds.length > 0) this.notifySettled(tab, { task, regIds, event, ranIn: null })
    }
    this.dispatch(task, record)
    this.prune()
  }

  /**
   * The tab ran the handlers of run `runId`. An acknowledgement that comes after its
   * deadline still marks the task done (the effect happened), so a run sent to another
   * tab meanwhile is at least not followed by a third. Unknown ids are ignored.
   */
  acknowledge(tab: string, runId: number): void {
    const task = this.runs.get(runId)
    const record = task === undefined ? undefined : this.tasks.get(task)
    if (task === undefined || !record?.terminal || record.done) return
    this.markDone(task, record, record.terminal.event, tab)
  }

  /**
   * The tab did not run run `runId`. `no-handler`: it has none left (its unregister is
   * on the way); ask another tab now, and not this one again unless it registers again.
   * `late`: it read the request after `runBy`; the deadline, not this answer, moves
   * on, so a tab whose answers all come late cannot make the host spin.
   */
  refuse(tab: string, runId: number, reason: 'no-handler' | 'late'): void {
    if (reason === 'late') return
    for (const [task, record] of this.tasks) {
      const attempt = record.attempt
      if (!attempt || attempt.id !== runId || attempt.tab !== tab) continue
      record.refused.add(tab)
      this.failAttempt(task, record)
      return
    }
  }

  /** The tab is gone (its lock was granted to the host, or it said goodbye): forget it, and fail over. */
  release(tab: string): void {
    this.tabs.delete(tab)
    for (const [task, record] of this.tasks) {
      record.tries.delete(tab)
      record.refused.delete(tab)
      if (record.attempt?.tab === tab) this.failAttempt(task, record)
    }
    this.prune()
  }

  isDone(task: string): boolean {
    return this.tasks.get(task)?.done != null
  }

  state(task: string): OnceTaskState | null {
    const record = this.tasks.get(task)
    if (!record) return null
    return {
      task,
      terminal: record.terminal?.event ?? null,
      done: record.done ? { ...record.done } : null,
      running: record.attempt?.tab ?? null,
      tabs: [...this.tabs].filter(([, tabRecord]) => [...tabRecord.registrations.values()].some((r) => r.task === task)).map(([tab]) => tab),
    }
  }

  /** Tasks with at least one registration: the ones the host must follow. */
  registeredTasks(): Set<string> {
    const tasks = new Set<string>()
    for (const tabRecord of this.tabs.values()) for (const registration of tabRecord.registrations.values()) tasks.add(registration.task)
    return tasks
  }

  /** Tasks currently remembered (for the memory bound and stats). */
  get rememberedTasks(): number {
    return this.tasks.size
  }

  /** Run ids whose acknowledgement would still count. */
  get trackedRuns(): number {
    return this.runs.size
  }

  /** Every timer stops; late acknowledgements are ignored. */
  close(): void {
    for (const record of this.tasks.values()) {
      if (record.attempt) this.config.clock.clearTimeout(record.attempt.timer)
      record.attempt = null
    }
  }

  private task(task: string): TaskRecord {
    let record = this.tasks.get(task)
    if (!record) {
      record = { terminal: null, done: null, attempt: null, tries: new Map(), refused: new Set(), recentRuns: [] }
      this.tasks.set(task, record)
    }
    return record
  }

  private tab(tab: string): TabRecord {
    let record = this.tabs.get(tab)
    if (!record) {
      record = { presence: { visible: false, focused: false }, registrations: new Map() }
      this.tabs.set(tab, record)
    }
    return record
  }

  /** Sends the run to the best candidate, unless one is outstanding or nothing is due. */
  private dispatch(task: string, record: TaskRecord): void {
    const terminal = record.terminal
    if (!terminal || record.done || record.attempt) return
    let best: { tab: string; key: [number, number, number]; timeout: number; regIds: number[] } | null = null
    for (const [tab, tabRecord] of this.tabs) {
      let order = Infinity
      let timeout = 0
      const regIds: number[] = []
      for (const [regId, registration] of tabRecord.registrations) {
        if (registration.task !== task || registration.event !== terminal.event) continue
        order = Math.min(order, registration.order)
        timeout = Math.max(timeout, registration.ackTimeout)
        regIds.push(regId)
      }
      if (order === Infinity || record.refused.has(tab)) continue
      const key: [number, number, number] = [record.tries.get(tab) ?? 0, presenceRank(tabRecord.presence), order]
      if (!best || compareKeys(key, best.key) < 0) best = { tab, key, timeout, regIds }
    }
    if (!best) return
    const { tab, timeout, regIds } = best
    const id = this.nextRun++
    record.tries.set(tab, (record.tries.get(tab) ?? 0) + 1)
    const timer = this.config.clock.setTimeout(() => {
      if (record.attempt?.id === id) this.failAttempt(task, record)
    }, timeout)
    record.attempt = { tab, id, timer }
    this.runs.set(id, task)
    record.recentRuns.push(id)
    if (record.recentRuns.length > RECENT_RUNS) this.runs.delete(record.recentRuns.shift() as number)
    const runBy = this.config.clock.now() + Math.floor(timeout / 2)
    try {
      this.config.sendRun(tab, { id, task, regIds, event: terminal.event, value: terminal.value, runBy }, timeout)
    } catch {
      // A tab whose port cannot take a message is gone: forget it, which asks the next tab.
      this.release(tab)
    }
  }

  private failAttempt(task: string, record: TaskRecord): void {
    if (record.attempt) this.config.clock.clearTimeout(record.attempt.timer)
    record.attempt = null
    this.dispatch(task, record)
  }

  private markDone(task: string, record: TaskRecord, event: OnceEvent, ranIn: string | null): void {
    if (record.attempt) this.config.clock.clearTimeout(record.attempt.timer)
    record.attempt = null
    record.done = { event, ranIn }
    record.tries.clear()
    record.refused.clear()
    this.forgetRuns(record)
    for (const [tab, tabRecord] of this.tabs) {
      const regIds = this.take(tabRecord, (registration) => registration.task === task)
      if (regIds.length > 0) this.notifySettled(tab, { task, regIds, event, ranIn })
    }
    // Recently finished tasks go to the end, so the oldest are forgotten first.
    this.tasks.delete(task)
    this.tasks.set(task, record)
    this.prune()
  }

  /** Removes and returns the registrations of a tab that match. */
  private take(tabRecord: TabRecord, matches: (registration: Registration) => boolean): number[] {
    const taken: number[] = []
    for (const [regId, registration] of tabRecord.registrations) {
      if (!matches(registration)) continue
      tabRecord.registrations.delete(regId)
      taken.push(regId)
    }
    return taken
  }

  private notifySettled(tab: string, settled: OnceSettled): void {
    try {
      this.config.sendSettled?.(tab, settled)
    } catch {
      // A notice is a courtesy: a tab that cannot take it is gone, or learns it when it registers again.
    }
  }

  private forgetRuns(record: TaskRecord): void {
    for (const id of record.recentRuns) this.runs.delete(id)
    record.recentRuns.length = 0
  }

  /** Forgets the oldest tasks nobody is waiting on, beyond the bound; busy tasks do not count against it. */
  private prune(): void {
    const max = this.config.maxRememberedTasks ?? DEFAULT_MAX_REMEMBERED_TASKS
    if (this.tasks.size <= max) return
    const busy = new Set<string>()
    for (const tabRecord of this.tabs.values()) for (const registration of tabRecord.registrations.values()) busy.add(registration.task)
    const idle = [...this.tasks].filter(([task, record]) => !record.attempt && !busy.has(task))
    for (const [task, record] of idle.slice(0, Math.max(0, idle.length - max))) {
      this.tasks.delete(task)
      this.forgetRuns(record)
    }
  }
}

function positive(value: number | undefined): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0)
    if (difference !== 0) return difference
  }
  return 0
}
