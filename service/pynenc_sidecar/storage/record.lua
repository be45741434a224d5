-- First writer wins at one position of a workflow's record hash.
-- KEYS[1] record hash; ARGV: field, count field, value. Returns {value, replayed}.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {existing, 1} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return {ARGV[3], 0}
