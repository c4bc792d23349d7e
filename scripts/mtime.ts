/** The newest modification time under a set of files and directories (for "is dist/ stale?"). */
import { readdirSync, statSync, type Stats } from 'node:fs'
import { join } from 'node:path'

export interface Newest {
  path: string
  mtimeMs: number
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path)
  } catch {
    return null
  }
}

/** Walks `paths` (missing ones are skipped) and returns the most recently modified file. */
export function newestMtime(paths: readonly string[]): Newest | null {
  let newest: Newest | null = null
  const visit = (path: string): void => {
    const stats = statOrNull(path)
    if (stats === null) return
    if (stats.isDirectory()) {
      for (const entry of readdirSync(path)) {
        if (entry === 'node_modules' || entry.startsWith('.')) continue
        visit(join(path, entry))
      }
      return
    }
    if (newest === null || stats.mtimeMs > newest.mtimeMs) newest = { path, mtimeMs: stats.mtimeMs }
  }
  for (const path of paths) visit(path)
  return newest
}
