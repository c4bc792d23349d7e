'use client'
/**
 * `<ProgressBar />`: the design guide's component. Presentational only: everything it
 * shows comes from `useWebSocket`; it holds no connection logic and no state of its own.
 *
 * Styling is public API (see progress-bar.css, imported separately as
 * `tabcast/progress-bar.css`):
 * - root `.tabcast-progress` with `data-connection` (connecting | live | reconnecting |
 *   polling | closed) and `data-status` (idle | running | completed | failed),
 *   `data-stalled="true"` while the running task has sent no update for `staleAfter`,
 *   plus `.tabcast-progress--reduced-motion` when the user prefers reduced motion;
 * - parts: `__header`, `__title`, `__percent`, `__track` (the `role="progressbar"`
 *   element), `__fill`, `__shimmer` (only rendered while running with motion allowed),
 *   `__message`, `__live` (the polite live region), `__connection`, `__dot`,
 *   `__completed`, `__stalled` (no update for a while), `__notice` (a connection
 *   problem), `__alert` (the `role="alert"` region) and `__error`, all prefixed
 *   `tabcast-progress`.
 */
import { useEffect, useLayoutEffect, useState, useSyncExternalStore, type ReactNode } from 'react'
import type { JsonRecord } from '../protocol.js'
import type { TaskOptions, TaskSnapshot } from '../types.js'
import {
  formatLabel,
  localeFromLanguage,
  progressBarLabels,
  type ProgressBarLabels,
  type ProgressBarLocale,
} from './labels.js'
import { useWebSocket } from './use-web-socket.js'

/**
 * Props of `<ProgressBar />`: the guide's (`projectId`, `onCompleted`, `onError`,
 * `className`, `backendUrl`, `showConnectionStatus`), tabcast's other `TaskOptions`,
 * and `labels` / `locale` for its strings.
 */
export interface ProgressBarProps extends TaskOptions {
  /** The id of the task (project) to follow. Required. */
  projectId: string
  /**
   * Called once when the task has completed, with its `result` (`{}` when none); also
   * when the bar mounts after the task finished. See `useWebSocket`'s `onCompleted`.
   * @default undefined
   */
  onCompleted?(result: JsonRecord): void
  /**
   * Called once when the task has failed, with its error text. See `useWebSocket`'s
   * `onError`.
   * @default undefined
   */
  onError?(error: string): void
  /**
   * Called when the task has completed, in exactly one tab of this browser however
   * many show it (for a notification, a download). See `useWebSocket`'s `onCompletedOnce`.
   * @default undefined
   */
  onCompletedOnce?(result: JsonRecord): void
  /**
   * Called when the task has failed, in exactly one tab of this browser. See
   * `useWebSocket`'s `onErrorOnce`.
   * @default undefined
   */
  onErrorOnce?(error: string): void
  /**
   * Extra class names for the root element (which always has `tabcast-progress`).
   * @default undefined
   */
  className?: string
  /**
   * Show the connection state (live / polling mode / reconnecting n/max / …).
   * @default true
   */
  showConnectionStatus?: boolean
  /**
   * Overrides any of the built-in strings (see `ProgressBarLabels`).
   * @default undefined
   */
  labels?: Partial<ProgressBarLabels>
  /**
   * The language of the built-in strings: `'ko'`/`'ko-KR'`… for Korean, anything else
   * for English. Without it the bar follows the browser's language (`navigator.language`);
   * the server render and hydration use English, and the browser's language applies
   * right after hydration, so server and client markup always agree. Pass `locale`
   * when rendering on the server to get the right language from the first byte.
   * @default the browser's language, English on the server
   */
  locale?: ProgressBarLocale | (string & {})
}

/** Follows a task and shows its progress, connection state, errors and completion. */
export function ProgressBar(props: ProgressBarProps): ReactNode {
  const { className, showConnectionStatus = true, labels: overrides, locale, ...hookOptions } = props
  const task = useWebSocket(hookOptions)
  const browserLocale = useBrowserLocale()
  const reducedMotion = usePrefersReducedMotion()
  const labels = mergeLabels(progressBarLabels[locale === undefined ? browserLocale : localeFromLanguage(locale)], overrides)

  const percent = wholePercent(task)
  const stalledSince = task.status === 'running' ? task.stalledSince : null
  const stalledFor = useSecondsSince(stalledSince)
  // A finished task's last server message is often stale ("generating… 2/5"), so the
  // value text then names the outcome instead.
  const describedBy =
    task.status === 'completed' ? labels.completed : task.status === 'failed' ? labels.failed : task.message
  const valueText = describedBy ? `${percent}% — ${describedBy}` : `${percent}%`
  const rootClass = ['tabcast-progress', reducedMotion ? 'tabcast-progress--reduced-motion' : null, className]
    .filter(Boolean)
    .join(' ')

  // Everything below that came from the network (message, task name, errors) is
  // rendered as a text child, never as markup.
  return (
    <div
      className={rootClass}
      data-connection={task.connection}
      data-status={task.status}
      data-stalled={stalledSince === null ? undefined : 'true'}
    >
      <div className="tabcast-progress__header">
        <span className="tabcast-progress__title">{task.taskName ?? labels.title}</span>
        <span className="tabcast-progress__percent" aria-hidden="true">
          {percent}%
        </span>
      </div>
      <div
        className="tabcast-progress__track"
        role="progressbar"
        aria-label={labels.progressLabel}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        aria-valuetext={valueText}
      >
        <div className="tabcast-progress__fill" style={{ width: `${percent}%` }}>
          {task.status === 'running' && !reducedMotion ? <span className="tabcast-progress__shimmer" /> : null}
        </div>
      </div>
      <p className="tabcast-progress__message">{task.message ?? (task.status === 'idle' ? labels.waiting : null)}</p>
      {/* Present from the start: a live region only announces changes to content it
          already had in the tree. */}
      <div className="tabcast-progress__live" role="status" aria-live="polite">
        {/* A finished task's socket is closed on purpose: "Disconnected" beside
            "Completed" would read as a fault, so the outcome stands alone. */}
        {showConnectionStatus && !(task.connection === 'closed' && (task.status === 'completed' || task.status === 'failed')) ? (
          <span className="tabcast-progress__connection">
            <span className="tabcast-progress__dot" aria-hidden="true" />
            {connectionText(task, labels)}
          </span>
        ) : null}
        {task.status === 'completed' ? <span className="tabcast-progress__completed">{labels.completed}</span> : null}
      </div>
      {stalledSince === null ? null : (
        <p className="tabcast-progress__stalled">{formatLabel(labels.stalled, { seconds: stalledFor })}</p>
      )}
      {task.connectionError !== null && task.status !== 'failed' ? (
        <p className="tabcast-progress__notice">
          {labels.connectionProblem}: {task.connectionError}
        </p>
      ) : null}
      <div className="tabcast-progress__alert" role="alert">
        {task.status === 'failed' ? (
          <p className="tabcast-progress__error">
            <strong>{labels.failed}</strong>
            {task.error ? `: ${task.error}` : null}
          </p>
        ) : null}
      </div>
    </div>
  )
}

/** 0–100, floored so a running task never shows 100 %; a completed one always does. */
function wholePercent(task: TaskSnapshot): number {
  if (task.status === 'completed') return 100
  // The epsilon keeps 0.29 · 100 = 28.999… from showing as 28.
  const value = Math.floor(task.progress * 100 + 1e-6)
  return Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : 0
}

function connectionText(task: TaskSnapshot, labels: ProgressBarLabels): string {
  switch (task.connection) {
    case 'connecting':
      return labels.connecting
    case 'live':
      return labels.live
    case 'reconnecting':
      return formatLabel(labels.reconnecting, { attempt: task.reconnectAttempts, max: task.maxReconnectAttempts })
    case 'polling':
      return labels.polling
    case 'closed':
      return labels.closed
  }
}

// Layout effect in the browser, so a bar that has just stalled never paints a stale count;
// plain effect on the server, where neither runs.
const useBrowserLayoutEffect = typeof window === 'undefined' ? useEffect : useLayoutEffect

/**
 * Whole seconds since `since` (ms since epoch), re-rendered once a second while `since`
 * is set. Nothing ticks while it is null.
 */
function useSecondsSince(since: number | null): number {
  const [now, setNow] = useState(() => (since === null ? 0 : Date.now()))
  useBrowserLayoutEffect(() => {
    if (since === null) return undefined
    setNow(Date.now())
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [since])
  return since === null ? 0 : Math.max(0, Math.floor((now - since) / 1000))
}

/** Applies overrides, ignoring `undefined` values (plain JS callers may pass them). */
function mergeLabels(base: Readonly<ProgressBarLabels>, overrides: Partial<ProgressBarLabels> | undefined): ProgressBarLabels {
  const out: ProgressBarLabels = { ...base }
  if (overrides) {
    for (const key of Object.keys(base) as (keyof ProgressBarLabels)[]) {
      const value = overrides[key]
      if (typeof value === 'string') out[key] = value
    }
  }
  return out
}

// The browser's language, read through useSyncExternalStore: the server snapshot is
// English, so hydration matches the server markup and React then re-renders with the
// browser's language; in a client-only render the right language shows at once.
function subscribeLanguage(onChange: () => void): () => void {
  window.addEventListener('languagechange', onChange)
  return () => window.removeEventListener('languagechange', onChange)
}
function browserLocale(): ProgressBarLocale {
  return localeFromLanguage(typeof navigator === 'undefined' ? undefined : navigator.language)
}
function serverLocale(): ProgressBarLocale {
  return 'en'
}
function useBrowserLocale(): ProgressBarLocale {
  return useSyncExternalStore(subscribeLanguage, browserLocale, serverLocale)
}

// The stylesheet also turns the shimmer off under this media query; checking it here
// as well drops the animated element and exposes a class for custom styles and tests.
const REDUCED_MOTION_QUERY = '(prefers-reduced-motion: reduce)'
function reducedMotionQuery(): MediaQueryList | null {
  return typeof window !== 'undefined' && typeof window.matchMedia === 'function'
    ? window.matchMedia(REDUCED_MOTION_QUERY)
    : null
}
function subscribeReducedMotion(onChange: () => void): () => void {
  const query = reducedMotionQuery()
  query?.addEventListener('change', onChange)
  return () => query?.removeEventListener('change', onChange)
}
function prefersReducedMotion(): boolean {
  return reducedMotionQuery()?.matches ?? false
}
function noReducedMotionOnServer(): boolean {
  return false
}
function usePrefersReducedMotion(): boolean {
  return useSyncExternalStore(subscribeReducedMotion, prefersReducedMotion, noReducedMotionOnServer)
}
