/**
 * Browser CPU time from /proc: the user + system time of every Chromium process this
 * benchmark started (the browser, its renderers, the shared worker's process, the GPU
 * and utility processes), found as descendants of this Node process whose executable
 * is a Chromium binary. Sampled before and after a scenario; a process that exits in
 * between loses its share, so scenarios keep their tabs open until the "after" sample.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { basename } from 'node:path'

export interface ProcessCpu {
  pid: number
  /** renderer | gpu-process | utility | zygote | browser | … (Chromium's `--type=`). */
  type: string
  /** utime + stime in milliseconds. */
  ms: number
  /** The same per thread (by thread id), with the thread's name. */
  threads: Map<number, { name: string; ms: number }>
}

export interface CpuSample {
  at: number
  processes: Map<number, ProcessCpu>
}

export interface CpuDelta {
  /** Total browser CPU time spent between the samples, ms. */
  totalMs: number
  /** The same split by process type. */
  byType: Record<string, number>
  /**
   * The same split by thread name (Chromium names its threads: `CrRendererMain` runs
   * pages, `DedicatedWorker thread` runs workers, shared ones included, `Compositor`
   * …), so the broker's share shows apart from the tabs'.
   */
  byThread: Record<string, number>
}

let ticksPerSecond: number | null = null

function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/** Whether CPU times can be read here (Linux with /proc). */
export function cpuSamplingAvailable(): boolean {
  try {
    readFileSync(`/proc/${process.pid}/stat`, 'utf8')
    return true
  } catch {
    return false
  }
}

interface Stat {
  pid: number
  ppid: number
  name: string
  ticks: number
}

function readStat(path: string, pid: number): Stat | null {
  try {
    const text = readFileSync(path, 'utf8')
    // The command name (field 2) may contain spaces and parentheses: fields start after the last ')'.
    const close = text.lastIndexOf(')')
    const fields = text.slice(close + 2).split(' ')
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return { pid, ppid: Number(fields[1]), name: text.slice(text.indexOf('(') + 1, close), ticks: Number(fields[11]) + Number(fields[12]) }
  } catch {
    return null
  }
}

function readThreads(pid: number, msPerTick: number): Map<number, { name: string; ms: number }> {
  const threads = new Map<number, { name: string; ms: number }>()
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return threads
  }
  for (const tid of tids) {
    const stat = readStat(`/proc/${pid}/task/${tid}/stat`, Number(tid))
    if (stat) threads.set(stat.pid, { name: stat.name, ms: stat.ticks * msPerTick })
  }
  return threads
}

function chromiumType(pid: number): string | null {
  try {
    const exe = basename(readlinkSync(`/proc/${pid}/exe`))
    if (!exe.toLowerCase().includes('chrom')) return null
    // Chromium rewrites its child processes' titles: the arguments may be one space-separated string.
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
    const type = /--type=(\S+)/.exec(args)?.[1]
    if (type === undefined) return 'browser'
    const subType = /--utility-sub-type=(?:\S+\.)?(\S+)/.exec(args)?.[1]
    return subType === undefined ? type : `${type}:${subType}`
  } catch {
    return null
  }
}

const typeCache = new Map<number, string | null>()

/** Reads the CPU time of every Chromium process below this one. */
export function sampleBrowserCpu(): CpuSample {
  const stats = new Map<number, Stat>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = readStat(`/proc/${entry}/stat`, Number(entry))
    if (stat) stats.set(stat.pid, stat)
  }
  // A pid that went away may come back as another process.
  for (const pid of typeCache.keys()) if (!stats.has(pid)) typeCache.delete(pid)
  const children = new Map<number, number[]>()
  for (const stat of stats.values()) {
    const list = children.get(stat.ppid)
    if (list) list.push(stat.pid)
    else children.set(stat.ppid, [stat.pid])
  }
  const processes = new Map<number, ProcessCpu>()
  const msPerTick = 1000 / clockTicks()
  const queue = [...(children.get(process.pid) ?? [])]
  while (queue.length > 0) {
    const pid = queue.pop() as number
    queue.push(...(children.get(pid) ?? []))
    let type = typeCache.get(pid)
    if (type === undefined) {
      type = chromiumType(pid)
      typeCache.set(pid, type)
    }
    const stat = stats.get(pid)
    if (type === null || !stat) continue
    processes.set(pid, { pid, type, ms: stat.ticks * msPerTick, threads: readThreads(pid, msPerTick) })
  }
  return { at: performance.now(), processes }
}

/** CPU spent between two samples; processes and threads that appeared in between count from zero. */
export function cpuBetween(before: CpuSample, after: CpuSample): CpuDelta {
  const byType: Record<string, number> = {}
  const byThread: Record<string, number> = {}
  let totalMs = 0
  for (const [pid, now] of after.processes) {
    const earlier = before.processes.get(pid)
    const spent = Math.max(0, now.ms - (earlier?.ms ?? 0))
    totalMs += spent
    byType[now.type] = (byType[now.type] ?? 0) + spent
    for (const [tid, thread] of now.threads) {
      const threadSpent = Math.max(0, thread.ms - (earlier?.threads.get(tid)?.ms ?? 0))
      if (threadSpent > 0) byThread[thread.name] = (byThread[thread.name] ?? 0) + threadSpent
    }
  }
  return { totalMs, byType, byThread }
}
