#!/usr/bin/env node
/**
 * `npm run server`: the reference backend on the guide's port.
 *
 *   npm run server -- --port 8000 --host 127.0.0.1
 *   PORT=9000 HOST=0.0.0.0 npm run server
 *   REDIS_URL=redis://127.0.0.1:6379 npm run server     (several processes, one Redis: docs/redis.md)
 *   TABCAST_AUTH_SECRET=$(openssl rand -base64 32) npm run server -- --demo
 *
 * Flags win over environment variables. Other settings (origins, compression) are
 * available through `TABCAST_ORIGINS` (comma-separated, or `*`) and
 * `TABCAST_COMPRESSION=1`, `TABCAST_LOG=debug|info|warn|error`.
 */
import { parseArgs } from 'node:util'
import {
  createConsoleLogger,
  createRedisTaskStore,
  createTabcastServer,
  DEFAULT_HOST,
  DEFAULT_PORT,
  type LogLevel,
  type TabcastServerOptions,
  type TaskStore,
} from './index.js'
import { redactRedisUrl, validateRedisUrl } from './redis-store.js'
import { stopOnSignals } from './shutdown.js'

const USAGE = `usage: tabcast-server [--port <port>] [--host <host>] [--redis-url <url>] [--demo]

  --port       TCP port (env PORT)            default ${DEFAULT_PORT}
  --host       interface to bind (env HOST)   default ${DEFAULT_HOST}; 0.0.0.0 for all
  --redis-url  keep tasks in Redis, shared by every process given the same URL
               (env REDIS_URL; needs the ioredis package)   default: in memory
  --demo       serve POST /api/v1/projects, the demo job (env TABCAST_DEMO=1)   default: off
env: TABCAST_AUTH_SECRET=<at least 32 bytes>  signed per-task tokens (default: auth off)
     TABCAST_ORIGINS="https://a.example,https://b.example" or "*" (default: localhost pages)
     TABCAST_COMPRESSION=1   TABCAST_LOG=debug|info|warn|error (default info)`

function fail(message: string): never {
  console.error(`tabcast server: ${message}\n\n${USAGE}`)
  process.exit(2)
}

function parsePort(value: string, from: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`${from} must be a port number from 0 to 65535, got ${JSON.stringify(value)}`)
  return port
}

async function main(): Promise<void> {
  let values: {
    port?: string | undefined
    host?: string | undefined
    'redis-url'?: string | undefined
    demo?: boolean | undefined
    help?: boolean | undefined
  }
  try {
    values = parseArgs({
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        'redis-url': { type: 'string' },
        demo: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error))
  }
  if (values.help) {
    console.log(USAGE)
    return
  }
  const port =
    values.port !== undefined
      ? parsePort(values.port, '--port')
      : process.env['PORT'] !== undefined && process.env['PORT'] !== ''
        ? parsePort(process.env['PORT'], 'PORT')
        : DEFAULT_PORT
  const host = values.host ?? (process.env['HOST'] || DEFAULT_HOST)

  const levelEnv = process.env['TABCAST_LOG'] ?? 'info'
  if (!['debug', 'info', 'warn', 'error'].includes(levelEnv)) fail(`TABCAST_LOG must be debug, info, warn or error, got ${JSON.stringify(levelEnv)}`)
  const logger = createConsoleLogger(levelEnv as LogLevel)

  const options: TabcastServerOptions = { logger }
  const origins = process.env['TABCAST_ORIGINS']
  if (origins !== undefined && origins.trim() !== '') {
    options.allowedOrigins = origins.trim() === '*' ? '*' : origins.split(',').map((origin) => origin.trim()).filter(Boolean)
  }
  if (process.env['TABCAST_COMPRESSION'] === '1') options.compression = true
  const demoEnv = process.env['TABCAST_DEMO']
  if (demoEnv !== undefined && demoEnv !== '' && demoEnv !== '0' && demoEnv !== '1') fail(`TABCAST_DEMO must be 0 or 1, got ${JSON.stringify(demoEnv)}`)
  options.demo = values.demo ?? demoEnv === '1'
  const secret = process.env['TABCAST_AUTH_SECRET']
  if (secret !== undefined && secret !== '') {
    if (Buffer.byteLength(secret) < 32) fail(`TABCAST_AUTH_SECRET must be at least 32 bytes (openssl rand -base64 32 makes one), got ${Buffer.byteLength(secret)}`)
    options.auth = { secret }
  }

  const redisSetting = values['redis-url'] ?? (process.env['REDIS_URL'] || undefined)
  let redisStore: TaskStore | null = null
  if (redisSetting !== undefined) {
    let url: string
    try {
      url = validateRedisUrl(redisSetting, values['redis-url'] !== undefined ? '--redis-url' : 'REDIS_URL')
    } catch (error) {
      fail(error instanceof Error ? error.message : String(error))
    }
    // Not waiting for Redis: a process may start while Redis is away; it answers 503 on
    // /healthz and refuses publishes until Redis is reached. A missing ioredis fails here.
    redisStore = await createRedisTaskStore({ url, logger, waitForConnection: false })
    options.store = redisStore
  }

  const server = createTabcastServer(options)
  let address
  try {
    address = await server.listen(port, host)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') fail(`port ${port} on ${host} is already in use (try --port 0 for a free one)`)
    throw error
  }
  const ws = address.url.replace(/^http/, 'ws')
  console.log(
    [
      `tabcast server listening on ${address.url}`,
      `  stream   ${ws}/api/v1/ws/projects/{task_id}/stream`,
      `  status   ${address.url}/api/v1/projects/{task_id}/status`,
      options.demo ? `  create   POST ${address.url}/api/v1/projects   (demo audio generation)` : '  create   off (--demo or TABCAST_DEMO=1 serves the demo job)',
      `  health   ${address.url}/healthz`,
      options.auth
        ? '  auth: signed task tokens (TABCAST_AUTH_SECRET), valid 1 h'
        : '  auth: off (anyone who knows a task id can follow it)',
      `  origins  ${origins?.trim() ? origins : 'localhost pages (http/https, any port)'}; compression ${options.compression ? 'on' : 'off'}`,
      `  store    ${redisSetting === undefined ? 'in memory (this process only)' : `redis ${redactRedisUrl(redisSetting.trim())}`}`,
    ].join('\n'),
  )

  stopOnSignals({
    label: 'tabcast server',
    action: 'closing connections (going away)',
    close: () => server.close().then(() => redisStore?.close()),
  })
}

main().catch((error: unknown) => {
  console.error('tabcast server: failed to start', error)
  process.exit(1)
})
