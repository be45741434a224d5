-- utc_now: record max(now, last + 1) microseconds, so recorded times strictly increase.
-- KEYS[1] record hash; KEYS[2] (optional) the hash holding the scope's status, as in record.lua.
-- ARGV: field, count field, now_us, origin ('' none), then with KEYS[2] the status field. Returns {time, replayed[, origin]}, or
-- {status, 2} when refused; the origin is stored and returned as in record.lua.
--#include record_guard.lua
local origin = origin_arg(ARGV[4])
local refused_or_replayed = replay_or_refuse(KEYS[1], ARGV[1], origin, KEYS[2], ARGV[5])
if refused_or_replayed then return refused_or_replayed end
local t = tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[1], '#last'))
if last and t <= last then t = last + 1 end
local text = string.format('%.0f', t)
redis.call('HSET', KEYS[1], ARGV[1], text, '#last', text)
if origin then redis.call('HSET', KEYS[1], '#s:' .. ARGV[1], origin) end
redis.call('HSETNX', KEYS[1], '#base', text)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return {text, 0}
