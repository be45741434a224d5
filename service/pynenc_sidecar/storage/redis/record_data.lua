-- A workflow data read or write at a position: recorded and done in one step.
-- KEYS[1] record hash; KEYS[2] data hash; KEYS[3] (optional) the hash holding the scope's
-- status, as in record.lua. ARGV: mode ('read' | 'write'), field, count field, data key,
-- value (write; '' for read), origin ('' none), then with KEYS[3] the status field.
-- First time: a read records the key's value ('' when it has none), a write applies its
-- value to the data and records it. A recorded position changes nothing and returns the
-- record. Returns {recorded value, replayed[, origin]}, or {status, 2} when refused.
local traced = ARGV[6] ~= nil and ARGV[6] ~= ''
local existing = redis.call('HGET', KEYS[1], ARGV[2])
if existing then
  if traced then return {existing, 1, redis.call('HGET', KEYS[1], '#s:' .. ARGV[2]) or ''} end
  return {existing, 1}
end
if KEYS[3] then
  local status = redis.call('HGET', KEYS[3], ARGV[7])
  if status == '11' or status == '12' then return {status, 2} end
end
local value = ARGV[5]
if ARGV[1] == 'read' then
  value = redis.call('HGET', KEYS[2], ARGV[4]) or ''
else
  redis.call('HSET', KEYS[2], ARGV[4], value)
end
redis.call('HSET', KEYS[1], ARGV[2], value)
if traced then redis.call('HSET', KEYS[1], '#s:' .. ARGV[2], ARGV[6]) end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
return {value, 0}
