/**
 * `npm start` / `npm run dev`: the reference backend and the demo app, in one command.
 *
 *   npm start                   build the demo if dist/ is missing or stale, serve it (vite preview)
 *   npm run dev                 the same with Vite's dev server (HMR) instead of dist/
 *   npm start -- --port 4000 --backend-port 9000
 *   PORT=4000 BACKEND_PORT=9000 npm start
 *
 * Flags win over environment variables. Ctrl+C (SIGINT) or SIGTERM stops both servers.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { build, createServer, preview, type PreviewServer, type ViteDevServer } from 'vite'
import { createConsoleLogger, createTabcastServer, DEFAULT_PORT as DEFAULT_BACKEND_PORT, type TabcastServer } from '../server/index.js'
import { stopOnSignals } from '../server/shutdown.js'
import { newestMtime } from './mtime.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DIST = join(ROOT, 'dist')
/** The guide's frontend port. */
const DEFAULT_PORT = 3020
/** Bound on loopback: this is a development demo, not something to expose. */
const HOST = '127.0.0.1'
/** Everything the built demo is made from; a newer file than dist/index.html means a rebuild. */
const BUILD_INPUTS = ['index.html', 'vite.config.ts', 'package.json', 'package-lock.json', 'tsconfig.json', 'app', 'src', 'worker', 'public']

const USAGE = `usage: npm start -- [--port <port>] [--backend-port <port>] [--rebuild]
       npm run dev -- [--port <port>] [--backend-port <port>]

  --port          demo app port (env PORT)                default ${DEFAULT_PORT}
  --backend-port  reference backend port (env BACKEND_PORT) default ${DEFAULT_BACKEND_PORT}
  --dev           Vite dev server instead of the built dist/ (what \`npm run dev\` passes)
  --rebuild       build dist/ even if it looks current
env: TABCAST_LOG=debug|info|warn|error (backend log level, default warn)
     TABCAST_AUTH_SECRET=<at least 32 bytes>  signed per-task tokens (default: auth off)`

function fail(message: string): never {
  console.error(`tabcast demo: ${message}\n\n${USAGE}`)
  process.exit(2)
}

function parsePort(value: string, from: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`${from} must be a port number from 1 to 65535, got ${JSON.stringify(value)}`)
  return port
}

function portSetting(flag: string | undefined, flagName: string, envName: string, fallback: number): number {
  if (flag !== undefined) return parsePort(flag, flagName)
  const env = process.env[envName]
  if (env !== undefined && env !== '') return parsePort(env, envName)
  return fallback
}

interface Settings {
  dev: boolean
  rebuild: boolean
  port: number
  backendPort: number
  logLevel: 'debug' | 'info' | 'warn' | 'error'
}

function readSettings(): Settings {
  let values: { dev?: boolean; rebuild?: boolean; port?: string; 'backend-port'?: string; help?: boolean }
  try {
    values = parseArgs({
      options: {
        dev: { type: 'boolean' },
        rebuild: { type: 'boolean' },
        port: { type: 'string', short: 'p' },
        'backend-port': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error))
  }
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const logLevel = process.env['TABCAST_LOG'] || 'warn'
  if (logLevel !== 'debug' && logLevel !== 'info' && logLevel !== 'warn' && logLevel !== 'error') {
    fail(`TABCAST_LOG must be debug, info, warn or error, got ${JSON.stringify(logLevel)}`)
  }
  return {
    dev: values.dev ?? false,
    rebuild: values.rebuild ?? false,
    port: portSetting(values.port, '--port', 'PORT', DEFAULT_PORT),
    backendPort: portSetting(values['backend-port'], '--backend-port', 'BACKEND_PORT', DEFAULT_BACKEND_PORT),
    logLevel,
  }
}

/** Why dist/ must be (re)built, or `null` when it is current. */
function buildReason(rebuild: boolean): string | null {
  if (rebuild) return '--rebuild was given'
  const builtIndex = join(DIST, 'index.html')
  if (!existsSync(builtIndex)) return 'dist/ has no build yet'
  const assets = join(DIST, 'assets')
  if (!existsSync(assets) || readdirSync(assets).length === 0) return 'dist/assets is empty'
  const builtAt = statSync(builtIndex).mtimeMs
  const newest = newestMtime(BUILD_INPUTS.map((input) => join(ROOT, input)))
  if (newest !== null && newest.mtimeMs > builtAt) return `${newest.path.slice(ROOT.length)} changed since the last build`
  return null
}

/** Starts the reference backend, or reuses a tabcast backend already listening on the port. */
async function startBackend(settings: Settings): Promise<{ server: TabcastServer | null; url: string }> {
  const server = createTabcastServer({
    // The default policy (pages on localhost / 127.0.0.1 / [::1], any port) admits the
    // demo at http://localhost:3020 and http://127.0.0.1:3020, and any --port.
    logger: createConsoleLogger(settings.logLevel),
    // The demo's "데모 작업 시작" button creates tasks with POST /api/v1/projects.
    demo: true,
    ...(process.env['TABCAST_AUTH_SECRET'] ? { auth: { secret: process.env['TABCAST_AUTH_SECRET'] } } : {}),
    // Like `npm run server`: with REDIS_URL set, tasks live in Redis (docs/redis.md).
    ...(process.env['REDIS_URL'] ? { redis: process.env['REDIS_URL'] } : {}),
  })
  try {
    const address = await server.listen(settings.backendPort, HOST)
    return { server, url: address.url }
  } catch (error) {
    await server.close()
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
    const url = `http://${HOST}:${settings.backendPort}`
    if (await isTabcastBackend(url)) {
      console.log(`tabcast demo: a tabcast backend already runs on ${url}; using it`)
      return { server: null, url }
    }
    fail(`port ${settings.backendPort} is in use by something that is not a tabcast backend; set BACKEND_PORT or --backend-port`)
  }
}

async function isTabcastBackend(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })
    const body = (await response.json()) as unknown
    // /healthz says only {"ok": …} by default.
    return typeof body === 'object' && body !== null && 'ok' in body && typeof body.ok === 'boolean'
  } catch {
    return false
  }
}

type Frontend = { kind: 'preview'; server: PreviewServer } | { kind: 'dev'; server: ViteDevServer }

async function startFrontend(settings: Settings): Promise<{ frontend: Frontend; port: number }> {
  // strictPort: the guide's port or a clear error. Another port would be a different
  // origin, with its own SharedWorker, and would not match the URLs in the docs.
  const serverOptions = { port: settings.port, host: HOST, strictPort: true }
  try {
    if (settings.dev) {
      // Build outputs and scratch files are no source: a write there must not reload the pages.
      const ignored = ['**/.tmp/**', '**/dist/**', '**/lib/**', '**/bench-results/**', '**/test-results/**', '**/*.tgz']
      const server = await createServer({ root: ROOT, server: { ...serverOptions, watch: { ignored } } })
      await server.listen()
      return { frontend: { kind: 'dev', server }, port: listeningPort(server.httpServer, settings.port) }
    }
    const server = await preview({ root: ROOT, preview: serverOptions })
    return { frontend: { kind: 'preview', server }, port: listeningPort(server.httpServer, settings.port) }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    if (/port .* is already in use/i.test(message)) fail(`port ${settings.port} is already in use; set PORT or --port`)
    throw error
  }
}

function listeningPort(server: { address(): unknown } | null, fallback: number): number {
  const address = server?.address()
  return typeof address === 'object' && address !== null && 'port' in address && typeof address.port === 'number' ? address.port : fallback
}

function printUrls(settings: Settings, backendUrl: string, port: number): void {
  const app = `http://localhost:${port}`
  const backendParam = settings.backendPort === DEFAULT_BACKEND_PORT ? '' : `backendUrl=localhost:${settings.backendPort}`
  const withBackend = (path: string): string => (backendParam === '' ? path : `${path}${path.includes('?') ? '&' : '?'}${backendParam}`)
  console.log(
    [
      '',
      `  tabcast demo (${settings.dev ? 'Vite dev server' : 'built dist/, vite preview'})`,
      '',
      `  Home        ${app}${withBackend('/')}`,
      `  Test page   ${app}${withBackend('/test-websocket?taskId=audio_generation_12345')}`,
      `  Studio      ${app}${withBackend('/production')}`,
      `  Backend     ${backendUrl}  (ws ${backendUrl.replace(/^http/, 'ws')}/api/v1/ws/projects/{task_id}/stream)`,
      `  auth: ${process.env['TABCAST_AUTH_SECRET'] ? 'signed task tokens (TABCAST_AUTH_SECRET)' : 'off (anyone who knows a task id can follow it)'}`,
      '',
      '  Open the test page in three tabs and press "데모 작업 시작": the inspector reads "3 tabs, 1 socket".',
      '  Press Ctrl+C to stop.',
      '',
    ].join('\n'),
  )
}

async function main(): Promise<void> {
  const settings = readSettings()

  if (!settings.dev) {
    const reason = buildReason(settings.rebuild)
    if (reason !== null) {
      console.log(`tabcast demo: building the demo into dist/ (${reason})…`)
      const started = Date.now()
      await build({ root: ROOT, logLevel: 'warn' })
      console.log(`tabcast demo: built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    }
  }

  const backend = await startBackend(settings)
  let started: { frontend: Frontend; port: number }
  try {
    started = await startFrontend(settings)
  } catch (error) {
    await backend.server?.close()
    throw error
  }
  const { frontend, port } = started
  printUrls(settings, backend.url, port)

  takeOverShutdown()
  stopOnSignals({
    label: 'tabcast demo',
    action: 'stopping',
    close: () => Promise.all([frontend.server.close(), backend.server?.close()]),
  })
}

/**
 * Vite's servers install a SIGTERM handler (and one for the end of stdin) that closes
 * the Vite server and exits at once, cutting the backend's close short. Remove them;
 * `stop()` closes both servers. (`process.listeners` does not list tsx's own hidden
 * signal relay, so that one stays.)
 */
function takeOverShutdown(): void {
  for (const listener of process.listeners('SIGTERM')) process.off('SIGTERM', listener)
  if (process.env['CI'] !== 'true') {
    for (const listener of process.stdin.listeners('end')) process.stdin.off('end', listener as () => void)
  }
}

main().catch((error: unknown) => {
  console.error('tabcast demo: failed to start', error)
  process.exit(1)
})
