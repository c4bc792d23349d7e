/**
 * The checks on the stream: `connected` first, pings, the task's messages to its end
 * (shapes, `seq`, `last_seq`), the `since` replay, a bad `since`, and what the backend
 * does with client frames of every kind and size.
 */
import { streamUrl } from '../../src/endpoints.js'
import { isConnectionScopedError, isFatalCloseCode, isTaskMessage, SERVER_MESSAGE_TYPES } from '../../src/protocol.js'
import {
  type CheckContext,
  CLIENT_MESSAGE_LIMIT,
  describeClose,
  describeRefusal,
  isPong,
  isTerminal,
  messageOf,
  randomId,
  raw,
  taskMessages,
} from './context.js'
import type { Closed, Frame, StreamProbe } from './probe.js'
import type { Verdict } from './report.js'

export async function checkStream(ctx: CheckContext): Promise<void> {
  const taskId = ctx.taskId ?? randomId('tabcast-check')
  const url = streamUrl(ctx.backend, taskId)
  ctx.log(`stream: ${url}`)
  const outcome = await ctx.open(url)
  if (!outcome.ok) {
    const origin = ctx.options.origin
    const hint =
      outcome.kind === 'http' && outcome.status === 403 && origin !== undefined
        ? `; the backend refused the page origin ${origin}, so tabs on it cannot connect (they will poll the status, if they can)`
        : outcome.kind === 'http' && outcome.status === 404
          ? '; is the stream at /api/v1/ws/projects/{task_id}/stream under this URL?'
          : ''
    ctx.add('stream', 'FAIL', `${url}: ${describeRefusal(outcome, ctx.answerTimeout)}${hint}. tabcast retries with backoff, then polls the status endpoint`)
    return
  }
  const probe = outcome.probe
  try {
    const first = await probe.waitFor(() => true, ctx.answerTimeout)
    if (first === null) {
      if (probe.closed?.code === 4401 || probe.closed?.code === 4403) {
        // A backend that wants a token is right to close; the check just cannot go on without one.
        ctx.add('stream', 'WARN', `not checked: the backend wants a token (${describeClose(probe.closed)}); give --token, or a --start-url that returns one`)
        return
      }
      const why = probe.closed ? describeClose(probe.closed) : `nothing within ${ctx.answerTimeout} ms`
      ctx.add('stream', 'FAIL', `the socket opened but no connected message came: ${why}`)
      return
    }
    if (!first.parsed.ok || first.parsed.value.type !== 'connected') {
      const got = first.parsed.ok ? `a ${first.parsed.value.type} message` : first.parsed.error.message
      ctx.add('stream', 'FAIL', `the first message must be connected, got ${got}; tabcast shows a connection error`)
      ctx.watched = probe.frames
      checkShapes(ctx)
      return
    }
    ctx.connected = raw(first)
    const projectId = first.parsed.value.project_id
    const idNote = projectId === undefined || projectId === taskId ? '' : ` (its project_id is ${JSON.stringify(projectId)}, not ${taskId})`
    ctx.streamWorks = true
    ctx.add('stream', 'PASS', `${url} answers with connected first${idNote}`)
    if (typeof ctx.connected?.['epoch'] === 'string') ctx.epochs.push(ctx.connected['epoch'])
    await checkPings(ctx, probe)
    await watchTask(ctx, probe)
  } finally {
    ctx.watched = probe.frames
    await probe.close()
  }
  checkShapes(ctx)
  checkSeq(ctx)
}

export async function checkPings(ctx: CheckContext, probe: StreamProbe): Promise<void> {
  const announces = ctx.capabilities()?.includes('pong') ?? false
  for (const [feature, frame] of [
    ['text ping', 'ping'],
    ['JSON ping', '{"type":"ping"}'],
  ] as const) {
    const from = probe.frames.length
    probe.send(frame)
    const pong = await probe.waitFor(isPong, ctx.answerTimeout, from)
    if (pong) {
      ctx.pongAnswered = true
      ctx.add(feature, 'PASS', `${frame} → pong: tabcast notices a dead socket within pongTimeout (10 s) instead of waiting for TCP`)
    } else if (probe.closed) {
      ctx.add(feature, 'FAIL', `the backend closed the socket after ${frame} (${describeClose(probe.closed)}); tabcast sends one every 30 s, so every connection would drop`)
      if (feature === 'text ping') ctx.add('JSON ping', 'SKIP', 'the text ping closed the socket')
      return
    } else if (announces) {
      ctx.add(feature, 'FAIL', `no pong within ${ctx.answerTimeout} ms although capabilities lists "pong": tabcast would reconnect after every ping`)
    } else {
      ctx.add(feature, 'WARN', `no pong within ${ctx.answerTimeout} ms: allowed, but tabcast cannot notice a half-open socket until TCP gives up`)
    }
  }
}

export async function watchTask(ctx: CheckContext, probe: StreamProbe): Promise<void> {
  const status = ctx.connected?.['status']
  const lastSeq = ctx.connected?.['last_seq']
  if (ctx.taskId === null) {
    ctx.add('current state on connect', 'SKIP', 'no task to follow')
    ctx.add('task end', 'SKIP', 'no task to follow')
    return
  }
  const firstTask = await probe.waitFor((frame) => {
    const message = messageOf(frame)
    return message !== null && isTaskMessage(message) && !isConnectionScopedError(message)
  }, ctx.answerTimeout)
  if (firstTask) {
    ctx.add('current state on connect', 'PASS', 'a task message came right after connected: a tab that opens mid-task shows the progress at once')
  } else if ((typeof lastSeq === 'number' && lastSeq > 0) || status === 'completed' || status === 'failed') {
    ctx.add('current state on connect', 'WARN', `the backend knows the task but sent no task message within ${ctx.answerTimeout} ms of connected: a tab that opens mid-task shows nothing until the next step`)
  } else {
    ctx.add('current state on connect', 'SKIP', `the task had no message yet within ${ctx.answerTimeout} ms`)
  }
  ctx.log(`following task ${ctx.taskId} to its end (at most ${ctx.timeout} ms)`)
  const end = await probe.waitFor((frame) => {
    const message = messageOf(frame)
    return message !== null && isTerminal(message)
  }, ctx.timeout)
  const endMessage = end ? messageOf(end) : null
  if (endMessage?.type === 'completed') {
    ctx.add('task end', 'PASS', 'completed: every tab shows the result')
  } else if (endMessage?.type === 'error') {
    ctx.add('task end', 'PASS', `failed ("${endMessage.error ?? ''}"): every tab shows the error`)
  } else if (probe.closed) {
    ctx.add('task end', 'WARN', `the backend closed the socket (${describeClose(probe.closed)}) before the task ended; tabcast ${isFatalCloseCode(probe.closed.code) ? 'stops (a fatal code)' : 'reconnects'}`)
  } else {
    ctx.add('task end', 'WARN', `the task did not end within ${ctx.timeout} ms (--timeout); its end was not checked`)
  }
}

export function checkShapes(ctx: CheckContext): void {
  // A type tabcast does not know is no error (PROTOCOL.md): whether the parser rejects it
  // (`unknown_type`) or passes it on as an unknown message, it is a WARN, not a FAIL.
  const broken = ctx.watched.filter((frame) => !frame.parsed.ok && (frame.parsed.error.code as string) !== 'unknown_type')
  const unknown = ctx.watched.filter((frame) => {
    const type = raw(frame)?.['type']
    return !broken.includes(frame) && typeof type === 'string' && !(SERVER_MESSAGE_TYPES as readonly string[]).includes(type)
  })
  if (broken.length > 0) {
    const named = broken.slice(0, 3).map((frame) => (frame.parsed.ok ? '' : frame.parsed.error.message))
    ctx.add('message shapes', 'FAIL', `${broken.length} of ${ctx.watched.length} messages are invalid: ${named.join('; ')}. tabcast ignores each and shows a connection error`)
  } else if (unknown.length > 0) {
    ctx.add('message shapes', 'WARN', `${unknown.length} messages of a type tabcast does not know (${unknown[0]?.text.slice(0, 60) ?? ''}): passed to message listeners, the task state ignores them`)
  } else {
    ctx.add('message shapes', 'PASS', `${ctx.watched.length} messages, every one valid (types, fields, progress within 0–1)`)
  }
}

export function checkSeq(ctx: CheckContext): void {
  const messages = taskMessages(ctx.watched)
  if (messages.length === 0) {
    ctx.add('seq', 'SKIP', 'no task message seen')
    ctx.add('last_seq', ctx.connected?.['last_seq'] === undefined ? 'WARN' : 'PASS', ctx.connected?.['last_seq'] === undefined ? 'connected has no last_seq: tabcast cannot tell that the backend lost its numbering' : `connected says last_seq ${String(ctx.connected['last_seq'])}`)
    return
  }
  const seqs = messages.map((message) => message.seq)
  const announces = ctx.capabilities()?.includes('seq') ?? false
  if (seqs.every((seq) => seq === undefined)) {
    ctx.add('seq', announces ? 'FAIL' : 'WARN', `${announces ? 'capabilities lists "seq" but ' : ''}no task message carries seq: tabcast cannot drop duplicates or resume with since; after a reconnect it reads the status once, and steps sent while disconnected are not replayed`)
  } else if (seqs.some((seq) => seq === undefined)) {
    ctx.add('seq', 'FAIL', 'some task messages carry seq and some do not: tabcast cannot order them')
  } else {
    const numbers = seqs as number[]
    const backwards = numbers.findIndex((seq, index) => index > 0 && seq <= numbers[index - 1]!)
    const gap = numbers.findIndex((seq, index) => index > 0 && seq > numbers[index - 1]! + 1)
    if (backwards > 0) {
      ctx.add('seq', 'FAIL', `seq ${numbers[backwards]} came after ${numbers[backwards - 1]}: tabcast drops it as a duplicate`)
    } else if (gap > 0) {
      ctx.add('seq', 'WARN', `seq jumped from ${numbers[gap - 1]} to ${numbers[gap]} on one socket: a message was lost`)
    } else {
      ctx.add('seq', 'PASS', `task messages numbered ${numbers[0]}…${numbers[numbers.length - 1]}: tabcast drops duplicates and resumes after a reconnect`)
    }
  }
  const lastSeq = ctx.connected?.['last_seq']
  const first = seqs[0]
  if (lastSeq === undefined || lastSeq === null) {
    ctx.add('last_seq', 'WARN', 'connected has no last_seq: tabcast cannot tell that the backend lost its numbering (after a restart it may drop new messages as duplicates until their seq passes the old one)')
  } else if (typeof lastSeq === 'number' && first !== undefined && first < lastSeq) {
    ctx.add('last_seq', 'FAIL', `connected says last_seq ${lastSeq}, but the first task message has seq ${first}`)
  } else {
    ctx.add('last_seq', 'PASS', `connected says last_seq ${String(lastSeq)}`)
  }
}

export async function checkSinceReplay(ctx: CheckContext): Promise<void> {
  const seqs = taskMessages(ctx.watched)
    .map((message) => message.seq)
    .filter((seq): seq is number => seq !== undefined)
  if (ctx.taskId === null || seqs.length === 0) {
    ctx.add('since replay', 'SKIP', seqs.length === 0 && ctx.taskId !== null ? 'no task message with seq seen' : 'no task to follow')
    return
  }
  const newest = seqs[seqs.length - 1]!
  const since = Math.max(0, newest - 2)
  const url = `${streamUrl(ctx.backend, ctx.taskId)}?since=${since}`
  ctx.log(`since replay: ${url}`)
  const outcome = await ctx.open(url)
  if (!outcome.ok) {
    ctx.add('since replay', 'FAIL', `${url}: ${describeRefusal(outcome, ctx.answerTimeout)}; tabcast adds ?since= to every reconnect, so reconnects would fail`)
    return
  }
  const probe = outcome.probe
  try {
    await probe.waitFor((frame) => taskMessages([frame]).some((message) => message.seq === newest), ctx.answerTimeout)
    const got = taskMessages(probe.frames)
      .map((message) => message.seq)
      .filter((seq): seq is number => seq !== undefined)
    const expected = Array.from({ length: newest - since }, (_, index) => since + 1 + index)
    const epoch = raw(probe.frames[0])?.['epoch']
    if (typeof epoch === 'string') ctx.epochs.push(epoch)
    const announces = ctx.capabilities()?.includes('since') ?? false
    if (got.some((seq) => seq <= since)) {
      ctx.add('since replay', 'FAIL', `asked for since=${since}, got seq ${got.join(', ')}: messages the client already has come again`)
    } else if (expected.every((seq, index) => got[index] === seq)) {
      ctx.add('since replay', 'PASS', `since=${since} replayed seq ${expected.join(', ')}: a reconnecting tab loses nothing`)
    } else {
      ctx.add('since replay', announces ? 'FAIL' : 'WARN', `${announces ? 'capabilities lists "since" but ' : ''}since=${since} gave seq [${got.join(', ')}], not [${expected.join(', ')}]: after a reconnect tabcast reads the status once; intermediate steps sent while disconnected are not replayed`)
    }
  } finally {
    await probe.close()
  }
}

export async function checkBadSince(ctx: CheckContext): Promise<void> {
  const taskId = ctx.taskId ?? randomId('tabcast-check')
  const url = `${streamUrl(ctx.backend, taskId)}?since=abc`
  const outcome = await ctx.open(url)
  if (!outcome.ok) {
    ctx.add('bad since', 'WARN', `${url}: ${describeRefusal(outcome, ctx.answerTimeout)}; PROTOCOL.md says to ignore it with a bad_request note (tabcast never sends one, so nothing breaks)`)
    return
  }
  const probe = outcome.probe
  try {
    const note = await probe.waitFor((frame) => {
      const message = messageOf(frame)
      return message !== null && isConnectionScopedError(message) && message.details?.['code'] === 'bad_request'
    }, ctx.answerTimeout)
    if (note) ctx.add('bad since', 'PASS', '?since=abc is ignored with a bad_request note; the socket stays open')
    else if (probe.closed) ctx.add('bad since', 'WARN', `?since=abc closed the socket (${describeClose(probe.closed)}); tabcast never sends one, so nothing breaks`)
    else ctx.add('bad since', 'WARN', '?since=abc is ignored silently (PROTOCOL.md asks for a bad_request note)')
  } finally {
    await probe.close()
  }
}

export async function checkClientMessages(ctx: CheckContext): Promise<void> {
  const taskId = ctx.taskId ?? randomId('tabcast-check')
  const url = streamUrl(ctx.backend, taskId)
  // One socket for every probe below; reopened (a few times at most) when one closes it.
  const held: { probe: StreamProbe | null; opened: number } = { probe: null, opened: 0 }
  const socket = async (): Promise<StreamProbe | null> => {
    if (held.probe && !held.probe.closed) return held.probe
    if (held.opened++ > 3) return null
    const outcome = await ctx.open(url)
    held.probe = outcome.ok ? outcome.probe : null
    if (held.probe) await held.probe.waitFor(() => true, ctx.answerTimeout)
    return held.probe
  }
  /** Sends a frame; the socket's close, or null when it is still open after the answer window. */
  const tryFrame = async (frame: string | Buffer): Promise<{ closed: Closed | null; answer: Frame | null } | null> => {
    const current = await socket()
    if (!current) return null
    const from = current.frames.length
    current.send(frame)
    const answer = await current.waitFor(() => true, Math.min(1000, ctx.answerTimeout), from)
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
        ctx.add('client messages', 'SKIP', 'could not open a socket for them')
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
      ctx.add('client messages', verdict, `${notes.join('; ')}${verdict === 'PASS' ? '' : '. tabcast reconnects after each, so a bug in one message drops the live stream'}`)
    }

    const fits = `{"type":"tabcast-check","pad":"${'x'.repeat(CLIENT_MESSAGE_LIMIT - 33)}"}`
    const atLimit = await tryFrame(fits)
    const over = `{"type":"tabcast-check","pad":"${'x'.repeat(CLIENT_MESSAGE_LIMIT - 32)}"}`
    if (atLimit === null) {
      ctx.add('message size', 'SKIP', 'could not open a socket for it')
    } else if (atLimit.closed) {
      ctx.add('message size', 'FAIL', `a message of ${Buffer.byteLength(fits)} bytes closed the socket (${describeClose(atLimit.closed)}); tabcast's send() allows up to ${CLIENT_MESSAGE_LIMIT} bytes`)
    } else {
      const tooBig = await tryFrame(over)
      const closed = tooBig?.closed ?? (await held.probe?.waitClosed(Math.min(1000, ctx.answerTimeout))) ?? null
      if (closed?.code === 1009) ctx.add('message size', 'PASS', `takes ${CLIENT_MESSAGE_LIMIT} bytes, closes with 1009 above: the same limit as tabcast's send()`)
      else if (closed) ctx.add('message size', 'WARN', `takes ${CLIENT_MESSAGE_LIMIT} bytes; above, it closes with ${closed.code} (1009 is the code for it)`)
      else ctx.add('message size', 'WARN', `takes ${CLIENT_MESSAGE_LIMIT} bytes and more with no limit in sight (tabcast never sends more, but any client can)`)
    }
  } finally {
    await held.probe?.close()
  }
}
