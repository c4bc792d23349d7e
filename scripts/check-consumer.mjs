#!/usr/bin/env node
/**
 * `npm run test:package`: the packed tabcast, used the way a user uses it.
 *
 *   1. `npm pack` (its `prepack` runs `build:lib`), then what `npm run check:package`
 *      checks on the tarball: its file list, publint and attw;
 *   2. a fresh Vite + React app in a temp dir: the tarball installed with npm (its own
 *      dependencies, comlink and ws, from npm's cache, which `npm ci` of this repo
 *      filled); vite, @vitejs/plugin-react, react, react-dom, typescript and the React
 *      types linked from this repo's node_modules, so nothing else is downloaded.
 *      Its `vite.config.js` is `plugins: [react()]` and nothing else: Vite 8 needs no
 *      tabcast-specific line (see docs/packaging.md);
 *   3. `tsc --noEmit` on the app (our declarations as a consumer sees them): the
 *      browser side strictly (bundler resolution, skipLibCheck off), and a small
 *      `tabcast/server` backend file (NodeNext, skipLibCheck on, as most Node setups);
 *   4. a real reference server from the packed `tabcast/server` (port 0, demo off),
 *      counting WebSocket upgrades on its HTTP server;
 *   5. `vite` (dev) and then `vite build` + `vite preview`: each time a fresh Chromium
 *      context opens the app, whose main.tsx renders
 *      `<ProgressBar projectId="pkg_check" backendUrl="127.0.0.1:<port>" />` from
 *      `tabcast/react` with `tabcast/progress-bar.css`; the check asserts that the
 *      SharedWorker runs the broker (`stats().mode === 'shared-worker'`), that the
 *      stylesheet applies, that the bar shows the server's progress and completion,
 *      and that the server saw exactly one WebSocket.
 *
 * Chromium: `TABCAST_CHROMIUM`, else /usr/bin/chromium (Debian package `chromium`).
 * Exits non-zero on any failure; removes its temp dir and stops what it started.
 */
/* global window, document, getComputedStyle -- used in functions that run in the page (page.evaluate) */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { checkFileList, kib, lintTarball, log, packLibrary, run } from './check-package.mjs'

const TASK_ID = 'pkg_check'
/** The whole check must finish well within this, or it fails (and cleans up). */
const OVERALL_TIMEOUT_MS = 150_000
const STEP_TIMEOUT_MS = 20_000
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
]
/** Linked into the app from this repo's node_modules (the app's toolchain, not tabcast's). */
const LINKED = ['vite', '@vitejs/plugin-react', 'react', 'react-dom', 'typescript', '@types/react', '@types/react-dom', '@types/node']
/**
 * To try another Vite: a folder whose node_modules holds that `vite` and a matching
 * `@vitejs/plugin-react` (e.g. `npm install vite@7 @vitejs/plugin-react@5` in it).
 * Those two are linked from there instead of from this repo.
 */
const TOOLCHAIN = process.env['TABCAST_CONSUMER_TOOLCHAIN'] || undefined
/**
 * One extra line for the app's `defineConfig({ … })`, e.g.
 * `optimizeDeps: { exclude: ['tabcast'] },` (none by default: Vite 8 needs none).
 */
const CONFIG_LINE = process.env['TABCAST_CONSUMER_VITE_CONFIG'] || ''
/** Which modes to run: `dev`, `build` or both (the default). */
const MODES = (process.env['TABCAST_CONSUMER_MODES'] || 'dev,build').split(',').map((mode) => mode.trim())

const require = createRequire(import.meta.url)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const started = performance.now()
/** @type {(() => Promise<void> | void)[]} */
const cleanups = []

/** @param {string} name */
function installedDir(name) {
  if (TOOLCHAIN && (name === 'vite' || name === '@vitejs/plugin-react')) {
    const dir = join(TOOLCHAIN, 'node_modules', name)
    if (!existsSync(join(dir, 'package.json'))) throw new Error(`TABCAST_CONSUMER_TOOLCHAIN has no ${name}: ${dir}`)
    return dir
  }
  for (const modules of require.resolve.paths(name) ?? []) {
    if (existsSync(join(modules, name, 'package.json'))) return join(modules, name)
  }
  throw new Error(`${name} is not installed in this repo: run npm ci`)
}

function chromiumPath() {
  const path = process.env['TABCAST_CHROMIUM'] || '/usr/bin/chromium'
  if (!existsSync(path)) {
    throw new Error(
      `no Chromium at ${path}: install one (Debian/Ubuntu: apt-get install chromium) or set TABCAST_CHROMIUM to a Chromium or Chrome executable`,
    )
  }
  return path
}

/**
 * @template T
 * @param {() => Promise<T | undefined | null | false>} probe
 * @param {string} what
 * @param {number} [timeout]
 * @returns {Promise<T>}
 */
async function waitFor(probe, what, timeout = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** @param {string} dir @param {string} port */
function writeApp(dir, port) {
  mkdirSync(join(dir, 'src'), { recursive: true })
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: 'tabcast-consumer-check', private: true, version: '0.0.0', type: 'module' }, null, 2)}\n`,
  )
  writeFileSync(
    join(dir, 'index.html'),
    `<!doctype html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <title>tabcast consumer check</title>
  </head>
  <body>
    <div id="root"></div>
    <script type="module" src="/src/main.tsx"></script>
  </body>
</html>
`,
  )
  // Exactly what a user writes: the only line beyond Vite's React template would be the
  // one docs/packaging.md documents, and Vite 8 needs none.
  writeFileSync(
    join(dir, 'vite.config.js'),
    `import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

export default defineConfig({
  plugins: [react()],${CONFIG_LINE ? `\n  ${CONFIG_LINE}` : ''}
})
`,
  )
  writeFileSync(
    join(dir, 'src', 'main.tsx'),
    `import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { getTabcastClient, type TabcastBrowserClient } from 'tabcast'
import { ProgressBar } from 'tabcast/react'
import 'tabcast/progress-bar.css'

declare global {
  interface Window {
    tabcastClient?: TabcastBrowserClient
  }
}

// For the check: the page's shared client, whose stats() tell how the broker runs.
window.tabcastClient = getTabcastClient()

const root = document.getElementById('root')
if (!root) throw new Error('#root is missing')
createRoot(root).render(
  <StrictMode>
    <ProgressBar projectId="${TASK_ID}" backendUrl="127.0.0.1:${port}" />
  </StrictMode>,
)
`,
  )
  // A strict consumer: every side-effect import must resolve (TypeScript 6's default),
  // no Vite client types to declare '*.css' for us, and our .d.ts files checked too.
  writeFileSync(
    join(dir, 'tsconfig.json'),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023', 'DOM', 'DOM.Iterable'],
          module: 'ESNext',
          moduleResolution: 'bundler',
          jsx: 'react-jsx',
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedSideEffectImports: true,
          verbatimModuleSyntax: true,
          skipLibCheck: false,
          types: [],
          noEmit: true,
        },
        include: ['src'],
      },
      null,
      2,
    )}\n`,
  )
  // The backend side: what the server docs show, type-checked under Node's own ESM rules.
  writeFileSync(
    join(dir, 'server.ts'),
    `import { createTabcastServer, type TabcastServerOptions } from 'tabcast/server'

const options: TabcastServerOptions = { allowedOrigins: ['http://127.0.0.1:5173'], demo: false }
const tabcast = createTabcastServer(options)
const address = await tabcast.listen(0)
const task = await tabcast.createTask({ taskName: 'typed' })
await tabcast.progress(task.taskId, 0.5, 'half')
await tabcast.complete(task.taskId, { url: address.url })
await tabcast.close()
`,
  )
  writeFileSync(
    join(dir, 'tsconfig.server.json'),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          types: ['node'],
          noEmit: true,
        },
        include: ['server.ts'],
      },
      null,
      2,
    )}\n`,
  )
}

/**
 * Starts a long-running command (vite dev / preview) in its own process group, and
 * resolves with the first http URL it prints.
 * @param {string} label
 * @param {string[]} args
 * @param {string} cwd
 * @returns {Promise<{ url: string, stop: () => Promise<void> }>}
 */
function startServer(label, args, cwd) {
  const child = spawn(process.execPath, args, {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', BROWSER: 'none' },
  })
  const pid = child.pid
  if (pid === undefined) throw new Error(`${label}: spawn failed`)
  let exited = false
  const exit = new Promise((resolve) => child.once('exit', () => resolve(undefined)))
  child.once('exit', () => {
    exited = true
  })
  const stop = async () => {
    if (exited) return
    try {
      process.kill(-pid, 'SIGTERM')
    } catch {
      return
    }
    const killed = await Promise.race([exit.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 3000))])
    if (!killed && !exited) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        // already gone
      }
      await exit
    }
  }
  cleanups.push(stop)
  return new Promise((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => {
      if (settled) return
      settled = true
      reject(new Error(`${label}: no URL printed within ${STEP_TIMEOUT_MS} ms`))
    }, STEP_TIMEOUT_MS)
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        const text = line.trimEnd()
        if (!text.trim()) continue
        console.log(`  [${label}] ${text}`)
        const match = /(http:\/\/127\.0\.0\.1:\d+)\/?/.exec(text)
        if (match?.[1] && !settled) {
          settled = true
          clearTimeout(timer)
          resolve({ url: match[1], stop })
        }
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code, signal) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      reject(new Error(`${label} exited (${code ?? signal}) before serving`))
    })
  })
}

/** A free TCP port on 127.0.0.1 (for Vite's --strictPort). */
async function freePort() {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const address = server.address()
  await new Promise((resolve) => server.close(() => resolve(undefined)))
  if (!address || typeof address === 'string') throw new Error('no port')
  return address.port
}

/**
 * One mode (dev, or build + preview): a fresh reference server on the shared HTTP
 * server, a fresh browser context, the assertions.
 * @param {{
 *   label: string,
 *   url: string,
 *   browser: import('playwright-core').Browser,
 *   httpServer: import('node:http').Server,
 *   upgrades: { count: number, paths: string[] },
 *   tabcastServer: typeof import('tabcast/server'),
 * }} context
 */
async function runScenario({ label, url, browser, httpServer, upgrades, tabcastServer }) {
  const { createTabcastServer, silentLogger } = tabcastServer
  upgrades.count = 0
  upgrades.paths.length = 0
  const server = createTabcastServer({ server: httpServer, demo: false, logger: silentLogger })
  await server.createTask({ taskId: TASK_ID, taskName: 'Package check' })
  const context = await browser.newContext()
  /** @type {string[]} */
  const pageProblems = []
  try {
    const page = await context.newPage()
    page.on('pageerror', (error) => pageProblems.push(`page error: ${error.message}`))
    page.on('console', (message) => {
      // A failed load is reported below with its URL.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        pageProblems.push(`console error: ${message.text()}`)
      }
    })
    page.on('response', (response) => {
      // The browser asks for /favicon.ico on its own; the app has none.
      if (response.status() >= 400 && new URL(response.url()).pathname !== '/favicon.ico') {
        pageProblems.push(`HTTP ${response.status()} for ${response.url()}`)
      }
    })
    page.on('requestfailed', (request) => pageProblems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`))
    log(`${label}: open ${url}`)
    await page.goto(url)
    await page.waitForFunction(() => window.tabcastClient !== undefined, undefined, { timeout: STEP_TIMEOUT_MS })

    const stats = await page.evaluate(() => window.tabcastClient?.stats())
    if (!stats) throw new Error('the page has no tabcast client')
    if (stats.mode !== 'shared-worker') {
      throw new Error(`the broker runs in mode '${stats.mode}', not 'shared-worker': ${stats.modeReason}`)
    }
    log(`${label}: SharedWorker loaded (mode ${stats.mode}, broker ${stats.instanceId}, protocol v${stats.protocolVersion})`)

    const fill = await page.evaluate(() => {
      const bar = document.querySelector('.tabcast-progress')
      return bar ? getComputedStyle(bar).getPropertyValue('--tabcast-color-fill').trim() : null
    })
    if (fill !== '#4f46e5') throw new Error(`tabcast/progress-bar.css is not applied (--tabcast-color-fill is ${JSON.stringify(fill)})`)
    log(`${label}: tabcast/progress-bar.css applied`)

    await waitFor(async () => server.stats().connectionsByTask[TASK_ID] === 1, `the page's WebSocket for ${TASK_ID}`)
    log(`${label}: the server has the task's WebSocket`)

    await server.progress(TASK_ID, 0.5, 'Halfway there')
    await page.locator('[role="progressbar"][aria-valuenow="50"]').waitFor({ timeout: STEP_TIMEOUT_MS })
    log(`${label}: the bar shows 50% ("Halfway there")`)

    await server.complete(TASK_ID, { checked: true })
    await page.locator(`.tabcast-progress[data-status="completed"]`).waitFor({ timeout: STEP_TIMEOUT_MS })
    const percent = await page.locator('[role="progressbar"]').getAttribute('aria-valuenow')
    if (percent !== '100') throw new Error(`the completed bar shows ${percent}%, not 100%`)
    log(`${label}: the bar reached completed (100%)`)

    const after = await page.evaluate(() => window.tabcastClient?.stats())
    if (after?.mode !== 'shared-worker') throw new Error(`the broker left shared-worker mode: ${after?.modeReason}`)
    // Give a stray second socket (StrictMode's remount, a reload) time to show up.
    await new Promise((resolve) => setTimeout(resolve, 500))
    if (upgrades.count !== 1) {
      throw new Error(`the server saw ${upgrades.count} WebSocket connections, expected exactly 1: ${upgrades.paths.join(', ')}`)
    }
    log(`${label}: the server saw exactly one WebSocket (${upgrades.paths[0]})`)
    if (pageProblems.length > 0) throw new Error(`the page reported problems:\n  ${pageProblems.join('\n  ')}`)
  } catch (error) {
    if (pageProblems.length > 0) console.error(`  [${label}] page output:\n    ${pageProblems.join('\n    ')}`)
    throw error
  } finally {
    await context.close()
    await server.close()
  }
}

async function main() {
  const unknown = MODES.filter((mode) => mode !== 'dev' && mode !== 'build')
  if (unknown.length > 0 || MODES.length === 0) throw new Error(`TABCAST_CONSUMER_MODES: expected dev and/or build, got ${MODES.join(',')}`)
  const { chromium } = await import('playwright-core')
  const executablePath = chromiumPath()
  const temp = mkdtempSync(join(tmpdir(), 'tabcast-consumer-'))
  cleanups.push(() => rmSync(temp, { recursive: true, force: true }))

  log('npm pack (prepack: build:lib)')
  const packed = packLibrary(temp)
  log(`${packed.filename}: ${packed.files.length} files, ${kib(packed.size)} packed, ${kib(packed.unpackedSize)} unpacked`)
  const problems = checkFileList(packed)
  if (problems.length > 0) throw new Error(`the tarball's file list is wrong:\n  ${problems.join('\n  ')}`)
  log('file list: ok')
  lintTarball(packed)

  // The reference server's HTTP server first: its port goes into the app.
  const upgrades = { count: 0, /** @type {string[]} */ paths: [] }
  const httpServer = createServer()
  httpServer.on('upgrade', (request) => {
    upgrades.count += 1
    upgrades.paths.push(request.url ?? '?')
  })
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', () => resolve(undefined)))
  cleanups.push(
    () =>
      new Promise((resolve) => {
        httpServer.close(() => resolve())
        httpServer.closeAllConnections()
      }),
  )
  const address = httpServer.address()
  if (!address || typeof address === 'string') throw new Error('the reference server has no port')
  const backendPort = String(address.port)

  const app = join(temp, 'app')
  log(`consumer app in ${app} (backend 127.0.0.1:${backendPort})`)
  writeApp(app, backendPort)
  log(`npm install ${packed.filename} (its dependencies from the npm cache)`)
  run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'error', packed.tarball], { cwd: app })
  for (const name of LINKED) {
    const link = join(app, 'node_modules', name)
    // The tarball's own dependencies may already have brought one in (@types/ws needs
    // @types/node): use this repo's copy either way, so the versions are the tested ones.
    rmSync(link, { recursive: true, force: true })
    mkdirSync(dirname(link), { recursive: true })
    symlinkSync(installedDir(name), link, 'dir')
  }
  log(`linked from this repo: ${LINKED.join(', ')}${TOOLCHAIN ? ` (vite and @vitejs/plugin-react from ${TOOLCHAIN})` : ''}`)
  log(`vite.config.js: plugins: [react()]${CONFIG_LINE ? ` + ${CONFIG_LINE}` : ' and nothing else'}`)

  const tsc = join(app, 'node_modules/typescript/bin/tsc')
  log('tsc --noEmit: src/main.tsx (bundler resolution, strict, skipLibCheck off)')
  run(process.execPath, [tsc, '-p', app], { cwd: app })
  log('tsc --noEmit: server.ts with tabcast/server (NodeNext, strict)')
  run(process.execPath, [tsc, '-p', join(app, 'tsconfig.server.json')], { cwd: app })

  const tabcastServer = /** @type {typeof import('tabcast/server')} */ (
    await import(pathToFileURL(createRequire(join(app, 'package.json')).resolve('tabcast/server')).href)
  )
  log('reference server: tabcast/server from the installed tarball')

  log(`Chromium: ${executablePath}`)
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: STEP_TIMEOUT_MS })
  cleanups.push(() => browser.close())
  const vite = join(app, 'node_modules/vite/bin/vite.js')

  // vite dev
  if (MODES.includes('dev')) {
    log('vite (dev server)')
    const port = await freePort()
    const dev = await startServer('vite dev', [vite, '--host', '127.0.0.1', '--port', String(port), '--strictPort'], app)
    await runScenario({ label: 'vite dev', url: dev.url, browser, httpServer, upgrades, tabcastServer })
    await dev.stop()
    log('vite dev: passed')
  }

  // vite build + vite preview
  if (MODES.includes('build')) {
    log('vite build')
    run(process.execPath, [vite, 'build'], { cwd: app, env: { ...process.env, NO_COLOR: '1' } })
    const assets = readdirSync(join(app, 'dist', 'assets'))
    const worker = assets.find((file) => /^broker\.worker-.+\.js$/.test(file))
    if (!worker) throw new Error(`vite build emitted no broker.worker asset: ${assets.join(', ')}`)
    log(`vite build: worker emitted as dist/assets/${worker}`)
    const port = await freePort()
    const preview = await startServer('vite preview', [vite, 'preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'], app)
    await runScenario({ label: 'vite build', url: preview.url, browser, httpServer, upgrades, tabcastServer })
    await preview.stop()
    log('vite build + preview: passed')
  }
}

/** Runs the cleanups, newest first, each at most once. */
async function cleanUp() {
  while (cleanups.length > 0) {
    const cleanup = cleanups.pop()
    try {
      await cleanup?.()
    } catch (error) {
      console.error(`cleanup: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
}

const overall = setTimeout(() => {
  console.error(`test:package FAILED: not done after ${OVERALL_TIMEOUT_MS / 1000} s`)
  void cleanUp().finally(() => process.exit(1))
}, OVERALL_TIMEOUT_MS)

try {
  await main()
  await cleanUp()
  clearTimeout(overall)
  log(`test:package passed in ${((performance.now() - started) / 1000).toFixed(1)} s (${MODES.map((mode) => `vite ${mode}`).join(' and ')}: SharedWorker, stylesheet, progress, completion, one WebSocket)`)
} catch (error) {
  console.error(`test:package FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  await cleanUp()
  clearTimeout(overall)
  process.exitCode = 1
}
