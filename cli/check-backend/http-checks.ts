/**
 * The checks on the status endpoint (shape, agreement with the stream, caching, CORS)
 * and on refusals: a foreign origin, an invalid task id, a task nobody created.
 */
import { statusUrl, streamUrl } from '../../src/endpoints.js'
import { isFatalCloseCode, parseStatusResponse } from '../../src/protocol.js'
import {
  type CheckContext,
  describeClose,
  describeRefusal,
  FOREIGN_ORIGIN,
  isTerminal,
  jsonObject,
  messageOf,
  randomId,
  taskMessages,
} from './context.js'
import { httpRequest, type HttpAnswer } from './probe.js'
import type { Verdict } from './report.js'

export async function checkStatus(ctx: CheckContext): Promise<void> {
  if (ctx.taskId === null) {
    ctx.add('status endpoint', 'SKIP', 'no task to read')
    await checkCacheHeaders(ctx, null)
    return
  }
  const url = statusUrl(ctx.backend, ctx.taskId)
  ctx.log(`status: ${url}`)
  const outcome = await httpRequest(url, { headers: ctx.statusHeaders(), timeoutMs: ctx.answerTimeout })
  if (!outcome.ok) {
    ctx.add('status endpoint', 'FAIL', `${url}: ${outcome.problem}; tabcast's polling fallback and gap fill get nothing`)
    await checkCacheHeaders(ctx, null)
    return
  }
  const answer = outcome.answer
  const contentType = answer.headers.get('content-type')
  if (answer.status === 404 && (ctx.connected?.['status'] !== undefined || taskMessages(ctx.watched).length > 0)) {
    ctx.add('status endpoint', 'WARN', `no status endpoint (404 for a task the stream knows): when the socket is refused tabcast has nothing to poll, and after a reconnect it cannot fill the gap`)
  } else if (answer.status === 404 && /json/i.test(contentType ?? '')) {
    ctx.add('status endpoint', 'WARN', `the backend does not know task ${ctx.taskId} (404): give a task it runs or ran, to check its status`)
  } else if (answer.status !== 200) {
    const parsed = parseStatusResponse(answer.body, { contentType })
    const what = parsed.ok ? '' : `: ${parsed.error.message}`
    ctx.add('status endpoint', 'FAIL', `${url} answered HTTP ${answer.status}${what}; tabcast shows it as a connection error while polling`)
  } else {
    const parsed = parseStatusResponse(answer.body, { contentType })
    if (!parsed.ok) {
      ctx.add('status endpoint', 'FAIL', `${url}: ${parsed.error.message}; tabcast cannot use it for polling`)
    } else {
      const end = taskMessages(ctx.watched).find(isTerminal)
      const expected = end?.type === 'completed' ? 'completed' : end ? 'failed' : null
      const epoch = jsonObject(answer.body)?.['epoch']
      if (typeof epoch === 'string') ctx.epochs.push(epoch)
      if (expected !== null && parsed.value.status !== expected && !(expected === 'failed' && parsed.value.status === 'error')) {
        ctx.add('status endpoint', 'FAIL', `the stream ended the task as ${expected}, the status says ${parsed.value.status}: polling tabs would show something else`)
      } else {
        const seq = parsed.value.seq === undefined ? ' (no seq: tabcast cannot tell an old status from a new one)' : `, seq ${parsed.value.seq}`
        ctx.add('status endpoint', parsed.value.seq === undefined ? 'WARN' : 'PASS', `status ${parsed.value.status}, progress ${parsed.value.progress}${seq}`)
      }
    }
  }
  checkCors(ctx, answer)
  await checkCacheHeaders(ctx, answer)
}

export async function checkCacheHeaders(ctx: CheckContext, known: HttpAnswer | null): Promise<void> {
  const unknownUrl = statusUrl(ctx.backend, randomId('tabcast-check-unknown'))
  const unknown = await httpRequest(unknownUrl, { headers: ctx.statusHeaders(undefined, false), timeoutMs: ctx.answerTimeout })
  const answers = [...(known ? [['the status', known] as const] : []), ...(unknown.ok ? [[`a ${unknown.answer.status} answer`, unknown.answer] as const] : [])]
  if (answers.length === 0) {
    ctx.add('status cache headers', 'SKIP', 'no status answer to look at')
    return
  }
  const missing = answers.filter(([, answer]) => !/no-store|no-cache|max-age=0/i.test(answer.headers.get('cache-control') ?? ''))
  if (missing.length === 0) ctx.add('status cache headers', 'PASS', 'Cache-Control: no-store: no cache in between serves old progress')
  else ctx.add('status cache headers', 'WARN', `${missing.map(([what]) => what).join(' and ')} without Cache-Control: no-store: a cache in between may serve old progress to a polling tab`)
}

export function checkCors(ctx: CheckContext, answer: HttpAnswer): void {
  const origin = ctx.options.origin
  if (origin === undefined) {
    ctx.add('CORS', 'SKIP', 'give --origin <page origin> to check that pages on it can read the status')
    return
  }
  const allowed = answer.headers.get('access-control-allow-origin')
  if (allowed === origin || allowed === '*') {
    ctx.add('CORS', 'PASS', `pages on ${origin} can read the status (Access-Control-Allow-Origin: ${allowed})`)
  } else {
    ctx.add('CORS', 'FAIL', `no Access-Control-Allow-Origin for ${origin}${allowed ? ` (got ${allowed})` : ''}: the browser hides the status from pages on it, so polling fails there`)
  }
}

export async function checkForeignOrigin(ctx: CheckContext): Promise<void> {
  const taskId = ctx.taskId ?? randomId('tabcast-check')
  const notes: string[] = []
  let verdict: Verdict = 'PASS'
  const stream = await ctx.open(streamUrl(ctx.backend, taskId), { origin: FOREIGN_ORIGIN })
  if (stream.ok) {
    const closed = await stream.probe.waitClosed(Math.min(1000, ctx.answerTimeout))
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
    notes.push(`the stream refuses it (${describeRefusal(stream, ctx.answerTimeout)})`)
  }
  if (ctx.taskId !== null) {
    const http = await httpRequest(statusUrl(ctx.backend, taskId), { headers: ctx.statusHeaders(FOREIGN_ORIGIN), timeoutMs: ctx.answerTimeout })
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
  ctx.add('foreign origin', verdict, notes.join('; '))
}

export async function checkBadTaskId(ctx: CheckContext): Promise<void> {
  const bad = 'bad id!'
  const url = `${ctx.backend.ws}/api/v1/ws/projects/${encodeURIComponent(bad)}/stream`
  const notes: string[] = []
  let verdict: Verdict = 'PASS'
  const outcome = await ctx.open(url, { noToken: true })
  if (outcome.ok) {
    const closed = await outcome.probe.waitClosed(ctx.answerTimeout)
    if (closed && (closed.code === 4000 || isFatalCloseCode(closed.code))) {
      notes.push(`the stream closes with ${closed.code}: tabcast stops at once`)
    } else {
      verdict = 'WARN'
      notes.push(`${closed ? `the stream closes with ${closed.code}` : 'the stream stays open'} (4000 is the code): a tab with a mistyped id retries with backoff for nothing`)
    }
    await outcome.probe.close()
  } else {
    verdict = 'WARN'
    notes.push(`${describeRefusal(outcome, ctx.answerTimeout)} (a browser sees 1006 and retries with backoff; accept, then close with 4000)`)
  }
  const http = await httpRequest(`${ctx.backend.http}/api/v1/projects/${encodeURIComponent(bad)}/status`, { headers: ctx.statusHeaders(undefined, false), timeoutMs: ctx.answerTimeout })
  if (http.ok && http.answer.status === 400) notes.push('the status endpoint answers 400')
  else if (http.ok) {
    verdict = 'WARN'
    notes.push(`the status endpoint answers ${http.answer.status} (400 is the answer)`)
  }
  ctx.add('bad task id', verdict, notes.join('; '))
}

export async function checkUnknownTask(ctx: CheckContext): Promise<void> {
  const taskId = randomId('tabcast-check-unknown')
  const notes: string[] = []
  let verdict: Verdict = 'PASS'
  const outcome = await ctx.open(streamUrl(ctx.backend, taskId), { noToken: true })
  if (outcome.ok) {
    const first = await outcome.probe.waitFor(() => true, ctx.answerTimeout)
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
    notes.push(`the stream refuses it (${describeRefusal(outcome, ctx.answerTimeout)})`)
  }
  // After a socket came and went: a mere subscriber must not leave a task behind.
  const http = await httpRequest(statusUrl(ctx.backend, taskId), { headers: ctx.statusHeaders(undefined, false), timeoutMs: ctx.answerTimeout })
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
  ctx.add('unknown task', verdict, notes.join('; '))
}
