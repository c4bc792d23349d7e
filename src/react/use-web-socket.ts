'use client'
/**
 * `useWebSocket`: the design guide's hook, as a thin binding of a `TabcastClient` to
 * React. The client owns the connection (one per task, shared by every tab); this hook
 * only reads its snapshots and forwards its messages to the callbacks.
 */
import { useCallback, useEffect, useInsertionEffect, useMemo, useRef, useSyncExternalStore } from 'react'
import { reportError } from '../error-text.js'
import { initialSnapshot, resolveOptions } from '../options.js'
import type { OnceEventName } from '../once-types.js'
import type { JsonRecord, ServerMessage } from '../protocol.js'
import { taskKey } from '../task-key.js'
import type { ResolvedTaskOptions, TabcastClient, TaskOptions, TaskSnapshot } from '../types.js'
import { useTabcastClient } from './context.js'

/**
 * Options of `useWebSocket`: the guide's (`projectId`, the four callbacks,
 * `autoReconnect`, `maxReconnectAttempts`, `pollingFallback`, `pollingInterval`,
 * `backendUrl`, with the guide's defaults) plus tabcast's other `TaskOptions`.
 *
 * Changing a callback never reconnects: callbacks are read when they fire, so inline
 * arrow functions are fine. Changing `projectId` or any option value switches the
 * subscription.
 *
 * The callbacks are declared as methods so that a handler written for a narrower
 * type (`(result: AudioResult) => …`) type-checks, as it did with the guide's hook.
 */
export interface UseWebSocketOptions extends TaskOptions {
  /** The id of the task (project) to follow. Required. */
  projectId: string
  /**
   * Receives every server message of the task, in order, including the messages the
   * client synthesizes from status polls in polling mode.
   * @default undefined
   */
  onMessage?(message: ServerMessage): void
  /**
   * Called for every `progress` message: `progress` from 0 to 1 (the latest known
   * value when the message carries none) and the message text (`''` when absent).
   * @default undefined
   */
  onProgress?(progress: number, message: string): void
  /**
   * Called once when the task has failed, with its error text.
   *
   * Fires at most once per hook instance and task, driven by the snapshot's status
   * (`failed`), so a component mounted after the task failed also gets it (once).
   * Connection trouble that the client recovers from is not a task failure; it shows
   * in `connectionError` instead.
   * @default undefined
   */
  onError?(error: string): void
  /**
   * Called once when the task has completed, with the `result` of its `completed`
   * message (`{}` when the server sent none).
   *
   * Fires at most once per hook instance and task, driven by the snapshot's status
   * (`completed`), so a component mounted after the task finished (a late tab, a
   * remount) also gets it, once. React StrictMode's double mount does not repeat it.
   * @default undefined
   */
  onCompleted?(result: JsonRecord): void
  /**
   * Called when the task has completed, with its `result` (`{}` when none), in exactly
   * one tab of this browser however many tabs show the task: for side effects that
   * must not repeat per tab (a desktop notification, a download, an analytics event).
   * The broker picks a visible, focused tab when there is one, and another tab if that
   * one closes before it ran. A tab opened after it ran does not run it again; a tab
   * opened after the task completed, when no tab had one, runs it. `onCompleted` still
   * fires in every tab. See `client.once`.
   * @default undefined
   */
  onCompletedOnce?(result: JsonRecord): void
  /**
   * Called when the task has failed, with its error text, in exactly one tab of this
   * browser. Like `onCompletedOnce`, for the failure.
   * @default undefined
   */
  onErrorOnce?(error: string): void
}

/**
 * What `useWebSocket` returns: the guide's `{ isConnected, isFallback,
 * reconnectAttempts }`, the rest of the task snapshot (`status`, `progress`,
 * `message`, `result`, `error`, `connection`, `connectionError`, …) and `send`.
 * The object is the same between renders until the snapshot changes.
 */
export interface UseWebSocketResult extends TaskSnapshot {
  /** Sends an application message on the task's socket (queued while it is down). */
  send: (message: unknown) => Promise<void>
}

/**
 * Follows a task over the shared tabcast client and re-renders on its progress.
 *
 * Updates arrive coalesced (at most one render per animation frame, done by the
 * client), while `onMessage`/`onProgress` still see every message. Only when one of
 * those two is given does the broker send this tab every message; otherwise it sends
 * snapshots only (`delivery: 'snapshots'`), which costs a tab far less under a burst
 * of progress. A finished task and connection changes always arrive at once. SSR-safe: the
 * server render and hydration use an idle snapshot, and no browser API is touched
 * during render.
 */
export function useWebSocket(options: UseWebSocketOptions): UseWebSocketResult {
  const { projectId, onMessage, onProgress, onError, onCompleted, onCompletedOnce, onErrorOnce, auth, ...given } = options
  const client = useTabcastClient()

  // Keyed on the option *values*, so an options object created inline on every render
  // does not resubscribe. The resolved options hold only the options of DEFAULT_OPTIONS
  // (strings, numbers, booleans), in its order, so their JSON is equal exactly when
  // every value is, and a new option needs no change here.
  const signature = JSON.stringify(resolveOptions(given))
  const taskOptions = useMemo(() => JSON.parse(signature) as ResolvedTaskOptions, [signature])

  // The latest callbacks, read when an event fires. Updated in an insertion effect
  // (before any layout or passive effect, and never during render).
  const callbacks = useRef({ onMessage, onProgress, onError, onCompleted, onCompletedOnce, onErrorOnce })
  useInsertionEffect(() => {
    callbacks.current = { onMessage, onProgress, onError, onCompleted, onCompletedOnce, onErrorOnce }
  })

  // `auth` is a function: never part of the key (an inline one would resubscribe on every
  // render). The latest one is called; only whether there is one switches the subscription.
  const authRef = useRef(auth)
  useInsertionEffect(() => {
    authRef.current = auth
  })
  const hasAuth = typeof auth === 'function'
  const subscribeOptions = useMemo<TaskOptions>(
    () => (hasAuth ? { ...taskOptions, auth: (context) => authRef.current?.(context) ?? null } : taskOptions),
    [taskOptions, hasAuth],
  )

  // Once-handlers are registered with the broker while the component is mounted and has
  // one; the function itself is read when the broker asks this tab to run it. They carry
  // `auth` like the subscription: a task may be followed through them alone.
  useOnceHandler(client, projectId, 'completed', onCompletedOnce !== undefined, subscribeOptions, (result: JsonRecord) => {
    const handler = callbacks.current.onCompletedOnce
    if (handler) invokeCallback(handler, result)
  })
  useOnceHandler(client, projectId, 'failed', onErrorOnce !== undefined, subscribeOptions, (error: string) => {
    const handler = callbacks.current.onErrorOnce
    if (handler) invokeCallback(handler, error)
  })

  // Every message is asked of the broker only when a callback takes messages; a bar
  // that only draws gets coalesced snapshots (see `SubscribeOptions.delivery`).
  const wantsMessages = onMessage !== undefined || onProgress !== undefined
  const subscribe = useCallback(
    (onStoreChange: () => void) =>
      client.subscribe(
        projectId,
        {
          snapshot: () => onStoreChange(),
          ...(wantsMessages
            ? {
                message: (message: ServerMessage) => {
                  const current = callbacks.current
                  if (current.onMessage) invokeCallback(current.onMessage, message)
                  if (message.type === 'progress' && current.onProgress) {
                    const progress = message.progress ?? client.getSnapshot(projectId, taskOptions).progress
                    invokeCallback(current.onProgress, progress, message.message ?? '')
                  }
                },
              }
            : {}),
        },
        { ...subscribeOptions, delivery: wantsMessages ? 'messages' : 'snapshots' },
      ),
    [client, projectId, taskOptions, subscribeOptions, wantsMessages],
  )
  const getSnapshot = useCallback(() => client.getSnapshot(projectId, taskOptions), [client, projectId, taskOptions])
  const serverSnapshot = useMemo(() => initialSnapshot(projectId, taskOptions), [projectId, taskOptions])
  const getServerSnapshot = useCallback(() => serverSnapshot, [serverSnapshot])

  const snapshot = useSyncExternalStore(subscribe, getSnapshot, getServerSnapshot)

  // Terminal callbacks are derived from the status rather than from the `completed` /
  // `error` message, so that a late subscriber (the task finished before this tab
  // looked) is told too. The set of tasks already reported survives StrictMode's
  // unmount/remount of effects (refs are kept), so nothing fires twice.
  const reported = useRef<Set<string> | null>(null)
  const key = taskKey(projectId, taskOptions)
  useEffect(() => {
    if (snapshot.status !== 'completed' && snapshot.status !== 'failed') return
    const done = (reported.current ??= new Set())
    if (done.has(key)) return
    done.add(key)
    const current = callbacks.current
    if (snapshot.status === 'completed') {
      if (current.onCompleted) invokeCallback(current.onCompleted, snapshot.result ?? {})
    } else if (current.onError) {
      invokeCallback(current.onError, snapshot.error ?? 'Task failed')
    }
  }, [snapshot, key])

  const send = useCallback(
    (message: unknown) => client.send(projectId, message, subscribeOptions),
    [client, projectId, subscribeOptions],
  )

  return useMemo(() => ({ ...snapshot, send }), [snapshot, send])
}

/**
 * Registers a once-handler for `event` while `enabled`. `run` is called by the broker's
 * choice of tab; it must read the latest callback itself (from a ref), since only the
 * first `run` of a registration is kept: a new function on every render registers
 * nothing again.
 */
function useOnceHandler<V>(
  client: TabcastClient,
  projectId: string,
  event: OnceEventName,
  enabled: boolean,
  options: TaskOptions,
  run: (value: V) => void,
): void {
  const first = useRef(run)
  useEffect(() => {
    if (!enabled) return undefined
    return client.once(projectId, event, first.current as (value: never) => void, options)
  }, [client, projectId, event, enabled, options])
}

/**
 * Runs a user callback so that its exception is reported (like an uncaught error)
 * without breaking the caller: one throwing `onMessage` must not stop `onProgress`
 * or the client's delivery to other subscribers.
 */
function invokeCallback<A extends unknown[]>(callback: (...args: A) => void, ...args: A): void {
  try {
    callback(...args)
  } catch (error) {
    reportError(error)
  }
}
