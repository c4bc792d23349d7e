import { describe, expect, it } from 'vitest'
import { CloseCode, isConnectionScopedError, isFatalCloseCode } from 'tabcast'
import { deferred, trackServers, waitUntil } from './server-helpers.js'

const { start, client, follow } = trackServers()

describe('origins on the stream', () => {
  it('refuses the upgrade with 403 for an origin that is not allowed', async () => {
    const { server, streamUrl } = await start()
    const refused = client(streamUrl('task'), { origin: 'https://evil.example' })
    expect(await refused.refused).toBe(403)
    expect(refused.messages).toEqual([])
    expect(server.stats().connections).toBe(0)
  })

  it('accepts localhost pages on any port and clients that send no Origin', async () => {
    const { streamUrl } = await start()
    for (const origin of ['http://localhost:3020', 'https://127.0.0.1:8443', 'http://[::1]:5173', undefined]) {
      const accepted = await follow(streamUrl('task'), origin === undefined ? {} : { origin })
      expect(accepted.isOpen, origin).toBe(true)
    }
    expect(await client(streamUrl('task'), { origin: 'http://localhost.evil.example' }).refused).toBe(403)
  })

  it('applies a predicate', async () => {
    const { streamUrl } = await start({ allowedOrigins: (origin) => origin.endsWith('.studio.example') })
    expect((await follow(streamUrl('task'), { origin: 'https://eu.studio.example' })).isOpen).toBe(true)
    expect(await client(streamUrl('task'), { origin: 'http://localhost:3020' }).refused).toBe(403)
  })
})

describe('invalid task ids on the stream', () => {
  it.each([
    ['characters outside the set', 'bad%20id!'],
    ['a leading dot', '.hidden'],
    ['more than 128 characters', 'x'.repeat(129)],
    ['broken URL encoding', '%E0%A4%A'],
    ['an empty id', ''],
  ])('closes with InvalidTaskId (4000) and a reason for %s', async (_what, segment) => {
    const { ws } = await start()
    const refused = client(`${ws}/api/v1/ws/projects/${segment}/stream`)
    const closed = await refused.waitClosed()
    expect(closed.code).toBe(CloseCode.InvalidTaskId)
    expect(closed.reason).toMatch(/task id/)
    expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(123)
    expect(isFatalCloseCode(closed.code)).toBe(true)
    expect(refused.messages).toEqual([])
  })
})

describe('client messages', () => {
  it('answers the text ping and the JSON ping with a JSON pong', async () => {
    const { streamUrl } = await start()
    const socket = await follow(streamUrl('pinger'))
    socket.socket.send('ping')
    expect(await socket.next()).toMatchObject({ type: 'pong', timestamp: expect.any(String) as unknown })
    socket.socket.send(JSON.stringify({ type: 'ping' }))
    expect(await socket.next()).toMatchObject({ type: 'pong' })
  })

  it('answers malformed messages with a connection-scoped bad_request error and keeps the socket', async () => {
    const { streamUrl } = await start()
    const socket = await follow(streamUrl('malformed'))
    for (const bad of ['{not json', '[1,2]', '42', '"ping"', 'null']) {
      socket.socket.send(bad)
      const reply = await socket.next(`the reply to ${bad}`)
      expect(reply, bad).toMatchObject({ type: 'error', project_id: 'malformed', details: { scope: 'connection', code: 'bad_request' } })
      expect(reply.seq).toBeUndefined()
      expect(isConnectionScopedError(reply)).toBe(true)
    }
    socket.socket.send(Buffer.from([1, 2, 3]), { binary: true })
    expect(await socket.next()).toMatchObject({ details: { code: 'bad_request' }, error: expect.stringContaining('binary') as unknown })
    socket.socket.send('ping')
    expect(await socket.next()).toMatchObject({ type: 'pong' })
    expect(socket.isOpen).toBe(true)
  })

  it('answers application messages with unsupported when there is no handler', async () => {
    const { streamUrl } = await start()
    const socket = await follow(streamUrl('app'))
    socket.socket.send(JSON.stringify({ type: 'cancel' }))
    expect(await socket.next()).toMatchObject({ type: 'error', details: { scope: 'connection', code: 'unsupported' } })
    expect(socket.isOpen).toBe(true)
  })

  it('hands application messages to onClientMessage, which may reply; a failing handler gets an internal error', async () => {
    const received: Array<[string, unknown]> = []
    const { streamUrl } = await start({
      onClientMessage: (taskId, message, connection) => {
        received.push([taskId, message])
        if (message['type'] === 'boom') throw new Error('handler bug')
        if (message['type'] === 'reject') return Promise.reject(new Error('async handler bug'))
        connection.send({ type: 'progress', project_id: taskId, message: `ack ${String(message['type'])}` })
        return undefined
      },
    })
    const socket = await follow(streamUrl('app'))
    socket.socket.send(JSON.stringify({ type: 'cancel', reason: 'user' }))
    expect(await socket.next()).toMatchObject({ message: 'ack cancel' })
    expect(received).toEqual([['app', { type: 'cancel', reason: 'user' }]])
    socket.socket.send(JSON.stringify({ type: 'boom' }))
    expect(await socket.next()).toMatchObject({ details: { scope: 'connection', code: 'internal' } })
    socket.socket.send(JSON.stringify({ type: 'reject' }))
    expect(await socket.next()).toMatchObject({ details: { scope: 'connection', code: 'internal' } })
    expect(socket.isOpen).toBe(true)
  })

  it('closes with 1009 when a message exceeds maxMessageBytes', async () => {
    const { streamUrl } = await start({ maxMessageBytes: 1024 })
    const socket = await follow(streamUrl('big'))
    socket.socket.send(JSON.stringify({ type: 'note', text: 'x'.repeat(900) }))
    expect(await socket.next()).toMatchObject({ details: { code: 'unsupported' } })
    socket.socket.send(JSON.stringify({ type: 'note', text: 'x'.repeat(2000) }))
    expect((await socket.waitClosed()).code).toBe(CloseCode.MessageTooBig)
  })

  it('answers a flood with one rate_limited error, then closes with 4008 if it keeps up', async () => {
    // A refill rate this low makes the outcome independent of how fast the loop runs.
    const { streamUrl } = await start({ rateLimit: { perSecond: 0.001, burst: 5, closeAfter: 10 } })
    const socket = await follow(streamUrl('flood'))
    for (let i = 0; i < 40; i += 1) socket.socket.send('ping')
    const closed = await socket.waitClosed()
    expect(closed.code).toBe(CloseCode.RateLimited)
    expect(isFatalCloseCode(closed.code)).toBe(false)
    const replies = socket.unread()
    expect(replies.filter((reply) => reply.type === 'pong')).toHaveLength(5)
    const errors = replies.filter((reply) => reply.type === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ details: { scope: 'connection', code: 'rate_limited' } })
  })

  it('lets a client that stays under the limit go on after a burst', async () => {
    const { streamUrl } = await start({ rateLimit: { perSecond: 0.001, burst: 3, closeAfter: 3 } })
    const socket = await follow(streamUrl('burst'))
    for (let i = 0; i < 4; i += 1) socket.socket.send('ping')
    const replies = await socket.until((reply) => reply.type === 'error')
    expect(replies.map((reply) => reply.type)).toEqual(['pong', 'pong', 'pong', 'error'])
    expect(socket.isOpen).toBe(true)
  })
})

describe('keep-alive and shutdown', () => {
  it('terminates a socket that stops answering protocol pings and keeps the ones that answer', async () => {
    const { server, streamUrl } = await start({ heartbeatInterval: 20 })
    const healthy = await follow(streamUrl('alive'))
    const dead = await follow(streamUrl('alive'), { autoPong: false })
    const closed = await dead.waitClosed()
    // Terminated, not closed: the server drops the TCP connection without a close frame.
    expect(closed.code).toBe(1006)
    const pingsSoFar = healthy.pings
    await healthy.waitForPings(pingsSoFar + 3)
    expect(healthy.isOpen).toBe(true)
    await waitUntil(() => server.stats().connections === 1, 'the server dropped the dead socket')
  })

  it('closes every socket with 1001 (going away) on close() and refuses new ones', async () => {
    const { server, streamUrl } = await start()
    const sockets = await Promise.all(['a', 'a', 'b'].map((taskId) => follow(streamUrl(taskId))))
    const closing = server.close()
    const codes = await Promise.all(sockets.map(async (socket) => (await socket.waitClosed()).code))
    expect(codes).toEqual([CloseCode.GoingAway, CloseCode.GoingAway, CloseCode.GoingAway])
    await closing
    expect(server.stats().connections).toBe(0)
    const late = client(streamUrl('a'))
    await expect(late.opened).rejects.toThrow()
  })

  it('drops sockets that do not answer the close frame after closeTimeout', async () => {
    const { server, streamUrl } = await start({ closeTimeout: 50 })
    const stuck = await follow(streamUrl('stuck'))
    // A peer that stopped reading never sees the close frame, so never answers it.
    const raw = (stuck.socket as unknown as { _socket: { pause(): void } })._socket
    raw.pause()
    const closed = deferred<void>()
    void server.close().then(() => closed.resolve())
    await closed.promise
    expect(server.stats().connections).toBe(0)
  })
})

describe('slow consumers', () => {
  it('closes with TryAgainLater (1013) a socket whose unsent data passes maxBufferedBytes', async () => {
    const { server, streamUrl } = await start({ maxBufferedBytes: 64 * 1024, heartbeatInterval: false })
    const slow = await follow(streamUrl('firehose'))
    const raw = (slow.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket
    raw.pause()
    const padding = 'x'.repeat(32 * 1024)
    // Enough to fill the loopback socket buffers many times over.
    for (let i = 0; i < 600 && server.stats().connections > 0; i += 1) {
      await server.progress('firehose', 0.5, `chunk ${i}`, { metadata: { padding } })
    }
    raw.resume()
    expect((await slow.waitClosed()).code).toBe(CloseCode.TryAgainLater)
  })
})
