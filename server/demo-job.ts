/**
 * The demo job behind `POST /api/v1/projects`: a fake "audio generation" like the one
 * the guide's studio runs (script analysis, TTS with retries against a flaky provider,
 * post-processing), with failure injection so the error path can be shown and tested.
 */
import { randomInt } from 'node:crypto'
import { describeValue, validateTaskId, type JsonRecord } from '../src/protocol.js'
import type { Logger } from './logger.js'
import { errorText } from './store-errors.js'
import { TaskUpdateError, type TaskPublisher } from './tasks.js'

/** The guide's task name for audio generation. */
export const DEMO_TASK_NAME = '오디오 생성'

/** The provider retries of the guide's studio ("시도 2/5"). */
export const TTS_MAX_ATTEMPTS = 5

const DEFAULT_SCRIPT = '안녕하세요. OmniVibe Pro 데모 오디오입니다. 이 스크립트는 TTS로 변환됩니다.'

export interface DemoJobParams {
  /** The script to "speak"; its length sets the result's duration. */
  script: string
  /** How many progress messages the job sends before completing. */
  steps: number
  /** Pause between steps, in milliseconds. */
  stepMs: number
  /** Fail with the provider error once progress reaches this fraction (0 – 1). */
  failAt: number | undefined
  /** How many TTS attempts fail before one succeeds; `TTS_MAX_ATTEMPTS` or more fails the task. */
  failAttempts: number
}

export interface DemoRequest {
  /** A client-chosen id, or a generated one when absent. */
  taskId: string | undefined
  params: DemoJobParams
}

export type DemoRequestResult = { ok: true; value: DemoRequest } | { ok: false; error: string }

function integerField(body: Record<string, unknown>, field: string, fallback: number, min: number, max: number): number | string {
  const value = body[field]
  if (value === undefined || value === null) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    return `${field} must be an integer from ${min} to ${max}, got ${describeValue(value)}`
  }
  return value
}

/** Validates the JSON body of `POST /api/v1/projects`. An empty body means all defaults. */
export function parseDemoRequest(body: unknown): DemoRequestResult {
  if (body === undefined) body = {}
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, error: `request body must be a JSON object, got ${describeValue(body)}` }
  }
  const raw = body as Record<string, unknown>
  const script = raw['script'] ?? DEFAULT_SCRIPT
  if (typeof script !== 'string' || script.length > 20_000) {
    return { ok: false, error: `script must be a string of at most 20000 characters, got ${describeValue(script)}` }
  }
  const steps = integerField(raw, 'steps', 10, 1, 1000)
  if (typeof steps === 'string') return { ok: false, error: steps }
  const stepMs = integerField(raw, 'stepMs', 300, 0, 60_000)
  if (typeof stepMs === 'string') return { ok: false, error: stepMs }
  const failAttempts = integerField(raw, 'failAttempts', 0, 0, 100)
  if (typeof failAttempts === 'string') return { ok: false, error: failAttempts }
  const failAt = raw['failAt']
  if (failAt !== undefined && failAt !== null && (typeof failAt !== 'number' || !(failAt >= 0 && failAt <= 1))) {
    return { ok: false, error: `failAt must be a number from 0 to 1, got ${describeValue(failAt)}` }
  }
  const taskId = raw['taskId']
  if (taskId !== undefined && taskId !== null) {
    const problem = validateTaskId(taskId)
    if (problem !== null) return { ok: false, error: problem }
  }
  return {
    ok: true,
    value: {
      taskId: typeof taskId === 'string' ? taskId : undefined,
      params: { script, steps, stepMs, failAttempts, failAt: typeof failAt === 'number' ? failAt : undefined },
    },
  }
}

/** What the guide's provider failure looks like. */
function providerFailure(extra: JsonRecord): { error: string; details: JsonRecord } {
  return {
    error: 'ElevenLabs API 호출 실패',
    details: { status_code: 500, reason: 'Internal Server Error', ...extra },
  }
}

function phaseMessage(fraction: number, attempt: number): string {
  if (fraction < 0.2) return '스크립트 분석 중...'
  if (fraction < 0.7) return `TTS 생성 중... (시도 ${attempt}/${TTS_MAX_ATTEMPTS})`
  if (fraction < 0.9) return '오디오 후처리 중...'
  return '정확도 검증 중...'
}

export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })

/** Runs one demo job to its end (or until `signal` aborts). */
export async function runDemoJob(
  publisher: TaskPublisher,
  taskId: string,
  params: DemoJobParams,
  signal: AbortSignal,
  sleep: Sleep = realSleep,
): Promise<void> {
  const { steps, stepMs } = params
  // Retries happen at the first step of the TTS phase (or the last step of a short job).
  const ttsStep = Math.min(steps - 1, Math.ceil(steps * 0.2))
  let attempt = 1
  for (let step = 0; step < steps; step += 1) {
    const fraction = Math.round((step / steps) * 10_000) / 10_000
    if (params.failAt !== undefined && fraction >= params.failAt) {
      const failure = providerFailure({ attempt, progress: fraction })
      await publisher.fail(taskId, failure.error, failure.details)
      return
    }
    if (step === ttsStep) {
      for (; attempt <= params.failAttempts; attempt += 1) {
        await publisher.progress(taskId, fraction, `TTS 생성 중... (시도 ${attempt}/${TTS_MAX_ATTEMPTS})`, {
          metadata: { step: step + 1, steps, attempt },
        })
        await sleep(stepMs, signal)
        if (attempt === TTS_MAX_ATTEMPTS) {
          const failure = providerFailure({ attempts: attempt })
          await publisher.fail(taskId, failure.error, failure.details)
          return
        }
      }
    }
    await publisher.progress(taskId, fraction, phaseMessage(fraction, attempt), {
      metadata: { step: step + 1, steps, attempt },
    })
    await sleep(stepMs, signal)
  }
  const audioId = `audio_${randomInt(100, 1_000_000)}`
  await publisher.complete(
    taskId,
    {
      audio_id: audioId,
      file_path: `/media/audio/${audioId}.mp3`,
      // About five characters of Korean speech per second.
      duration: Math.max(1, Math.round((params.script.length / 5) * 10) / 10),
      accuracy: 0.97,
      attempt,
    },
    { message: '오디오 생성 완료' },
  )
}

/** The demo jobs of one server: started by POST, stopped on `close()`. */
export class DemoJobs {
  private readonly running = new Map<string, AbortController>()

  constructor(
    private readonly publisher: TaskPublisher,
    private readonly logger: Logger,
    private readonly sleep: Sleep = realSleep,
  ) {}

  get size(): number {
    return this.running.size
  }

  start(taskId: string, params: DemoJobParams): void {
    const controller = new AbortController()
    this.running.set(taskId, controller)
    runDemoJob(this.publisher, taskId, params, controller.signal, this.sleep)
      .catch((error: unknown) => (controller.signal.aborted ? undefined : this.jobFailed(taskId, error)))
      .finally(() => {
        this.running.delete(taskId)
      })
  }

  /**
   * A publish of the job was refused for good (the store stayed away past
   * `publishRetryFor`, say): the task must not look alive, so the job fails it. If even
   * that cannot be written, the task's lease fails it once it runs out.
   */
  private async jobFailed(taskId: string, error: unknown): Promise<void> {
    if (error instanceof TaskUpdateError && error.code === 'task_finished') {
      // Ended by someone else meanwhile (its lease ran out, say): nothing left to report.
      this.logger.info('demo job stopped: its task had already ended', { task: taskId, error: error.message })
      return
    }
    this.logger.error('demo job failed; failing its task', { task: taskId, error: errorText(error) })
    try {
      await this.publisher.fail(taskId, 'the job could not report its progress', { code: 'publish_failed', reason: errorText(error) })
    } catch (failure) {
      this.logger.error('could not fail the task of a failed demo job; its lease will', { task: taskId, error: errorText(failure) })
    }
  }

  /**
   * Stops every job where it stands. Their tasks stay `running` in the store until
   * their lease runs out (see `staleAfter`), then they are failed as stopped.
   */
  stopAll(): void {
    for (const controller of this.running.values()) controller.abort(new Error('server closing'))
    this.running.clear()
  }
}
