#!/usr/bin/env node
/**
 * The library build (`npm run build:lib`, also run by `prepack`):
 *
 *   1. `tsc -p tsconfig.build.json`: src/, worker/ and server/ to lib/ (JS, .d.ts and
 *      declaration maps; layout lib/src, lib/worker, lib/server mirrors the sources);
 *   2. copies src/react/progress-bar.css to lib/src/react/ (`tabcast/progress-bar.css`)
 *      and writes its declaration (`progress-bar.css.d.ts`, an empty module);
 *   3. points the SharedWorker URL of the emitted client at the compiled worker
 *      (`../../worker/broker.worker.ts` → `.js`), keeping the exact
 *      `new SharedWorker(new URL('…', import.meta.url), { type: 'module', … })` form
 *      that the consumer's bundler detects;
 *   4. checks that every file the package.json `exports` map names exists, and that
 *      every `bin` target exists and starts with a `#!/usr/bin/env node` line (npm links
 *      it as a command; without the line the shell would run it as a script).
 *
 * Exits non-zero, with the reason, on any failure.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const lib = join(root, 'lib')
const started = performance.now()

/** @param {string} message */
function fail(message) {
  console.error(`build:lib: ${message}`)
  process.exit(1)
}

/** @param {string} message */
function step(message) {
  console.log(`build:lib: ${message}`)
}

// 1. Compile.
rmSync(lib, { recursive: true, force: true })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
step('tsc -p tsconfig.build.json')
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' })
if (compiled.status !== 0) fail(`tsc failed (exit ${compiled.status ?? compiled.signal})`)

// 2. The stylesheet.
const css = ['src/react/progress-bar.css']
for (const file of css) {
  const target = join(lib, file)
  mkdirSync(dirname(target), { recursive: true })
  copyFileSync(join(root, file), target)
  step(`copied ${file} → ${relative(root, target)}`)
  // Its declaration, named by the `types` condition of the export: TypeScript 6 checks
  // side-effect imports (`noUncheckedSideEffectImports`), so without it
  // `import 'tabcast/progress-bar.css'` fails to type-check outside Vite's client types.
  writeFileSync(
    `${target}.d.ts`,
    `// The stylesheet exports nothing; this lets TypeScript resolve \`import 'tabcast/${file.split('/').pop()}'\`.\nexport {}\n`,
  )
}

// 3. The worker URL.
const workerUrlRewrites = [
  {
    file: 'src/client/shared-worker-link.js',
    from: "new URL('../../worker/broker.worker.ts', import.meta.url)",
    to: "new URL('../../worker/broker.worker.js', import.meta.url)",
    worker: 'worker/broker.worker.js',
  },
]
for (const { file, from, to, worker } of workerUrlRewrites) {
  const path = join(lib, file)
  const source = readFileSync(path, 'utf8')
  const count = source.split(from).length - 1
  if (count !== 1) fail(`expected exactly one \`${from}\` in lib/${file}, found ${count}`)
  writeFileSync(path, source.replace(from, to))
  const target = join(dirname(path), '../../worker/broker.worker.js')
  if (relative(lib, target) !== worker || !existsSync(target)) fail(`the rewritten worker URL does not reach lib/${worker}`)
  step(`lib/${file}: worker URL → lib/${worker}`)
}

// No emitted module may still point at a TypeScript source.
for (const { file } of workerUrlRewrites) {
  if (/new URL\(\s*['"][^'"]+\.tsx?['"]/.test(readFileSync(join(lib, file), 'utf8'))) fail(`lib/${file} still references a .ts URL`)
}

// 4. Every target of the exports map exists.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
/** @param {unknown} value @returns {string[]} */
const targets = (value) =>
  typeof value === 'string' ? [value] : value && typeof value === 'object' ? Object.values(value).flatMap(targets) : []
const missing = targets(pkg.exports).filter((target) => !existsSync(join(root, target)))
if (missing.length > 0) fail(`exports targets missing after the build: ${missing.join(', ')}`)
for (const [name, target] of Object.entries(pkg.bin ?? {})) {
  const path = join(root, String(target))
  if (!existsSync(path)) fail(`bin ${name}: ${target} is missing after the build`)
  if (!readFileSync(path, 'utf8').startsWith('#!/usr/bin/env node\n')) fail(`bin ${name}: ${target} does not start with #!/usr/bin/env node`)
  step(`bin ${name} → ${target}`)
}

step(`done in ${Math.round(performance.now() - started)} ms → lib/`)
