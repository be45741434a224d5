-- A dispatched invocation's transitions, atomically on its task hash (KEYS[1]). Its dispatch
-- state lives in the same hash: d_pol (policy JSON), d_sts (schedule-to-start, us), d_att
-- (attempt), d_q (queued since, us; 0 while leased), d_st (attempt started, us), d_err (the
-- last failed attempt's error). Purges and retention sweeps remove it with the task.
-- ARGV[1] action, ARGV[2] now_us (the replica's clock: timeouts); leases use Redis' TIME.
--   register: policy, schedule_to_start_us, then definition field/value pairs
--   claim:    lease_id, ttl_us, runner
--   requeue:  lease_id, available_us, error|'' ('' : handed back, not a retry)
-- Returns {code, flattened hash}. A claim or requeue counts a transition in 'ver', as task.lua
-- does (the caller mirrors the status and lease into the workflow's record hash).
local key, action, now_us = KEYS[1], ARGV[1], tonumber(ARGV[2])
local clock = redis.call('TIME')
local store_now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function final(status) return status == '11' or status == '12' end
local function num(field) return tonumber(redis.call('HGET', key, field) or '0') end
local function fmt(n) return string.format('%.0f', n) end

if action == 'register' then
  if redis.call('EXISTS', key) == 0 then
    local def = {}
    for i = 5, #ARGV do def[#def + 1] = ARGV[i] end
    redis.call('HSET', key, unpack(def))
  end
  if redis.call('HEXISTS', key, 'd_pol') == 0 then
    redis.call('HSET', key, 'd_pol', ARGV[3], 'd_sts', ARGV[4], 'd_att', '0', 'd_q', ARGV[2], 'd_st', '0')
  end
  return {'ok', redis.call('HGETALL', key)}
end

if redis.call('EXISTS', key) == 0 then return {'missing', {}} end
local status = redis.call('HGET', key, 'status')

if action == 'claim' then
  if redis.call('HEXISTS', key, 'd_pol') == 0 then return {'not_dispatched', {}} end
  if final(status) then return {'finished', redis.call('HGETALL', key)} end
  if num('lease_exp') > store_now then return {'leased', redis.call('HGETALL', key)} end
  local fresh = status ~= '7'
  if fresh then
    local queued = num('d_q')
    if queued > 0 and queued + num('d_sts') < now_us then return {'expired', redis.call('HGETALL', key)} end
    redis.call('HSET', key, 'd_att', fmt(num('d_att') + 1))
  end
  redis.call('HSET', key, 'lease_id', ARGV[3], 'lease_exp', fmt(store_now + tonumber(ARGV[4])),
             'runner', ARGV[5], 'status', '7', 'd_q', '0', 'd_st', ARGV[2])
  redis.call('HINCRBY', key, 'ver', 1)
  return {'granted', redis.call('HGETALL', key)}
end

if action == 'requeue' then
  if final(status) then return {'finished', redis.call('HGETALL', key)} end
  if (redis.call('HGET', key, 'lease_id') or '') ~= ARGV[3] then return {'not_held', {}} end
  -- The lease id becomes a tombstone: the previous holder's late outcome is refused (fenced).
  redis.call('HSET', key, 'lease_id', '-', 'lease_exp', '0', 'd_q', ARGV[4])
  if ARGV[5] ~= '' then
    redis.call('HSET', key, 'status', '13', 'd_err', ARGV[5])
  else
    redis.call('HSET', key, 'status', '1', 'd_att', fmt(math.max(num('d_att') - 1, 0)))
  end
  redis.call('HINCRBY', key, 'ver', 1)
  return {'ok', redis.call('HGETALL', key)}
end

return redis.error_reply('unknown action ' .. action)
