/**
 * The tab's side of once-handlers: the handlers this tab registered, how it answers
 * the host's run requests and "settled" notices, and which tasks' effects it knows to
 * be done (so that a new host, after a worker restart or a new leader, is told and does
 * not run them again).
 *
 * A run request names this tab's registrations (`regIds`). The tab runs them only if it
 * reads the request before its `runBy`: a tab frozen past that point may already have
 * been replaced by another, and running late would run the effect twice. A promise a
 * handler returns is not awaited: the answer goes back as soon as the handlers
 * returned, well within the host's deadline.
 */
import type { OnceEvent, OnceRunRequest, OnceSettled } from '../core/once-coordinator.js'
import type { OnceRunAnswer } from '../core/session-protocol.js'
import type { OnceOptions, OnceOutcome } from '../once-types.js'
import { taskKey } from '../task-key.js'
import type { TaskOptions } from '../types.js'

export interface LocalOnce {
  id: number
  projectId: string
  event: OnceEvent
  /** The task options only (what the host may see), without the handler's options. */
  options: TaskOptions
  ackTimeout: number | undefined
  handler: (value: never) => void
  onSettled: ((outcome: OnceOutcome) => void) | undefined
  key: string
}

/** A task whose effect this tab knows to be done, with what is needed to tell a new host. */
export interface KnownDone {
  projectId: string
  options: TaskOptions
  event: OnceEvent
  /** Where it ran, for a handler registered later (`onSettled`). */
  outcome: OnceOutcome
}

/** Tasks whose done state a tab remembers to tell a new host; the oldest are forgotten first. */
export const MAX_KNOWN_DONE = 50

/** Splits `OnceOptions` into the task's options and the once-handler's own. */
export function splitOnceOptions(options: OnceOptions): { task: TaskOptions; ackTimeout: number | undefined; onSettled: OnceOptions['onSettled'] } {
  const { ackTimeout, onSettled, ...task } = options
  return { task, ackTimeout, onSettled }
}

export class OnceHandlers {
  private readonly registrations = new Map<number, LocalOnce>()
  private readonly done = new Map<string, KnownDone>()
  private readonly tabId: string
  private readonly now: () => number
  private readonly report: (error: unknown) => void

  constructor(tabId: string, now: () => number, report: (error: unknown) => void) {
    this.tabId = tabId
    this.now = now
    this.report = report
  }

  add(registration: LocalOnce): void {
    this.registrations.set(registration.id, registration)
  }

  remove(id: number): boolean {
    return this.registrations.delete(id)
  }

  get(id: number): LocalOnce | undefined {
    return this.registrations.get(id)
  }

  get size(): number {
    return this.registrations.size
  }

  all(): LocalOnce[] {
    return [...this.registrations.values()]
  }

  /** Tasks known done, to tell a new host. */
  knownDone(): Array<[string, KnownDone]> {
    return [...this.done]
  }

  /** How the task's effect was settled, when this tab knows it is done. */
  doneOutcome(key: string): OnceOutcome | null {
    return this.done.get(key)?.outcome ?? null
  }

  /** The host's run request: run the named handlers now, or say why not. */
  run(request: OnceRunRequest): OnceRunAnswer {
    if (this.now() > request.runBy) return 'late'
    let handlers = request.regIds.map((id) => this.registrations.get(id)).filter((entry): entry is LocalOnce => entry?.event === request.event)
    // The named handlers were replaced meanwhile (a component remounted, StrictMode):
    // this tab's current handlers of the same task and event stand in for them.
    if (handlers.length === 0) handlers = this.all().filter((entry) => entry.key === request.task && entry.event === request.event)
    if (handlers.length === 0) return 'no-handler'
    const outcome: OnceOutcome = { event: request.event, ranHere: true, ranIn: this.tabId }
    for (const handler of handlers) this.remember(handler, outcome)
    for (const handler of handlers) {
      this.registrations.delete(handler.id)
      this.invoke(() => (handler.handler as (value: unknown) => void)(request.value))
    }
    for (const handler of handlers) if (handler.onSettled) this.invoke(() => handler.onSettled?.(outcome))
    return 'ran'
  }

  /** The host's notice that the effect was done (or will never run): drop the named handlers. */
  settled(notice: OnceSettled): true {
    const outcome: OnceOutcome = { event: notice.event, ranHere: notice.ranIn === this.tabId, ranIn: notice.ranIn }
    for (const id of notice.regIds) {
      const handler = this.registrations.get(id)
      if (!handler) continue
      this.registrations.delete(id)
      // Only an effect that was done is worth telling a new host; the other event's handlers just go.
      if (handler.event === notice.event) this.remember(handler, outcome)
      if (handler.onSettled) this.invoke(() => handler.onSettled?.(outcome))
    }
    return true
  }

  /** The host answered a registration with `done`: the handler will never run here; `onSettled` says where it ran. */
  registeredDone(id: number, done: { event: OnceEvent; ranIn: string | null }): void {
    const handler = this.registrations.get(id)
    if (!handler) return
    this.registrations.delete(id)
    const outcome: OnceOutcome = { event: done.event, ranHere: done.ranIn === this.tabId, ranIn: done.ranIn }
    if (handler.event === done.event) this.remember(handler, outcome)
    if (handler.onSettled) this.invoke(() => handler.onSettled?.(outcome))
  }

  private remember(handler: LocalOnce, outcome: OnceOutcome): void {
    this.done.delete(handler.key)
    this.done.set(handler.key, { projectId: handler.projectId, options: handler.options, event: handler.event, outcome })
    if (this.done.size > MAX_KNOWN_DONE) this.done.delete(this.done.keys().next().value as string)
  }

  private invoke(call: () => void): void {
    try {
      call()
    } catch (error) {
      // One handler's bug stays in it: the others still run, and the run still counts.
      this.report(error)
    }
  }
}

export function onceKey(projectId: string, options: TaskOptions): string {
  return taskKey(projectId, options)
}
