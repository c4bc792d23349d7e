/**
 * Request/response over a child process's IPC channel, between the Redis benchmark's
 * orchestrator (bench/redis.ts) and its children (servers, subscribers).
 */
import { fork, type ChildProcess } from 'node:child_process'

interface Request {
  id: number
  command: string
  args: unknown
}

type Response = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string }

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now()
}

/** Child side: answers requests with the handlers' results. */
export function serveRequests(handlers: Record<string, (args: never) => unknown>): void {
  const send = (response: Response): void => {
    process.send?.(response)
  }
  process.on('message', (raw: Request) => {
    const handler = handlers[raw.command]
    if (!handler) {
      send({ id: raw.id, ok: false, error: `unknown command ${raw.command}` })
      return
    }
    Promise.resolve()
      .then(() => handler(raw.args as never))
      .then(
        (result) => send({ id: raw.id, ok: true, result }),
        (error: unknown) => send({ id: raw.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
      )
  })
  // The orchestrator going away takes its children with it.
  process.on('disconnect', () => process.exit(0))
}

/** Parent side: a child on tsx, and typed calls into it. */
export class Child {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  readonly process: ChildProcess
  readonly exited: Promise<number | null>

  constructor(
    readonly name: string,
    file: string,
    cwd: string,
  ) {
    this.process = fork(file, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd })
    this.process.on('message', (response: Response) => {
      const waiter = this.pending.get(response.id)
      if (!waiter) return
      this.pending.delete(response.id)
      if (response.ok) waiter.resolve(response.result)
      else waiter.reject(new Error(`${name}: ${response.error}`))
    })
    this.exited = new Promise((resolve) => {
      this.process.on('exit', (code) => {
        for (const waiter of this.pending.values()) waiter.reject(new Error(`${name} exited with code ${String(code)}`))
        this.pending.clear()
        resolve(code)
      })
    })
  }

  call<T>(command: string, args: unknown = {}): Promise<T> {
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.process.send({ id, command, args } satisfies Request)
    })
  }

  /** Ends the child by its pid. */
  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null && this.process.pid !== undefined) this.process.kill('SIGKILL')
  }
}
