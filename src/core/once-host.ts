/**
 * The host's side of once-handlers, the same in every host (the SharedWorker, a
 * leader tab, a lone tab): an `OnceCoordinator` wired to the tabs of a `TabHub`.
 * Run requests and "settled" notices travel as host → tab requests on the tab's
 * events port (`TabSession.request`, posted without waiting, with a deadline); the
 * tab's answer is its acknowledgement. The host never awaits a Comlink call into a tab.
 *
 * While a task has a once-registration the host follows it itself (one broker
 * subscription per task), so `client.once` alone is enough, and the terminal event is
 * seen even when no tab shows the task.
 *
 * Tabs are keyed by session, not by tab id: a tab that registers again (after bfcache,
 * a new leader) is a new session, and the old session's late release must not drop
 * the new one's handlers.
 */
import type { Broker } from './broker.js'
import {
  OnceCoordinator,
  type OnceEvent,
  type OnceRegistrationState,
  type OnceSettled,
  type OnceTaskState,
  type TabPresence,
} from './once-coordinator.js'
import type { OnceHostOptions, WireTaskOptions } from './session-protocol.js'
import type { TabSession } from './tab-hub.js'
import { askInTurn, type TokenSource } from './task-channel.js'
import { taskKey } from '../task-key.js'
import type { TaskOptions, TaskSnapshot } from '../types.js'

/** How long (ms) a "settled" notice may wait for the tab's answer; nothing depends on it. */
const SETTLED_NOTICE_TIMEOUT = 5000

interface Watcher {
  unsubscribe: () => void
  /** Whether its broker subscription carries a token source (some registration gave `auth`). */
  withAuth: boolean
}

/** A once-registration whose tab has an `auth` function for the task. */
interface AuthCandidate {
  key: string
  regId: number
}

function candidateId(candidate: AuthCandidate): string {
  return `${candidate.key} ${candidate.regId}`
}

/** The value a once-handler gets: the result of a completed task, the error of a failed one. */
export function terminalOf(snapshot: TaskSnapshot): { event: OnceEvent; value: unknown } | null {
  if (snapshot.status === 'completed') return { event: 'completed', value: snapshot.result ?? {} }
  if (snapshot.status === 'failed') return { event: 'failed', value: snapshot.error ?? 'Task failed' }
  return null
}

export class OnceHost {
  private readonly broker: Broker
  private readonly coordinator: OnceCoordinator
  private readonly sessions = new Map<string, TabSession>()
  private readonly keys = new WeakMap<TabSession, string>()
  private readonly watchers = new Map<string, Watcher>()
  /** Per task, the registrations whose tabs can give a token, in the order they came. */
  private readonly authCandidates = new Map<string, AuthCandidate[]>()
  private serial = 1

  constructor(broker: Broker, maxRememberedTasks?: number) {
    this.broker = broker
    this.coordinator = new OnceCoordinator({
      clock: broker.env.clock,
      sendRun: (key, request, timeout) => {
        const session = this.sessions.get(key)
        if (!session || session.isReleased) throw new Error('tab gone')
        session.request('runOnce', [request], timeout).then(
          (answer) => {
            if (answer === 'ran') this.coordinator.acknowledge(key, request.id)
            else this.coordinator.refuse(key, request.id, answer)
            this.reconcile()
          },
          // No answer in time, or the tab is gone: the coordinator's deadline or the release moves on.
          () => {},
        )
      },
      sendSettled: (key, settled) => {
        const session = this.sessions.get(key)
        if (!session || session.isReleased) return
        const notice: OnceSettled = { ...settled, ranIn: settled.ranIn === null ? null : tabIdOf(settled.ranIn) }
        session.request('onceSettled', [notice], SETTLED_NOTICE_TIMEOUT).catch(() => {})
      },
      ...(maxRememberedTasks === undefined ? {} : { maxRememberedTasks }),
    })
  }

  register(session: TabSession, regId: number, projectId: string, event: OnceEvent, wire: WireTaskOptions, once: OnceHostOptions): OnceRegistrationState {
    const { withAuth, ...options } = wire
    const task = taskKey(projectId, options, this.broker.env.secure)
    const key = this.keyOf(session)
    const state = this.coordinator.register(key, regId, {
      task,
      event,
      ...(once.ackTimeout === undefined ? {} : { ackTimeout: once.ackTimeout }),
      ...(once.done === undefined ? {} : { done: once.done }),
      // A tab of another host (gone now, perhaps): a key that names no session of this one.
      ...(once.done === true && typeof once.ranIn === 'string' ? { doneIn: `elsewhere ${once.ranIn}` } : {}),
    })
    if (state.state === 'pending') {
      if (withAuth === true) {
        // Appended in place: a copy per registration would cost O(n²) for n handlers.
        const candidates = this.authCandidates.get(task)
        if (candidates) candidates.push({ key, regId })
        else this.authCandidates.set(task, [{ key, regId }])
      }
      const watcher = this.watchers.get(task)
      // A task followed only for its once-handlers needs a token like any other: the
      // watcher asks the registering tabs. It is replaced (the new subscription first, so
      // the channel stays open) when the first registration with `auth` comes later.
      if (!watcher || (withAuth === true && !watcher.withAuth)) this.follow(task, projectId, options, withAuth === true)
    }
    this.reconcile()
    return state.state === 'done' && state.ranIn !== null ? { ...state, ranIn: tabIdOf(state.ranIn) } : state
  }

  unregister(session: TabSession, regId: number): void {
    const key = this.keys.get(session)
    if (key === undefined) return
    this.coordinator.unregister(key, regId)
    this.dropAuthCandidates((candidate) => candidate.key === key && candidate.regId === regId)
    this.reconcile()
  }

  setPresence(session: TabSession, presence: TabPresence): void {
    this.coordinator.setPresence(this.keyOf(session), presence)
  }

  /** The tab is gone: its handlers with it; a run it had not acknowledged goes to another tab. */
  release(session: TabSession): void {
    const key = this.keys.get(session)
    if (key === undefined) return
    this.sessions.delete(key)
    this.coordinator.release(key)
    // A tab that reloads again and again while a task runs must not grow the list.
    this.dropAuthCandidates((candidate) => candidate.key === key)
    this.reconcile()
  }

  /** What the host knows of a task's once-effect (tab ids, not session keys). */
  state(projectId: string, options: TaskOptions = {}): OnceTaskState | null {
    const state = this.coordinator.state(taskKey(projectId, options, this.broker.env.secure))
    if (!state) return null
    return {
      ...state,
      done: state.done ? { event: state.done.event, ranIn: state.done.ranIn === null ? null : tabIdOf(state.done.ranIn) } : null,
      running: state.running === null ? null : tabIdOf(state.running),
      tabs: state.tabs.map(tabIdOf),
    }
  }

  /** Keys of the tasks this host follows for once-handlers (one broker subscription each). */
  watchedTasks(): ReadonlySet<string> {
    return new Set(this.watchers.keys())
  }

  close(): void {
    for (const watcher of this.watchers.values()) watcher.unsubscribe()
    this.watchers.clear()
    this.coordinator.close()
  }

  private keyOf(session: TabSession): string {
    let key = this.keys.get(session)
    if (key === undefined) {
      key = `${this.serial++} ${session.tabId}`
      this.keys.set(session, key)
      this.sessions.set(key, session)
    }
    return key
  }

  /** Follows the task for its terminal event, as a subscriber of its own. */
  private follow(task: string, projectId: string, options: TaskOptions, withAuth: boolean): void {
    const previous = this.watchers.get(task)
    const watcher: Watcher = { unsubscribe: () => {}, withAuth }
    this.watchers.set(task, watcher)
    const unsubscribe = this.broker.subscribe(projectId, options, (event) => {
      if (event.type !== 'snapshot') return
      const terminal = terminalOf(event.snapshot)
      if (!terminal) return
      this.coordinator.terminal(task, terminal.event, terminal.value)
      this.reconcile()
    }, undefined, withAuth ? this.tokenSource(task) : undefined)
    previous?.unsubscribe()
    // The first snapshot arrives during `subscribe`; if that already ended the need for
    // this watcher, it was dropped before its real unsubscribe existed.
    if (this.watchers.get(task) === watcher) watcher.unsubscribe = unsubscribe
    else unsubscribe()
  }

  /**
   * Where the watcher of `task` gets tokens: the tabs that registered a once-handler for
   * it with `auth`, asked one after another (each with the channel's deadline) through
   * their sessions, as a subscription's tab is asked. Tabs that left are skipped.
   */
  private tokenSource(task: string): TokenSource {
    return {
      id: `once ${task}`,
      get: async (context, timeout) => {
        const outcome = await askInTurn(
          (tried) => {
            for (const candidate of this.authCandidates.get(task) ?? []) {
              const session = this.sessions.get(candidate.key)
              if (session && !session.isReleased && !tried.has(candidateId(candidate))) return { candidate, session }
            }
            return undefined
          },
          ({ candidate }) => candidateId(candidate),
          ({ candidate, session }) => session.request('token', [candidate.regId, context], timeout),
        )
        if (outcome.ok) return outcome.token
        throw new Error(outcome.problems.length > 0 ? outcome.problems.join('; ') : 'no tab with a once-handler and an auth function follows it')
      },
    }
  }

  private dropAuthCandidates(drop: (candidate: AuthCandidate) => boolean): void {
    for (const [task, candidates] of this.authCandidates) this.authCandidates.set(task, candidates.filter((candidate) => !drop(candidate)))
  }

  /** Stops following tasks nobody has a once-handler for any more. */
  private reconcile(): void {
    const registered = this.coordinator.registeredTasks()
    for (const [task, watcher] of this.watchers) {
      if (registered.has(task)) continue
      this.watchers.delete(task)
      this.authCandidates.delete(task)
      watcher.unsubscribe()
    }
  }
}

function tabIdOf(key: string): string {
  return key.slice(key.indexOf(' ') + 1)
}
