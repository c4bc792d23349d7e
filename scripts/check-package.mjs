#!/usr/bin/env node
/**
 * `npm run check:package`: packs the library as `npm publish` would (`npm pack`, whose
 * `prepack` runs `build:lib`) and checks the tarball:
 *
 *   1. its file list: every file the package needs is there and nothing else
 *      (no TypeScript sources, tests, app, scripts, maps or build info);
 *   2. `publint --strict` (warnings count as errors; suggestions fail too);
 *   3. `attw --profile esm-only` (@arethetypeswrong/cli: the types of every entry
 *      point resolve under node16/nodenext ESM and bundler resolution; CommonJS
 *      `require` is out of scope for an ESM-only package).
 *
 * Also exports `packLibrary()`, used by scripts/check-consumer.mjs.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** @param {string} message */
export function log(message) {
  console.log(`[${new Date().toISOString().slice(11, 23)}] ${message}`)
}

/**
 * Runs a command to completion, output shown; throws on a non-zero exit.
 * @param {string} command
 * @param {string[]} args
 * @param {import('node:child_process').SpawnSyncOptions} [options]
 */
export function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`)
  return result
}

/**
 * @typedef {{ tarball: string, filename: string, size: number, unpackedSize: number, files: { path: string, size: number }[] }} Packed
 */

/**
 * `npm pack` into `destination` (its `prepack` builds lib/ first).
 * @param {string} destination
 * @returns {Packed}
 */
export function packLibrary(destination) {
  const result = spawnSync(npm, ['pack', '--json', '--pack-destination', destination], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  })
  if (result.error) throw result.error
  // The `prepack` script's output comes first on stdout; npm's JSON report follows.
  const stdout = result.stdout
  const start = stdout.search(/^\[\s*$/m)
  const before = start > 0 ? stdout.slice(0, start).trimEnd() : ''
  if (before) console.log(before)
  if (result.status !== 0 || start < 0) throw new Error(`npm pack failed (exit ${result.status ?? result.signal})\n${stdout}`)
  /** @type {Packed[]} */
  const report = JSON.parse(stdout.slice(start))
  const packed = report[0]
  if (!packed) throw new Error('npm pack reported no package')
  return { ...packed, tarball: join(destination, packed.filename) }
}

/** @param {number} bytes */
export const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`

/**
 * What the tarball must hold and must not hold.
 * @param {Packed} packed
 * @returns {string[]} problems
 */
export function checkFileList(packed) {
  const paths = packed.files.map((file) => file.path)
  const required = [
    'package.json',
    'README.md',
    // Listed in `files`; until the protocol document is written, npm skips it (warned below).
    ...(existsSync(join(root, 'PROTOCOL.md')) ? ['PROTOCOL.md'] : []),
    'lib/src/index.js',
    'lib/src/index.d.ts',
    'lib/src/react/index.js',
    'lib/src/react/index.d.ts',
    'lib/src/react/progress-bar.css',
    'lib/src/react/progress-bar.css.d.ts',
    'lib/server/index.js',
    'lib/server/index.d.ts',
    'lib/server/cli.js',
    'lib/cli/tabcast.js',
    'lib/worker/broker.worker.js',
    'lib/src/client/shared-worker-link.js',
  ]
  if (!existsSync(join(root, 'PROTOCOL.md'))) console.warn('warning: PROTOCOL.md does not exist yet, so the tarball lacks it')
  const problems = required.filter((path) => !paths.includes(path)).map((path) => `missing ${path}`)
  const allowed = /^(package\.json|README\.md|LICENSE(\.md)?|PROTOCOL\.md|lib\/.+\.(js|d\.ts|css))$/
  for (const path of paths) {
    if (!allowed.test(path)) problems.push(`unexpected file ${path}`)
    else if (/(^|\/)(tests?|__tests__)\//.test(path) || /\.test\.(js|d\.ts)$/.test(path)) problems.push(`test file shipped: ${path}`)
  }
  return problems
}

/**
 * publint (strict, suggestions fail too) and attw (esm-only profile) on the tarball.
 * @param {Packed} packed
 */
export function lintTarball(packed) {
  log('publint --strict (on the tarball)')
  const publint = spawnSync(process.execPath, [binOf('publint', 'publint'), 'run', packed.tarball, '--strict', '--level', 'suggestion'], {
    cwd: root,
    encoding: 'utf8',
  })
  const publintOutput = `${publint.stdout}${publint.stderr}`.trim()
  console.log(publintOutput)
  if (publint.status !== 0) throw new Error(`publint failed (exit ${publint.status ?? publint.signal})`)
  if (/^\s*(Suggestions?|Warnings?|Errors?):/im.test(publintOutput)) throw new Error('publint reported messages: the package must lint clean')

  log('attw --profile esm-only (on the tarball)')
  run(process.execPath, [binOf('@arethetypeswrong/cli', 'attw'), packed.tarball, '--profile', 'esm-only', '--no-emoji', '--no-color', '--format', 'table'])
}

function main() {
  const started = performance.now()
  const temp = mkdtempSync(join(tmpdir(), 'tabcast-pack-'))
  try {
    log('npm pack (prepack: build:lib)')
    const packed = packLibrary(temp)
    log(`${packed.filename}: ${packed.files.length} files, ${kib(packed.size)} packed, ${kib(packed.unpackedSize)} unpacked`)

    log('file list')
    const problems = checkFileList(packed)
    if (problems.length > 0) throw new Error(`the tarball's file list is wrong:\n  ${problems.join('\n  ')}`)
    log('file list: ok')

    lintTarball(packed)

    log(`check:package passed in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  } finally {
    rmSync(temp, { recursive: true, force: true })
  }
}

/**
 * The path of a devDependency's executable, found through its package.json (neither
 * publint nor attw exports its CLI).
 * @param {string} name
 * @param {string} binName
 */
export function binOf(name, binName) {
  for (const modules of require.resolve.paths(name) ?? []) {
    const manifest = join(modules, name, 'package.json')
    if (!existsSync(manifest)) continue
    /** @type {{ bin?: string | Record<string, string> }} */
    const pkg = JSON.parse(readFileSync(manifest, 'utf8'))
    const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.[binName]
    if (!bin) throw new Error(`${name} has no ${binName} executable`)
    return join(modules, name, bin)
  }
  throw new Error(`${name} is not installed: run npm ci`)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    main()
  } catch (error) {
    console.error(`check:package FAILED: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
}
