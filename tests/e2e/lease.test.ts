/**
 * Issue 11: "A job that dies leaves a live-looking bar forever." The reference server
 * holds a lease per running task; a job that stops reporting has its task failed when
 * the lease runs out, and every tab shows that failure (the stalled notice before it is
 * the client's, tested with the client).
 */
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { expectEveryTab, openTabs, testPageUrl, uniqueTaskId } from './support/tabs.js'

const STALE_AFTER = 1500

const env = setUpE2eEnvironment({ staleAfter: STALE_AFTER })

/** Runs `steps` while the job is alive (heartbeats), however long the tabs take to open. */
async function whileJobIsAlive<T>(taskId: string, steps: () => Promise<T>): Promise<T> {
  const heartbeats = setInterval(() => void env.backend.server.heartbeat(taskId).catch(() => {}), STALE_AFTER / 5)
  try {
    return await steps()
  } finally {
    clearInterval(heartbeats)
  }
}

describe('a job that stops reporting', () => {
  it('every tab shows the task failed when its lease runs out, with the reason, on one socket', async () => {
    const { backend } = env
    const taskId = uniqueTaskId('lease')
    await backend.server.createTask({ taskId, taskName: '오디오 생성' })
    const tabs = await whileJobIsAlive(taskId, async () => {
      const opened = await openTabs(env.context, testPageUrl(env.demo.origin, taskId, backend.backendUrl), 3)
      await expectEveryTab(opened, { connection: 'live' })
      await backend.server.progress(taskId, 0.4, 'TTS 생성 중... (시도 1/5)')
      await expectEveryTab(opened, { status: 'running', percent: 40 })
      expect(backend.connections(taskId)).toBe(1)
      return opened
    })

    // The job died: nothing more is published, and nothing renews the lease.
    await expectEveryTab(tabs, { status: 'failed', percent: 40, alert: expect.stringContaining('the job stopped reporting') })
    expect(await backend.server.getTask(taskId)).toMatchObject({ status: 'failed', details: { code: 'job_stale' } })
    await expect.poll(() => backend.connections(taskId)).toBe(0)
  })
})
