/**
 * The FastAPI example (examples/fastapi/app.py) under a real uvicorn on 127.0.0.1, for
 * the integration and end-to-end tests: the Python that has FastAPI, a free port, a
 * readiness wait, and stop / kill / start on the same port (a new process, so a new
 * epoch, as a deploy or a crash gives).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

const EXAMPLE_DIR = fileURLToPath(new URL('../../examples/fastapi/', import.meta.url))
const IMPORTS = 'import fastapi, uvicorn, wsproto'

export const HOW_TO_GET_FASTAPI = [
  'The FastAPI example needs a Python 3 that can `import fastapi, uvicorn, wsproto`. Either:',
  '  - on Debian/Ubuntu: `apt-get install -y python3-fastapi python3-uvicorn python3-wsproto` (for /usr/bin/python3), or',
  '  - point TABCAST_PYTHON at a python3 that has them (pip install fastapi uvicorn wsproto).',
  '`.ci/run` installs the Debian packages when they are missing.',
].join('\n')

let found: string | undefined

/**
 * The interpreter to use: `TABCAST_PYTHON`, then /usr/bin/python3 (Debian's packages;
 * a pyenv `python3` earlier on PATH usually lacks them), then `python3` on PATH. Throws
 * with instructions when none can import FastAPI, uvicorn and wsproto: these tests are
 * part of the suite, never skipped.
 */
export function findPython(): string {
  if (found !== undefined) return found
  const fromEnv = process.env['TABCAST_PYTHON']
  const candidates = fromEnv ? [fromEnv] : ['/usr/bin/python3', 'python3']
  const tried: string[] = []
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['-c', IMPORTS], { encoding: 'utf8', timeout: 20_000 })
    if (probe.status === 0) return (found = candidate)
    tried.push(`${candidate}: ${(probe.error?.message ?? probe.stderr.trim().split('\n').pop() ?? `exit ${probe.status}`).slice(0, 200)}`)
  }
  throw new Error(`no usable Python found (${fromEnv ? 'TABCAST_PYTHON' : 'tried'}):\n  ${tried.join('\n  ')}\n\n${HOW_TO_GET_FASTAPI}`)
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** What `/healthz` of the example says. */
export interface ExampleHealth {
  ok: boolean
  epoch: string
  connections: number
  connections_by_task: Record<string, number>
  opened_by_task: Record<string, number>
}

export interface FastapiBackend {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly http: string
  /** `127.0.0.1:<port>`, the form pages take as `backendUrl`. */
  readonly backendUrl: string
  /** The running uvicorn's pid (throws while stopped). */
  readonly pid: number
  /** uvicorn's output so far (for failure messages). */
  output(): string
  health(): Promise<ExampleHealth>
  /** Open sockets of a task, as the example counts them. */
  connections(taskId: string): Promise<number>
  /** Sockets ever accepted for a task by the current process. */
  opened(taskId: string): Promise<number>
  /** `POST /api/v1/projects`; `steps: 0` creates a task driven by `event()`. */
  create(body: Record<string, unknown>): Promise<{ project_id: string; token?: string; epoch: string }>
  /** `POST /api/v1/projects/{id}/events`: publishes a message for the task. */
  event(taskId: string, body: Record<string, unknown>): Promise<Record<string, unknown>>
  /** Sends a signal to uvicorn and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
  /** Starts a new uvicorn on the same port and waits until it answers. */
  start(): Promise<void>
  close(): Promise<void>
}

export interface FastapiOptions {
  /** Extra environment for app.py (TABCAST_AUTH_SECRET, TABCAST_STALE_AFTER_MS, …). */
  env?: Record<string, string>
  /**
   * Start a new uvicorn whenever the running one exits on its own (a signal from
   * outside, as `check-backend --restart-command` sends), like a process supervisor.
   * @default false
   */
  supervise?: boolean
}

const READY_LIMIT_MS = 20_000

export async function startFastapiBackend(options: FastapiOptions = {}): Promise<FastapiBackend> {
  const python = findPython()
  const port = await freePort()
  const http = `http://127.0.0.1:${port}`
  let child: ChildProcess | null = null
  let log = ''
  const children = new Set<ChildProcess>()
  // A test process that dies must not leave uvicorn running on the port.
  const killAll = (): void => {
    for (const running of children) running.kill('SIGKILL')
  }
  process.once('exit', killAll)

  const launch = async (): Promise<void> => {
    const started = spawn(python, ['-m', 'uvicorn', 'app:app', '--ws', 'wsproto', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning'], {
      cwd: EXAMPLE_DIR,
      // The demo endpoints create and drive the tests' tasks; no __pycache__ is left in the example's directory.
      env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', TABCAST_DEMO: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(started)
    started.on('exit', () => {
      children.delete(started)
      // stop() forgets the child first, so only an exit from outside gets here with it current.
      if (options.supervise && child === started) {
        child = null
        launch().catch((error: unknown) => (log += `\nrestart failed: ${String(error)}\n`))
      }
    })
    started.stdout?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk))
    started.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk))
    child = started
    const deadline = Date.now() + READY_LIMIT_MS
    for (;;) {
      if (started.exitCode !== null) throw new Error(`uvicorn exited with ${started.exitCode} before answering:\n${log}`)
      try {
        const response = await fetch(`${http}/healthz`, { signal: AbortSignal.timeout(1000) })
        if (response.ok) return
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`uvicorn did not answer on ${http} within ${READY_LIMIT_MS} ms:\n${log}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  const post = async (path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const response = await fetch(`${http}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } })
    const answer = (await response.json()) as Record<string, unknown>
    if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${JSON.stringify(answer)}`)
    return answer
  }

  const health = async (): Promise<ExampleHealth> => (await (await fetch(`${http}/healthz`)).json()) as ExampleHealth

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const running = child
    child = null
    if (!running || running.exitCode !== null) return
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill(signal)
    // uvicorn waits for open connections before it exits; one stuck socket must not hang the suite.
    const forced = setTimeout(() => running.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(forced)
  }

  try {
    await launch()
  } catch (error) {
    killAll()
    process.off('exit', killAll)
    throw error
  }
  return {
    port,
    http,
    backendUrl: `127.0.0.1:${port}`,
    get pid() {
      if (!child?.pid) throw new Error('uvicorn is not running')
      return child.pid
    },
    output: () => log,
    health,
    connections: async (taskId) => (await health()).connections_by_task[taskId] ?? 0,
    opened: async (taskId) => (await health()).opened_by_task[taskId] ?? 0,
    create: async (body) => (await post('/api/v1/projects', body)) as unknown as { project_id: string; token?: string; epoch: string },
    event: (taskId, body) => post(`/api/v1/projects/${encodeURIComponent(taskId)}/events`, body),
    stop,
    async start() {
      if (child) throw new Error('uvicorn is already running')
      await launch()
    },
    async close() {
      await stop('SIGTERM')
      killAll()
      process.off('exit', killAll)
    },
  }
}
