/**
 * Authorization on the reference server: the `authorize` hook on the stream, the status
 * endpoint and task creation, the shipped signed per-task tokens, their transport
 * (`Sec-WebSocket-Protocol` and `Authorization: Bearer`), CORS with credentials, and
 * that no token ever reaches the logs.
 */
import { describe, expect, it } from 'vitest'
import { CloseCode, isFatalCloseCode } from 'tabcast'
import { createTaskTokens, type AuthRequest, type LogFields, type Logger } from 'tabcast/server'
import { connect, trackServers } from './server-helpers.js'

const SECRET = 'test-secret-that-is-at-least-32-bytes-long'

const { start, client, clients } = trackServers()

/** The subprotocols a tabcast client offers with a token. */
function withToken(token: string): { protocols: string[] } {
  return { protocols: ['tabcast', `tabcast.bearer.${token}`] }
}

async function getStatus(url: string, token?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { headers: { ...headers, ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }) } })
}

describe('signed task tokens', () => {
  it('have the v1 format, bind the task id, expire, and refuse tampering', () => {
    let now = Date.parse('2026-12-03T10:00:00Z')
    const tokens = createTaskTokens({ secret: SECRET, ttlMs: 60_000, now: () => now })
    const token = tokens.sign('audio_generation_12345')
    const [version, task, expires, signature] = token.split('.')
    expect(version).toBe('v1')
    expect(Buffer.from(task ?? '', 'base64url').toString()).toBe('audio_generation_12345')
    expect(Number(expires)).toBe(now / 1000 + 60)
    expect(signature).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(token).toMatch(/^[A-Za-z0-9._-]+$/)

    expect(tokens.verify(token, 'audio_generation_12345')).toBe('valid')
    expect(tokens.verify(token, 'another_task')).toBe('wrong_task')
    const otherTask = Buffer.from('another_task').toString('base64url')
    expect(tokens.verify(`v1.${otherTask}.${expires}.${signature}`, 'another_task')).toBe('invalid')
    expect(tokens.verify(`v1.${task}.${Number(expires) + 3600}.${signature}`, 'audio_generation_12345')).toBe('invalid')
    expect(tokens.verify(`${token.slice(0, -2)}AA`, 'audio_generation_12345')).toBe('invalid')
    expect(tokens.verify('not a token', 'audio_generation_12345')).toBe('invalid')
    expect(createTaskTokens({ secret: `${SECRET}-other` }).verify(token, 'audio_generation_12345')).toBe('invalid')

    now += 60_000
    expect(tokens.verify(token, 'audio_generation_12345')).toBe('expired')
  })

  it('match an independent HMAC-SHA256 of the documented payload', async () => {
    const { createHmac } = await import('node:crypto')
    const tokens = createTaskTokens({ secret: SECRET, now: () => 1_700_000_000_000 })
    const payload = `v1.${Buffer.from('job:1').toString('base64url')}.${1_700_000_000 + 3600}`
    const expected = `${payload}.${createHmac('sha256', SECRET).update(payload).digest('base64url')}`
    expect(tokens.sign('job:1')).toBe(expected)
    expect(tokens.ttlMs).toBe(3_600_000)
  })

  it('refuse a short secret with a TypeError that names it', () => {
    expect(() => createTaskTokens({ secret: 'short' })).toThrow(/auth secret must be at least 32 bytes.*got 5 bytes/)
  })
})

describe('the stream with signed tokens', () => {
  it('follows a task with its token and selects the tabcast subprotocol, never the bearer entry', async () => {
    const server = await start({ auth: { secret: SECRET } })
    await server.server.createTask({ taskId: 'mine' })
    await server.server.progress('mine', 0.5, 'half')
    const { client: follower, connected } = await connect(server.streamUrl('mine'), withToken(server.server.taskToken('mine')))
    clients.push(follower)
    expect(connected).toMatchObject({ type: 'connected', project_id: 'mine', last_seq: 1 })
    // A client (and check-backend) learns from `connected` that streams need a token.
    expect(connected['capabilities']).toContain('auth')
    expect(follower.socket.protocol).toBe('tabcast')
    expect(await follower.next()).toMatchObject({ type: 'progress', progress: 0.5 })
  })

  it('closes with 4401 without a token, with an expired or a forged one; 4401 is retried', async () => {
    let now = Date.now()
    const tokens = createTaskTokens({ secret: SECRET, ttlMs: 1000, now: () => now })
    const server = await start({ authorize: tokens.authorize })
    const expired = tokens.sign('task')
    now += 1000
    const cases: Array<[string, { protocols?: string[] }]> = [
      ['no token', {}],
      ['only the tabcast subprotocol', { protocols: ['tabcast'] }],
      ['an expired token', withToken(expired)],
      ['a forged token', withToken(createTaskTokens({ secret: `${SECRET}!` }).sign('task'))],
      ['two tokens', { protocols: ['tabcast', `tabcast.bearer.${tokens.sign('task')}`, `tabcast.bearer.${tokens.sign('task', 5000)}`] }],
    ]
    for (const [what, options] of cases) {
      const refused = client(server.streamUrl('task'), options)
      await refused.opened
      const closed = await refused.waitClosed()
      expect(closed.code, what).toBe(CloseCode.Unauthenticated)
      expect(closed.reason).toMatch(/token/)
      expect(refused.messages, what).toEqual([])
    }
    expect(isFatalCloseCode(CloseCode.Unauthenticated)).toBe(false)
    expect(server.server.stats().connections).toBe(0)
  })

  it('closes with 4403 (fatal) for a valid token of another task', async () => {
    const server = await start({ auth: { secret: SECRET } })
    const refused = client(server.streamUrl('theirs'), withToken(server.server.taskToken('mine')))
    const closed = await refused.waitClosed()
    expect(closed.code).toBe(CloseCode.Forbidden)
    expect(isFatalCloseCode(closed.code)).toBe(true)
    expect(refused.messages).toEqual([])
  })

  it('hands authorize the action, task id, token, origin and request; a throwing hook closes with 1011', async () => {
    const seen: Array<Omit<AuthRequest, 'request'> & { path: string | undefined }> = []
    const server = await start({
      authorize: ({ request, ...rest }) => {
        seen.push({ ...rest, path: request.url })
        if (rest.taskId === 'boom') throw new Error('hook bug')
        return Promise.resolve(rest.token === 'letmein' ? 'allow' : 'forbidden')
      },
    })
    const { client: allowed } = await connect(server.streamUrl('open'), { ...withToken('letmein'), origin: 'http://localhost:3020' })
    clients.push(allowed)
    expect(seen).toEqual([{ action: 'stream', taskId: 'open', token: 'letmein', origin: 'http://localhost:3020', path: '/api/v1/ws/projects/open/stream' }])
    expect((await client(server.streamUrl('boom'), withToken('letmein')).waitClosed()).code).toBe(1011)
  })
})

describe('the status endpoint with signed tokens', () => {
  it('answers 401 with a Bearer challenge, 403 for another task, 200 with the right token', async () => {
    const server = await start({ auth: { secret: SECRET } })
    await server.server.createTask({ taskId: 'mine' })
    const none = await getStatus(server.statusUrl('mine'))
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="tabcast"')
    const bad = await getStatus(server.statusUrl('mine'), 'v1.bm9wZQ.1.AAAA')
    expect(bad.status).toBe(401)
    expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"')
    const forbidden = await getStatus(server.statusUrl('mine'), server.server.taskToken('theirs'))
    expect(forbidden.status).toBe(403)
    const ok = await getStatus(server.statusUrl('mine'), server.server.taskToken('mine'))
    expect(ok.status).toBe(200)
    expect(await ok.json()).toMatchObject({ project_id: 'mine', status: 'running' })
  })

  it('does not tell a client without a token whether a task exists', async () => {
    const server = await start({ auth: { secret: SECRET } })
    await server.server.createTask({ taskId: 'exists' })
    expect((await getStatus(server.statusUrl('exists'))).status).toBe(401)
    expect((await getStatus(server.statusUrl('missing'))).status).toBe(401)
    expect((await getStatus(server.statusUrl('missing'), server.server.taskToken('missing'))).status).toBe(404)
  })
})

describe('a failing authorize on HTTP', () => {
  it('answers 500 for a throwing hook and for an answer that is not a decision, never allowing', async () => {
    const server = await start({
      authorize: ({ taskId }) => {
        if (taskId === 'throws') throw new Error('hook bug')
        return 'yes' as never
      },
    })
    await server.server.createTask({ taskId: 'throws' })
    await server.server.createTask({ taskId: 'garbage' })
    expect((await getStatus(server.statusUrl('throws'))).status).toBe(500)
    expect((await getStatus(server.statusUrl('garbage'))).status).toBe(500)
    expect((await client(server.streamUrl('garbage')).waitClosed()).code).toBe(1011)
  })
})

describe('auth options', () => {
  it('are checked at construction with messages that name them', async () => {
    const { createTabcastServer } = await import('tabcast/server')
    expect(() => createTabcastServer({ auth: { secret: 'short' } })).toThrow(/auth secret must be at least 32 bytes/)
    expect(() => createTabcastServer({ auth: { secret: SECRET, ttlMs: 0 } })).toThrow(/auth ttlMs/)
    expect(() => createTabcastServer({ authorize: 'allow' as never })).toThrow(/authorize must be a function/)
    expect(() => createTabcastServer({ maxConnectionsPerAddress: 0 })).toThrow(/maxConnectionsPerAddress must be a positive integer/)
    expect(() => createTabcastServer({ unknownTaskTimeout: -1 })).toThrow(/unknownTaskTimeout/)
    expect(() => createTabcastServer({ createRateLimit: { perMinute: 0 } })).toThrow(/createRateLimit.perMinute/)
    expect(() => createTabcastServer({ taskLimits: { maxBytes: 1.5 } })).toThrow(/taskLimits.maxBytes/)
  })
})

describe('task creation with signed tokens', () => {
  it('returns the task id and its token, which opens the stream and the status', async () => {
    const server = await start({ auth: { secret: SECRET }, demo: true })
    const response = await fetch(`${server.http}/api/v1/projects`, { method: 'POST', body: JSON.stringify({ steps: 2, stepMs: 1 }) })
    expect(response.status).toBe(201)
    const body = (await response.json()) as { task_id: string; token: string; project_id: string }
    expect(body.task_id).toBe(body.project_id)
    expect(createTaskTokens({ secret: SECRET }).verify(body.token, body.task_id)).toBe('valid')
    const { client: follower } = await connect(server.streamUrl(body.task_id, 0), withToken(body.token))
    clients.push(follower)
    await follower.until((message) => message.type === 'completed', 'completed')
    expect((await getStatus(server.statusUrl(body.task_id), body.token)).status).toBe(200)
  })

  it('asks authorize about creation, with the id the task would get', async () => {
    const asked: AuthRequest[] = []
    const server = await start({
      demo: true,
      authorize: (request) => {
        asked.push(request)
        return request.token === 'creator' ? 'allow' : 'unauthenticated'
      },
    })
    const post = (token?: string): Promise<Response> =>
      fetch(`${server.http}/api/v1/projects`, {
        method: 'POST',
        headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
        body: JSON.stringify({ taskId: 'wanted', stepMs: 60_000 }),
      })
    expect((await post()).status).toBe(401)
    expect(await server.server.getTask('wanted')).toBeNull()
    const created = await post('creator')
    expect(created.status).toBe(201)
    // A custom authorize issues its own tokens: none is returned.
    expect(await created.json()).not.toHaveProperty('token')
    expect(asked.map((request) => [request.action, request.taskId, request.token])).toEqual([
      ['create', 'wanted', null],
      ['create', 'wanted', 'creator'],
    ])
  })
})

describe('auth off', () => {
  it('keeps today\'s behaviour: no token needed, none returned', async () => {
    const server = await start({ demo: true })
    expect(server.server.authEnabled).toBe(false)
    const { client: follower, connected } = await connect(server.streamUrl('open'))
    clients.push(follower)
    expect(connected['capabilities']).not.toContain('auth')
    const created = (await (await fetch(`${server.http}/api/v1/projects`, { method: 'POST', body: '{}' })).json()) as Record<string, unknown>
    expect(created).not.toHaveProperty('token')
    expect((await getStatus(server.statusUrl(created['project_id'] as string))).status).toBe(200)
    expect(() => server.server.taskToken('x')).toThrow(/auth option/)
  })
})

describe('CORS with credentials', () => {
  it('allows credentials for allowed origins only, and the Authorization header in the preflight', async () => {
    const server = await start({ auth: { secret: SECRET }, allowedOrigins: ['https://studio.example.com'] })
    await server.server.createTask({ taskId: 'cors' })
    const token = server.server.taskToken('cors')
    const allowed = await getStatus(server.statusUrl('cors'), token, { Origin: 'https://studio.example.com' })
    expect(allowed.status).toBe(200)
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://studio.example.com')
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true')
    const preflight = await fetch(server.statusUrl('cors'), {
      method: 'OPTIONS',
      headers: { Origin: 'https://studio.example.com', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/)
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true')

    const refused = await getStatus(server.statusUrl('cors'), token, { Origin: 'https://evil.example' })
    expect(refused.status).toBe(403)
    expect(refused.headers.get('access-control-allow-credentials')).toBeNull()
  })

  it('never allows credentials when every origin is allowed', async () => {
    const server = await start({ allowedOrigins: '*' })
    await server.server.createTask({ taskId: 'cors' })
    const response = await getStatus(server.statusUrl('cors'), undefined, { Origin: 'https://anyone.example' })
    expect(response.headers.get('access-control-allow-origin')).toBe('https://anyone.example')
    expect(response.headers.get('access-control-allow-credentials')).toBeNull()
  })
})

describe('tokens in logs', () => {
  it('never logs a token, at debug level, through a session with refusals and failures', async () => {
    const lines: string[] = []
    const capture = (level: string) => (message: string, fields?: LogFields) => {
      lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`)
    }
    const logger: Logger = { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') }
    const server = await start({ auth: { secret: SECRET }, demo: true, logger, maxMessageBytes: 1024, allowedOrigins: ['http://localhost:3020'] })
    const created = (await (await fetch(`${server.http}/api/v1/projects`, { method: 'POST', body: '{"stepMs":60000}' })).json()) as { task_id: string; token: string }
    const { task_id: taskId, token } = created
    const foreign = server.server.taskToken('other')

    const { client: follower } = await connect(server.streamUrl(taskId), withToken(token))
    clients.push(follower)
    follower.socket.send('x'.repeat(2000)) // too big: ws closes it with 1009 and reports an error
    await follower.waitClosed()
    await client(server.streamUrl(taskId), withToken(foreign)).waitClosed()
    await client(server.streamUrl(taskId), { ...withToken(token), origin: 'https://evil.example' }).refused
    await getStatus(server.statusUrl(taskId), token)
    await getStatus(server.statusUrl(taskId), foreign)
    await getStatus(server.statusUrl(taskId), token, { Origin: 'https://evil.example' })
    await fetch(`${server.http}/api/v1/projects`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{bad json' })
    await server.server.close()

    expect(lines.length).toBeGreaterThan(0)
    const log = lines.join('\n')
    for (const secret of [token, foreign, token.split('.')[3] ?? '', SECRET]) {
      expect(log).not.toContain(secret)
    }
  })
})

describe('the CLI', () => {
  /** Starts `server/cli.ts` on a free port; resolves with its URL and startup text. */
  async function startCli(args: string[], env: Record<string, string>): Promise<{ url: string; output: string; stop: () => Promise<void> }> {
    const { spawn } = await import('node:child_process')
    const { fileURLToPath } = await import('node:url')
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', '--port', '0', ...args], {
      cwd: root,
      env: { ...process.env, TABCAST_LOG: 'warn', TABCAST_AUTH_SECRET: '', TABCAST_DEMO: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const exited = new Promise<void>((done) => child.once('exit', () => done()))
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM')
      await exited
    }
    let output = ''
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString()
          // The whole banner: its last line names the store.
          const url = /listening on (http:\/\/\S+)/.exec(output)?.[1]
          if (url !== undefined && output.includes('store ')) resolve(url)
        })
        child.once('exit', (code) => reject(new Error(`the CLI exited with ${String(code)}:\n${output}`)))
      })
      return { url, output, stop }
    } catch (error) {
      await stop()
      throw error
    }
  }

  it('says auth is off and serves no demo job unless asked', async () => {
    const cli = await startCli([], {})
    try {
      expect(cli.output).toContain('auth: off (anyone who knows a task id can follow it)')
      expect((await fetch(`${cli.url}/api/v1/projects`, { method: 'POST', body: '{}' })).status).toBe(404)
    } finally {
      await cli.stop()
    }
  })

  it('turns on signed tokens with TABCAST_AUTH_SECRET and the demo with --demo', async () => {
    const cli = await startCli(['--demo'], { TABCAST_AUTH_SECRET: SECRET })
    try {
      expect(cli.output).toContain('auth: signed task tokens')
      expect(cli.output).not.toContain(SECRET)
      const created = (await (await fetch(`${cli.url}/api/v1/projects`, { method: 'POST', body: '{"stepMs":1}' })).json()) as { task_id: string; token: string }
      expect(createTaskTokens({ secret: SECRET }).verify(created.token, created.task_id)).toBe('valid')
      const statusUrl = `${cli.url}/api/v1/projects/${created.task_id}/status`
      expect((await getStatus(statusUrl)).status).toBe(401)
      expect((await getStatus(statusUrl, created.token)).status).toBe(200)
    } finally {
      await cli.stop()
    }
  })
})
