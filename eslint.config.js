import js from '@eslint/js'
import reactHooks from 'eslint-plugin-react-hooks'
import globals from 'globals'
import tseslint from 'typescript-eslint'

/*
 * The architecture, held by lint (docs/architecture.md explains the layers):
 *   app → tabcast, tabcast/react, tabcast/server (public entry names only)
 *   src/react → src/client → src/core → src/{options,types,endpoints,protocol,…}
 *   worker → src (never the other way)      server → src/protocol.ts and friends, never the tab side
 * Each rule below is one arrow that must not exist. Patterns are regular expressions
 * over the import specifier, so relative paths are caught from any depth.
 */
const WORKER = { regex: '(^|/)worker(/|$)', message: 'Only worker/ imports worker/: the SharedWorker entry depends on src/, never the reverse.' }
const REACT = { regex: '^(react|react-dom)(/.*)?$|^tabcast/react$', message: 'Only src/react and app/ use React.' }

/** `no-restricted-imports` for one layer: the arrows it must not have. */
function layer(files, patterns) {
  return { files, rules: { 'no-restricted-imports': ['error', { patterns }] } }
}

export default tseslint.config(
  { ignores: ['node_modules', 'lib', 'dist', 'bench-results', '.tmp', 'test-results'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
    plugins: { 'react-hooks': reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['**/*.{js,mjs}'],
    languageOptions: { globals: { ...globals.node } },
  },

  // src ↛ worker/ (src/core and src/client repeat it below, as a later block replaces this one).
  layer(['src/**/*.{ts,tsx}'], [WORKER]),
  // src/core ↛ React, src/client, src/react, worker/: the broker core runs in a worker, a tab and Node alike.
  layer(
    ['src/core/**/*.ts'],
    [
      WORKER,
      REACT,
      { regex: '(^|/)(client|react)(/|$)', message: 'src/core is below src/client and src/react: they use it, it does not use them.' },
    ],
  ),
  // src/client ↛ src/react: the React layer is a thin binding over the client.
  layer(['src/client/**/*.ts'], [WORKER, REACT, { regex: '(^|/)react(/|$)', message: 'src/client is below src/react.' }]),
  // server ↛ worker/, React, and the tab side of src (client, react, core): it shares only the wire protocol.
  layer(
    ['server/**/*.ts'],
    [
      WORKER,
      REACT,
      { regex: '(^|/)src/(client|react|core)(/|$)', message: 'server/ shares only src/protocol.ts (and other modules at the top of src/) with the client.' },
    ],
  ),
  // app ↛ anything but the package's public entry names, exactly as a user imports them.
  layer(
    ['app/**/*.{ts,tsx}'],
    [
      {
        regex: '^(\\.\\./)+(src|server|worker|bench|tests|scripts)(/|$)|^/',
        message: 'app/ is a user of the package: import tabcast, tabcast/react, tabcast/server or tabcast/progress-bar.css.',
      },
      {
        regex: '^(?!\\.|(tabcast|tabcast/react|tabcast/server|tabcast/progress-bar\\.css|react|react-dom|react-dom/client|react/jsx-runtime)$)',
        message: 'Only the package entry names (tabcast, tabcast/react, tabcast/server, tabcast/progress-bar.css) and React itself.',
      },
    ],
  ),

  // src/core gets its environment injected (BrokerEnv): no browser or timer globals.
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        ...[
          'window',
          'self',
          'globalThis',
          'navigator',
          'WebSocket',
          'fetch',
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'clearInterval',
          'document',
          'location',
          'BroadcastChannel',
          'SharedWorker',
          'localStorage',
        ].map((name) => ({ name, message: `src/core gets its environment injected (BrokerEnv); use the injected clock, socket factory or fetch instead of ${name}.` })),
      ],
    },
  },
)
