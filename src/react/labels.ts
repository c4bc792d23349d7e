/**
 * The strings `<ProgressBar />` shows, in English and in Korean (the design guide's UI
 * language). Pure data and a tiny formatter: no React, safe anywhere.
 */

/** The languages with a built-in label set. */
export type ProgressBarLocale = 'en' | 'ko'

/**
 * Every string `<ProgressBar />` renders. Pass a partial object as the `labels` prop to
 * override any of them. `{name}` placeholders are filled in as plain text.
 */
export interface ProgressBarLabels {
  /** Heading when the server has not named the task (it sends `task_name`). */
  title: string
  /** Accessible name of the bar (`aria-label` of the `role="progressbar"` element). */
  progressLabel: string
  /** Connection state `connecting`: the first attempt is under way. */
  connecting: string
  /** Connection state `live`: the WebSocket is open. */
  live: string
  /** Connection state `reconnecting`. Placeholders: `{attempt}`, `{max}`. */
  reconnecting: string
  /** Connection state `polling`: reconnects were exhausted, the status endpoint is polled. */
  polling: string
  /** Connection state `closed` of an unfinished task (a finished task shows only its outcome). */
  closed: string
  /** Task status `idle`: nothing is known about the task yet. */
  waiting: string
  /** Shown (and announced) when the task completed. */
  completed: string
  /** Heading of the task's error message. */
  failed: string
  /** Heading of a connection problem, which is not a task failure. */
  connectionProblem: string
  /**
   * Shown while a running task has sent no update for `staleAfter` (it is not failed).
   * Placeholder: `{seconds}` since the last update.
   */
  stalled: string
}

export const englishLabels: Readonly<ProgressBarLabels> = Object.freeze({
  title: 'Progress',
  progressLabel: 'Task progress',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting ({attempt}/{max})',
  polling: 'Polling mode',
  closed: 'Disconnected',
  waiting: 'Waiting for the task…',
  completed: 'Completed',
  failed: 'Task failed',
  connectionProblem: 'Connection problem',
  stalled: 'No update for {seconds} s',
})

export const koreanLabels: Readonly<ProgressBarLabels> = Object.freeze({
  title: '진행률',
  progressLabel: '작업 진행률',
  connecting: '연결 중…',
  live: '실시간 연결',
  reconnecting: '재연결 중 ({attempt}/{max})',
  polling: '폴링 모드',
  closed: '연결 종료',
  waiting: '작업 대기 중…',
  completed: '작업 완료',
  failed: '작업 실패',
  connectionProblem: '연결 문제',
  stalled: '{seconds}초째 업데이트 없음',
})

/** The built-in label sets by locale. */
export const progressBarLabels: Readonly<Record<ProgressBarLocale, Readonly<ProgressBarLabels>>> = Object.freeze({
  en: englishLabels,
  ko: koreanLabels,
})

/** `ko…` (ko, ko-KR, …) means Korean; everything else, and no language at all, English. */
export function localeFromLanguage(language: string | null | undefined): ProgressBarLocale {
  return typeof language === 'string' && /^ko(?:-|_|$)/i.test(language) ? 'ko' : 'en'
}

/**
 * Fills `{name}` placeholders. The result is only ever rendered as a text node, so
 * values from the network cannot become markup.
 */
export function formatLabel(template: string, values: Readonly<Record<string, string | number>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = values[name]
    return value === undefined ? whole : String(value)
  })
}
