-- One executor invocation's StateBackend projection (pynenc_sidecar/projection.py), atomically.
-- Every write is idempotent: the record and id indexes are overwritten with the same values,
-- and a history entry is appended only the first time its event id is seen for the invocation.
-- Id indexes are zsets scored 0 (paged by ZRANGEBYLEX), as RedisStateBackendStore writes them;
-- as_zset (prepended from state_backend_store._AS_ZSET) converts one left as a set by an
-- earlier version.
-- KEYS: 1 history counter, 2 app timeline, 3 record, 4 history, 5 projected event ids,
--       6 result, 7 exception, 8 runner contexts, 9 runner ids, 10 sub-invocations index,
--       11 history payloads, 12 payload references (stored once, as AddHistory does),
--       13.. the record's id indexes (parent event, children, workflow, type).
-- ARGV: 1 invocation id, 2 its escaped form, 3 record, 4 result, 5 has result (1/0),
--       6 exception ('' none), 7 runner id ('' none), 8 runner context, 9 is a sub-invocation (1/0),
--       then per history event: event id, time (us), payload, payload digest.
-- Returns how many history entries were appended.
local id = ARGV[1]
redis.call('SET', KEYS[3], ARGV[3])
for i = 13, #KEYS do
  as_zset(KEYS[i])
  redis.call('ZADD', KEYS[i], 0, id)
end
if ARGV[9] == '1' then
  as_zset(KEYS[10])
  redis.call('ZADD', KEYS[10], 0, id)
end
if ARGV[5] == '1' then redis.call('SET', KEYS[6], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('SET', KEYS[7], ARGV[6]) end
if ARGV[7] ~= '' and redis.call('HSETNX', KEYS[8], ARGV[7], ARGV[8]) == 1 then
  redis.call('ZADD', KEYS[9], 0, ARGV[7])
end
local appended = 0
for i = 10, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[5], ARGV[i], '1') == 1 then
    local digest = ARGV[i + 3]
    redis.call('HSETNX', KEYS[11], digest, ARGV[i + 2])
    redis.call('HINCRBY', KEYS[12], digest, 1)
    local member = string.format('%016x', redis.call('INCR', KEYS[1])) .. ':' .. digest
    redis.call('ZADD', KEYS[2], ARGV[i + 1], member .. '|' .. ARGV[2])
    redis.call('ZADD', KEYS[4], ARGV[i + 1], member)
    appended = appended + 1
  end
end
return appended
