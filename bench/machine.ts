/** What every benchmark report says about the machine it ran on. */
import { cpus, totalmem, type } from 'node:os'

export interface Machine {
  node: string
  os: string
  cpus: number
  cpuModel: string
  memoryMiB: number
}

export function describeMachine(): Machine {
  const cores = cpus()
  return {
    node: process.version,
    os: type(),
    cpus: cores.length,
    cpuModel: cores[0]?.model ?? 'unknown',
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
  }
}
