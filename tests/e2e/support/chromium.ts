/**
 * Finding and launching a Chromium for the end-to-end suite. Browsers cannot be
 * downloaded on every machine (`npx playwright install` may fail), so the suite uses
 * `playwright-core` with whatever Chromium the machine already has.
 */
import { accessSync, constants, existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'

/** Flags for a headless Chromium that makes no network traffic of its own. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
]

const PATH_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']

export const HOW_TO_GET_CHROMIUM = [
  'The end-to-end tests need a Chromium (Chrome works too). To get one, either:',
  '  - install one: `apt-get install -y chromium` (Debian/Ubuntu; it lands at /usr/bin/chromium), or',
  '  - point TABCAST_CHROMIUM (or CHROME_PATH) at a Chromium or Chrome executable:',
  '      TABCAST_CHROMIUM=/path/to/chrome npm run test:e2e',
  '  - or, where downloads work, `npx playwright install chromium` (found through playwright-core).',
].join('\n')

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function onPath(name: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, name)
    if (isExecutable(candidate)) return candidate
  }
  return null
}

export interface ChromiumLookup {
  path: string
  /** Where it was found, for error messages. */
  source: string
}

/**
 * The Chromium to use: `TABCAST_CHROMIUM`, `CHROME_PATH`, `/usr/bin/chromium`,
 * `chromium` / `google-chrome(-stable)` on PATH, then playwright-core's own download.
 * Throws with instructions when there is none. An environment variable that points
 * nowhere is an error, not a reason to silently use another browser.
 */
export function findChromium(): ChromiumLookup {
  for (const name of ['TABCAST_CHROMIUM', 'CHROME_PATH'] as const) {
    const value = process.env[name]
    if (value === undefined || value === '') continue
    if (!isExecutable(value)) throw new Error(`${name}=${value} is not an executable file.\n\n${HOW_TO_GET_CHROMIUM}`)
    return { path: value, source: `$${name}` }
  }
  if (isExecutable('/usr/bin/chromium')) return { path: '/usr/bin/chromium', source: '/usr/bin/chromium' }
  for (const name of PATH_NAMES) {
    const found = onPath(name)
    if (found) return { path: found, source: `${name} on PATH` }
  }
  try {
    const registered = chromium.executablePath()
    if (registered && existsSync(registered)) return { path: registered, source: "playwright-core's registry" }
  } catch {
    // playwright-core throws when it has no browser of its own: fall through to the instructions.
  }
  throw new Error(HOW_TO_GET_CHROMIUM)
}

/** Launches the Chromium found by `findChromium()`. */
export async function launchChromium(): Promise<Browser> {
  const { path, source } = findChromium()
  try {
    return await chromium.launch({ executablePath: path, args: [...CHROMIUM_ARGS] })
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new Error(`Chromium at ${path} (from ${source}) did not start: ${reason}\n\n${HOW_TO_GET_CHROMIUM}`, { cause: error })
  }
}
