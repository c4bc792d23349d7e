/**
 * One measured run of one variant: N tabs in a fresh browser context (so tabcast
 * starts a fresh SharedWorker) go through four phases, each on new tasks:
 *
 * 1. latency: every task sends progress at a steady rate; the server's connections
 *    are counted once every tab is live; each tab records paint time − `sentAt`;
 * 2. burst: every task sends `ratePerTask` messages per second, then completes;
 *    browser CPU (all Chromium processes, from /proc) and the bench process's CPU
 *    (server and driver) are sampled around it, until every tab shows the end;
 * 3. late join: with every task sending progress every `intervalMs`, a new tab is
 *    opened on them; time from its navigation start to its first paint of the
 *    current progress of every task (for the baseline also with the server's
 *    catch-up ignored, as with a backend that only streams live messages);
 * 4. reconnect: the server is stopped and started again on the same port while the
 *    job keeps publishing; time until every tab shows live again, and the messages
 *    each tab never received.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core'
import type { E2eBackend } from '../../tests/e2e/support/backend.js'
import type { Delivery, PageReport, Variant } from '../pages/api.js'
import { cpuBetween, cpuSamplingAvailable, sampleBrowserCpu, type CpuDelta } from './cpu.js'
import { clock, publishBurst, publishPeriodically, sleep, TaskFeed } from './feed.js'
import { burstDurationMs, type BrowserBenchSettings } from './settings.js'
import { percentile, round } from './stats.js'

export interface UnitContext {
  browser: Browser
  /** Where the bench pages are served. */
  origin: string
  backend: E2eBackend
  settings: BrowserBenchSettings
  /** Makes task ids unique across the run. */
  nextTaskId: (phase: string) => string
}

export interface LatencySummary {
  samples: number
  /** Server send → the page's message listener (before any rendering), ms. */
  arrivalP50: number
  arrivalP99: number
  /** Server send → the DOM write of a state that includes the message, ms. */
  writeP50: number
  writeP99: number
  /** Progress messages × tabs: how many samples a complete run has. */
  expectedSamples: number
  p50: number
  p99: number
  mean: number
  max: number
}

/**
 * Where a late-joining tab's time goes, ms since its navigation started: its bench
 * code starts (`script`: HTML and scripts loaded), its transport is `ready` (tabcast:
 * handshake with the broker done; baseline: every socket open), it `wrote` the
 * current progress of every task to the DOM, and that was `painted`.
 */
export interface LateJoinStages {
  script: number
  ready: number
  wrote: number
  painted: number
}

export interface UnitResult {
  variant: Variant
  tabs: number
  tasks: number
  repetition: number
  warmup: boolean
  /** Page clock − bench clock, ms (calibration; latencies are not corrected by it). */
  clockOffsetMs: number
  /** Tabs whose document was not `visible` (their frames would be throttled). */
  hiddenTabs: number
  connections: {
    /** Open sockets of the followed tasks on the server once every tab was live. */
    server: number
    /** tabcast: one per task (M); baseline: one per tab and task (N·M). */
    expected: number
    /** Upgrade requests the server received for those tasks. */
    upgrades: number
  }
  latency: LatencySummary
  burst: {
    /** The burst asked for: `ratePerTask` messages per second per task for this long. */
    plannedMs: number
    published: number
    /** How long publishing took (longer than planned when the machine could not keep up). */
    publishMs: number
    /** From the burst's start to the last tab's paint of the final state. */
    drainMs: number
    /** Progress messages that reached the pages' message listeners (all tabs). */
    delivered: number
    /** published × tabs. */
    expectedDeliveries: number
    terminalReceived: number
    terminalExpected: number
    /** DOM writes per tab per second over `drainMs` (all tasks of the tab). */
    rendersPerTabPerSecond: number
    /** Frames that painted something, per tab per second. */
    framesPerTabPerSecond: number
    /** Browser CPU time over the burst, all Chromium processes. */
    cpu: CpuDelta | null
    /** Browser CPU per second with the same tabs open and no messages (frame keepers, timers), measured just before. */
    idleCpuMsPerSecond: number
    /** `cpu.totalMs` minus the idle rate over `drainMs`: what handling the burst cost. */
    netCpuMs: number
    /** CPU time of this Node process (the reference server and the driver). */
    benchProcessCpuMs: number
    /** Sockets opened again during the burst (a server closes a socket whose client falls behind). */
    extraUpgrades: number
    latency: LatencySummary
  }
  lateJoin: {
    /** Navigation start → first paint of the current progress of every task, ms, per joined tab. */
    samples: number[]
    /** Baseline only: the same with the server's catch-up ignored (waits for the next live message). */
    liveOnlySamples: number[]
    /** Where the time of each sample went. */
    stages: LateJoinStages[]
    /**
     * The floor, measured right after each join under the same load: navigation start
     * → first paint of bench/pages/static.html, whose progress is already in its HTML.
     */
    staticSamples: number[]
  }
  reconnect: {
    /** Server listening again → every tab painted live, ms. */
    liveAfterRestartMs: number
    /** Server stopped → every tab painted live, ms. */
    liveAfterStopMs: number
    tabsLive: number
    /** Task messages (progress and completed) the tabs never received, summed over tabs. */
    lost: number
    /** Task messages the server holds for the tasks, × tabs. */
    expected: number
  }
  /** Wall time of each phase, seconds (where a run's time goes). */
  phaseSeconds: Record<string, number>
  pageErrors: string[]
  /** Set when the run broke off; the fields above are then partial. */
  error: string | null
}

const PAGE_PATH: Record<Variant, string> = { tabcast: '/tabcast.html', baseline: '/baseline.html' }

/**
 * What a tab asks of the broker: in tabcast, the first tab takes every message (a page
 * with an `onMessage` consumer) and the others only draw, as a `<ProgressBar>` does.
 */
function deliveryOf(variant: Variant, tabIndex: number): Delivery {
  return variant === 'tabcast' && tabIndex > 0 ? 'snapshots' : 'messages'
}

/**
 * Time from each progress message's send to the first stamp (a paint, or a DOM write)
 * of a state that includes it, in every tab: the stamps of one task rise in `seq` and
 * time, so one pass over both lists.
 */
function stampLatencies(reports: readonly PageReport[], feeds: readonly TaskFeed[], pick: (task: PageReport['tasks'][number]) => { seq: number; at: number }[]): number[] {
  const out: number[] = []
  for (const report of reports) {
    for (const feed of feeds) {
      const task = report.tasks.find((entry) => entry.taskId === feed.taskId)
      if (!task) continue
      const stamps = pick(task)
      let next = 0
      for (const [seq, sentAt] of [...feed.sentAt].sort(([a], [b]) => a - b)) {
        while (next < stamps.length && (stamps[next]?.seq ?? Infinity) < seq) next++
        const stamp = stamps[next]
        if (stamp) out.push(stamp.at - sentAt)
      }
    }
  }
  return out
}

function summarizeLatency(reports: readonly PageReport[], feeds: readonly TaskFeed[], expected: number): LatencySummary {
  const samples = stampLatencies(reports, feeds, (task) => task.paints)
  const writes = stampLatencies(reports, feeds, (task) => task.writes)
  const arrivals = reports.flatMap((report) => report.arrivals)
  const mean = samples.length === 0 ? Number.NaN : samples.reduce((sum, value) => sum + value, 0) / samples.length
  return {
    samples: samples.length,
    arrivalP50: round(percentile(arrivals, 50), 3),
    arrivalP99: round(percentile(arrivals, 99), 3),
    writeP50: round(percentile(writes, 50), 3),
    writeP99: round(percentile(writes, 99), 3),
    expectedSamples: expected,
    p50: round(percentile(samples, 50), 3),
    p99: round(percentile(samples, 99), 3),
    mean: round(mean, 3),
    max: round(samples.length === 0 ? Number.NaN : samples.reduce((max, value) => Math.max(max, value), -Infinity), 3),
  }
}

async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | null | undefined | false>, intervalMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== null && value !== undefined && value !== false) return value
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

function pageUrl(context: UnitContext, variant: Variant, params: Record<string, string> = {}): string {
  const all = context.settings.frameKeeper ? params : { ...params, keeper: '0' }
  const query = new URLSearchParams(all).toString()
  return `${context.origin}${PAGE_PATH[variant]}${query ? `?${query}` : ''}`
}

async function openTab(browserContext: BrowserContext, url: string): Promise<Page> {
  const page = await browserContext.newPage()
  await page.goto(url, { waitUntil: 'load' })
  await page.waitForFunction(() => window.tabcastBench !== undefined)
  return page
}

async function openTabs(browserContext: BrowserContext, url: string, count: number): Promise<Page[]> {
  const pages: Page[] = []
  // A few at a time: opening twenty at once on a small machine only makes each slower.
  for (let i = 0; i < count; i += 4) {
    const batch = Array.from({ length: Math.min(4, count - i) }, () => openTab(browserContext, url))
    pages.push(...(await Promise.all(batch)))
  }
  return pages
}

type ReportOptions = { latencies?: boolean; paints?: boolean }

function reportOf(page: Page, options: ReportOptions = {}): Promise<PageReport> {
  return page.evaluate((o) => {
    const api = window.tabcastBench
    if (!api) throw new Error('the bench page has no window.tabcastBench')
    return api.report(o)
  }, options)
}

function reportsOf(pages: readonly Page[], options: ReportOptions = {}): Promise<PageReport[]> {
  return Promise.all(pages.map((page) => reportOf(page, options)))
}

async function follow(pages: readonly Page[], variant: Variant, taskIds: readonly string[], backendUrl: string): Promise<void> {
  await Promise.all(
    pages.map((page, index) =>
      page.evaluate(([ids, url, delivery]) => window.tabcastBench?.follow(ids, url, delivery), [taskIds, backendUrl, deliveryOf(variant, index)] as const),
    ),
  )
}

async function unfollow(pages: readonly Page[]): Promise<void> {
  await Promise.all(pages.map((page) => page.evaluate(() => window.tabcastBench?.unfollow())))
}

async function resetPages(pages: readonly Page[]): Promise<void> {
  await Promise.all(pages.map((page) => page.evaluate(() => window.tabcastBench?.reset())))
}

function everyTaskIs(reports: readonly PageReport[], taskIds: readonly string[], test: (task: PageReport['tasks'][number]) => boolean): boolean {
  return reports.every((report) =>
    taskIds.every((id) => {
      const task = report.tasks.find((entry) => entry.taskId === id)
      return task !== undefined && test(task)
    }),
  )
}

async function waitAllLive(pages: readonly Page[], taskIds: readonly string[], timeoutMs = 15_000): Promise<void> {
  await waitUntil('every tab to show every task live', timeoutMs, async () =>
    everyTaskIs(await reportsOf(pages, { latencies: false, paints: false }), taskIds, (task) => task.connection === 'live'),
  )
}

function serverConnections(backend: E2eBackend, taskIds: readonly string[]): number {
  return taskIds.reduce((sum, id) => sum + backend.connections(id), 0)
}

function serverUpgrades(backend: E2eBackend, taskIds: readonly string[]): number {
  return taskIds.reduce((sum, id) => sum + backend.upgrades(id), 0)
}

async function newFeeds(context: UnitContext, phase: string, count: number): Promise<TaskFeed[]> {
  const feeds = Array.from({ length: count }, () => new TaskFeed(context.backend.jobs, context.nextTaskId(phase)))
  await Promise.all(feeds.map((feed) => feed.create()))
  return feeds
}

function feedFailures(feeds: readonly TaskFeed[]): void {
  const failures = feeds.flatMap((feed) => feed.failures)
  if (failures.length > 0) throw new Error(`publishing failed: ${failures[0] ?? ''}`)
}

/** Page clock − bench clock, from the evaluation with the shortest round trip. */
async function clockOffset(page: Page): Promise<number> {
  let best = { rtt: Infinity, offset: 0 }
  for (let i = 0; i < 5; i++) {
    const before = clock()
    const pageNow = await page.evaluate(() => window.tabcastBench?.now() ?? Number.NaN)
    const after = clock()
    if (after - before < best.rtt) best = { rtt: after - before, offset: pageNow - (before + after) / 2 }
  }
  return round(best.offset, 3)
}

function emptyResult(context: UnitContext, variant: Variant, tabs: number, tasks: number, repetition: number, warmup: boolean): UnitResult {
  const noLatency: LatencySummary = {
    samples: 0,
    arrivalP50: Number.NaN,
    arrivalP99: Number.NaN,
    writeP50: Number.NaN,
    writeP99: Number.NaN,
    expectedSamples: 0, p50: Number.NaN, p99: Number.NaN, mean: Number.NaN, max: Number.NaN }
  return {
    variant,
    tabs,
    tasks,
    repetition,
    warmup,
    clockOffsetMs: Number.NaN,
    hiddenTabs: 0,
    connections: { server: 0, expected: variant === 'tabcast' ? tasks : tabs * tasks, upgrades: 0 },
    latency: noLatency,
    burst: {
      plannedMs: burstDurationMs(context.settings, tabs, tasks),
      published: 0,
      publishMs: 0,
      drainMs: Number.NaN,
      delivered: 0,
      expectedDeliveries: 0,
      terminalReceived: 0,
      terminalExpected: tabs * tasks,
      rendersPerTabPerSecond: Number.NaN,
      framesPerTabPerSecond: Number.NaN,
      cpu: null,
      idleCpuMsPerSecond: Number.NaN,
      netCpuMs: Number.NaN,
      benchProcessCpuMs: Number.NaN,
      extraUpgrades: 0,
      latency: noLatency,
    },
    lateJoin: { samples: [], liveOnlySamples: [], stages: [], staticSamples: [] },
    reconnect: { liveAfterRestartMs: Number.NaN, liveAfterStopMs: Number.NaN, tabsLive: 0, lost: 0, expected: 0 },
    phaseSeconds: {},
    pageErrors: [],
    error: null,
  }
}

async function latencyPhase(context: UnitContext, pages: readonly Page[], result: UnitResult): Promise<void> {
  const { backend, settings } = context
  const feeds = await newFeeds(context, 'lat', result.tasks)
  const ids = feeds.map((feed) => feed.taskId)
  await follow(pages, result.variant, ids, backend.backendUrl)
  await waitAllLive(pages, ids)
  // tabcast opens each task's socket once; give a wrongly extra socket the chance to show up.
  await waitUntil('the server to count the expected connections', 5000, async () => serverConnections(backend, ids) === result.connections.expected).catch(
    () => undefined,
  )
  await sleep(100)
  result.connections.server = serverConnections(backend, ids)
  result.connections.upgrades = serverUpgrades(backend, ids)
  await resetPages(pages)

  const periodic = publishPeriodically(feeds, settings.latency.intervalMs)
  await sleep(settings.latency.durationMs)
  await periodic.stop()
  await Promise.all(feeds.map((feed) => feed.complete()))
  feedFailures(feeds)
  const finalSeq = new Map(feeds.map((feed) => [feed.taskId, feed.lastSeq]))
  // `paintedSeq` moves when a paint is stamped, so every latency is recorded by then.
  const reports = await waitUntil('every tab to show the end of the latency tasks', 15_000, async () => {
    const all = await reportsOf(pages)
    return everyTaskIs(all, ids, (task) => task.paintedSeq >= (finalSeq.get(task.taskId) ?? Infinity)) ? all : null
  })
  const published = feeds.reduce((sum, feed) => sum + feed.published, 0)
  result.latency = summarizeLatency(reports, feeds, published * pages.length)
  result.hiddenTabs = reports.filter((report) => report.visibility !== 'visible').length
  await unfollow(pages)
}

async function burstPhase(context: UnitContext, pages: readonly Page[], result: UnitResult): Promise<void> {
  const { backend, settings } = context
  const feeds = await newFeeds(context, 'burst', result.tasks)
  const ids = feeds.map((feed) => feed.taskId)
  await follow(pages, result.variant, ids, backend.backendUrl)
  await waitAllLive(pages, ids)
  await resetPages(pages)
  const upgradesBefore = serverUpgrades(backend, ids)

  const canSample = cpuSamplingAvailable()
  let idleCpuMsPerSecond = Number.NaN
  if (canSample) {
    const idleFrom = sampleBrowserCpu()
    await sleep(settings.burst.idleSampleMs)
    const idleTo = sampleBrowserCpu()
    idleCpuMsPerSecond = cpuBetween(idleFrom, idleTo).totalMs / ((idleTo.at - idleFrom.at) / 1000)
  }
  const cpuBefore = canSample ? sampleBrowserCpu() : null
  const nodeBefore = process.cpuUsage()
  const start = clock()
  result.burst.publishMs = round(await publishBurst(feeds, settings.burst.ratePerTask, result.burst.plannedMs), 1)
  await Promise.all(feeds.map((feed) => feed.complete()))
  feedFailures(feeds)
  const finalSeq = new Map(feeds.map((feed) => [feed.taskId, feed.lastSeq]))
  const done = (report: PageReport): boolean =>
    ids.every((id) => {
      const task = report.tasks.find((entry) => entry.taskId === id)
      return task !== undefined && task.paintedSeq >= (finalSeq.get(id) ?? Infinity) && task.terminal > 0
    })
  try {
    await waitUntil(
      'every tab to show the end of the burst',
      settings.burst.drainTimeoutMs,
      async () => {
        const all = await reportsOf(pages, { latencies: false, paints: false })
        return all.every(done) ? all : null
      },
      50,
    )
  } catch {
    // Not every tab got there: that is a result (terminal events missing), not a failure of the run.
  }
  const cpuAfter = canSample ? sampleBrowserCpu() : null
  const node = process.cpuUsage(nodeBefore)
  const reports = await reportsOf(pages)

  const published = feeds.reduce((sum, feed) => sum + feed.published, 0)
  let lastPaint = start
  for (const report of reports) {
    for (const task of report.tasks) {
      const final = finalSeq.get(task.taskId)
      const paint = task.paints.find((entry) => final !== undefined && entry.seq >= final)
      if (paint) lastPaint = Math.max(lastPaint, paint.at)
    }
  }
  const drainMs = lastPaint - start
  const cpu = cpuBefore && cpuAfter ? cpuBetween(cpuBefore, cpuAfter) : null
  const seconds = Math.max(drainMs, 1) / 1000
  const tabs = pages.length
  const renders = reports.reduce((sum, report) => sum + report.tasks.reduce((inner, task) => inner + task.renders, 0), 0)
  const frames = reports.reduce((sum, report) => sum + report.paintedFrames, 0)
  result.burst = {
    plannedMs: result.burst.plannedMs,
    published,
    publishMs: result.burst.publishMs,
    drainMs: round(drainMs, 1),
    delivered: reports.reduce((sum, report) => sum + report.tasks.reduce((inner, task) => inner + (task.messages['progress'] ?? 0), 0), 0),
    // Only the tabs that asked for messages get them (see `deliveryOf`).
    expectedDeliveries: published * reports.filter((report) => report.delivery === 'messages').length,
    terminalReceived: reports.reduce((sum, report) => sum + report.tasks.reduce((inner, task) => inner + Math.min(1, task.terminal), 0), 0),
    terminalExpected: tabs * ids.length,
    rendersPerTabPerSecond: round(renders / tabs / seconds, 1),
    framesPerTabPerSecond: round(frames / tabs / seconds, 1),
    cpu: cpu ? roundCpu(cpu) : null,
    idleCpuMsPerSecond: round(idleCpuMsPerSecond, 0),
    netCpuMs: cpu && cpuAfter && cpuBefore ? round(cpu.totalMs - (idleCpuMsPerSecond * (cpuAfter.at - cpuBefore.at)) / 1000, 0) : Number.NaN,
    benchProcessCpuMs: round((node.user + node.system) / 1000, 0),
    extraUpgrades: serverUpgrades(backend, ids) - upgradesBefore,
    latency: summarizeLatency(reports, feeds, published * tabs),
  }
  await unfollow(pages)
}

function roundCpu(delta: CpuDelta): CpuDelta {
  const rounded = (record: Record<string, number>): Record<string, number> =>
    Object.fromEntries(
      Object.entries(record)
        .sort(([, a], [, b]) => b - a)
        .map(([name, ms]) => [name, round(ms, 0)]),
    )
  return { totalMs: round(delta.totalMs, 0), byType: rounded(delta.byType), byThread: rounded(delta.byThread) }
}

async function joinOnce(
  browserContext: BrowserContext,
  url: string,
  feeds: readonly TaskFeed[],
  settings: BrowserBenchSettings,
): Promise<{ total: number; stages: LateJoinStages }> {
  // Open at a random moment of the progress interval, as a user would.
  await sleep(Math.random() * settings.lateJoin.intervalMs)
  const target = new Map(feeds.map((feed) => [feed.taskId, feed.lastSeq]))
  const page = await openTab(browserContext, url)
  try {
    const report = await waitUntil(
      'the joined tab to show the current progress',
      settings.lateJoin.intervalMs + 10_000,
      async () => {
        const current = await reportOf(page, { latencies: false })
        const ready = feeds.every((feed) =>
          current.tasks.some((task) => task.taskId === feed.taskId && task.paintedSeq >= (target.get(feed.taskId) ?? Infinity)),
        )
        return ready ? current : null
      },
      20,
    )
    let firstCorrect = 0
    let firstWrite = 0
    for (const feed of feeds) {
      const task = report.tasks.find((entry) => entry.taskId === feed.taskId)
      const reached = (entry: { seq: number }): boolean => entry.seq >= (target.get(feed.taskId) ?? Infinity)
      const paint = task?.paints.find(reached)
      const write = task?.writes.find(reached)
      if (!paint || !write) throw new Error(`the joined tab painted no state of ${feed.taskId}`)
      firstCorrect = Math.max(firstCorrect, paint.at)
      firstWrite = Math.max(firstWrite, write.at)
    }
    const since = (at: number): number => round(at - report.timeOrigin, 1)
    return {
      total: since(firstCorrect),
      stages: {
        script: round(report.marks.script ?? Number.NaN, 1),
        ready: round(report.marks.ready ?? Number.NaN, 1),
        wrote: since(firstWrite),
        painted: since(firstCorrect),
      },
    }
  } finally {
    await page.close()
  }
}

/** Opens bench/pages/static.html in a new tab: its first paint, ms since its navigation started. */
async function staticPaint(browserContext: BrowserContext, context: UnitContext): Promise<number> {
  const page = await browserContext.newPage()
  try {
    await page.goto(`${context.origin}/static.html${context.settings.frameKeeper ? '' : '?keeper=0'}`, { waitUntil: 'load' })
    const at = await page.waitForFunction(() => window.staticPaintedAt, undefined, { timeout: 10_000 })
    return round((await at.jsonValue()) ?? Number.NaN, 1)
  } finally {
    await page.close()
  }
}

async function lateJoinPhase(context: UnitContext, browserContext: BrowserContext, pages: readonly Page[], result: UnitResult): Promise<void> {
  const { backend, settings } = context
  const feeds = await newFeeds(context, 'join', result.tasks)
  const ids = feeds.map((feed) => feed.taskId)
  await follow(pages, result.variant, ids, backend.backendUrl)
  await waitAllLive(pages, ids)
  const periodic = publishPeriodically(feeds, settings.lateJoin.intervalMs)
  try {
    // Every task has a current progress before the first tab joins.
    await waitUntil('a first progress message of every task', 5000, async () => feeds.every((feed) => feed.published > 0), 20)
    // A joining tabcast tab only draws, as a <ProgressBar> does.
    const params = { tasks: ids.join(','), backend: backend.backendUrl, delivery: 'snapshots' }
    for (let i = 0; i < settings.lateJoin.joins; i++) {
      const joined = await joinOnce(browserContext, pageUrl(context, result.variant, params), feeds, settings)
      result.lateJoin.samples.push(joined.total)
      result.lateJoin.stages.push(joined.stages)
      result.lateJoin.staticSamples.push(await staticPaint(browserContext, context))
      if (result.variant === 'baseline') {
        const liveOnly = await joinOnce(browserContext, pageUrl(context, 'baseline', { ...params, catchup: '0' }), feeds, settings)
        result.lateJoin.liveOnlySamples.push(liveOnly.total)
      }
    }
  } finally {
    await periodic.stop()
  }
  await Promise.all(feeds.map((feed) => feed.complete()))
  feedFailures(feeds)
  await unfollow(pages)
}

async function reconnectPhase(context: UnitContext, pages: readonly Page[], result: UnitResult): Promise<void> {
  const { backend, settings } = context
  const feeds = await newFeeds(context, 'restart', result.tasks)
  const ids = feeds.map((feed) => feed.taskId)
  await follow(pages, result.variant, ids, backend.backendUrl)
  await waitAllLive(pages, ids)
  await resetPages(pages)
  const periodic = publishPeriodically(feeds, settings.reconnect.intervalMs)
  let stopAt: number
  let restartAt: number
  try {
    await sleep(200)
    stopAt = clock()
    await backend.stop()
    // The job goes on publishing into the store while nothing serves it.
    await sleep(settings.reconnect.downtimeMs)
    await backend.start()
    restartAt = clock()
    const liveAt = (report: PageReport, id: string): number | null =>
      report.tasks.find((task) => task.taskId === id)?.connectionLog.find((entry) => entry.state === 'live' && entry.at > stopAt)?.at ?? null
    let reports: PageReport[] = []
    try {
      reports = await waitUntil('every tab to show live after the restart', settings.reconnect.timeoutMs, async () => {
        const all = await reportsOf(pages, { latencies: false, paints: false })
        return all.every((report) => ids.every((id) => liveAt(report, id) !== null)) ? all : null
      })
    } catch {
      reports = await reportsOf(pages, { latencies: false, paints: false })
    }
    const times = reports.map((report) => ids.map((id) => liveAt(report, id)))
    const allLive = times.flat().every((at) => at !== null)
    const latest = Math.max(...times.flat().map((at) => at ?? Number.NaN))
    result.reconnect.tabsLive = times.filter((row) => row.every((at) => at !== null)).length
    result.reconnect.liveAfterRestartMs = allLive ? round(latest - restartAt, 1) : Number.NaN
    result.reconnect.liveAfterStopMs = allLive ? round(latest - stopAt, 1) : Number.NaN
    await sleep(200)
  } finally {
    await periodic.stop()
  }
  await Promise.all(feeds.map((feed) => feed.complete()))
  feedFailures(feeds)
  const finalSeq = new Map(feeds.map((feed) => [feed.taskId, feed.lastSeq]))
  await waitUntil(
    'every tab to show the end of the restarted tasks',
    15_000,
    async () =>
      everyTaskIs(await reportsOf(pages, { latencies: false, paints: false }), ids, (task) => task.paintedSeq >= (finalSeq.get(task.taskId) ?? Infinity)),
  ).catch(() => undefined)
  // Every message of these tasks is still held by the server (well under historyLimit).
  // Counted in the tabs that take every message; the others only draw the newest state.
  const takingMessages = pages.filter((_page, index) => deliveryOf(result.variant, index) === 'messages')
  let lost = 0
  for (const page of takingMessages) {
    for (const feed of feeds) {
      lost += await page.evaluate(([id, to]) => window.tabcastBench?.missing(id, 1, to) ?? to, [feed.taskId, feed.lastSeq] as const)
    }
  }
  result.reconnect.lost = lost
  result.reconnect.expected = feeds.reduce((sum, feed) => sum + feed.lastSeq, 0) * takingMessages.length
  await unfollow(pages)
}

/** Runs the four phases for one variant with `tabs` tabs following `tasks` tasks each. */
export async function runUnit(
  context: UnitContext,
  variant: Variant,
  tabs: number,
  tasks: number,
  repetition: number,
  warmup: boolean,
): Promise<UnitResult> {
  const result = emptyResult(context, variant, tabs, tasks, repetition, warmup)
  const browserContext = await context.browser.newContext()
  browserContext.on('page', (page) => {
    page.on('pageerror', (error) => result.pageErrors.push(error.message))
  })
  let phaseStart = performance.now()
  const phaseDone = (name: string): void => {
    const now = performance.now()
    result.phaseSeconds[name] = round((now - phaseStart) / 1000, 2)
    phaseStart = now
  }
  try {
    const pages = await openTabs(browserContext, pageUrl(context, variant), tabs)
    result.clockOffsetMs = await clockOffset(pages[0] as Page)
    phaseDone('open')
    await latencyPhase(context, pages, result)
    phaseDone('latency')
    await burstPhase(context, pages, result)
    phaseDone('burst')
    await lateJoinPhase(context, browserContext, pages, result)
    phaseDone('lateJoin')
    await reconnectPhase(context, pages, result)
    phaseDone('reconnect')
    const reports = await reportsOf(pages, { latencies: false, paints: false })
    for (const report of reports) result.pageErrors.push(...report.errors)
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error)
  } finally {
    await browserContext.close()
  }
  return result
}
