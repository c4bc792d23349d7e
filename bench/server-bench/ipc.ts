/**
 * Request/response over a child process's IPC channel, shared by the benchmark's
 * orchestrator and its child processes (the server, the subscribers).
 */
import type { ChildProcess } from 'node:child_process'

export interface Request {
  id: number
  command: string
  args: unknown
}

export type Response = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string }

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
  // The orchestrator going away must take its children with it.
  process.on('disconnect', () => process.exit(0))
}

/** Parent side: a typed call into a child. */
export class ChildChannel {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  readonly exited: Promise<number | null>

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.on('message', (response: Response) => {
      const waiter = this.pending.get(response.id)
      if (!waiter) return
      this.pending.delete(response.id)
      if (response.ok) waiter.resolve(response.result)
      else waiter.reject(new Error(`${name}: ${response.error}`))
    })
    this.exited = new Promise((resolve) => {
      child.on('exit', (code) => {
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
      this.child.send({ id, command, args } satisfies Request)
    })
  }

  /** Ends the child by its pid (never by name). */
  kill(): void {
    if (this.child.exitCode === null && this.child.pid !== undefined) this.child.kill('SIGKILL')
  }
}
