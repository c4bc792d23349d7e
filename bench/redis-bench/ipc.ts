/**
 * The Redis benchmark's IPC: the server benchmark's request/response channel, with
 * children started on tsx from a file.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { ChildChannel } from '../server-bench/ipc.js'

export { preciseNow, serveRequests } from '../server-bench/ipc.js'

/** Parent side: a child on tsx, and typed calls into it. */
export class Child extends ChildChannel {
  constructor(name: string, file: string, cwd: string) {
    super(name, fork(file, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd }))
  }

  get process(): ChildProcess {
    return this.child
  }
}
