import { fileURLToPath } from 'node:url'
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vitest/config'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))

// The demo and the tests import tabcast through its public entry names, exactly as a
// user would; these aliases point those names at the sources.
const alias = [
  { find: /^tabcast\/react$/, replacement: here('./src/react/index.ts') },
  { find: /^tabcast\/progress-bar\.css$/, replacement: here('./src/react/progress-bar.css') },
  { find: /^tabcast\/server$/, replacement: here('./server/index.ts') },
  { find: /^tabcast$/, replacement: here('./src/index.ts') },
]

export default defineConfig({
  plugins: [react()],
  resolve: { alias },
  // Shared workers must be ES modules: the worker is created with `type: 'module'`.
  worker: { format: 'es' },
  server: { port: 3020, strictPort: false, host: '127.0.0.1' },
  preview: { port: 3020, host: '127.0.0.1' },
  // No source maps in the production build: they would publish the sources next to the app.
  build: { outDir: 'dist', sourcemap: false },
  test: {
    projects: [
      {
        extends: true,
        test: { name: 'unit', environment: 'node', include: ['tests/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'react', environment: 'jsdom', include: ['tests/react/**/*.test.{ts,tsx}'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          environment: 'node',
          include: ['tests/integration/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          environment: 'node',
          include: ['tests/e2e/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
})
