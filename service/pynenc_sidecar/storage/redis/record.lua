-- First writer wins at one position of a workflow's record hash.
-- KEYS[1] record hash; KEYS[2] (optional) the hash holding the position's scope status: a new
-- record is refused while that invocation is finished (a replay starts no new work); see
-- record_guard.lua. ARGV: field, count field, value, origin ('' none), then with KEYS[2] the
-- status field.
-- Returns {value, replayed[, origin]}, or {status, 2} when refused. With an origin (the
-- recording span's trace context), a first record stores it at '#s:'..field, and a replay
-- returns the stored one ('' if none).
--#include record_guard.lua
local origin = origin_arg(ARGV[4])
local refused_or_replayed = replay_or_refuse(KEYS[1], ARGV[1], origin, KEYS[2], ARGV[5])
if refused_or_replayed then return refused_or_replayed end
if origin then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], '#s:' .. ARGV[1], origin)
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return {ARGV[3], 0}
