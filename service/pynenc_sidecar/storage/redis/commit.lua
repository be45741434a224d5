-- A run's buffered operations, all or nothing, fenced by its lease (storage/base.py, commit).
-- KEYS[1] record hash; KEYS[2] data hash; KEYS[3] the hash holding the run's scope status and
-- lease id: the main task's hash (the same hash tag as KEYS[1..2]) or, for a task inside the
-- workflow, the record hash itself, where its status and lease id are mirrored
-- (mirror_scope.lua): every key is of one hash tag, so the script runs on Redis Cluster.
-- ARGV: lease id, origin ('' for none), status field, lease field ('status', 'lease_id' in a
-- task hash; '#f:<inv>', '#l:<inv>' in the record hash), then per entry 5 values: field,
-- count field, value, data key ('' for none), kind ('t' time, 'd' data write, 'v' other).
-- Returns {'ok', flags} (flags: one '1' per entry recorded now, '0' per entry already
-- there), {'missing'}, {'not_held'}, {'conflict', index, stored} (0-based) or
-- {'finished', status, index}.
local status = redis.call('HGET', KEYS[3], ARGV[3])
if not status then return {'missing'} end
if (redis.call('HGET', KEYS[3], ARGV[4]) or '') ~= ARGV[1] then return {'not_held'} end
local count = (#ARGV - 4) / 5
local flags = {}
local first_new = nil
for i = 0, count - 1 do
  local base = 5 + i * 5
  local stored = redis.call('HGET', KEYS[1], ARGV[base])
  if stored then
    if stored ~= ARGV[base + 2] then return {'conflict', i, stored} end
    flags[i + 1] = '0'
  else
    flags[i + 1] = '1'
    if not first_new then first_new = i end
  end
end
if first_new and (status == '11' or status == '12') then return {'finished', status, first_new} end
local origin = ARGV[2]
for i = 0, count - 1 do
  if flags[i + 1] == '1' then
    local base = 5 + i * 5
    local field, value, kind = ARGV[base], ARGV[base + 2], ARGV[base + 4]
    redis.call('HSET', KEYS[1], field, value)
    redis.call('HINCRBY', KEYS[1], ARGV[base + 1], 1)
    if origin ~= '' then redis.call('HSET', KEYS[1], '#s:' .. field, origin) end
    if kind == 't' then
      local last = tonumber(redis.call('HGET', KEYS[1], '#last'))
      if not last or tonumber(value) > last then redis.call('HSET', KEYS[1], '#last', value) end
      redis.call('HSETNX', KEYS[1], '#base', value)
    elseif kind == 'd' then
      redis.call('HSET', KEYS[2], ARGV[base + 3], value)
    end
  end
end
return {'ok', table.concat(flags)}
