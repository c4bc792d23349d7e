/**
 * Where the task to follow comes from: an existing id (`--task`), a POST (`--start-url`)
 * or a command (`--start-command`), whose answer may also carry the task's token.
 */
import { validateTaskId } from '../../src/protocol.js'
import { runShell, UsageError, type CheckContext } from './context.js'
import { httpRequest } from './probe.js'

export interface TaskSource {
  taskId: string | null
  token: string | undefined
}

export async function startTask(ctx: CheckContext): Promise<TaskSource> {
  const { task, startUrl, startCommand, token } = ctx.options
  if (task !== undefined) {
    const problem = validateTaskId(task)
    if (problem !== null) throw new UsageError(`--task: ${problem}`)
    ctx.add('task', 'PASS', `following the existing task ${task}`)
    return { taskId: task, token }
  }
  if (startUrl !== undefined) {
    ctx.log(`starting a task: POST ${startUrl}`)
    const outcome = await httpRequest(startUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }) },
      body: '{}',
      timeoutMs: ctx.answerTimeout,
    })
    if (!outcome.ok) {
      ctx.add('task', 'FAIL', `POST ${startUrl}: ${outcome.problem}; the task-dependent checks are skipped`)
      return { taskId: null, token }
    }
    return taskFromAnswer(ctx, `POST ${startUrl} answered ${outcome.answer.status}`, outcome.answer.status < 300, outcome.answer.body, token)
  }
  if (startCommand !== undefined) {
    ctx.log(`starting a task: ${startCommand}`)
    const ran = await runShell(startCommand, ctx.answerTimeout * 3)
    const lines = ran.stdout.trim().split('\n')
    const last = (lines[lines.length - 1] ?? '').trim()
    const what = ran.timedOut ? `--start-command did not end within ${ctx.answerTimeout * 3} ms` : `--start-command exited with ${ran.code}`
    return taskFromAnswer(ctx, what, ran.code === 0 && !ran.timedOut, last, token)
  }
  ctx.add('task', 'SKIP', 'no task given (--task, --start-url or --start-command): message shapes, seq, since and the task end are not checked')
  return { taskId: null, token }
}

export function taskFromAnswer(ctx: CheckContext, what: string, succeeded: boolean, text: string, token: string | undefined): TaskSource {
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
    ctx.add('task', 'FAIL', `${what}, without a usable task id (${problem ?? 'no id'}): ${text.slice(0, 120)}; the task-dependent checks are skipped`)
    return { taskId: null, token }
  }
  ctx.add('task', 'PASS', `${what}: task ${id}${typeof answeredToken === 'string' ? ', with a token' : ''}`)
  return { taskId: id, token: typeof answeredToken === 'string' ? answeredToken : token }
}
