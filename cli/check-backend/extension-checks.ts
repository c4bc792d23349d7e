/**
 * The checks of what `connected` announces (`epoch`, `capabilities`), of auth with a
 * token, and of a restart (`--restart-command`).
 */
import { statusUrl, streamUrl } from '../../src/endpoints.js'
import {
  type CheckContext,
  describeRefusal,
  EPOCH_PATTERN,
  KNOWN_CAPABILITIES,
  randomId,
  raw,
  runShell,
} from './context.js'
import { httpRequest } from './probe.js'
import type { Verdict } from './report.js'

export function checkEpochAndCapabilities(ctx: CheckContext): void {
  if (!ctx.streamWorks) {
    ctx.add('epoch', 'SKIP', 'the stream does not work')
    ctx.add('capabilities', 'SKIP', 'the stream does not work')
    return
  }
  const epoch = ctx.connected?.['epoch']
  const announces = ctx.capabilities()?.includes('epoch') ?? false
  if (epoch === undefined || epoch === null) {
    ctx.add('epoch', announces ? 'FAIL' : 'WARN', `${announces ? 'capabilities lists "epoch" but ' : ''}connected has no epoch: after a restart tabcast notices lost history only when last_seq drops below its own seq`)
  } else if (typeof epoch !== 'string' || !EPOCH_PATTERN.test(epoch)) {
    ctx.add('epoch', 'FAIL', `epoch must be 1–64 of A–Z a–z 0–9 . _ -, got ${JSON.stringify(epoch)}`)
  } else if (ctx.epochs.some((other) => other !== epoch)) {
    ctx.add('epoch', 'FAIL', `the epoch changed without a restart (${[...new Set(ctx.epochs)].join(', ')}): every tab would reset its numbering and re-read the status on each connect`)
  } else {
    ctx.add('epoch', 'PASS', `epoch ${epoch}, the same on ${ctx.epochs.length} answers: tabcast notices a backend that lost its history and shows its new truth`)
  }

  const raw = ctx.connected?.['capabilities']
  if (raw === undefined || raw === null) {
    ctx.add('capabilities', 'WARN', 'connected has no capabilities: tabcast holds the backend to pongs only after a first pong')
    return
  }
  if (!Array.isArray(raw) || raw.some((item) => typeof item !== 'string')) {
    ctx.add('capabilities', 'FAIL', `capabilities must be an array of strings, got ${JSON.stringify(raw).slice(0, 80)}`)
    return
  }
  const list = raw as string[]
  if (list.includes('pong') && !ctx.pongAnswered) {
    ctx.add('capabilities', 'FAIL', 'capabilities lists "pong" but no ping was answered: tabcast would reconnect after every ping')
    return
  }
  const unknown = list.filter((item) => !KNOWN_CAPABILITIES.includes(item))
  ctx.add('capabilities', 'PASS', `${list.join(', ') || '(none)'}${unknown.length > 0 ? ` (${unknown.join(', ')}: unknown to tabcast, ignored)` : ''}${list.includes('pong') ? '; tabcast expects a pong from the first ping' : ''}`)
}

export async function checkAuth(ctx: CheckContext): Promise<void> {
  const announces = ctx.capabilities()?.includes('auth') ?? false
  if (ctx.token === undefined) {
    ctx.add('auth', announces ? 'WARN' : 'SKIP', announces ? 'capabilities lists "auth": give --token (or a --start-url that returns one) to check it' : 'no token given and the backend does not announce auth')
    return
  }
  if (ctx.taskId === null) {
    ctx.add('auth', 'SKIP', 'a token needs a task')
    return
  }
  const notes: string[] = []
  let verdict: Verdict = 'PASS'
  const withToken = await ctx.open(streamUrl(ctx.backend, ctx.taskId))
  if (!withToken.ok) {
    ctx.add('auth', 'FAIL', `the stream refuses the token: ${describeRefusal(withToken, ctx.answerTimeout)}`)
    return
  }
  await withToken.probe.waitFor(() => true, ctx.answerTimeout)
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
  const without = await ctx.open(streamUrl(ctx.backend, ctx.taskId), { noToken: true })
  if (without.ok) {
    const closed = await without.probe.waitClosed(ctx.answerTimeout)
    if (closed?.code === 4401) notes.push('without a token it closes with 4401')
    else {
      verdict = verdict === 'FAIL' ? verdict : 'WARN'
      notes.push(closed ? `without a token it closes with ${closed.code} (4401 is the code: tabcast asks for a fresh token on it)` : 'without a token the stream stays open: the token is not required')
    }
    await without.probe.close()
  } else {
    verdict = verdict === 'FAIL' ? verdict : 'WARN'
    notes.push(`without a token ${describeRefusal(without, ctx.answerTimeout)} (a browser sees 1006; accept, then close with 4401)`)
  }
  const other = await ctx.open(streamUrl(ctx.backend, randomId('tabcast-check-other')))
  if (other.ok) {
    const closed = await other.probe.waitClosed(ctx.answerTimeout)
    if (closed?.code === 4403 || closed?.code === 4401) notes.push(`another task's id with this token closes with ${closed.code}`)
    else {
      verdict = 'FAIL'
      notes.push(`the token of task ${ctx.taskId} ${closed ? `gets close code ${closed.code}` : 'opens'} another task's stream: tokens must be bound to their task (4403)`)
    }
    await other.probe.close()
  }
  const url = statusUrl(ctx.backend, ctx.taskId)
  const [good, none] = await Promise.all([
    httpRequest(url, { headers: ctx.statusHeaders(undefined, true), timeoutMs: ctx.answerTimeout }),
    httpRequest(url, { headers: ctx.statusHeaders(undefined, false), timeoutMs: ctx.answerTimeout }),
  ])
  if (good.ok && good.answer.status === 200 && none.ok && none.answer.status === 401) notes.push('the status endpoint answers 200 with the token, 401 without')
  else {
    verdict = verdict === 'FAIL' ? verdict : 'WARN'
    notes.push(`the status endpoint answers ${good.ok ? good.answer.status : good.problem} with the token and ${none.ok ? none.answer.status : none.problem} without (200 and 401 are the answers)`)
  }
  ctx.add('auth', verdict, notes.join('; '))
}

export async function checkRestart(ctx: CheckContext): Promise<void> {
  const command = ctx.options.restartCommand
  if (command === undefined) {
    ctx.add('restart', 'SKIP', 'give --restart-command to check what tabs see when the backend restarts')
    return
  }
  const taskId = ctx.taskId ?? randomId('tabcast-check')
  const before = await ctx.open(streamUrl(ctx.backend, taskId))
  if (!before.ok) {
    ctx.add('restart', 'SKIP', 'the stream does not work')
    return
  }
  const first = await before.probe.waitFor(() => true, ctx.answerTimeout)
  const oldEpoch = raw(first)?.['epoch']
  const oldLastSeq = raw(first)?.['last_seq']
  ctx.log(`restart: ${command}`)
  const ran = await runShell(command, ctx.timeout)
  const notes: string[] = []
  let verdict: Verdict = 'PASS'
  if (ran.code !== 0) {
    await before.probe.close()
    ctx.add('restart', 'FAIL', `--restart-command ${ran.timedOut ? `did not end within ${ctx.timeout} ms` : `exited with ${ran.code}`}: ${ran.stderr.trim().slice(0, 200)}`)
    return
  }
  const closed = await before.probe.waitClosed(ctx.timeout)
  await before.probe.close()
  if (closed?.code === 1001 || closed?.code === 1012) {
    notes.push(`sockets closed with ${closed.code}: tabcast reconnects at once`)
  } else {
    verdict = 'WARN'
    notes.push(closed ? `sockets closed with ${closed.code}: tabcast retries after a backoff delay (1001 or 1012 get an immediate reconnect; uvicorn: run it with --ws wsproto)` : `the socket stayed open for ${ctx.timeout} ms`)
  }
  const deadline = Date.now() + ctx.timeout
  let after: Record<string, unknown> | null = null
  while (Date.now() < deadline && after === null) {
    const outcome = await ctx.open(streamUrl(ctx.backend, taskId))
    if (outcome.ok) {
      after = raw(await outcome.probe.waitFor(() => true, ctx.answerTimeout))
      await outcome.probe.close()
    }
    if (after === null) await new Promise((resolve) => setTimeout(resolve, 250))
  }
  if (after === null) {
    ctx.add('restart', 'FAIL', `${notes.join('; ')}; the backend did not answer again within ${ctx.timeout} ms`)
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
  ctx.add('restart', verdict, notes.join('; '))
}
