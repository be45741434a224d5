-- task_step(key, A): every task-state transition, atomically on one invocation hash. task.lua
-- runs it alone (one key: one hash tag, so it runs on Redis Cluster; the mirror, the run index
-- and the projection are the caller's next steps); task_fused.lua runs it with those steps,
-- on one Redis.
-- key: the task hash.
-- A[1] action, A[2] now_us, then per action:
--   ensure:  lease_id, ttl_us, runner, then definition field/value pairs
--   acquire: lease_id, ttl_us, runner
--   renew:   lease_id, ttl_us
--   complete: lease_id, status, result|'' , error|'', has_result (1/0); stores 'done' = A[2]
--   retry:   (nothing) a FAILED task goes to RETRY (13): error, lease and 'done' cleared
-- Returns {code, granted_or_accepted, flattened hash}; code 'ok' | 'created' | 'missing' | 'not_held'.
-- 'ver' counts the transitions that change the status or the lease holder: they are mirrored
-- into the workflow's record hash (mirror_rules.lua), newest kept.
-- Leases are measured on Redis' clock (TIME), never on the calling replica's: replicas whose
-- clocks disagree still agree on when a lease lapses. A[2] (the replica's time) is only
-- what 'done' records.
local function task_step(key, A)
  local action = A[1]
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local function final(status) return status == '11' or status == '12' end
  local function try_lease(lease_id, ttl, runner)
    local status = redis.call('HGET', key, 'status')
    if lease_id == '' or final(status) then return 0 end
    local exp = tonumber(redis.call('HGET', key, 'lease_exp') or '0')
    if exp > now then return 0 end
    redis.call('HSET', key, 'lease_id', lease_id, 'lease_exp', string.format('%.0f', now + tonumber(ttl)),
               'runner', runner, 'status', '7')
    redis.call('HINCRBY', key, 'ver', 1)
    return 1
  end

  if action == 'ensure' then
    local code = 'ok'
    if redis.call('EXISTS', key) == 0 then
      code = 'created'
      local def = {}
      for i = 6, #A do def[#def + 1] = A[i] end
      redis.call('HSET', key, unpack(def))
    end
    local granted = try_lease(A[3], A[4], A[5])
    return {code, granted, redis.call('HGETALL', key)}
  end

  if redis.call('EXISTS', key) == 0 then return {'missing', 0, {}} end

  if action == 'acquire' then
    local granted = try_lease(A[3], A[4], A[5])
    return {'ok', granted, redis.call('HGETALL', key)}
  end

  local status = redis.call('HGET', key, 'status')
  local held = redis.call('HGET', key, 'lease_id') or ''

  if action == 'renew' then
    if final(status) or held ~= A[3] then return {'not_held', 0, {}} end
    redis.call('HSET', key, 'lease_exp', string.format('%.0f', now + tonumber(A[4])))
    return {'ok', 1, redis.call('HGETALL', key)}
  end

  if action == 'complete' then
    if final(status) then return {'ok', 0, redis.call('HGETALL', key)} end
    -- Fenced: once another caller was granted the lease, the previous holder's outcome is
    -- refused, even after the new holder's lease lapsed too (it may still be running).
    if held ~= '' and held ~= A[3] then return {'not_held', 0, {}} end
    redis.call('HSET', key, 'status', A[4], 'lease_exp', '0', 'done', A[2])
    redis.call('HINCRBY', key, 'ver', 1)
    if A[7] == '1' then redis.call('HSET', key, 'result', A[5]) else redis.call('HSET', key, 'error', A[6]) end
    return {'ok', 1, redis.call('HGETALL', key)}
  end
  if action == 'retry' then
    if status ~= '12' then return {'ok', 0, redis.call('HGETALL', key)} end
    redis.call('HSET', key, 'status', '13', 'lease_id', '', 'lease_exp', '0')
    redis.call('HDEL', key, 'error', 'done')
    redis.call('HINCRBY', key, 'ver', 1)
    return {'ok', 1, redis.call('HGETALL', key)}
  end
  return redis.error_reply('unknown action ' .. action)
end
