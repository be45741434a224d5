-- project(K, A): one executor invocation's StateBackend projection (pynenc_sidecar/projection.py).
-- project.lua runs it alone (every key under the app's hash tag); task_fused.lua runs it in
-- the task transition's own script, on one Redis.
-- Every write is idempotent: the record and id indexes are overwritten with the same values,
-- and a history entry is appended only the first time its event id is seen for the invocation.
-- Id indexes are zsets scored 0 (paged by ZRANGEBYLEX), as RedisStateBackendStore writes them;
-- as_zset (prepended from state_backend_store.AS_ZSET) converts one left as a set by an
-- earlier version.
-- K: 1 history counter, 2 app timeline, 3 record, 4 history, 5 projected event ids,
--    6 result, 7 exception, 8 runner contexts, 9 runner ids, 10 sub-invocations index,
--    11 history payloads, 12 payload references (stored once, as AddHistory does),
--    13.. the record's id indexes (parent event, children, workflow, type).
-- A: 1 invocation id, 2 its escaped form, 3 record, 4 result, 5 has result (1/0),
--    6 exception ('' none), 7 runner id ('' none), 8 runner context, 9 is a sub-invocation (1/0),
--    then per history event: event id, time (us), payload, payload digest.
-- Returns how many history entries were appended.
local function project(K, A)
  local id = A[1]
  redis.call('SET', K[3], A[3])
  for i = 13, #K do
    as_zset(K[i])
    redis.call('ZADD', K[i], 0, id)
  end
  if A[9] == '1' then
    as_zset(K[10])
    redis.call('ZADD', K[10], 0, id)
  end
  if A[5] == '1' then redis.call('SET', K[6], A[4]) end
  if A[6] ~= '' then redis.call('SET', K[7], A[6]) end
  if A[7] ~= '' and redis.call('HSETNX', K[8], A[7], A[8]) == 1 then
    redis.call('ZADD', K[9], 0, A[7])
  end
  local appended = 0
  for i = 10, #A, 4 do
    if redis.call('HSETNX', K[5], A[i], '1') == 1 then
      local digest = A[i + 3]
      redis.call('HSETNX', K[11], digest, A[i + 2])
      redis.call('HINCRBY', K[12], digest, 1)
      local member = string.format('%016x', redis.call('INCR', K[1])) .. ':' .. digest
      redis.call('ZADD', K[2], A[i + 1], member .. '|' .. A[2])
      redis.call('ZADD', K[4], A[i + 1], member)
      appended = appended + 1
    end
  end
  return appended
end
