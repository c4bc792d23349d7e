/**
 * `tabcast check-backend <url>`: checks a running backend from the outside against
 * PROTOCOL.md and says, feature by feature, what tabcast will do with it.
 *
 * It never floods: it opens about ten sockets one after the other (never two at once
 * but for the restart check), sends a handful of frames on each, and every wait is
 * bounded by `answerTimeout` (the task's run by `timeout`), so it stops by itself.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { resolveBackend, statusUrl, streamUrl, type Backend } from '../../src/endpoints.js'
import {
  isConnectionScopedError,
  isFatalCloseCode,
  isTaskMessage,
  parseStatusResponse,
  SERVER_MESSAGE_TYPES,
  validateTaskId,
  type ServerMessage,
  type TaskMessage,
} from '../../src/protocol.js'
import { httpRequest, StreamProbe, type Closed, type Frame, type HttpAnswer, type OpenOutcome } from './probe.js'
import { buildReport, type CheckReport, type CheckResult, type Verdict } from './report.js'

export { formatTable, type CheckReport, type CheckResult, type Verdict } from './report.js'

/**
 * The largest client message tabcast's `send()` lets through (64 KiB of UTF-8): a
 * backend must take messages up to this size. The same figure as the protocol's
 * client-message limit (PROTOCOL.md, "Limits").
 */
export const CLIENT_MESSAGE_LIMIT = 64 * 1024

/** `epoch` values: 1–64 of `A–Z a–z 0–9 . _ -` (PROTOCOL.md). */
const EPOCH_PATTERN = /^[A-Za-z0-9._-]{1,64}$/
/** An origin no real page has, for the refusal check (`.invalid` is reserved, RFC 2606). */
const FOREIGN_ORIGIN = 'https://tabcast-check.invalid'
const KNOWN_CAPABILITIES = ['pong', 'seq', 'since', 'epoch', 'auth']

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

interface TaskSource {
  taskId: string | null
  token: string | undefined
}

function describeClose(closed: Closed): string {
  return `close code ${closed.code}${closed.reason ? ` ("${closed.reason}")` : ''}`
}

function describeRefusal(outcome: Exclude<OpenOutcome, { ok: true }>, timeoutMs: number): string {
  if (outcome.kind === 'http') return `the upgrade was answered with HTTP ${outcome.status}, not 101`
  if (outcome.kind === 'timeout') return `no answer to the upgrade within ${timeoutMs} ms`
  return `the connection failed: ${outcome.message}`
}

function messageOf(frame: Frame): ServerMessage | null {
  return frame.parsed.ok ? frame.parsed.value : null
}

function isPong(frame: Frame): boolean {
  return messageOf(frame)?.type === 'pong'
}

function taskMessages(frames: readonly Frame[]): TaskMessage[] {
  const out: TaskMessage[] = []
  for (const frame of frames) {
    const message = messageOf(frame)
    if (message && isTaskMessage(message) && !isConnectionScopedError(message)) out.push(message)
  }
  return out
}

function isTerminal(message: ServerMessage): boolean {
  return message.type === 'completed' || (message.type === 'error' && !isConnectionScopedError(message))
}

function raw(frame: Frame | null | undefined): Record<string, unknown> | null {
  return !frame || frame.binary ? null : jsonObject(frame.text)
}

/** The JSON object in `text`, or null: for fields the typed parsers leave out (`epoch`, `capabilities`). */
function jsonObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null
  } catch {
    return null
  }
}

function randomId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`
}

function runShell(command: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
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

class BackendChecker {
  readonly results: CheckResult[] = []
  private readonly timeout: number
  private readonly answerTimeout: number
  private readonly log: (line: string) => void
  private taskId: string | null = null
  private token: string | undefined
  /** Set once the stream works; most checks need it. */
  private streamWorks = false
  private connected: Record<string, unknown> | null = null
  private watched: Frame[] = []
  /** Every epoch seen for the task (stream, replay, status): one task's epoch must not change without a restart. */
  private epochs: string[] = []
  private pongAnswered = false

  constructor(
    private readonly options: CheckBackendOptions,
    private readonly backend: Backend,
  ) {
    this.timeout = options.timeout ?? 30_000
    this.answerTimeout = options.answerTimeout ?? 3000
    this.log = options.log ?? (() => {})
  }

  private add(feature: string, verdict: Verdict, words: string): void {
    this.results.push({ feature, verdict, words })
  }

  private protocols(token: string | undefined = this.token): string[] {
    return token === undefined ? [] : ['tabcast', `tabcast.bearer.${token}`]
  }

  private open(url: string, options: { origin?: string | undefined; token?: string | undefined; noToken?: boolean } = {}): Promise<OpenOutcome> {
    const origin = 'origin' in options ? options.origin : this.options.origin
    return StreamProbe.open(url, {
      origin,
      protocols: options.noToken ? [] : this.protocols(options.token),
      timeoutMs: this.answerTimeout,
    })
  }

  private statusHeaders(origin: string | undefined = this.options.origin, withToken = true): Record<string, string> {
    const headers: Record<string, string> = {}
    if (origin !== undefined) headers['Origin'] = origin
    if (withToken && this.token !== undefined) headers['Authorization'] = `Bearer ${this.token}`
    return headers
  }

  async run(): Promise<{ taskId: string | null }> {
    const source = await this.startTask()
    this.taskId = source.taskId
    this.token = source.token
    await this.checkStream()
    if (this.streamWorks) {
      await this.checkSinceReplay()
      await this.checkBadSince()
      await this.checkClientMessages()
    }
    await this.checkStatus()
    if (this.streamWorks) {
      await this.checkForeignOrigin()
      await this.checkBadTaskId()
      await this.checkUnknownTask()
      await this.checkAuth()
    } else {
      // A stream that refuses everyone says nothing by refusing a foreign origin or a bad id.
      for (const feature of ['foreign origin', 'bad task id', 'unknown task', 'auth']) this.add(feature, 'SKIP', 'the stream does not work')
    }
    this.checkEpochAndCapabilities()
    await this.checkRestart()
    return { taskId: this.taskId }
  }

  // --- the task ---------------------------------------------------------------------

  private async startTask(): Promise<TaskSource> {
    const { task, startUrl, startCommand, token } = this.options
    if (task !== undefined) {
      const problem = validateTaskId(task)
      if (problem !== null) throw new UsageError(`--task: ${problem}`)
      this.add('task', 'PASS', `following the existing task ${task}`)
      return { taskId: task, token }
    }
    if (startUrl !== undefined) {
      this.log(`starting a task: POST ${startUrl}`)
      const outcome = await httpRequest(startUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }) },
        body: '{}',
        timeoutMs: this.answerTimeout,
      })
      if (!outcome.ok) {
        this.add('task', 'FAIL', `POST ${startUrl}: ${outcome.problem}; the task-dependent checks are skipped`)
        return { taskId: null, token }
      }
      return this.taskFromAnswer(`POST ${startUrl} answered ${outcome.answer.status}`, outcome.answer.status < 300, outcome.answer.body, token)
    }
    if (startCommand !== undefined) {
      this.log(`starting a task: ${startCommand}`)
      const ran = await runShell(startCommand, this.answerTimeout * 3)
      const lines = ran.stdout.trim().split('\n')
      const last = (lines[lines.length - 1] ?? '').trim()
      const what = ran.timedOut ? `--start-command did not end within ${this.answerTimeout * 3} ms` : `--start-command exited with ${ran.code}`
      return this.taskFromAnswer(what, ran.code === 0 && !ran.timedOut, last, token)
    }
    this.add('task', 'SKIP', 'no task given (--task, --start-url or --start-command): message shapes, seq, since and the task end are not checked')
    return { taskId: null, token }
  }

  private taskFromAnswer(what: string, succeeded: boolean, text: string, token: string | undefined): TaskSource {
    let id: unknown = text
    let answeredToken: unknown
    try {
      const parsed: unknown = JSON.parse(text)
      if (typeof parsed === 'object' && parsed !== null) {
        const record = parsed as Record<string, unknown>
        id = record['project_id'] ?? record['task_id']
        answeredToken = record['token']
      }
    } catch {
      // A bare id, not JSON.
    }
    const problem = validateTaskId(id)
    if (!succeeded || problem !== null || typeof id !== 'string') {
      this.add('task', 'FAIL', `${what}, without a usable task id (${problem ?? 'no id'}): ${text.slice(0, 120)}; the task-dependent checks are skipped`)
      return { taskId: null, token }
    }
    this.add('task', 'PASS', `${what}: task ${id}${typeof answeredToken === 'string' ? ', with a token' : ''}`)
    return { taskId: id, token: typeof answeredToken === 'string' ? answeredToken : token }
  }

  // --- the stream, the task's messages, pings ---------------------------------------

  private async checkStream(): Promise<void> {
    const taskId = this.taskId ?? randomId('tabcast-check')
    const url = streamUrl(this.backend, taskId)
    this.log(`stream: ${url}`)
    const outcome = await this.open(url)
    if (!outcome.ok) {
      const origin = this.options.origin
      const hint =
        outcome.kind === 'http' && outcome.status === 403 && origin !== undefined
          ? `; the backend refused the page origin ${origin}, so tabs on it cannot connect (they will poll the status, if they can)`
          : outcome.kind === 'http' && outcome.status === 404
            ? '; is the stream at /api/v1/ws/projects/{task_id}/stream under this URL?'
            : ''
      this.add('stream', 'FAIL', `${url}: ${describeRefusal(outcome, this.answerTimeout)}${hint}. tabcast retries with backoff, then polls the status endpoint`)
      return
    }
    const probe = outcome.probe
    try {
      const first = await probe.waitFor(() => true, this.answerTimeout)
      if (first === null) {
        if (probe.closed?.code === 4401 || probe.closed?.code === 4403) {
          // A backend that wants a token is right to close; the check just cannot go on without one.
          this.add('stream', 'WARN', `not checked: the backend wants a token (${describeClose(probe.closed)}); give --token, or a --start-url that returns one`)
          return
        }
        const why = probe.closed ? describeClose(probe.closed) : `nothing within ${this.answerTimeout} ms`
        this.add('stream', 'FAIL', `the socket opened but no connected message came: ${why}`)
        return
      }
      if (!first.parsed.ok || first.parsed.value.type !== 'connected') {
        const got = first.parsed.ok ? `a ${first.parsed.value.type} message` : first.parsed.error.message
        this.add('stream', 'FAIL', `the first message must be connected, got ${got}; tabcast shows a connection error`)
        this.watched = probe.frames
        this.checkShapes()
        return
      }
      this.connected = raw(first)
      const projectId = first.parsed.value.project_id
      const idNote = projectId === undefined || projectId === taskId ? '' : ` (its project_id is ${JSON.stringify(projectId)}, not ${taskId})`
      this.streamWorks = true
      this.add('stream', 'PASS', `${url} answers with connected first${idNote}`)
      if (typeof this.connected?.['epoch'] === 'string') this.epochs.push(this.connected['epoch'])
      await this.checkPings(probe)
      await this.watchTask(probe)
    } finally {
      this.watched = probe.frames
      await probe.close()
    }
    this.checkShapes()
    this.checkSeq()
  }

  private async checkPings(probe: StreamProbe): Promise<void> {
    const announces = this.capabilities()?.includes('pong') ?? false
    for (const [feature, frame] of [
      ['text ping', 'ping'],
      ['JSON ping', '{"type":"ping"}'],
    ] as const) {
      const from = probe.frames.length
      probe.send(frame)
      const pong = await probe.waitFor(isPong, this.answerTimeout, from)
      if (pong) {
        this.pongAnswered = true
        this.add(feature, 'PASS', `${frame} → pong: tabcast notices a dead socket within pongTimeout (10 s) instead of waiting for TCP`)
      } else if (probe.closed) {
        this.add(feature, 'FAIL', `the backend closed the socket after ${frame} (${describeClose(probe.closed)}); tabcast sends one every 30 s, so every connection would drop`)
        if (feature === 'text ping') this.add('JSON ping', 'SKIP', 'the text ping closed the socket')
        return
      } else if (announces) {
        this.add(feature, 'FAIL', `no pong within ${this.answerTimeout} ms although capabilities lists "pong": tabcast would reconnect after every ping`)
      } else {
        this.add(feature, 'WARN', `no pong within ${this.answerTimeout} ms: allowed, but tabcast cannot notice a half-open socket until TCP gives up`)
      }
    }
  }

  private async watchTask(probe: StreamProbe): Promise<void> {
    const status = this.connected?.['status']
    const lastSeq = this.connected?.['last_seq']
    if (this.taskId === null) {
      this.add('current state on connect', 'SKIP', 'no task to follow')
      this.add('task end', 'SKIP', 'no task to follow')
      return
    }
    const firstTask = await probe.waitFor((frame) => {
      const message = messageOf(frame)
      return message !== null && isTaskMessage(message) && !isConnectionScopedError(message)
    }, this.answerTimeout)
    if (firstTask) {
      this.add('current state on connect', 'PASS', 'a task message came right after connected: a tab that opens mid-task shows the progress at once')
    } else if ((typeof lastSeq === 'number' && lastSeq > 0) || status === 'completed' || status === 'failed') {
      this.add('current state on connect', 'WARN', `the backend knows the task but sent no task message within ${this.answerTimeout} ms of connected: a tab that opens mid-task shows nothing until the next step`)
    } else {
      this.add('current state on connect', 'SKIP', `the task had no message yet within ${this.answerTimeout} ms`)
    }
    this.log(`following task ${this.taskId} to its end (at most ${this.timeout} ms)`)
    const end = await probe.waitFor((frame) => {
      const message = messageOf(frame)
      return message !== null && isTerminal(message)
    }, this.timeout)
    const endMessage = end ? messageOf(end) : null
    if (endMessage?.type === 'completed') {
      this.add('task end', 'PASS', 'completed: every tab shows the result')
    } else if (endMessage?.type === 'error') {
      this.add('task end', 'PASS', `failed ("${endMessage.error ?? ''}"): every tab shows the error`)
    } else if (probe.closed) {
      this.add('task end', 'WARN', `the backend closed the socket (${describeClose(probe.closed)}) before the task ended; tabcast ${isFatalCloseCode(probe.closed.code) ? 'stops (a fatal code)' : 'reconnects'}`)
    } else {
      this.add('task end', 'WARN', `the task did not end within ${this.timeout} ms (--timeout); its end was not checked`)
    }
  }

  private checkShapes(): void {
    // A type tabcast does not know is no error (PROTOCOL.md): whether the parser rejects it
    // (`unknown_type`) or passes it on as an unknown message, it is a WARN, not a FAIL.
    const broken = this.watched.filter((frame) => !frame.parsed.ok && (frame.parsed.error.code as string) !== 'unknown_type')
    const unknown = this.watched.filter((frame) => {
      const type = raw(frame)?.['type']
      return !broken.includes(frame) && typeof type === 'string' && !(SERVER_MESSAGE_TYPES as readonly string[]).includes(type)
    })
    if (broken.length > 0) {
      const named = broken.slice(0, 3).map((frame) => (frame.parsed.ok ? '' : frame.parsed.error.message))
      this.add('message shapes', 'FAIL', `${broken.length} of ${this.watched.length} messages are invalid: ${named.join('; ')}. tabcast ignores each and shows a connection error`)
    } else if (unknown.length > 0) {
      this.add('message shapes', 'WARN', `${unknown.length} messages of a type tabcast does not know (${unknown[0]?.text.slice(0, 60) ?? ''}): passed to message listeners, the task state ignores them`)
    } else {
      this.add('message shapes', 'PASS', `${this.watched.length} messages, every one valid (types, fields, progress within 0–1)`)
    }
  }

  private checkSeq(): void {
    const messages = taskMessages(this.watched)
    if (messages.length === 0) {
      this.add('seq', 'SKIP', 'no task message seen')
      this.add('last_seq', this.connected?.['last_seq'] === undefined ? 'WARN' : 'PASS', this.connected?.['last_seq'] === undefined ? 'connected has no last_seq: tabcast cannot tell that the backend lost its numbering' : `connected says last_seq ${String(this.connected['last_seq'])}`)
      return
    }
    const seqs = messages.map((message) => message.seq)
    const announces = this.capabilities()?.includes('seq') ?? false
    if (seqs.every((seq) => seq === undefined)) {
      this.add('seq', announces ? 'FAIL' : 'WARN', `${announces ? 'capabilities lists "seq" but ' : ''}no task message carries seq: tabcast cannot drop duplicates or resume with since; after a reconnect it reads the status once, and steps sent while disconnected are not replayed`)
    } else if (seqs.some((seq) => seq === undefined)) {
      this.add('seq', 'FAIL', 'some task messages carry seq and some do not: tabcast cannot order them')
    } else {
      const numbers = seqs as number[]
      const backwards = numbers.findIndex((seq, index) => index > 0 && seq <= numbers[index - 1]!)
      const gap = numbers.findIndex((seq, index) => index > 0 && seq > numbers[index - 1]! + 1)
      if (backwards > 0) {
        this.add('seq', 'FAIL', `seq ${numbers[backwards]} came after ${numbers[backwards - 1]}: tabcast drops it as a duplicate`)
      } else if (gap > 0) {
        this.add('seq', 'WARN', `seq jumped from ${numbers[gap - 1]} to ${numbers[gap]} on one socket: a message was lost`)
      } else {
        this.add('seq', 'PASS', `task messages numbered ${numbers[0]}…${numbers[numbers.length - 1]}: tabcast drops duplicates and resumes after a reconnect`)
      }
    }
    const lastSeq = this.connected?.['last_seq']
    const first = seqs[0]
    if (lastSeq === undefined || lastSeq === null) {
      this.add('last_seq', 'WARN', 'connected has no last_seq: tabcast cannot tell that the backend lost its numbering (after a restart it may drop new messages as duplicates until their seq passes the old one)')
    } else if (typeof lastSeq === 'number' && first !== undefined && first < lastSeq) {
      this.add('last_seq', 'FAIL', `connected says last_seq ${lastSeq}, but the first task message has seq ${first}`)
    } else {
      this.add('last_seq', 'PASS', `connected says last_seq ${String(lastSeq)}`)
    }
  }

  // --- since ------------------------------------------------------------------------

  private async checkSinceReplay(): Promise<void> {
    const seqs = taskMessages(this.watched)
      .map((message) => message.seq)
      .filter((seq): seq is number => seq !== undefined)
    if (this.taskId === null || seqs.length === 0) {
      this.add('since replay', 'SKIP', seqs.length === 0 && this.taskId !== null ? 'no task message with seq seen' : 'no task to follow')
      return
    }
    const newest = seqs[seqs.length - 1]!
    const since = Math.max(0, newest - 2)
    const url = `${streamUrl(this.backend, this.taskId)}?since=${since}`
    this.log(`since replay: ${url}`)
    const outcome = await this.open(url)
    if (!outcome.ok) {
      this.add('since replay', 'FAIL', `${url}: ${describeRefusal(outcome, this.answerTimeout)}; tabcast adds ?since= to every reconnect, so reconnects would fail`)
      return
    }
    const probe = outcome.probe
    try {
      await probe.waitFor((frame) => taskMessages([frame]).some((message) => message.seq === newest), this.answerTimeout)
      const got = taskMessages(probe.frames)
        .map((message) => message.seq)
        .filter((seq): seq is number => seq !== undefined)
      const expected = Array.from({ length: newest - since }, (_, index) => since + 1 + index)
      const epoch = raw(probe.frames[0])?.['epoch']
      if (typeof epoch === 'string') this.epochs.push(epoch)
      const announces = this.capabilities()?.includes('since') ?? false
      if (got.some((seq) => seq <= since)) {
        this.add('since replay', 'FAIL', `asked for since=${since}, got seq ${got.join(', ')}: messages the client already has come again`)
      } else if (expected.every((seq, index) => got[index] === seq)) {
        this.add('since replay', 'PASS', `since=${since} replayed seq ${expected.join(', ')}: a reconnecting tab loses nothing`)
      } else {
        this.add('since replay', announces ? 'FAIL' : 'WARN', `${announces ? 'capabilities lists "since" but ' : ''}since=${since} gave seq [${got.join(', ')}], not [${expected.join(', ')}]: after a reconnect tabcast reads the status once; intermediate steps sent while disconnected are not replayed`)
      }
    } finally {
      await probe.close()
    }
  }

  private async checkBadSince(): Promise<void> {
    const taskId = this.taskId ?? randomId('tabcast-check')
    const url = `${streamUrl(this.backend, taskId)}?since=abc`
    const outcome = await this.open(url)
    if (!outcome.ok) {
      this.add('bad since', 'WARN', `${url}: ${describeRefusal(outcome, this.answerTimeout)}; PROTOCOL.md says to ignore it with a bad_request note (tabcast never sends one, so nothing breaks)`)
      return
    }
    const probe = outcome.probe
    try {
      const note = await probe.waitFor((frame) => {
        const message = messageOf(frame)
        return message !== null && isConnectionScopedError(message) && message.details?.['code'] === 'bad_request'
      }, this.answerTimeout)
      if (note) this.add('bad since', 'PASS', '?since=abc is ignored with a bad_request note; the socket stays open')
      else if (probe.closed) this.add('bad since', 'WARN', `?since=abc closed the socket (${describeClose(probe.closed)}); tabcast never sends one, so nothing breaks`)
      else this.add('bad since', 'WARN', '?since=abc is ignored silently (PROTOCOL.md asks for a bad_request note)')
    } finally {
      await probe.close()
    }
  }

  // --- client messages and sizes ----------------------------------------------------

  private async checkClientMessages(): Promise<void> {
    const taskId = this.taskId ?? randomId('tabcast-check')
    const url = streamUrl(this.backend, taskId)
    // One socket for every probe below; reopened (a few times at most) when one closes it.
    const held: { probe: StreamProbe | null; opened: number } = { probe: null, opened: 0 }
    const socket = async (): Promise<StreamProbe | null> => {
      if (held.probe && !held.probe.closed) return held.probe
      if (held.opened++ > 3) return null
      const outcome = await this.open(url)
      held.probe = outcome.ok ? outcome.probe : null
      if (held.probe) await held.probe.waitFor(() => true, this.answerTimeout)
      return held.probe
    }
    /** Sends a frame; the socket's close, or null when it is still open after the answer window. */
    const tryFrame = async (frame: string | Buffer): Promise<{ closed: Closed | null; answer: Frame | null } | null> => {
      const current = await socket()
      if (!current) return null
      const from = current.frames.length
      current.send(frame)
      const answer = await current.waitFor(() => true, Math.min(1000, this.answerTimeout), from)
      return { closed: current.closed, answer }
    }
    try {
      const notes: string[] = []
      let verdict: Verdict = 'PASS'
      for (const [what, frame] of [
        ['an application message', '{"type":"tabcast-check"}'],
        ['a frame that is not JSON', 'tabcast-check: not json'],
        ['a binary frame', Buffer.from([0x74, 0x63])],
      ] as const) {
        const sent = await tryFrame(frame)
        if (sent === null) {
          this.add('client messages', 'SKIP', 'could not open a socket for them')
          break
        }
        if (sent.closed) {
          verdict = 'WARN'
          notes.push(`${what} closed the socket (${describeClose(sent.closed)})`)
        } else {
          const message = sent.answer ? messageOf(sent.answer) : null
          const code = message && isConnectionScopedError(message) ? String(message.details?.['code']) : null
          notes.push(`${what}: ${code === null ? 'no answer, socket open' : `${code} note, socket open`}`)
        }
      }
      if (notes.length === 3) {
        this.add('client messages', verdict, `${notes.join('; ')}${verdict === 'PASS' ? '' : '. tabcast reconnects after each, so a bug in one message drops the live stream'}`)
      }

      const fits = `{"type":"tabcast-check","pad":"${'x'.repeat(CLIENT_MESSAGE_LIMIT - 33)}"}`
      const atLimit = await tryFrame(fits)
      const over = `{"type":"tabcast-check","pad":"${'x'.repeat(CLIENT_MESSAGE_LIMIT - 32)}"}`
      if (atLimit === null) {
        this.add('message size', 'SKIP', 'could not open a socket for it')
      } else if (atLimit.closed) {
        this.add('message size', 'FAIL', `a message of ${Buffer.byteLength(fits)} bytes closed the socket (${describeClose(atLimit.closed)}); tabcast's send() allows up to ${CLIENT_MESSAGE_LIMIT} bytes`)
      } else {
        const tooBig = await tryFrame(over)
        const closed = tooBig?.closed ?? (await held.probe?.waitClosed(Math.min(1000, this.answerTimeout))) ?? null
        if (closed?.code === 1009) this.add('message size', 'PASS', `takes ${CLIENT_MESSAGE_LIMIT} bytes, closes with 1009 above: the same limit as tabcast's send()`)
        else if (closed) this.add('message size', 'WARN', `takes ${CLIENT_MESSAGE_LIMIT} bytes; above, it closes with ${closed.code} (1009 is the code for it)`)
        else this.add('message size', 'WARN', `takes ${CLIENT_MESSAGE_LIMIT} bytes and more with no limit in sight (tabcast never sends more, but any client can)`)
      }
    } finally {
      await held.probe?.close()
    }
  }

  // --- the status endpoint, CORS, origins -------------------------------------------

  private async checkStatus(): Promise<void> {
    if (this.taskId === null) {
      this.add('status endpoint', 'SKIP', 'no task to read')
      await this.checkCacheHeaders(null)
      return
    }
    const url = statusUrl(this.backend, this.taskId)
    this.log(`status: ${url}`)
    const outcome = await httpRequest(url, { headers: this.statusHeaders(), timeoutMs: this.answerTimeout })
    if (!outcome.ok) {
      this.add('status endpoint', 'FAIL', `${url}: ${outcome.problem}; tabcast's polling fallback and gap fill get nothing`)
      await this.checkCacheHeaders(null)
      return
    }
    const answer = outcome.answer
    const contentType = answer.headers.get('content-type')
    if (answer.status === 404 && (this.connected?.['status'] !== undefined || taskMessages(this.watched).length > 0)) {
      this.add('status endpoint', 'WARN', `no status endpoint (404 for a task the stream knows): when the socket is refused tabcast has nothing to poll, and after a reconnect it cannot fill the gap`)
    } else if (answer.status === 404 && /json/i.test(contentType ?? '')) {
      this.add('status endpoint', 'WARN', `the backend does not know task ${this.taskId} (404): give a task it runs or ran, to check its status`)
    } else if (answer.status !== 200) {
      const parsed = parseStatusResponse(answer.body, { contentType })
      const what = parsed.ok ? '' : `: ${parsed.error.message}`
      this.add('status endpoint', 'FAIL', `${url} answered HTTP ${answer.status}${what}; tabcast shows it as a connection error while polling`)
    } else {
      const parsed = parseStatusResponse(answer.body, { contentType })
      if (!parsed.ok) {
        this.add('status endpoint', 'FAIL', `${url}: ${parsed.error.message}; tabcast cannot use it for polling`)
      } else {
        const end = taskMessages(this.watched).find(isTerminal)
        const expected = end?.type === 'completed' ? 'completed' : end ? 'failed' : null
        const epoch = jsonObject(answer.body)?.['epoch']
        if (typeof epoch === 'string') this.epochs.push(epoch)
        if (expected !== null && parsed.value.status !== expected && !(expected === 'failed' && parsed.value.status === 'error')) {
          this.add('status endpoint', 'FAIL', `the stream ended the task as ${expected}, the status says ${parsed.value.status}: polling tabs would show something else`)
        } else {
          const seq = parsed.value.seq === undefined ? ' (no seq: tabcast cannot tell an old status from a new one)' : `, seq ${parsed.value.seq}`
          this.add('status endpoint', parsed.value.seq === undefined ? 'WARN' : 'PASS', `status ${parsed.value.status}, progress ${parsed.value.progress}${seq}`)
        }
      }
    }
    this.checkCors(answer)
    await this.checkCacheHeaders(answer)
  }

  private async checkCacheHeaders(known: HttpAnswer | null): Promise<void> {
    const unknownUrl = statusUrl(this.backend, randomId('tabcast-check-unknown'))
    const unknown = await httpRequest(unknownUrl, { headers: this.statusHeaders(undefined, false), timeoutMs: this.answerTimeout })
    const answers = [...(known ? [['the status', known] as const] : []), ...(unknown.ok ? [[`a ${unknown.answer.status} answer`, unknown.answer] as const] : [])]
    if (answers.length === 0) {
      this.add('status cache headers', 'SKIP', 'no status answer to look at')
      return
    }
    const missing = answers.filter(([, answer]) => !/no-store|no-cache|max-age=0/i.test(answer.headers.get('cache-control') ?? ''))
    if (missing.length === 0) this.add('status cache headers', 'PASS', 'Cache-Control: no-store: no cache in between serves old progress')
    else this.add('status cache headers', 'WARN', `${missing.map(([what]) => what).join(' and ')} without Cache-Control: no-store: a cache in between may serve old progress to a polling tab`)
  }

  private checkCors(answer: HttpAnswer): void {
    const origin = this.options.origin
    if (origin === undefined) {
      this.add('CORS', 'SKIP', 'give --origin <page origin> to check that pages on it can read the status')
      return
    }
    const allowed = answer.headers.get('access-control-allow-origin')
    if (allowed === origin || allowed === '*') {
      this.add('CORS', 'PASS', `pages on ${origin} can read the status (Access-Control-Allow-Origin: ${allowed})`)
    } else {
      this.add('CORS', 'FAIL', `no Access-Control-Allow-Origin for ${origin}${allowed ? ` (got ${allowed})` : ''}: the browser hides the status from pages on it, so polling fails there`)
    }
  }

  private async checkForeignOrigin(): Promise<void> {
    const taskId = this.taskId ?? randomId('tabcast-check')
    const notes: string[] = []
    let verdict: Verdict = 'PASS'
    const stream = await this.open(streamUrl(this.backend, taskId), { origin: FOREIGN_ORIGIN })
    if (stream.ok) {
      const closed = await stream.probe.waitClosed(Math.min(1000, this.answerTimeout))
      if (closed && isFatalCloseCode(closed.code)) {
        notes.push(`the stream closes with ${closed.code}`)
      } else {
        verdict = 'WARN'
        notes.push(`the stream accepts Origin ${FOREIGN_ORIGIN}: any web page can follow tasks with your users' cookies (cross-site WebSocket hijacking)`)
      }
      await stream.probe.close()
    } else if (stream.kind === 'http') {
      notes.push(`the stream refuses it with HTTP ${stream.status}`)
    } else {
      notes.push(`the stream refuses it (${describeRefusal(stream, this.answerTimeout)})`)
    }
    if (this.taskId !== null) {
      const http = await httpRequest(statusUrl(this.backend, taskId), { headers: this.statusHeaders(FOREIGN_ORIGIN), timeoutMs: this.answerTimeout })
      if (http.ok && http.answer.status === 403) {
        notes.push('the status endpoint answers 403')
      } else if (http.ok && http.answer.status < 300) {
        verdict = 'WARN'
        const cors = http.answer.headers.get('access-control-allow-origin')
        notes.push(`the status endpoint answers ${http.answer.status}${cors ? ` with Access-Control-Allow-Origin: ${cors}` : ' (without CORS headers, but a simple request still runs)'}; PROTOCOL.md asks for 403`)
      } else if (http.ok) {
        notes.push(`the status endpoint answers ${http.answer.status}`)
      }
    }
    this.add('foreign origin', verdict, notes.join('; '))
  }

  // --- ids --------------------------------------------------------------------------

  private async checkBadTaskId(): Promise<void> {
    const bad = 'bad id!'
    const url = `${this.backend.ws}/api/v1/ws/projects/${encodeURIComponent(bad)}/stream`
    const notes: string[] = []
    let verdict: Verdict = 'PASS'
    const outcome = await this.open(url, { noToken: true })
    if (outcome.ok) {
      const closed = await outcome.probe.waitClosed(this.answerTimeout)
      if (closed && (closed.code === 4000 || isFatalCloseCode(closed.code))) {
        notes.push(`the stream closes with ${closed.code}: tabcast stops at once`)
      } else {
        verdict = 'WARN'
        notes.push(`${closed ? `the stream closes with ${closed.code}` : 'the stream stays open'} (4000 is the code): a tab with a mistyped id retries with backoff for nothing`)
      }
      await outcome.probe.close()
    } else {
      verdict = 'WARN'
      notes.push(`${describeRefusal(outcome, this.answerTimeout)} (a browser sees 1006 and retries with backoff; accept, then close with 4000)`)
    }
    const http = await httpRequest(`${this.backend.http}/api/v1/projects/${encodeURIComponent(bad)}/status`, { headers: this.statusHeaders(undefined, false), timeoutMs: this.answerTimeout })
    if (http.ok && http.answer.status === 400) notes.push('the status endpoint answers 400')
    else if (http.ok) {
      verdict = 'WARN'
      notes.push(`the status endpoint answers ${http.answer.status} (400 is the answer)`)
    }
    this.add('bad task id', verdict, notes.join('; '))
  }

  private async checkUnknownTask(): Promise<void> {
    const taskId = randomId('tabcast-check-unknown')
    const notes: string[] = []
    let verdict: Verdict = 'PASS'
    const outcome = await this.open(streamUrl(this.backend, taskId), { noToken: true })
    if (outcome.ok) {
      const first = await outcome.probe.waitFor(() => true, this.answerTimeout)
      const message = first ? messageOf(first) : null
      if (outcome.probe.closed?.code === 4004) {
        notes.push('the stream closes with 4004: tabcast stops at once')
      } else if (outcome.probe.closed?.code === 4401 || outcome.probe.closed?.code === 4403) {
        notes.push(`the stream wants a token (${outcome.probe.closed.code})`)
      } else if (message?.type === 'connected') {
        if (message.status === 'running') {
          verdict = 'WARN'
          notes.push('connected says status "running" for a task that does not exist (leave status out)')
        } else {
          notes.push('connected without a status: tabcast waits for the task to appear')
        }
      } else {
        notes.push(`the stream answers ${first ? first.text.slice(0, 60) : outcome.probe.closed ? describeClose(outcome.probe.closed) : 'nothing'}`)
      }
      await outcome.probe.close()
    } else {
      notes.push(`the stream refuses it (${describeRefusal(outcome, this.answerTimeout)})`)
    }
    // After a socket came and went: a mere subscriber must not leave a task behind.
    const http = await httpRequest(statusUrl(this.backend, taskId), { headers: this.statusHeaders(undefined, false), timeoutMs: this.answerTimeout })
    if (!http.ok) {
      notes.push(`the status endpoint: ${http.problem}`)
    } else if (http.answer.status === 404) {
      notes.push('the status endpoint answers 404 (and the socket left no task behind)')
    } else if (http.answer.status === 200) {
      verdict = 'WARN'
      notes.push('the status endpoint answers 200 for a task nobody created: a tab following a wrong id shows "running" for ever, and every id anyone connects to is kept')
    } else if (http.answer.status !== 401 && http.answer.status !== 403) {
      verdict = 'WARN'
      notes.push(`the status endpoint answers ${http.answer.status} (404 is the answer)`)
    }
    this.add('unknown task', verdict, notes.join('; '))
  }

  // --- extensions announced in connected --------------------------------------------

  private capabilities(): string[] | null {
    const value = this.connected?.['capabilities']
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : null
  }

  private checkEpochAndCapabilities(): void {
    if (!this.streamWorks) {
      this.add('epoch', 'SKIP', 'the stream does not work')
      this.add('capabilities', 'SKIP', 'the stream does not work')
      return
    }
    const epoch = this.connected?.['epoch']
    const announces = this.capabilities()?.includes('epoch') ?? false
    if (epoch === undefined || epoch === null) {
      this.add('epoch', announces ? 'FAIL' : 'WARN', `${announces ? 'capabilities lists "epoch" but ' : ''}connected has no epoch: after a restart tabcast notices lost history only when last_seq drops below its own seq`)
    } else if (typeof epoch !== 'string' || !EPOCH_PATTERN.test(epoch)) {
      this.add('epoch', 'FAIL', `epoch must be 1–64 of A–Z a–z 0–9 . _ -, got ${JSON.stringify(epoch)}`)
    } else if (this.epochs.some((other) => other !== epoch)) {
      this.add('epoch', 'FAIL', `the epoch changed without a restart (${[...new Set(this.epochs)].join(', ')}): every tab would reset its numbering and re-read the status on each connect`)
    } else {
      this.add('epoch', 'PASS', `epoch ${epoch}, the same on ${this.epochs.length} answers: tabcast notices a backend that lost its history and shows its new truth`)
    }

    const raw = this.connected?.['capabilities']
    if (raw === undefined || raw === null) {
      this.add('capabilities', 'WARN', 'connected has no capabilities: tabcast holds the backend to pongs only after a first pong')
      return
    }
    if (!Array.isArray(raw) || raw.some((item) => typeof item !== 'string')) {
      this.add('capabilities', 'FAIL', `capabilities must be an array of strings, got ${JSON.stringify(raw).slice(0, 80)}`)
      return
    }
    const list = raw as string[]
    if (list.includes('pong') && !this.pongAnswered) {
      this.add('capabilities', 'FAIL', 'capabilities lists "pong" but no ping was answered: tabcast would reconnect after every ping')
      return
    }
    const unknown = list.filter((item) => !KNOWN_CAPABILITIES.includes(item))
    this.add('capabilities', 'PASS', `${list.join(', ') || '(none)'}${unknown.length > 0 ? ` (${unknown.join(', ')}: unknown to tabcast, ignored)` : ''}${list.includes('pong') ? '; tabcast expects a pong from the first ping' : ''}`)
  }

  private async checkAuth(): Promise<void> {
    const announces = this.capabilities()?.includes('auth') ?? false
    if (this.token === undefined) {
      this.add('auth', announces ? 'WARN' : 'SKIP', announces ? 'capabilities lists "auth": give --token (or a --start-url that returns one) to check it' : 'no token given and the backend does not announce auth')
      return
    }
    if (this.taskId === null) {
      this.add('auth', 'SKIP', 'a token needs a task')
      return
    }
    const notes: string[] = []
    let verdict: Verdict = 'PASS'
    const withToken = await this.open(streamUrl(this.backend, this.taskId))
    if (!withToken.ok) {
      this.add('auth', 'FAIL', `the stream refuses the token: ${describeRefusal(withToken, this.answerTimeout)}`)
      return
    }
    await withToken.probe.waitFor(() => true, this.answerTimeout)
    if (withToken.probe.closed && withToken.probe.closed.code >= 4000) {
      verdict = 'FAIL'
      notes.push(`the stream closes with ${withToken.probe.closed.code} despite the token`)
    } else if (withToken.probe.protocol !== 'tabcast') {
      verdict = 'FAIL'
      notes.push(`the stream accepted without selecting the subprotocol "tabcast" (got "${withToken.probe.protocol}"): browsers fail such a handshake`)
    } else {
      notes.push('the stream takes the token and selects "tabcast"')
    }
    await withToken.probe.close()
    const without = await this.open(streamUrl(this.backend, this.taskId), { noToken: true })
    if (without.ok) {
      const closed = await without.probe.waitClosed(this.answerTimeout)
      if (closed?.code === 4401) notes.push('without a token it closes with 4401')
      else {
        verdict = verdict === 'FAIL' ? verdict : 'WARN'
        notes.push(closed ? `without a token it closes with ${closed.code} (4401 is the code: tabcast asks for a fresh token on it)` : 'without a token the stream stays open: the token is not required')
      }
      await without.probe.close()
    } else {
      verdict = verdict === 'FAIL' ? verdict : 'WARN'
      notes.push(`without a token ${describeRefusal(without, this.answerTimeout)} (a browser sees 1006; accept, then close with 4401)`)
    }
    const other = await this.open(streamUrl(this.backend, randomId('tabcast-check-other')))
    if (other.ok) {
      const closed = await other.probe.waitClosed(this.answerTimeout)
      if (closed?.code === 4403 || closed?.code === 4401) notes.push(`another task's id with this token closes with ${closed.code}`)
      else {
        verdict = 'FAIL'
        notes.push(`the token of task ${this.taskId} ${closed ? `gets close code ${closed.code}` : 'opens'} another task's stream: tokens must be bound to their task (4403)`)
      }
      await other.probe.close()
    }
    const url = statusUrl(this.backend, this.taskId)
    const [good, none] = await Promise.all([
      httpRequest(url, { headers: this.statusHeaders(undefined, true), timeoutMs: this.answerTimeout }),
      httpRequest(url, { headers: this.statusHeaders(undefined, false), timeoutMs: this.answerTimeout }),
    ])
    if (good.ok && good.answer.status === 200 && none.ok && none.answer.status === 401) notes.push('the status endpoint answers 200 with the token, 401 without')
    else {
      verdict = verdict === 'FAIL' ? verdict : 'WARN'
      notes.push(`the status endpoint answers ${good.ok ? good.answer.status : good.problem} with the token and ${none.ok ? none.answer.status : none.problem} without (200 and 401 are the answers)`)
    }
    this.add('auth', verdict, notes.join('; '))
  }

  // --- restart ----------------------------------------------------------------------

  private async checkRestart(): Promise<void> {
    const command = this.options.restartCommand
    if (command === undefined) {
      this.add('restart', 'SKIP', 'give --restart-command to check what tabs see when the backend restarts')
      return
    }
    const taskId = this.taskId ?? randomId('tabcast-check')
    const before = await this.open(streamUrl(this.backend, taskId))
    if (!before.ok) {
      this.add('restart', 'SKIP', 'the stream does not work')
      return
    }
    const first = await before.probe.waitFor(() => true, this.answerTimeout)
    const oldEpoch = raw(first)?.['epoch']
    const oldLastSeq = raw(first)?.['last_seq']
    this.log(`restart: ${command}`)
    const ran = await runShell(command, this.timeout)
    const notes: string[] = []
    let verdict: Verdict = 'PASS'
    if (ran.code !== 0) {
      await before.probe.close()
      this.add('restart', 'FAIL', `--restart-command ${ran.timedOut ? `did not end within ${this.timeout} ms` : `exited with ${ran.code}`}: ${ran.stderr.trim().slice(0, 200)}`)
      return
    }
    const closed = await before.probe.waitClosed(this.timeout)
    await before.probe.close()
    if (closed?.code === 1001 || closed?.code === 1012) {
      notes.push(`sockets closed with ${closed.code}: tabcast reconnects at once`)
    } else {
      verdict = 'WARN'
      notes.push(closed ? `sockets closed with ${closed.code}: tabcast retries after a backoff delay (1001 or 1012 get an immediate reconnect; uvicorn: run it with --ws wsproto)` : `the socket stayed open for ${this.timeout} ms`)
    }
    const deadline = Date.now() + this.timeout
    let after: Record<string, unknown> | null = null
    while (Date.now() < deadline && after === null) {
      const outcome = await this.open(streamUrl(this.backend, taskId))
      if (outcome.ok) {
        after = raw(await outcome.probe.waitFor(() => true, this.answerTimeout))
        await outcome.probe.close()
      }
      if (after === null) await new Promise((resolve) => setTimeout(resolve, 250))
    }
    if (after === null) {
      this.add('restart', 'FAIL', `${notes.join('; ')}; the backend did not answer again within ${this.timeout} ms`)
      return
    }
    const newEpoch = after['epoch']
    const newLastSeq = after['last_seq']
    const lostHistory = typeof oldLastSeq === 'number' && typeof newLastSeq === 'number' && newLastSeq < oldLastSeq
    if (typeof oldEpoch === 'string' && newEpoch === oldEpoch && lostHistory) {
      verdict = 'FAIL'
      notes.push(`last_seq fell from ${oldLastSeq} to ${newLastSeq} but the epoch stayed ${oldEpoch}: the epoch must change when the history is lost`)
    } else if (typeof oldEpoch === 'string' && typeof newEpoch === 'string' && newEpoch !== oldEpoch) {
      notes.push(`back with a new epoch (${oldEpoch} → ${newEpoch}): tabcast reads the status once and shows the server's truth`)
    } else {
      notes.push(`back with last_seq ${String(newLastSeq)}${lostHistory ? ': tabcast notices the lost numbering from last_seq' : ''}`)
    }
    this.add('restart', verdict, notes.join('; '))
  }
}

/** A mistake in the options (exit code 2), not a finding about the backend. */
export class UsageError extends Error {}

/** Runs every check against the backend and returns the report. */
export async function checkBackend(options: CheckBackendOptions): Promise<CheckReport> {
  const backend = resolveBackend(options.url)
  if (!backend.ok) throw new UsageError(backend.error)
  if (options.token !== undefined && !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(options.token)) {
    throw new UsageError('--token must consist of RFC 7230 token characters (base64url, ".", "-", "_", "~", …)')
  }
  const checker = new BackendChecker(options, backend.value)
  const { taskId } = await checker.run()
  return buildReport(options.url, taskId, checker.results)
}
