-- A workflow data read or write at a position: recorded and done in one step.
-- KEYS[1] record hash; KEYS[2] data hash; KEYS[3] (optional) the hash holding the scope's
-- status, as in record.lua. ARGV: mode ('read' | 'write'), field, count field, data key,
-- value (write; '' for read), origin ('' none), then with KEYS[3] the status field.
-- First time: a read records the key's value ('' when it has none), a write applies its
-- value to the data and records it. A recorded position changes nothing and returns the
-- record. Returns {recorded value, replayed[, origin]}, or {status, 2} when refused.
--#include record_guard.lua
local origin = origin_arg(ARGV[6])
local refused_or_replayed = replay_or_refuse(KEYS[1], ARGV[2], origin, KEYS[3], ARGV[7])
if refused_or_replayed then return refused_or_replayed end
local value = ARGV[5]
if ARGV[1] == 'read' then
  value = redis.call('HGET', KEYS[2], ARGV[4]) or ''
else
  redis.call('HSET', KEYS[2], ARGV[4], value)
end
redis.call('HSET', KEYS[1], ARGV[2], value)
if origin then redis.call('HSET', KEYS[1], '#s:' .. ARGV[2], origin) end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
return {value, 0}
