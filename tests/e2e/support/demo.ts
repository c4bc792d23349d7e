/**
 * The built demo app, served the way a user would serve it: `vite build` through
 * Vite's JS API into a scratch directory (never the repository's `dist/`), then
 * `vite preview` on 127.0.0.1 and a free port.
 *
 * Building takes a while on a small machine, and every test file runs in its own
 * worker, so builds are cached by a fingerprint of every input (sources, worker, app,
 * config, lockfile): the first file of a run builds, the others reuse it, and a run
 * after an edit builds again.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, preview, type PreviewServer } from 'vite'

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const CACHE_ROOT = join(REPO_ROOT, '.tmp', 'e2e-dist')
const CONFIG_FILE = join(REPO_ROOT, 'vite.config.ts')
const COMPLETE_MARKER = '.tabcast-e2e-complete'
const KEEP_BUILDS = 3

const INPUT_DIRS = ['src', 'worker', 'app', 'public']
const INPUT_FILES = ['index.html', 'vite.config.ts', 'package.json', 'package-lock.json', 'tsconfig.json']

function listFiles(dir: string, out: string[]): void {
  if (!existsSync(dir)) return
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) listFiles(path, out)
    else if (entry.isFile()) out.push(path)
  }
}

/** A hash of everything the build reads. */
export function demoFingerprint(): string {
  const files: string[] = []
  for (const dir of INPUT_DIRS) listFiles(join(REPO_ROOT, dir), files)
  for (const file of INPUT_FILES) if (existsSync(join(REPO_ROOT, file))) files.push(join(REPO_ROOT, file))
  files.sort()
  const hash = createHash('sha256')
  for (const file of files) {
    hash.update(relative(REPO_ROOT, file))
    hash.update('\0')
    hash.update(readFileSync(file))
    hash.update('\0')
  }
  return hash.digest('hex').slice(0, 16)
}

function pruneOldBuilds(keep: string): void {
  if (!existsSync(CACHE_ROOT)) return
  const builds = readdirSync(CACHE_ROOT, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name !== keep)
    .map((entry) => ({ path: join(CACHE_ROOT, entry.name), mtime: statSync(join(CACHE_ROOT, entry.name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime)
  for (const old of builds.slice(KEEP_BUILDS - 1)) rmSync(old.path, { recursive: true, force: true })
}

/** Builds the demo (or reuses an identical earlier build); returns its directory. */
export async function buildDemo(): Promise<string> {
  const fingerprint = demoFingerprint()
  const outDir = join(CACHE_ROOT, fingerprint)
  if (existsSync(join(outDir, COMPLETE_MARKER))) return outDir
  if (!existsSync(join(REPO_ROOT, 'index.html'))) {
    throw new Error(`the demo app is missing: ${join(REPO_ROOT, 'index.html')} does not exist`)
  }
  mkdirSync(CACHE_ROOT, { recursive: true })
  // Build beside the final place and rename, so a concurrent run never serves half a build.
  const staging = join(CACHE_ROOT, `.staging-${fingerprint}-${process.pid}`)
  rmSync(staging, { recursive: true, force: true })
  await build({
    configFile: CONFIG_FILE,
    root: REPO_ROOT,
    logLevel: 'warn',
    // The demo is one chunk on purpose (it is small); Vite's size advice is noise here.
    build: { outDir: staging, emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 10_000 },
  })
  writeFileSync(join(staging, COMPLETE_MARKER), `${new Date().toISOString()}\n`)
  if (existsSync(join(outDir, COMPLETE_MARKER))) {
    rmSync(staging, { recursive: true, force: true })
  } else {
    rmSync(outDir, { recursive: true, force: true })
    renameSync(staging, outDir)
  }
  pruneOldBuilds(fingerprint)
  return outDir
}

export interface ServedDemo {
  /** `http://127.0.0.1:<port>` without a trailing slash. */
  origin: string
  close(): Promise<void>
}

/** Serves a built demo (or other pages built from `root`) with `vite preview` on 127.0.0.1 and a free port. */
export async function serveDemo(outDir: string, root = REPO_ROOT): Promise<ServedDemo> {
  const server: PreviewServer = await preview({
    configFile: CONFIG_FILE,
    root,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: true, open: false },
  })
  const address = server.httpServer.address() as AddressInfo | null
  if (!address) throw new Error('vite preview is not listening')
  return {
    origin: `http://127.0.0.1:${address.port}`,
    close: () => server.close(),
  }
}
