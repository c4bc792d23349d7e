import { describe, expect, it } from 'vitest'
import config from '../../vite.config.js'

describe('the production demo build', () => {
  it('emits no source maps (they would publish the sources next to the app)', () => {
    expect(config.build?.sourcemap ?? false).toBe(false)
  })
})
