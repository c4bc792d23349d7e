import { describe, expect, it } from 'vitest'
import { CloseCode, isConnectionScopedError, type TaskMessage } from 'tabcast'
import { createTabcastServer, MemoryTaskStore, silentLogger, TaskUpdateError } from 'tabcast/server'
import { gatedStore, TestClient, trackServers, waitUntil } from './server-helpers.js'

const { start, open, clients } = trackServers()

describe('stream: connect', () => {
  it('sends connected first, with project_id, a timestamp and last_seq 0 for a task it does not know', async () => {
    const { streamUrl } = await start()
    const { client, connected } = await open(streamUrl('test_task_001'))
    expect(connected).toMatchObject({ type: 'connected', project_id: 'test_task_001', last_seq: 0 })
    expect(connected.status).toBeUndefined()
    expect(Number.isNaN(Date.parse(connected.timestamp ?? ''))).toBe(false)
    expect(client.unread()).toEqual([])
  })

  it('follows a task created after the tab started following it', async () => {
    const { server, streamUrl } = await start()
    const { client } = await open(streamUrl('audio_generation_12345'))
    await server.createTask({ taskId: 'audio_generation_12345', taskName: '오디오 생성' })
    await server.progress('audio_generation_12345', 0.5, 'TTS 생성 중... (시도 2/5)')
    const message = await client.next()
    expect(message).toMatchObject({
      type: 'progress',
      project_id: 'audio_generation_12345',
      task_name: '오디오 생성',
      progress: 0.5,
      message: 'TTS 생성 중... (시도 2/5)',
      seq: 1,
    })
  })

  it('sends connected first even when the client pings before a slow store has answered', async () => {
    const { store, inner, getCalled, openGet, openRead } = gatedStore()
    const { server, streamUrl } = await start({ store })
    await server.progress('slow', 0.5, 'half')
    const client = new TestClient(streamUrl('slow'))
    clients.push(client)
    await client.opened
    client.socket.send('ping')
    client.socket.send('{not json')
    await getCalled
    await waitUntil(() => server.stats().messagesReceived === 2, 'the server received both frames')
    openGet()
    openRead()
    const read = await client.until((message) => message.type === 'error')
    expect(read.map((message) => message.type)).toEqual(['connected', 'progress', 'pong', 'error'])
    await inner.close()
  })

  it('closes with TaskNotFound (4004) for an unknown task when allowUnknownTasks is false, and serves known ones', async () => {
    const { server, streamUrl } = await start({ allowUnknownTasks: false })
    const unknown = new TestClient(streamUrl('nobody'))
    clients.push(unknown)
    const closed = await unknown.waitClosed()
    expect(closed.code).toBe(CloseCode.TaskNotFound)
    expect(closed.reason).toContain('nobody')
    expect(unknown.messages).toEqual([])

    await server.createTask({ taskId: 'known' })
    const { connected } = await open(streamUrl('known'))
    expect(connected).toMatchObject({ type: 'connected', project_id: 'known', status: 'running', last_seq: 0 })
  })
})

describe('stream: a task from start to end', () => {
  it('gives several subscribers the same messages, with the same seqs, in the same order', async () => {
    const { server, streamUrl } = await start()
    const subscribers = await Promise.all([1, 2, 3].map(() => open(streamUrl('render-7'))))
    await server.createTask({ taskId: 'render-7', taskName: '오디오 생성' })
    await server.progress('render-7', 0.1, '스크립트 분석 중...')
    await server.progress('render-7', 0.5, 'TTS 생성 중... (시도 2/5)')
    await server.progress('render-7', 0.9, '정확도 검증 중...')
    const result = { audio_id: 'audio_123', file_path: '/media/audio/audio_123.mp3', duration: 120.5, accuracy: 0.97, attempt: 2 }
    await server.complete('render-7', result)

    const seen = await Promise.all(subscribers.map(({ client }) => client.untilSeq(4)))
    for (const messages of seen) expect(messages).toEqual(seen[0])
    const first = seen[0] as TaskMessage[]
    expect(first.map((message) => [message.type, message.seq])).toEqual([
      ['progress', 1],
      ['progress', 2],
      ['progress', 3],
      ['completed', 4],
    ])
    expect(first.map((message) => message.progress)).toEqual([0.1, 0.5, 0.9, 1])
    expect(first[3]).toMatchObject({ type: 'completed', project_id: 'render-7', task_name: '오디오 생성', result })
    for (const { client } of subscribers) expect(client.unread()).toEqual([])
  })

  it('delivers the error path as a terminal task failure and refuses progress after it', async () => {
    const { server, streamUrl, statusUrl } = await start()
    const { client } = await open(streamUrl('tts-1'))
    await server.progress('tts-1', 0.4, 'TTS 생성 중... (시도 1/5)')
    await server.fail('tts-1', 'ElevenLabs API 호출 실패', { status_code: 500, reason: 'Internal Server Error' })
    const [progress, error] = await client.untilSeq(2)
    expect(progress).toMatchObject({ type: 'progress', seq: 1 })
    expect(error).toMatchObject({
      type: 'error',
      project_id: 'tts-1',
      seq: 2,
      error: 'ElevenLabs API 호출 실패',
      details: { status_code: 500, reason: 'Internal Server Error' },
    })
    expect(isConnectionScopedError(error as TaskMessage)).toBe(false)

    await expect(server.progress('tts-1', 0.5, 'too late')).rejects.toMatchObject({ code: 'task_finished' })
    await expect(server.complete('tts-1', {})).rejects.toBeInstanceOf(TaskUpdateError)
    const status = (await (await fetch(statusUrl('tts-1'))).json()) as Record<string, unknown>
    expect(status).toMatchObject({ status: 'failed', progress: 0.4, error: 'ElevenLabs API 호출 실패', seq: 2 })
  })

  it('gives a late subscriber without since only the current state, then live messages', async () => {
    const { server, streamUrl } = await start()
    await server.createTask({ taskId: 'late', taskName: '오디오 생성' })
    await server.progress('late', 0.2, 'one')
    await server.progress('late', 0.4, 'two')
    const { client, connected } = await open(streamUrl('late'))
    expect(connected).toMatchObject({ last_seq: 2, status: 'running' })
    expect(await client.next()).toMatchObject({ type: 'progress', seq: 2, progress: 0.4, message: 'two', task_name: '오디오 생성' })
    await server.progress('late', 0.6, 'three')
    expect(await client.next()).toMatchObject({ type: 'progress', seq: 3, message: 'three' })

    await server.complete('late', { ok: true })
    const { client: after, connected: afterConnected } = await open(streamUrl('late'))
    expect(afterConnected).toMatchObject({ last_seq: 4, status: 'completed' })
    expect(await after.next()).toMatchObject({ type: 'completed', seq: 4, result: { ok: true } })
  })
})

describe('stream: since', () => {
  it('replays exactly the missed messages after a reconnect, and nothing twice', async () => {
    const { server, streamUrl } = await start()
    const { client: first } = await open(streamUrl('resume'))
    await server.progress('resume', 0.1, 'a')
    await server.progress('resume', 0.2, 'b')
    const before = await first.untilSeq(2)
    await first.close()

    await server.progress('resume', 0.3, 'c')
    await server.progress('resume', 0.4, 'd')
    await server.progress('resume', 0.5, 'e')
    const lastSeen = before[before.length - 1]?.seq ?? 0
    const { client: second, connected } = await open(streamUrl('resume', lastSeen))
    expect(connected).toMatchObject({ last_seq: 5 })
    const replayed = await second.untilSeq(5)
    expect(replayed.map((message) => [message.seq, message.message])).toEqual([
      [3, 'c'],
      [4, 'd'],
      [5, 'e'],
    ])
    await server.progress('resume', 0.6, 'f')
    expect(await second.next()).toMatchObject({ seq: 6, message: 'f' })
    expect(second.unread()).toEqual([])
  })

  it('neither drops nor repeats messages appended while the catch-up is being read from a slow store', async () => {
    const { store, inner, getCalled, openGet, readCalled, openRead } = gatedStore()
    const { server, streamUrl } = await start({ store })
    for (let i = 1; i <= 20; i += 1) await server.progress('busy', i / 100, `m${i}`)
    const client = new TestClient(streamUrl('busy', 5))
    clients.push(client)

    await getCalled
    // Subscribed, state read: these arrive live *and* will be in the history read.
    for (let i = 21; i <= 25; i += 1) await server.progress('busy', i / 100, `m${i}`)
    openGet()
    await readCalled
    // History read: these arrive only live, while the replay is still on its way.
    for (let i = 26; i <= 30; i += 1) await server.progress('busy', i / 100, `m${i}`)
    openRead()

    const messages = await client.untilSeq(30)
    expect(messages.map((message) => message.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 6))
    await server.progress('busy', 0.31, 'm31')
    expect(await client.next()).toMatchObject({ seq: 31 })
    expect(client.unread()).toEqual([])
    await inner.close()
  })

  it('sends the current state instead when the history no longer holds since + 1', async () => {
    const { server, streamUrl } = await start({ historyLimit: 3 })
    for (let i = 1; i <= 10; i += 1) await server.progress('trimmed', i / 10, `m${i}`)
    const { client } = await open(streamUrl('trimmed', 2))
    expect(await client.next()).toMatchObject({ type: 'progress', seq: 10, message: 'm10' })
    await server.complete('trimmed', {})
    expect(await client.next()).toMatchObject({ type: 'completed', seq: 11 })
    expect(client.unread()).toEqual([])

    // Within the history: a real replay.
    const { client: recent } = await open(streamUrl('trimmed', 8))
    expect((await recent.untilSeq(11)).map((message) => message.seq)).toEqual([9, 10, 11])
  })

  it('sends nothing to a client that is up to date, and the current state to one that is ahead', async () => {
    const { server, streamUrl } = await start()
    await server.progress('uptodate', 0.3, 'x')
    await server.progress('uptodate', 0.6, 'y')
    const { client: upToDate } = await open(streamUrl('uptodate', 2))
    const { client: ahead, connected } = await open(streamUrl('uptodate', 40))
    expect(connected).toMatchObject({ last_seq: 2 })
    expect(await ahead.next()).toMatchObject({ seq: 2, message: 'y' })
    await server.progress('uptodate', 0.9, 'z')
    expect(await upToDate.next()).toMatchObject({ seq: 3, message: 'z' })
    expect(await ahead.next()).toMatchObject({ seq: 3, message: 'z' })
  })

  it('reports an invalid since as a connection-scoped error and sends the current state', async () => {
    const { server, ws } = await start()
    await server.progress('badsince', 0.5, 'half')
    const { client } = await open(`${ws}/api/v1/ws/projects/badsince/stream?since=abc`)
    const error = await client.next()
    expect(error).toMatchObject({ type: 'error', details: { scope: 'connection', code: 'bad_request' } })
    expect(error.error).toContain('since')
    expect(isConnectionScopedError(error)).toBe(true)
    expect(await client.next()).toMatchObject({ type: 'progress', seq: 1 })
  })
})

describe('stream: restart with the same store', () => {
  it('keeps tasks and seqs when a new server gets the old store', async () => {
    const store = new MemoryTaskStore()
    const first = createTabcastServer({ store, logger: silentLogger })
    const a = await first.listen(0)
    const wsA = a.url.replace(/^http/, 'ws')
    const { client } = await open(`${wsA}/api/v1/ws/projects/kept/stream`)
    await first.progress('kept', 0.25, 'before restart')
    await first.progress('kept', 0.5, 'still before')
    const seen = await client.untilSeq(2)
    await first.close()
    expect((await client.waitClosed()).code).toBe(CloseCode.GoingAway)

    const second = createTabcastServer({ store, logger: silentLogger })
    try {
      const b = await second.listen(0)
      await second.progress('kept', 0.75, 'after restart')
      const { client: again, connected } = await open(`${b.url.replace(/^http/, 'ws')}/api/v1/ws/projects/kept/stream?since=${seen[1]?.seq ?? 0}`)
      expect(connected).toMatchObject({ last_seq: 3, status: 'running' })
      expect(await again.next()).toMatchObject({ seq: 3, message: 'after restart' })
      // The store was passed in, so closing the first server did not close it.
      expect(await store.get('kept')).toMatchObject({ lastSeq: 3, progress: 0.75 })
    } finally {
      await second.close()
      await store.close()
    }
  })
})

describe('stats', () => {
  it('counts connections in total and per task', async () => {
    const { server, streamUrl } = await start()
    const { client: one } = await open(streamUrl('a'))
    await open(streamUrl('a'))
    await open(streamUrl('b'))
    expect(server.stats()).toMatchObject({ connections: 3, connectionsByTask: { a: 2, b: 1 } })
    await one.close()
    await waitUntil(() => server.stats().connections === 2, 'the server noticed the close')
    expect(server.stats().connectionsByTask).toEqual({ a: 1, b: 1 })
  })
})
