/**
 * A job in a process of its own, for the test of a process that dies mid-job: a
 * reference server on Redis that creates a task, publishes one progress message, says
 * "published" on stdout, and then stays alive (mid-job) until the test kills it.
 *
 * Usage: node --import tsx tests/support/redis-job-process.ts <redis url> <key prefix> <task id> <staleAfter ms>
 */
import { createTabcastServer, silentLogger } from '../../server/index.js'

const [url, keyPrefix, taskId, staleAfter] = process.argv.slice(2)
if (url === undefined || keyPrefix === undefined || taskId === undefined || staleAfter === undefined) {
  throw new Error('usage: redis-job-process.ts <redis url> <key prefix> <task id> <staleAfter ms>')
}
const server = createTabcastServer({ redis: { url, keyPrefix, maxReconnectDelay: 100 }, demo: false, staleAfter: Number(staleAfter), logger: silentLogger })
while (!(await server.store.health()).ok) await new Promise((resolve) => setTimeout(resolve, 20))
await server.createTask({ taskId, taskName: '오디오 생성' })
await server.progress(taskId, 0.3, 'TTS 생성 중... (시도 1/5)')
process.stdout.write('published\n')
// Mid-job until killed.
setInterval(() => {}, 60_000)
