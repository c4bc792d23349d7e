/**
 * The layer rules of eslint.config.js, checked against code that breaks each one (and
 * code that keeps to them), so that a rule that stops matching fails here instead of
 * quietly letting an import through. The files need not exist: ESLint lints the text
 * as if it were at that path.
 */
import { ESLint } from 'eslint'
import { describe, expect, it } from 'vitest'

const eslint = new ESLint({ cwd: process.cwd() })

/** The layer rules that fire on `code` at `filePath` (each once, however many of its patterns match). */
async function restrictions(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath })
  const fired = (result?.messages ?? []).flatMap((message) =>
    message.ruleId === 'no-restricted-imports' || message.ruleId === 'no-restricted-globals' ? [message.ruleId] : [],
  )
  return [...new Set(fired)]
}

const uses = (specifier: string): string => `import { x } from '${specifier}'\nexport const y = x\n`

describe('layer rules: each forbidden arrow is reported', () => {
  it.each([
    ['src/core/probe.ts', '../client/index.js'],
    ['src/core/probe.ts', '../react/index.js'],
    ['src/core/probe.ts', 'react'],
    ['src/core/probe.ts', '../../worker/shared-worker-host.js'],
    ['src/client/probe.ts', '../react/index.js'],
    ['src/client/probe.ts', '../../worker/shared-worker-host.js'],
    ['src/react/probe.ts', '../../worker/shared-worker-host.js'],
    ['src/probe.ts', '../worker/shared-worker-host.js'],
    ['server/probe.ts', '../worker/shared-worker-host.js'],
    ['server/probe.ts', 'react'],
    ['server/probe.ts', 'tabcast/react'],
    ['server/probe.ts', '../src/client/index.js'],
    ['server/probe.ts', '../src/react/index.js'],
    ['server/probe.ts', '../src/core/broker.js'],
    ['app/probe.ts', '../src/index.js'],
    ['app/pages/probe.ts', '../../server/index.js'],
    ['app/probe.ts', 'tabcast/lib/src/core/broker.js'],
    ['app/probe.ts', 'comlink'],
  ])('%s ↛ %s', async (file, specifier) => {
    expect(await restrictions(file, uses(specifier))).toEqual(['no-restricted-imports'])
  })

  it.each(['window', 'self', 'navigator', 'WebSocket', 'fetch', 'setTimeout', 'setInterval', 'document', 'location', 'BroadcastChannel', 'SharedWorker', 'localStorage'])(
    'src/core does not read the global %s',
    async (name) => {
      expect(await restrictions('src/core/probe.ts', `export const y = () => ${name}\n`)).toEqual(['no-restricted-globals'])
    },
  )
})

describe('layer rules: the allowed arrows pass', () => {
  it.each([
    ['app/probe.ts', ['tabcast', 'tabcast/react', 'tabcast/server', 'react', 'react-dom/client', './router.js']],
    ['server/probe.ts', ['../src/protocol.js']],
    ['src/client/probe.ts', ['../core/broker.js', '../protocol.js']],
    ['src/react/probe.ts', ['../client/index.js', 'react']],
    ['worker/probe.ts', ['../src/core/session-api.js']],
  ])('%s → %j', async (file, specifiers) => {
    const code = specifiers.map((specifier, i) => `import { x${i} } from '${specifier}'`).join('\n') + `\nexport const y = [${specifiers.map((_, i) => `x${i}`).join(', ')}]\n`
    expect(await restrictions(file, code)).toEqual([])
  })

  it('src/core may use an injected clock named like a global', async () => {
    expect(await restrictions('src/core/probe.ts', 'export const y = (clock: { setTimeout(cb: () => void, ms: number): unknown }) => clock.setTimeout(() => {}, 1)\n')).toEqual([])
  })
})
