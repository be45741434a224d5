-- First writer wins at one position of a workflow's record hash.
-- KEYS[1] record hash; KEYS[2] (optional) the task hash of the position's scope: a new
-- record is refused while that invocation is finished (a replay starts no new work).
-- ARGV: field, count field, value[, origin].
-- Returns {value, replayed[, origin]}, or {status, 2} when refused. With an origin (the
-- recording span's trace context), a first record stores it at '#s:'..field, and a replay
-- returns the stored one ('' if none).
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if ARGV[4] then return {existing, 1, redis.call('HGET', KEYS[1], '#s:' .. ARGV[1]) or ''} end
  return {existing, 1}
end
if KEYS[2] then
  local status = redis.call('HGET', KEYS[2], 'status')
  if status == '11' or status == '12' then return {status, 2} end
end
if ARGV[4] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], '#s:' .. ARGV[1], ARGV[4])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return {ARGV[3], 0}
