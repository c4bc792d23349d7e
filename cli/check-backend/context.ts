/**
 * What every check of `tabcast check-backend` shares: the options, the backend's URLs,
 * the rows found so far, what the main stream showed (the task's `connected` and
 * messages, epochs, whether pings were answered), and small helpers to open sockets and
 * describe what happened.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { Backend } from '../../src/endpoints.js'
import { isConnectionScopedError, isTaskMessage, type ServerMessage, type TaskMessage } from '../../src/protocol.js'
import { StreamProbe, type Closed, type Frame, type OpenOutcome } from './probe.js'
import type { CheckResult, Verdict } from './report.js'

/**
 * The largest client message tabcast's `send()` lets through (64 KiB of UTF-8): a
 * backend must take messages up to this size. The same figure as the protocol's
 * client-message limit (PROTOCOL.md, "Limits").
 */
export const CLIENT_MESSAGE_LIMIT = 64 * 1024

/** `epoch` values: 1–64 of `A–Z a–z 0–9 . _ -` (PROTOCOL.md). */
export const EPOCH_PATTERN = /^[A-Za-z0-9._-]{1,64}$/
/** An origin no real page has, for the refusal check (`.invalid` is reserved, RFC 2606). */
export const FOREIGN_ORIGIN = 'https://tabcast-check.invalid'
export const KNOWN_CAPABILITIES = ['pong', 'seq', 'since', 'epoch', 'auth']

export interface CheckBackendOptions {
  /** The backend as a page's `backendUrl` names it: `http(s)://host[:port][/prefix]` or `host:port`. */
  url: string
  /** An existing task to follow. */
  task?: string | undefined
  /** A URL to POST `{}` to; its JSON answer names the task (`project_id` or `task_id`, and `token`). */
  startUrl?: string | undefined
  /** A shell command that starts a task and prints its id (or that JSON) as its last line. */
  startCommand?: string | undefined
  /** The origin of the pages that use the backend, for the CORS check. */
  origin?: string | undefined
  /** A token for the task (PROTOCOL.md, "Auth"). */
  token?: string | undefined
  /** A shell command that restarts the backend; enables the restart check. */
  restartCommand?: string | undefined
  /**
   * How long to follow the task to its end, and to wait for the backend after a restart (ms).
   * @default 30000
   */
  timeout?: number | undefined
  /**
   * How long to wait for any single answer (a `connected`, a pong, an HTTP response) (ms).
   * @default 3000
   */
  answerTimeout?: number | undefined
  /** Progress lines (which step runs now), for a terminal. */
  log?: ((line: string) => void) | undefined
}

/** A mistake in the options (exit code 2), not a finding about the backend. */
export class UsageError extends Error {}

export function describeClose(closed: Closed): string {
  return `close code ${closed.code}${closed.reason ? ` ("${closed.reason}")` : ''}`
}

export function describeRefusal(outcome: Exclude<OpenOutcome, { ok: true }>, timeoutMs: number): string {
  if (outcome.kind === 'http') return `the upgrade was answered with HTTP ${outcome.status}, not 101`
  if (outcome.kind === 'timeout') return `no answer to the upgrade within ${timeoutMs} ms`
  return `the connection failed: ${outcome.message}`
}

export function messageOf(frame: Frame): ServerMessage | null {
  return frame.parsed.ok ? frame.parsed.value : null
}

export function isPong(frame: Frame): boolean {
  return messageOf(frame)?.type === 'pong'
}

export function taskMessages(frames: readonly Frame[]): TaskMessage[] {
  const out: TaskMessage[] = []
  for (const frame of frames) {
    const message = messageOf(frame)
    if (message && isTaskMessage(message) && !isConnectionScopedError(message)) out.push(message)
  }
  return out
}

export function isTerminal(message: ServerMessage): boolean {
  return message.type === 'completed' || (message.type === 'error' && !isConnectionScopedError(message))
}

export function raw(frame: Frame | null | undefined): Record<string, unknown> | null {
  return !frame || frame.binary ? null : jsonObject(frame.text)
}

/** The JSON object in `text`, or null: for fields the typed parsers leave out (`epoch`, `capabilities`). */
export function jsonObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null
  } catch {
    return null
  }
}

export function randomId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`
}

export function runShell(command: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(command, { shell: true, stdio: ['ignore', 'pipe', 'pipe'], detached: process.platform !== 'win32' })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      timedOut = true
      try {
        // The command's own process group: the shell and whatever it started, nothing else.
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      } catch {
        child.kill('SIGKILL')
      }
    }, timeoutMs)
    child.on('error', (error) => {
      stderr += error.message
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, timedOut })
    })
  })
}

export class CheckContext {
  readonly results: CheckResult[] = []
  readonly timeout: number
  readonly answerTimeout: number
  readonly log: (line: string) => void
  taskId: string | null = null
  token: string | undefined
  /** Set once the stream works; most checks need it. */
  streamWorks = false
  /** The main stream's `connected`, as received (with fields the typed parser leaves out). */
  connected: Record<string, unknown> | null = null
  /** Every frame of the main stream. */
  watched: Frame[] = []
  /** Every epoch seen for the task (stream, replay, status): one task's epoch must not change without a restart. */
  epochs: string[] = []
  pongAnswered = false

  constructor(
    readonly options: CheckBackendOptions,
    readonly backend: Backend,
  ) {
    this.timeout = options.timeout ?? 30_000
    this.answerTimeout = options.answerTimeout ?? 3000
    this.log = options.log ?? (() => {})
  }

  add(feature: string, verdict: Verdict, words: string): void {
    this.results.push({ feature, verdict, words })
  }

  /** Opens a stream socket with the page origin and the token, unless told otherwise. */
  open(url: string, options: { origin?: string | undefined; noToken?: boolean } = {}): Promise<OpenOutcome> {
    const origin = 'origin' in options ? options.origin : this.options.origin
    const token = options.noToken ? undefined : this.token
    return StreamProbe.open(url, {
      origin,
      protocols: token === undefined ? [] : ['tabcast', `tabcast.bearer.${token}`],
      timeoutMs: this.answerTimeout,
    })
  }

  statusHeaders(origin: string | undefined = this.options.origin, withToken = true): Record<string, string> {
    const headers: Record<string, string> = {}
    if (origin !== undefined) headers['Origin'] = origin
    if (withToken && this.token !== undefined) headers['Authorization'] = `Bearer ${this.token}`
    return headers
  }

  /** The capabilities the main stream's `connected` announced, or null for none. */
  capabilities(): string[] | null {
    const value = this.connected?.['capabilities']
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : null
  }
}
