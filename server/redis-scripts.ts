/**
 * The Lua scripts of the Redis task store. Each runs atomically in Redis, so a task's
 * `seq`, its stream, its state hash, its time-to-live and the live notification change
 * together whichever process (and however many publishers) calls them.
 *
 * Keys of one task (the `{taskId}` hash tag keeps them in one Redis Cluster slot):
 * - `<prefix>:task:{<id>}:state`  hash: status, seq, progress, name, message, result,
 *   error, details, latest, created, updated (values other than status, seq and the
 *   times are JSON text written by Node, so Lua never parses user data);
 * - `<prefix>:task:{<id>}:log`    stream: one entry per message, entry id `<seq>-0`,
 *   field `m` = the message as JSON (with its `seq`);
 * - `<prefix>:task:{<id>}:live`   pub/sub channel: the same JSON, published by the
 *   script that appended it.
 */

/**
 * Creates the task unless its state hash exists.
 *
 * KEYS: state, log. ARGV: now (ISO), ttl (ms), task name as JSON or "".
 * Returns `{1|0, HGETALL state}`: 1 when created.
 */
export const CREATE_SCRIPT = `
local state, log = KEYS[1], KEYS[2]
if redis.call('EXISTS', state) == 1 then
  return {0, redis.call('HGETALL', state)}
end
redis.call('DEL', log)
redis.call('HSET', state, 'status', 'running', 'progress', '0', 'seq', '0', 'created', ARGV[1], 'updated', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('HSET', state, 'name', ARGV[3])
end
redis.call('PEXPIRE', state, ARGV[2])
return {1, redis.call('HGETALL', state)}
`

/**
 * Appends one message: next seq, stream entry (trimmed to about the history limit),
 * state fields, time-to-live of both keys, and the live notification.
 *
 * KEYS: state, log.
 * ARGV: [1] the message as JSON without seq (ends with "}"); [2] its task name as JSON,
 * or "" when it has none (it then inherits the task's); [3] the status after it;
 * [4] history limit; [5] ttl (ms); [6] now (ISO, createdAt of a task this creates);
 * [7] the message's timestamp (updatedAt); [8] the live channel; [9…] state field,
 * value pairs to set.
 * Returns `{1, HGETALL state}` when appended, `{0, HGETALL state}` when the task had
 * already finished (nothing changed).
 */
export const APPEND_SCRIPT = `
local state, log = KEYS[1], KEYS[2]
local status = redis.call('HGET', state, 'status')
if status and status ~= 'running' then
  return {0, redis.call('HGETALL', state)}
end
if not status then
  -- A new task (or one whose state expired first): a stale stream must not hold
  -- entry ids above the restarted numbering.
  redis.call('DEL', log)
  redis.call('HSET', state, 'status', 'running', 'progress', '0', 'seq', '0', 'created', ARGV[6])
end
local seq = redis.call('HINCRBY', state, 'seq', 1)
local body = string.sub(ARGV[1], 1, -2)
if ARGV[2] ~= '' then
  redis.call('HSET', state, 'name', ARGV[2])
else
  local name = redis.call('HGET', state, 'name')
  if name then
    body = body .. ',"task_name":' .. name
  end
end
body = body .. ',"seq":' .. seq .. '}'
redis.call('XADD', log, 'MAXLEN', '~', ARGV[4], seq .. '-0', 'm', body)
redis.call('HSET', state, 'status', ARGV[3], 'latest', body, 'updated', ARGV[7])
for i = 9, #ARGV, 2 do
  redis.call('HSET', state, ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', state, ARGV[5])
redis.call('PEXPIRE', log, ARGV[5])
redis.call('PUBLISH', ARGV[8], body)
return {1, redis.call('HGETALL', state)}
`
