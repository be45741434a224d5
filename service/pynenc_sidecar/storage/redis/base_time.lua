-- The workflow's time zero, recorded once. KEYS[1] record hash; ARGV: now_us.
local existing = redis.call('HGET', KEYS[1], '#base')
if existing then return {existing, 1} end
redis.call('HSET', KEYS[1], '#base', ARGV[1])
redis.call('HSETNX', KEYS[1], '#last', ARGV[1])
return {ARGV[1], 0}
