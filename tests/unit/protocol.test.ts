import { describe, expect, it } from 'vitest'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_CLIENT_MESSAGE_BYTES,
  MAX_TASK_ID_LENGTH,
  hasCapability,
  isKnownMessage,
  isConnectionScopedError,
  isFatalCloseCode,
  parseServerMessage,
  parseStatusResponse,
  validateServerMessage,
  validateTaskId,
  type ParseResult,
  type ProtocolError,
} from 'tabcast'

function errorOf<T>(result: ParseResult<T>): ProtocolError {
  if (result.ok) throw new Error(`expected a parse error, got ${JSON.stringify(result.value)}`)
  return result.error
}

function valueOf<T>(result: ParseResult<T>): T {
  if (!result.ok) throw new Error(`expected a value, got ${result.error.message}`)
  return result.value
}

describe('parseServerMessage: accepts', () => {
  it('every message type of the guide', () => {
    for (const type of ['connected', 'progress', 'error', 'completed', 'pong']) {
      expect(valueOf(parseServerMessage(JSON.stringify({ type }))).type).toBe(type)
    }
  })

  it('keeps the known fields and drops nulls and unknown fields', () => {
    const message = valueOf(
      parseServerMessage(
        JSON.stringify({ type: 'progress', project_id: 'a', progress: 0.5, message: null, seq: 3, extra: 'x', metadata: { step: 2 } }),
      ),
    )
    expect(message).toEqual({ type: 'progress', project_id: 'a', progress: 0.5, seq: 3, metadata: { step: 2 } })
  })

  it('progress 0 and 1 are in range', () => {
    expect(valueOf(parseServerMessage('{"type":"progress","progress":0}')).progress).toBe(0)
    expect(valueOf(parseServerMessage('{"type":"progress","progress":1}')).progress).toBe(1)
  })

  it('a type it does not know, with every field as received (forward compatibility)', () => {
    const message = valueOf(parseServerMessage('{"type":"eta","project_id":"a","seconds":12,"nested":{"x":[1]},"note":null}'))
    expect(message).toEqual({ type: 'eta', project_id: 'a', seconds: 12, nested: { x: [1] } })
    expect(isKnownMessage(message)).toBe(false)
    expect(isKnownMessage(valueOf(parseServerMessage('{"type":"progress"}')))).toBe(true)
  })

  it('epoch and capabilities on connected; capabilities it does not know are kept and ignored', () => {
    const message = valueOf(parseServerMessage('{"type":"connected","last_seq":4,"epoch":"boot-7.a_B","capabilities":["pong","teleport"]}'))
    expect(message).toEqual({ type: 'connected', last_seq: 4, epoch: 'boot-7.a_B', capabilities: ['pong', 'teleport'] })
    expect(hasCapability(message, 'pong')).toBe(true)
    expect(hasCapability(message, 'auth')).toBe(false)
    expect(hasCapability(valueOf(parseServerMessage('{"type":"connected"}')), 'pong')).toBe(false)
  })

  it('the bare text "pong" of guide-era servers', () => {
    expect(valueOf(parseServerMessage('pong'))).toEqual({ type: 'pong' })
  })
})

describe('parseServerMessage: rejects, naming the field and the value', () => {
  it('text that is not JSON', () => {
    const error = errorOf(parseServerMessage('{"type": progress'))
    expect(error.code).toBe('not_json')
    expect(error.message).toContain('not valid JSON')
    expect(error.message).toContain('{\\"type\\": progress')
  })

  it('an HTML page', () => {
    const error = errorOf(parseServerMessage('<!DOCTYPE html><html><body>502 Bad Gateway</body></html>'))
    expect(error.code).toBe('not_json')
    expect(error.message).toMatch(/looks like HTML/)
  })

  it('a message without type', () => {
    const error = errorOf(parseServerMessage('{"progress":0.5}'))
    expect(error).toMatchObject({ code: 'missing_type', field: 'type' })
    expect(error.message).toContain('"type"')
  })

  it('an empty type', () => {
    expect(errorOf(parseServerMessage('{"type":""}'))).toMatchObject({ code: 'bad_field', field: 'type' })
  })

  it('a known field of the wrong type, in a message of an unknown type too', () => {
    expect(errorOf(parseServerMessage('{"type":"future","seq":"3"}'))).toMatchObject({ field: 'seq' })
  })

  it.each([
    ['an empty epoch', { epoch: '' }, 'epoch'],
    ['an epoch with a slash', { epoch: 'a/b' }, 'epoch'],
    ['an epoch of 65 characters', { epoch: 'e'.repeat(65) }, 'epoch'],
    ['a number as epoch', { epoch: 7 }, 'epoch'],
    ['capabilities that are not an array', { capabilities: 'pong' }, 'capabilities'],
    ['capabilities holding a number', { capabilities: ['pong', 3] }, 'capabilities'],
  ])('%s', (_name, fields, field) => {
    const error = errorOf(parseServerMessage(JSON.stringify({ type: 'connected', ...fields })))
    expect(error).toMatchObject({ code: 'bad_field', field })
  })

  it('a type that is not a string', () => {
    expect(errorOf(parseServerMessage('{"type":7}')).message).toContain('the number 7')
  })

  it('progress 1.5', () => {
    const error = errorOf(parseServerMessage('{"type":"progress","progress":1.5}'))
    expect(error).toMatchObject({ code: 'bad_field', field: 'progress' })
    expect(error.message).toBe('progress must be between 0 and 1, got 1.5')
  })

  it('negative progress', () => {
    expect(errorOf(parseServerMessage('{"type":"progress","progress":-0.1}')).message).toContain('-0.1')
  })

  it('progress NaN, as Python writes it and as a decoded value', () => {
    // json.dumps writes a bare NaN, which is not JSON; an already-decoded NaN is checked too.
    expect(errorOf(parseServerMessage('{"type":"progress","progress":NaN}')).code).toBe('not_json')
    const error = errorOf(validateServerMessage({ type: 'progress', progress: Number.NaN }))
    expect(error).toMatchObject({ code: 'bad_field', field: 'progress' })
    expect(error.message).toBe('progress must be a finite number from 0 to 1, got the number NaN')
  })

  it('progress as a string "0.5"', () => {
    const error = errorOf(parseServerMessage('{"type":"progress","progress":"0.5"}'))
    expect(error).toMatchObject({ code: 'bad_field', field: 'progress' })
    expect(error.message).toContain('the string "0.5"')
  })

  it('a string field with another type', () => {
    const error = errorOf(parseServerMessage('{"type":"progress","message":42}'))
    expect(error).toMatchObject({ field: 'message' })
    expect(error.message).toBe('message must be a string, got the number 42')
  })

  it('a record field that is an array', () => {
    expect(errorOf(parseServerMessage('{"type":"completed","result":[1,2]}')).message).toBe('result must be an object, got an array')
  })

  it('a negative or fractional seq', () => {
    expect(errorOf(parseServerMessage('{"type":"progress","seq":-1}'))).toMatchObject({ field: 'seq' })
    expect(errorOf(parseServerMessage('{"type":"connected","last_seq":1.5}')).message).toContain('last_seq')
  })

  it('a message over the size limit, without parsing it', () => {
    const huge = JSON.stringify({ type: 'progress', message: 'x'.repeat(DEFAULT_MAX_MESSAGE_BYTES) })
    const error = errorOf(parseServerMessage(huge))
    expect(error.code).toBe('too_large')
    expect(error.message).toContain(`the limit is ${DEFAULT_MAX_MESSAGE_BYTES}`)
  })

  it('counts the limit in UTF-8 bytes, not UTF-16 characters', () => {
    // 600 000 characters fit the 1 MiB limit as characters, but are 1.2 MB of UTF-8.
    const wide = JSON.stringify({ type: 'progress', message: 'é'.repeat(600_000) })
    expect(wide.length).toBeLessThan(DEFAULT_MAX_MESSAGE_BYTES)
    expect(errorOf(parseServerMessage(wide)).code).toBe('too_large')
    const fits = JSON.stringify({ type: 'progress', message: 'é'.repeat(400_000) })
    expect(parseServerMessage(fits).ok).toBe(true)
  })

  it('a custom limit is counted in UTF-8 bytes too', () => {
    // 300 characters, 600 bytes: over a 500-byte limit although the characters fit.
    const text = JSON.stringify({ type: 'progress', message: 'é'.repeat(300) })
    expect(text.length).toBeLessThan(500)
    expect(errorOf(parseServerMessage(text, { maxBytes: 500 })).code).toBe('too_large')
  })

  it('a custom limit rejects larger ASCII messages', () => {
    const text = JSON.stringify({ type: 'progress', message: 'x'.repeat(200) })
    expect(errorOf(parseServerMessage(text, { maxBytes: 100 })).message).toContain('the limit is 100')
    expect(parseServerMessage(text, { maxBytes: 1000 }).ok).toBe(true)
  })

  it.each([
    ['an array', '[1,2]'],
    ['null', 'null'],
    ['the number 3', '3'],
    ['the string "hi"', '"hi"'],
  ])('a JSON value that is not an object (%s)', (shown, text) => {
    const error = errorOf(parseServerMessage(text))
    expect(error.code).toBe('not_object')
    expect(error.message).toContain(shown)
  })

  it('binary frames', () => {
    for (const data of [new ArrayBuffer(4), new Uint8Array([1, 2])]) {
      const error = errorOf(parseServerMessage(data))
      expect(error.code).toBe('not_text')
      expect(error.message).toContain('binary data')
    }
  })

  it('a value that is not text at all', () => {
    expect(errorOf(parseServerMessage(undefined)).code).toBe('not_text')
    expect(errorOf(parseServerMessage({ type: 'progress' })).message).toContain('an object')
  })

  it('long bad values are shortened in the message', () => {
    const error = errorOf(parseServerMessage(JSON.stringify({ type: 'progress', message: 'x'.repeat(500), progress: 'x'.repeat(500) })))
    expect(error.message.length).toBeLessThan(200)
  })
})

describe('parseStatusResponse', () => {
  it('accepts a running status and fills defaults', () => {
    expect(valueOf(parseStatusResponse('{"status":"running","progress":0.3,"project_id":"p"}'))).toEqual({
      status: 'running',
      progress: 0.3,
      project_id: 'p',
    })
    expect(valueOf(parseStatusResponse('{"status":"completed"}'))).toMatchObject({ progress: 1, project_id: '' })
    expect(valueOf(parseStatusResponse('{"status":"running"}')).progress).toBe(0)
  })

  it('an HTML page (by content type) says so', () => {
    const error = errorOf(parseStatusResponse('<html>login</html>', { contentType: 'text/html; charset=utf-8' }))
    expect(error.code).toBe('not_json')
    expect(error.message).toMatch(/HTML page/)
  })

  it('an HTML body with a wrong content type still gets the HTML hint', () => {
    expect(errorOf(parseStatusResponse('  <html>', { contentType: 'application/json' })).message).toMatch(/looks like HTML/)
  })

  it('invalid JSON', () => {
    expect(errorOf(parseStatusResponse('{"status":')).message).toContain('status response is not valid JSON')
  })

  it('a missing or unknown status', () => {
    expect(errorOf(parseStatusResponse('{"progress":0.2}'))).toMatchObject({ field: 'status' })
    const error = errorOf(parseStatusResponse('{"status":"done"}'))
    expect(error.message).toBe('status must be one of running, completed, failed, error, got the string "done"')
  })

  it('bad progress', () => {
    expect(errorOf(parseStatusResponse('{"status":"running","progress":2}')).message).toBe('progress must be between 0 and 1, got 2')
  })

  it('not an object', () => {
    expect(errorOf(parseStatusResponse('[]')).code).toBe('not_object')
  })

  it('keeps an epoch and refuses a bad one', () => {
    expect(valueOf(parseStatusResponse('{"status":"running","epoch":"e2"}')).epoch).toBe('e2')
    expect(errorOf(parseStatusResponse('{"status":"running","epoch":"e 2"}')).field).toBe('epoch')
  })
})

describe('MAX_CLIENT_MESSAGE_BYTES', () => {
  it('is 64 KiB, counted in UTF-8 bytes on both sides', () => {
    expect(MAX_CLIENT_MESSAGE_BYTES).toBe(65_536)
  })
})

describe('validateTaskId', () => {
  it.each(['audio_generation_12345', 'a', 'A-b.c:d~e', '9'.repeat(MAX_TASK_ID_LENGTH)])('accepts %s', (id) => {
    expect(validateTaskId(id)).toBeNull()
  })

  it.each([
    ['', /empty/],
    ['x'.repeat(129), /129 characters long; at most 128/],
    ['../x', /"\.\.\/x"/],
    ['has space', /"has space"/],
    ['año', /"año"/],
    ['タスク', /outside/],
    ['.hidden', /starts with a dot/],
    ['a/b', /"a\/b"/],
    ['a?b', /outside/],
    ['a%2Fb', /outside/],
  ])('rejects %j', (id, pattern) => {
    expect(validateTaskId(id)).toMatch(pattern)
  })

  it('rejects values that are not strings', () => {
    expect(validateTaskId(42)).toBe('task id must be a string, got the number 42')
    expect(validateTaskId(null)).toMatch(/null/)
  })
})

describe('close codes and scoped errors', () => {
  it('only policy, invalid id and unknown task are fatal', () => {
    expect([1008, 4000, 4004].every(isFatalCloseCode)).toBe(true)
    expect([1000, 1001, 1006, 1009, 1011, 1013, 4008].some(isFatalCloseCode)).toBe(false)
  })

  it('an error with details.scope "connection" is connection-scoped', () => {
    expect(isConnectionScopedError({ type: 'error', details: { scope: 'connection' } })).toBe(true)
    expect(isConnectionScopedError({ type: 'error', details: { scope: 'task' } })).toBe(false)
    expect(isConnectionScopedError({ type: 'progress', details: { scope: 'connection' } })).toBe(false)
  })
})
