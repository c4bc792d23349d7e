#!/usr/bin/env node
/**
 * The `tabcast` command of the package:
 *
 *   npx tabcast check-backend http://127.0.0.1:8000 --start-url http://127.0.0.1:8000/api/v1/projects --origin http://localhost:3020
 *
 * Exit codes: 0 no FAIL, 1 at least one FAIL, 2 a usage error.
 */
import { parseArgs } from 'node:util'
import { checkBackend, formatTable, UsageError, type CheckBackendOptions } from './check-backend/index.js'

const USAGE = `usage: tabcast check-backend <backend url> [options]

Checks a running tabcast backend from the outside (PROTOCOL.md) and says, feature by
feature, what tabcast will do with it.

  --task <id>              an existing task to follow
  --start-url <url>        POST {} there to start a task (the answer names project_id or task_id, and token)
  --start-command <cmd>    a shell command that starts a task and prints its id (or that JSON) last
  --origin <origin>        the origin of your pages (checks CORS; e.g. https://studio.example.com)
  --token <token>          a token for the task (Sec-WebSocket-Protocol / Authorization: Bearer)
  --restart-command <cmd>  a shell command that restarts the backend (checks what tabs see then)
  --timeout <ms>           how long to follow the task and wait after a restart   default 30000
  --answer-timeout <ms>    how long to wait for any single answer                 default 3000
  --json                   print the report as JSON

exit code: 0 no FAIL, 1 some FAIL, 2 usage error`

function parseMs(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  const ms = /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(ms) || ms < 1) throw new UsageError(`--${name} must be a whole number of milliseconds, got ${JSON.stringify(value)}`)
  return ms
}

async function checkBackendCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      task: { type: 'string' },
      'start-url': { type: 'string' },
      'start-command': { type: 'string' },
      origin: { type: 'string' },
      token: { type: 'string' },
      'restart-command': { type: 'string' },
      timeout: { type: 'string' },
      'answer-timeout': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const [url, ...extra] = positionals
  if (url === undefined) throw new UsageError('give the backend URL, e.g. http://127.0.0.1:8000')
  if (extra.length > 0) throw new UsageError(`one backend URL only, got also ${extra.join(' ')}`)
  const starts = [values.task, values['start-url'], values['start-command']].filter((value) => value !== undefined)
  if (starts.length > 1) throw new UsageError('give one of --task, --start-url and --start-command')
  const options: CheckBackendOptions = {
    url,
    task: values.task,
    startUrl: values['start-url'],
    startCommand: values['start-command'],
    origin: values.origin?.replace(/\/+$/, ''),
    token: values.token,
    restartCommand: values['restart-command'],
    timeout: parseMs(values.timeout, 'timeout'),
    answerTimeout: parseMs(values['answer-timeout'], 'answer-timeout'),
    log: values.json ? undefined : (line: string) => process.stderr.write(`… ${line}\n`),
  }
  const report = await checkBackend(options)
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatTable(report, process.stdout.columns ?? 100))
  return report.ok ? 0 : 1
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'check-backend') return await checkBackendCommand(rest)
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      console.log(USAGE)
      return command === undefined ? 2 : 0
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`tabcast: ${error.message}\n\n${USAGE}`)
      return 2
    }
    throw error
  }
}

// Let stdout drain before the exit code is set; no socket or timer of the checks outlives them.
process.exitCode = await main(process.argv.slice(2))
