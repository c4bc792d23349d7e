/**
 * The bench pages, built the way a user builds an app: Vite's JS API with the
 * repository's vite.config.ts (its `tabcast` alias points at the sources and its
 * `worker.format` is `es`), rooted at bench/pages, into a scratch directory under
 * .tmp/, then served by `vite preview` on 127.0.0.1 and a free port. The tabcast page
 * imports `tabcast`, so its SharedWorker is bundled from the library's own
 * `new SharedWorker(new URL(…))`, exactly as in an app. The static page (the progress
 * already in its HTML) is the late-join floor: what any page takes to paint here.
 *
 * Sizes come from two more builds of one-line entries (the client alone; the React
 * layer with React left out), gzipped with zlib.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'vite'
import { REPO_ROOT, serveDemo } from '../../tests/e2e/support/demo.js'

export const PAGES_DIR = join(REPO_ROOT, 'bench', 'pages')
const CONFIG_FILE = join(REPO_ROOT, 'vite.config.ts')
const SCRATCH = join(REPO_ROOT, '.tmp')
/** zlib's best compression, as most bundle-size reports use. */
const GZIP_LEVEL = 9

export interface ServedPages {
  /** `http://127.0.0.1:<port>` */
  origin: string
  close(): Promise<void>
}

function scratchDir(name: string): string {
  const dir = join(SCRATCH, `bench-${name}-${process.pid}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  return dir
}

/** Builds the tabcast and baseline pages and serves them; `close()` also removes the build. */
export async function buildAndServePages(): Promise<ServedPages> {
  const outDir = scratchDir('pages')
  try {
    await build({
      configFile: CONFIG_FILE,
      root: PAGES_DIR,
      logLevel: 'warn',
      build: {
        outDir,
        emptyOutDir: true,
        sourcemap: false,
        rolldownOptions: {
          input: {
            tabcast: join(PAGES_DIR, 'tabcast.html'),
            baseline: join(PAGES_DIR, 'baseline.html'),
            static: join(PAGES_DIR, 'static.html'),
          },
        },
      },
    })
    const served = await serveDemo(outDir, PAGES_DIR)
    return {
      origin: served.origin,
      async close() {
        await served.close()
        rmSync(outDir, { recursive: true, force: true })
      },
    }
  } catch (error) {
    rmSync(outDir, { recursive: true, force: true })
    throw error
  }
}

export interface FileSize {
  file: string
  bytes: number
  gzipBytes: number
}

export interface SizeGroup {
  bytes: number
  gzipBytes: number
  files: FileSize[]
}

export interface BundleSizes {
  gzipLevel: number
  /** The tab side of `tabcast` a page loads at start (client, protocol, Comlink), without React. */
  client: SizeGroup
  /** Chunks of the client loaded only when needed (e.g. the fallbacks without SharedWorker). */
  clientLazy: SizeGroup
  /** The SharedWorker (broker core, Comlink). */
  worker: SizeGroup
  /** `tabcast/react` (hook, ProgressBar, provider) with the client it uses, loaded at start; React itself left out. */
  react: SizeGroup
}

interface ManifestChunk {
  file: string
  imports?: string[]
}

function listJs(dir: string): string[] {
  const out: string[] = []
  const walk = (current: string): void => {
    for (const entry of readdirSync(current)) {
      const path = join(current, entry)
      if (statSync(path).isDirectory()) walk(path)
      else if (entry.endsWith('.js')) out.push(path)
    }
  }
  walk(dir)
  return out.sort()
}

function sizeOf(dir: string, path: string): FileSize {
  const content = readFileSync(path)
  return { file: relative(dir, path), bytes: content.length, gzipBytes: gzipSync(content, { level: GZIP_LEVEL }).length }
}

function group(files: FileSize[]): SizeGroup {
  return {
    bytes: files.reduce((sum, file) => sum + file.bytes, 0),
    gzipBytes: files.reduce((sum, file) => sum + file.gzipBytes, 0),
    files,
  }
}

/** Files an entry loads at start: the entry chunk and its static imports, transitively. */
function staticClosure(manifest: Record<string, ManifestChunk>, entryKey: string): Set<string> {
  const files = new Set<string>()
  const visit = (key: string): void => {
    const chunk = manifest[key]
    if (!chunk || files.has(chunk.file)) return
    files.add(chunk.file)
    for (const imported of chunk.imports ?? []) visit(imported)
  }
  visit(entryKey)
  if (files.size === 0) throw new Error(`the size build's manifest has no entry ${entryKey}`)
  return files
}

interface SizeBuild {
  initial: FileSize[]
  lazy: FileSize[]
  worker: FileSize[]
}

async function buildSizeEntry(entry: 'size-client' | 'size-react'): Promise<SizeBuild> {
  const outDir = scratchDir(entry)
  try {
    await build({
      configFile: CONFIG_FILE,
      root: PAGES_DIR,
      logLevel: 'warn',
      build: {
        outDir,
        emptyOutDir: true,
        sourcemap: false,
        manifest: true,
        // The polyfill is Vite's, not tabcast's; leave it out of tabcast's size.
        modulePreload: { polyfill: false },
        rolldownOptions: {
          input: { [entry]: join(PAGES_DIR, `${entry}.html`) },
          external: [/^react($|\/)/, /^react-dom($|\/)/],
        },
      },
    })
    const manifest = JSON.parse(readFileSync(join(outDir, '.vite', 'manifest.json'), 'utf8')) as Record<string, ManifestChunk>
    const initial = staticClosure(manifest, `${entry}.html`)
    const files = listJs(outDir).map((path) => sizeOf(outDir, path))
    const isWorker = (file: FileSize): boolean => /(^|\/)broker\.worker[-.]/.test(file.file)
    return {
      initial: files.filter((file) => initial.has(file.file)),
      lazy: files.filter((file) => !initial.has(file.file) && !isWorker(file)),
      worker: files.filter(isWorker),
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true })
  }
}

/** Builds the size probes and measures them. */
export async function measureBundleSizes(): Promise<BundleSizes> {
  const client = await buildSizeEntry('size-client')
  const react = await buildSizeEntry('size-react')
  if (client.worker.length === 0) throw new Error('the client build emitted no broker.worker chunk: was the SharedWorker bundled?')
  return {
    gzipLevel: GZIP_LEVEL,
    client: group(client.initial),
    clientLazy: group(client.lazy),
    worker: group(client.worker),
    react: group(react.initial),
  }
}
