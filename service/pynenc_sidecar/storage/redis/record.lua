-- First writer wins at one position of a workflow's record hash.
-- KEYS[1] record hash; KEYS[2] (optional) the hash holding the position's scope status: a new
-- record is refused while that invocation is finished (a replay starts no new work). It is
-- the workflow's main task hash (same hash tag) or, for another scope, the record hash, where
-- the scope's status is mirrored once it finished (so every key is of one hash tag).
-- ARGV: field, count field, value, origin ('' none), then with KEYS[2] the status field.
-- Returns {value, replayed[, origin]}, or {status, 2} when refused. With an origin (the
-- recording span's trace context), a first record stores it at '#s:'..field, and a replay
-- returns the stored one ('' if none).
local traced = ARGV[4] ~= nil and ARGV[4] ~= ''
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if traced then return {existing, 1, redis.call('HGET', KEYS[1], '#s:' .. ARGV[1]) or ''} end
  return {existing, 1}
end
if KEYS[2] then
  local status = redis.call('HGET', KEYS[2], ARGV[5])
  if status == '11' or status == '12' then return {status, 2} end
end
if traced then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], '#s:' .. ARGV[1], ARGV[4])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return {ARGV[3], 0}
