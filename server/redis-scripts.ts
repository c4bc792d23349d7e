/**
 * The Lua scripts of the Redis task store. Each runs atomically in Redis, so a task's
 * `seq`, its stream, its state hash, its lease, its time-to-live and the live
 * notification change together whichever process (and however many publishers) calls
 * them.
 *
 * Keys of one task (the `{taskId}` hash tag keeps them in one Redis Cluster slot):
 * - `<prefix>:task:{<id>}:state`  hash: status, seq, epoch, lease, progress, name,
 *   message, result, error, details, latest, created, updated (values other than
 *   status, seq, epoch, lease and the times are JSON text written by Node, so Lua never
 *   parses user data);
 * - `<prefix>:task:{<id>}:log`    stream: one entry per message, entry id `<seq>-0`,
 *   field `m` = the message as JSON (with its `seq`);
 * - `<prefix>:task:{<id>}:pubs`   sorted set: the task's recent publish ids, scored by
 *   the `seq` each appended (a retried publish is recognised here);
 * - `<prefix>:task:{<id>}:live`   pub/sub channel: the same JSON, published by the
 *   script that appended it.
 * And one key per prefix:
 * - `<prefix>:leases`             sorted set: running tasks by lease deadline, the index
 *   every process scans for expired leases. The deadline itself is the state hash's
 *   `lease` field: the index only says where to look.
 *
 * Lease deadlines are on Redis's clock (`TIME`), so processes with skewed clocks agree.
 */

/** Redis's clock in whole milliseconds. */
const NOW_MS = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function set_lease(state, leases, id, ms)
  local deadline = now_ms() + tonumber(ms)
  redis.call('HSET', state, 'lease', string.format('%d', deadline))
  redis.call('ZADD', leases, deadline, id)
end
`

/**
 * Creates the task unless its state hash exists.
 *
 * KEYS: state, log, leases, pubs.
 * ARGV: [1] now (ISO); [2] ttl (ms); [3] task name as JSON or ""; [4] epoch;
 * [5] lease (ms) or ""; [6] task id.
 * Returns `{1|0, HGETALL state}`: 1 when created.
 */
export const CREATE_SCRIPT = `${NOW_MS}
local state, log, leases, pubs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', state) == 1 then
  return {0, redis.call('HGETALL', state)}
end
redis.call('DEL', log, pubs)
redis.call('HSET', state, 'status', 'running', 'progress', '0', 'seq', '0', 'epoch', ARGV[4], 'created', ARGV[1], 'updated', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('HSET', state, 'name', ARGV[3])
end
if ARGV[5] ~= '' then
  set_lease(state, leases, ARGV[6], ARGV[5])
end
redis.call('PEXPIRE', state, ARGV[2])
return {1, redis.call('HGETALL', state)}
`

/**
 * Appends one message: next seq, stream entry (trimmed to about the history limit),
 * state fields, publish id, lease, time-to-live of the task's keys, and the live
 * notification.
 *
 * KEYS: state, log, leases, pubs.
 * ARGV: [1] the message as JSON without seq (ends with "}"); [2] its task name as JSON,
 * or "" when it has none (it then inherits the task's); [3] the status after it;
 * [4] history limit; [5] ttl (ms); [6] now (ISO, createdAt of a task this creates);
 * [7] the message's timestamp (updatedAt); [8] the live channel; [9] publish id or "";
 * [10] lease (ms) or ""; [11] task id; [12] epoch of a task this creates; [13] "1" to
 * append only if the running task's lease ran out; [14] publish id window; [15…] state
 * field, value pairs to set.
 * Returns `{1, HGETALL state}` when appended; `{0, HGETALL state}` when the task had
 * already finished; `{2, HGETALL state}` when [13] is set and the lease has not run out
 * (or the task has none, or is gone); `{3, HGETALL state, message or false}` when the
 * publish id was applied before (nothing changed).
 */
export const APPEND_SCRIPT = `${NOW_MS}
local state, log, leases, pubs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[11]
local status = redis.call('HGET', state, 'status')
if ARGV[13] == '1' and status == 'running' then
  local lease = tonumber(redis.call('HGET', state, 'lease'))
  if not lease then
    redis.call('ZREM', leases, id)
    return {2, redis.call('HGETALL', state)}
  end
  if lease > now_ms() then
    -- Renewed since the index said otherwise: put the index right.
    redis.call('ZADD', leases, lease, id)
    return {2, redis.call('HGETALL', state)}
  end
elseif ARGV[13] == '1' then
  redis.call('ZREM', leases, id)
  if not status then
    return {2, {}}
  end
end
if status and ARGV[9] ~= '' then
  local applied = redis.call('ZSCORE', pubs, ARGV[9])
  if applied then
    local entry = redis.call('XRANGE', log, applied .. '-0', applied .. '-0')[1]
    local message = false
    if entry then
      message = entry[2][2]
    end
    return {3, redis.call('HGETALL', state), message}
  end
end
if status and status ~= 'running' then
  return {0, redis.call('HGETALL', state)}
end
if not status then
  -- A new task (or one whose state expired first): a stale stream must not hold
  -- entry ids above the restarted numbering, and a new numbering is a new epoch.
  redis.call('DEL', log, pubs)
  redis.call('HSET', state, 'status', 'running', 'progress', '0', 'seq', '0', 'epoch', ARGV[12], 'created', ARGV[6])
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
for i = 15, #ARGV, 2 do
  redis.call('HSET', state, ARGV[i], ARGV[i + 1])
end
if ARGV[9] ~= '' then
  redis.call('ZADD', pubs, seq, ARGV[9])
  redis.call('ZREMRANGEBYRANK', pubs, 0, -1 - tonumber(ARGV[14]))
end
if ARGV[3] ~= 'running' then
  redis.call('HDEL', state, 'lease')
  redis.call('ZREM', leases, id)
elseif ARGV[10] ~= '' then
  set_lease(state, leases, id, ARGV[10])
end
redis.call('PEXPIRE', state, ARGV[5])
redis.call('PEXPIRE', log, ARGV[5])
redis.call('PEXPIRE', pubs, ARGV[5])
redis.call('PUBLISH', ARGV[8], body)
return {1, redis.call('HGETALL', state)}
`

/**
 * Renews a running task's lease and time-to-live (a heartbeat).
 *
 * KEYS: state, log, leases, pubs. ARGV: [1] lease (ms); [2] ttl (ms); [3] task id.
 * Returns `{1, HGETALL state}` when renewed, `{0, HGETALL state}` otherwise (finished,
 * or unknown: an empty list).
 */
export const RENEW_LEASE_SCRIPT = `${NOW_MS}
local state, log, leases, pubs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', state, 'status') ~= 'running' then
  return {0, redis.call('HGETALL', state)}
end
set_lease(state, leases, ARGV[3], ARGV[1])
for _, key in ipairs({state, log, pubs}) do
  if redis.call('PTTL', key) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return {1, redis.call('HGETALL', state)}
`

/**
 * Running tasks whose lease deadline has passed, by Redis's clock.
 *
 * KEYS: leases. ARGV: [1] how many at most. Returns task ids.
 */
export const EXPIRED_LEASES_SCRIPT = `${NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
`
