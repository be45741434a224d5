-- utc_now: record max(now, last + 1) microseconds, so recorded times strictly increase.
-- KEYS[1] record hash; KEYS[2] (optional) the scope's task hash, as in record.lua.
-- ARGV: field, count field, now_us[, origin]. Returns {time, replayed[, origin]}, or
-- {status, 2} when refused; the origin is stored and returned as in record.lua.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if ARGV[4] then return {existing, 1, redis.call('HGET', KEYS[1], '#s:' .. ARGV[1]) or ''} end
  return {existing, 1}
end
if KEYS[2] then
  local status = redis.call('HGET', KEYS[2], 'status')
  if status == '11' or status == '12' then return {status, 2} end
end
local t = tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[1], '#last'))
if last and t <= last then t = last + 1 end
local text = string.format('%.0f', t)
redis.call('HSET', KEYS[1], ARGV[1], text, '#last', text)
if ARGV[4] then redis.call('HSET', KEYS[1], '#s:' .. ARGV[1], ARGV[4]) end
redis.call('HSETNX', KEYS[1], '#base', text)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return {text, 0}
