import { describe, expect, it } from 'vitest'
import {
  DEFAULT_OPTIONS,
  initialSnapshot,
  mergeOptions,
  resolveBackend,
  resolveOptions,
  statusUrl,
  streamUrl,
  taskKey,
  type Backend,
} from 'tabcast'
import { resolveTarget } from '../../src/endpoints.js'

function backend(input: string, secure = false): Backend {
  const result = resolveBackend(input, secure)
  if (!result.ok) throw new Error(result.error)
  return result.value
}

function backendError(input: string): string {
  const result = resolveBackend(input)
  if (result.ok) throw new Error(`expected ${input} to be rejected`)
  return result.error
}

describe('resolveBackend', () => {
  it('host:port uses ws/http', () => {
    expect(backend('localhost:8000')).toEqual({ ws: 'ws://localhost:8000', http: 'http://localhost:8000' })
  })

  it('host:port on a secure page uses wss/https', () => {
    expect(backend('api.example.com:8443', true)).toEqual({ ws: 'wss://api.example.com:8443', http: 'https://api.example.com:8443' })
  })

  it('an explicit scheme wins over the page', () => {
    expect(backend('http://127.0.0.1:9000', true)).toEqual({ ws: 'ws://127.0.0.1:9000', http: 'http://127.0.0.1:9000' })
    expect(backend('ws://h:1')).toEqual({ ws: 'ws://h:1', http: 'http://h:1' })
  })

  it('https and wss give wss and https', () => {
    expect(backend('https://api.example.com')).toEqual({ ws: 'wss://api.example.com', http: 'https://api.example.com' })
    expect(backend('WSS://api.example.com')).toEqual({ ws: 'wss://api.example.com', http: 'https://api.example.com' })
  })

  it('keeps a path prefix and drops trailing slashes', () => {
    expect(backend('https://example.com/tasks/')).toEqual({ ws: 'wss://example.com/tasks', http: 'https://example.com/tasks' })
    expect(backend('  localhost:8000/api/  ')).toEqual({ ws: 'ws://localhost:8000/api', http: 'http://localhost:8000/api' })
  })

  it('drops the default port like URL does', () => {
    expect(backend('https://example.com:443').http).toBe('https://example.com')
  })

  it('rejects a bad scheme, naming it', () => {
    expect(backendError('ftp://example.com')).toContain('has scheme "ftp"')
  })

  it('rejects credentials, a query, an empty value and garbage', () => {
    expect(backendError('https://user:pw@example.com')).toContain('must not contain credentials')
    expect(backendError('https://example.com/?a=1')).toContain('query or fragment')
    expect(backendError('   ')).toBe('backendUrl is empty')
    expect(backendError('http://exa mple.com')).toContain('is not a valid URL')
  })
})

describe('streamUrl / statusUrl', () => {
  const local = backend('localhost:8000')

  it("builds the guide's endpoints", () => {
    expect(streamUrl(local, 'audio_generation_12345')).toBe('ws://localhost:8000/api/v1/ws/projects/audio_generation_12345/stream')
    expect(statusUrl(local, 'audio_generation_12345')).toBe('http://localhost:8000/api/v1/projects/audio_generation_12345/status')
  })

  it('URL-encodes the task id', () => {
    expect(streamUrl(local, 'a:b~c')).toBe('ws://localhost:8000/api/v1/ws/projects/a%3Ab~c/stream')
    expect(statusUrl(local, 'x/../y')).toBe('http://localhost:8000/api/v1/projects/x%2F..%2Fy/status')
    expect(statusUrl(local, 'a b?c#d')).toBe('http://localhost:8000/api/v1/projects/a%20b%3Fc%23d/status')
  })

  it('adds ?since= only for a positive seq', () => {
    expect(streamUrl(local, 't', 12)).toMatch(/\/stream\?since=12$/)
    expect(streamUrl(local, 't', 0)).toMatch(/\/stream$/)
    expect(streamUrl(local, 't')).toMatch(/\/stream$/)
  })

  it('keeps a path prefix', () => {
    expect(statusUrl(backend('https://h/prefix'), 't')).toBe('https://h/prefix/api/v1/projects/t/status')
  })
})

describe('resolveTarget / taskKey', () => {
  it('one key per (backend, task), however the backend is spelled', () => {
    const a = resolveTarget('localhost:8000', 't1')
    const b = resolveTarget('http://localhost:8000/', 't1')
    const c = resolveTarget('ws://localhost:8000', 't1')
    expect(a.ok && b.ok && c.ok).toBe(true)
    if (a.ok && b.ok && c.ok) {
      expect(a.key).toBe(b.key)
      expect(a.key).toBe(c.key)
      expect(a.key).toBe(taskKey('t1', { backendUrl: 'localhost:8000' }, false))
    }
    const other = resolveTarget('localhost:8001', 't1')
    expect(other.ok && a.ok && other.key !== a.key).toBe(true)
  })

  it('taskKey: one key however the backend is spelled, and the default backend is localhost:8000', () => {
    const key = taskKey('t1', { backendUrl: 'localhost:8000' }, false)
    expect(key).toBe('http://localhost:8000 t1')
    for (const backendUrl of ['http://localhost:8000', 'http://localhost:8000/', ' ws://LOCALHOST:8000 ', undefined]) {
      expect(taskKey('t1', { backendUrl }, false)).toBe(key)
    }
    expect(taskKey('t1', {}, false)).toBe(key)
    expect(taskKey('t1', { backendUrl: 'localhost:8001' }, false)).not.toBe(key)
    expect(taskKey('t2', { backendUrl: 'localhost:8000' }, false)).not.toBe(key)
    // A path prefix is part of the backend.
    expect(taskKey('t1', { backendUrl: 'localhost:8000/api' }, false)).toBe('http://localhost:8000/api t1')
  })

  it('taskKey: on an https page a bare host:port is https, like the broker resolves it', () => {
    expect(taskKey('t1', { backendUrl: 'example.com' }, true)).toBe(taskKey('t1', { backendUrl: 'https://example.com' }, true))
    expect(taskKey('t1', { backendUrl: 'example.com' }, true)).not.toBe(taskKey('t1', { backendUrl: 'http://example.com' }, true))
    const target = resolveTarget('example.com', 't1', true)
    expect(target.ok && target.key).toBe(taskKey('t1', { backendUrl: 'https://example.com' }, true))
  })

  it('taskKey: an auth scope is part of the key, so two identities never share a task', () => {
    const anonymous = taskKey('t1', {}, false)
    const alice = taskKey('t1', { authScope: 'user alice' }, false)
    expect(alice).toBe('http://localhost:8000 t1 user%20alice')
    expect(alice).not.toBe(anonymous)
    expect(taskKey('t1', { authScope: 'bob' }, false)).not.toBe(alice)
    const target = resolveTarget('http://localhost:8000', 't1', false, 'user alice')
    expect(target.ok && target.key).toBe(alice)
  })

  it('taskKey: a backend that does not resolve keeps its own text as its key', () => {
    expect(taskKey('t1', { backendUrl: ' ftp://x ' }, false)).toBe('ftp://x t1')
    expect(taskKey('t1', { backendUrl: 7 as unknown as string }, false)).toBe(taskKey('t1', {}, false))
  })

  it('reports a bad task id before a bad backend', () => {
    expect(resolveTarget('ftp://x', '../x')).toEqual({ ok: false, error: expect.stringContaining('"../x"') })
    expect(resolveTarget('ftp://x', 'good')).toEqual({ ok: false, error: expect.stringContaining('scheme "ftp"') })
  })
})

describe('resolveOptions', () => {
  it("fills in the guide's defaults", () => {
    expect(resolveOptions()).toEqual(DEFAULT_OPTIONS)
    expect(resolveOptions()).toMatchObject({
      backendUrl: 'localhost:8000',
      autoReconnect: true,
      maxReconnectAttempts: 5,
      pollingFallback: true,
      pollingInterval: 2000,
      pingInterval: 30_000,
      reconnectBaseDelay: 1000,
      reconnectMaxDelay: 30_000,
      reconnectJitter: 0,
      staleAfter: 30_000,
    })
  })

  it('keeps valid values', () => {
    const resolved = resolveOptions({ backendUrl: 'h:1', autoReconnect: false, maxReconnectAttempts: 0, pollingInterval: 50, linger: 0 })
    expect(resolved).toMatchObject({ backendUrl: 'h:1', autoReconnect: false, maxReconnectAttempts: 0, pollingInterval: 50, linger: 0 })
  })

  it('falls back to the default for wrong types and out-of-range values', () => {
    const resolved = resolveOptions({
      pollingInterval: -1,
      maxReconnectAttempts: Number.NaN,
      pingInterval: Number.POSITIVE_INFINITY,
      reconnectJitter: 2,
      autoReconnect: 'yes' as unknown as boolean,
      connectTimeout: 1,
      staleAfter: -5,
    })
    expect(resolved).toEqual(DEFAULT_OPTIONS)
  })

  it('does not return the frozen defaults object itself', () => {
    const resolved = resolveOptions()
    expect(resolved).not.toBe(DEFAULT_OPTIONS)
    expect(Object.isFrozen(resolved)).toBe(false)
  })
})

describe('mergeOptions: the most demanding value wins', () => {
  const a = resolveOptions({
    autoReconnect: false,
    maxReconnectAttempts: 2,
    pollingFallback: false,
    pollingInterval: 5000,
    pingInterval: 0,
    pongTimeout: 3000,
    reconnectBaseDelay: 500,
    reconnectMaxDelay: 60_000,
    reconnectJitter: 0.1,
    socketRetryInterval: 0,
    connectTimeout: 2000,
    requestTimeout: 20_000,
    linger: 100,
    staleAfter: 0,
  })
  const b = resolveOptions({
    backendUrl: 'other:1',
    maxReconnectAttempts: 8,
    pollingInterval: 1000,
    pingInterval: 20_000,
    pongTimeout: 9000,
    reconnectBaseDelay: 2000,
    reconnectMaxDelay: 10_000,
    socketRetryInterval: 15_000,
    connectTimeout: 9000,
    requestTimeout: 4000,
    linger: 9000,
    staleAfter: 45_000,
  })

  it('merges field by field', () => {
    expect(mergeOptions(a, b)).toEqual({
      backendUrl: a.backendUrl,
      autoReconnect: true,
      maxReconnectAttempts: 8,
      pollingFallback: true,
      pollingInterval: 1000,
      pingInterval: 20_000,
      pongTimeout: 3000,
      reconnectBaseDelay: 500,
      reconnectMaxDelay: 10_000,
      reconnectJitter: 0.1,
      socketRetryInterval: 15_000,
      connectTimeout: 2000,
      requestTimeout: 4000,
      linger: 9000,
      // The snapshot is shared: a subscriber that wants stall notices gets them (0, off, loses).
      staleAfter: 45_000,
      authScope: '',
      credentials: 'same-origin',
    })
  })

  it('credentials: whoever needs cookies on status reads gets them (include > same-origin > omit)', () => {
    const omit = resolveOptions({ credentials: 'omit' })
    const include = resolveOptions({ credentials: 'include' })
    expect(mergeOptions(omit, DEFAULT_OPTIONS).credentials).toBe('same-origin')
    expect(mergeOptions(DEFAULT_OPTIONS, include).credentials).toBe('include')
    expect(mergeOptions(omit, omit).credentials).toBe('omit')
  })

  it('is symmetric apart from backendUrl', () => {
    const { backendUrl: _ab, ...ab } = mergeOptions(a, b)
    const { backendUrl: _ba, ...ba } = mergeOptions(b, a)
    expect(ab).toEqual(ba)
  })

  it('0 (off) loses to any positive ping or probe interval, and wins only when both are off', () => {
    const off = resolveOptions({ pingInterval: 0, socketRetryInterval: 0 })
    expect(mergeOptions(off, off)).toMatchObject({ pingInterval: 0, socketRetryInterval: 0 })
    expect(mergeOptions(off, resolveOptions())).toMatchObject({ pingInterval: 30_000, socketRetryInterval: 30_000 })
  })
})

describe('initialSnapshot', () => {
  it('is idle and connecting with the effective maxReconnectAttempts', () => {
    expect(initialSnapshot('t1', { maxReconnectAttempts: 3 })).toMatchObject({
      projectId: 't1',
      status: 'idle',
      progress: 0,
      connection: 'connecting',
      isConnected: false,
      isFallback: false,
      maxReconnectAttempts: 3,
      seq: null,
      connectionError: null,
    })
  })
})

describe('auth options', () => {
  it('authScope and credentials resolve like every option: a wrong value means the default', () => {
    expect(resolveOptions({ authScope: 'user-7', credentials: 'include' })).toMatchObject({ authScope: 'user-7', credentials: 'include' })
    const wrong = resolveOptions({ authScope: 7 as unknown as string, credentials: 'always' as unknown as 'include' })
    expect(wrong).toMatchObject({ authScope: '', credentials: 'same-origin' })
  })

  it('the auth function is never part of the resolved options (nor of a JSON key made of them)', () => {
    const resolved = resolveOptions({ auth: () => 'token', authScope: 'u1' })
    expect(Object.keys(resolved)).not.toContain('auth')
    expect(JSON.stringify(resolved)).toContain('"authScope":"u1"')
  })

  it('the scope is part of the task key: two identities are two keys, no scope and "" are one', () => {
    const target = (authScope?: string) => resolveTarget('localhost:8000', 'job-1', false, authScope)
    const anonymous = target()
    const empty = target('')
    const alice = target('alice')
    const bob = target('bob')
    expect(anonymous.ok && empty.ok && alice.ok && bob.ok).toBe(true)
    if (!anonymous.ok || !empty.ok || !alice.ok || !bob.ok) return
    expect(empty.key).toBe(anonymous.key)
    expect(alice.key).not.toBe(bob.key)
    expect(alice.key).not.toBe(anonymous.key)
    expect(alice.key).toBe(taskKey('job-1', { authScope: 'alice' }, false))
  })
})
