/**
 * `tabcast check-backend <url>`: checks a running backend from the outside against
 * PROTOCOL.md and says, feature by feature, what tabcast will do with it.
 *
 * It never floods: it opens about ten sockets one after the other (never two at once
 * but for the restart check), sends a handful of frames on each, and every wait is
 * bounded by `answerTimeout` (the task's run by `timeout`), so it stops by itself.
 */
import { resolveBackend } from '../../src/endpoints.js'
import { CheckContext, UsageError, type CheckBackendOptions } from './context.js'
import { checkAuth, checkEpochAndCapabilities, checkRestart } from './extension-checks.js'
import { checkBadTaskId, checkForeignOrigin, checkStatus, checkUnknownTask } from './http-checks.js'
import { buildReport, type CheckReport } from './report.js'
import { checkBadSince, checkClientMessages, checkSinceReplay, checkStream } from './stream-checks.js'
import { startTask } from './task-source.js'

export { CLIENT_MESSAGE_LIMIT, UsageError, type CheckBackendOptions } from './context.js'
export { formatTable, type CheckReport, type CheckResult, type Verdict } from './report.js'

async function run(ctx: CheckContext): Promise<void> {
  const source = await startTask(ctx)
  ctx.taskId = source.taskId
  ctx.token = source.token
  await checkStream(ctx)
  if (ctx.streamWorks) {
    await checkSinceReplay(ctx)
    await checkBadSince(ctx)
    await checkClientMessages(ctx)
  }
  await checkStatus(ctx)
  if (ctx.streamWorks) {
    await checkForeignOrigin(ctx)
    await checkBadTaskId(ctx)
    await checkUnknownTask(ctx)
    await checkAuth(ctx)
  } else {
    // A stream that refuses everyone says nothing by refusing a foreign origin or a bad id.
    for (const feature of ['foreign origin', 'bad task id', 'unknown task', 'auth']) ctx.add(feature, 'SKIP', 'the stream does not work')
  }
  checkEpochAndCapabilities(ctx)
  await checkRestart(ctx)
}

/** Runs every check against the backend and returns the report. */
export async function checkBackend(options: CheckBackendOptions): Promise<CheckReport> {
  const backend = resolveBackend(options.url)
  if (!backend.ok) throw new UsageError(backend.error)
  if (options.token !== undefined && !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(options.token)) {
    throw new UsageError('--token must consist of RFC 7230 token characters (base64url, ".", "-", "_", "~", …)')
  }
  const ctx = new CheckContext(options, backend.value)
  await run(ctx)
  return buildReport(options.url, ctx.taskId, ctx.results)
}
