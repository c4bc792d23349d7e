/**
 * Issue 3: "When the last tab following a task closes (even by crash), the socket for
 * that task closes shortly after." `page.close()` is abrupt (no unload handlers run)
 * and a renderer crash runs nothing at all: the worker learns of both through the
 * tab's Web Lock, which it is granted when the tab's document is gone.
 */
import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { expectEveryTab, expectInspector, openTabs, testPageUrl, uniqueTaskId } from './support/tabs.js'

const env = setUpE2eEnvironment()

const LINGER = 300

/** Subscriber counts per task id, from the inspector's task table. */
function inspectorSubscribers(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() => {
    const out: Record<string, number> = {}
    for (const row of document.querySelectorAll('[data-testid=inspector] [data-task]')) {
      out[row.getAttribute('data-task') ?? ''] = Number(row.getAttribute('data-subscribers'))
    }
    return out
  })
}

/** Crashes the tab's renderer: nothing of the page runs any more, not even unload handlers. */
async function crash(page: Page): Promise<void> {
  const crashed = page.waitForEvent('crash')
  const cdp = await page.context().newCDPSession(page)
  // The command never gets an answer: the renderer is gone.
  void cdp.send('Page.crash').catch(() => {})
  await crashed
}

describe('tabs that go away', () => {
  it('closed and crashed tabs are released, and the socket of a task nobody follows closes after the linger', async () => {
    const { backend } = env
    const closing = uniqueTaskId('closing')
    const staying = uniqueTaskId('staying')
    const closingTabs = await openTabs(env.context, testPageUrl(env.demo.origin, closing, backend.backendUrl, { linger: LINGER }), 3)
    const [observer] = await openTabs(env.context, testPageUrl(env.demo.origin, staying, backend.backendUrl, { linger: LINGER }), 1)
    if (!observer) throw new Error('no observer tab')
    await expectEveryTab([...closingTabs, observer], { connection: 'live' })
    await expectInspector(observer, { tabs: 4, sockets: 2 })
    await expect.poll(() => inspectorSubscribers(observer)).toEqual({ [closing]: 3, [staying]: 1 })
    expect([backend.connections(closing), backend.connections(staying)]).toEqual([1, 1])

    // Two tabs closed abruptly: released, while the third keeps the task's socket open.
    await closingTabs[0]!.close()
    await closingTabs[1]!.close()
    await expectInspector(observer, { tabs: 2, sockets: 2 })
    await expect.poll(() => inspectorSubscribers(observer)).toEqual({ [closing]: 1, [staying]: 1 })
    expect(backend.connections(closing)).toBe(1)

    // The last one crashes: released through its lock alone, and the socket closes after the linger.
    await crash(closingTabs[2]!)
    await expectInspector(observer, { tabs: 1, sockets: 1 })
    await expect.poll(() => backend.connections(closing)).toBe(0)
    await expect.poll(() => inspectorSubscribers(observer)).toEqual({ [staying]: 1 })

    // The task the remaining tab follows is untouched, and still live in it.
    expect(backend.connections(staying)).toBe(1)
    await backend.server.progress(staying, 0.7, 'still here')
    await expectEveryTab([observer], { connection: 'live', percent: 70, message: 'still here' })
    expect(backend.upgrades(closing)).toBe(1)
    await closingTabs[2]!.close()
  })
})
