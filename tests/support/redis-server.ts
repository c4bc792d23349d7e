/**
 * A real `redis-server` for the tests: a child process on a free loopback port, in a
 * temporary directory, stopped by its pid. `persistent` turns on the append-only file
 * with an fsync before every reply (`appendfsync always`), so a write Redis answered
 * survives a `kill -9` and a restart on the same port, the way a production Redis with
 * AOF keeps what it acknowledged.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

/** Upper bound on a start or a stop, so a broken binary fails the test instead of hanging it. */
const START_LIMIT_MS = 15_000

/** Servers still running, killed by pid if the process exits without stopping them (a test runner crash). */
const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
})

/** The `redis-server` binary: `$REDIS_SERVER`, or the first on `PATH`; null when there is none. */
export function findRedisServer(): string | null {
  const candidates = [process.env['REDIS_SERVER'], ...(process.env['PATH'] ?? '').split(delimiter).map((dir) => join(dir, 'redis-server')), '/usr/bin/redis-server']
  for (const candidate of candidates) {
    if (!candidate) continue
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return null
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      probe.close(() => resolve(port))
    })
  })
}

export interface RedisServerOptions {
  /** AOF with `appendfsync always`: acknowledged writes survive a kill and restart. */
  persistent?: boolean
}

export class RedisServer {
  private child: ChildProcess | null = null
  private exited: Promise<void> = Promise.resolve()
  private readonly dir: string

  private constructor(
    private readonly binary: string,
    readonly port: number,
    private readonly options: RedisServerOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'tabcast-redis-'))
  }

  /** Starts a server on a free port (trying another port if the first was taken meanwhile). */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const binary = findRedisServer()
    if (binary === null) throw new Error('no redis-server binary (install redis-server, or set REDIS_SERVER)')
    let lastError: unknown
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const server = new RedisServer(binary, await freePort(), options)
      try {
        await server.launch()
        return server
      } catch (error) {
        lastError = error
        await server.stop()
      }
    }
    throw lastError
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get running(): boolean {
    return this.child !== null
  }

  /** Kills the server with SIGKILL (a crash: no shutdown save) and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.child
    if (child === null) return
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
    await this.exited
  }

  /** Starts it again on the same port and directory (the AOF, if any, is loaded first). */
  async restart(): Promise<void> {
    await this.kill()
    await this.launch()
  }

  /** Kills it and removes its directory. */
  async stop(): Promise<void> {
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }

  private launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--daemonize', 'no', '--logfile', '']
    if (this.options.persistent) args.push('--appendonly', 'yes', '--appendfsync', 'always')
    else args.push('--appendonly', 'no')
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    live.add(child)
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        live.delete(child)
        if (this.child === child) this.child = null
        resolve()
      })
    })
    return new Promise((resolve, reject) => {
      let output = ''
      const timer = setTimeout(() => {
        finish(new Error(`redis-server on port ${this.port} did not become ready within ${START_LIMIT_MS} ms:\n${output}`))
      }, START_LIMIT_MS)
      const finish = (error?: Error): void => {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        child.off('exit', onExit)
        // Keep draining its output so the pipe never fills up.
        child.stdout?.resume()
        child.stderr?.resume()
        if (error) {
          if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
          reject(error)
        } else resolve()
      }
      const onData = (chunk: Buffer): void => {
        output += chunk.toString()
        if (/Ready to accept connections/.test(output)) finish()
      }
      const onExit = (code: number | null): void => finish(new Error(`redis-server exited with ${String(code)} before it was ready:\n${output}`))
      child.stdout?.on('data', onData)
      child.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
      })
      child.once('exit', onExit)
    })
  }
}
