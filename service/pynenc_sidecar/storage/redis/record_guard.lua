-- Shared by the record scripts (included where they say `--#include record_guard.lua`).
-- A recorded field replays: {value, 1[, its stored origin]} (the origin when one is asked
-- for, '' if none is stored). An unrecorded field is refused while the guard invocation (the
-- position's scope; nil: none) is finished: {status, 2}. nil: go on and record.
-- guard is the hash holding the scope's status and status_field its field: the main task's
-- hash ('status', the workflow's own hash tag) or, for another scope, the record hash, where
-- the scope's status is mirrored ('#f:<invocation>'), so every key is of one hash tag.
local function replay_or_refuse(ops, field, origin, guard, status_field)
  local existing = redis.call('HGET', ops, field)
  if existing then
    if origin then return {existing, 1, redis.call('HGET', ops, '#s:' .. field) or ''} end
    return {existing, 1}
  end
  if guard then
    local status = redis.call('HGET', guard, status_field)
    if status == '11' or status == '12' then return {status, 2} end
  end
  return nil
end
-- The origin argument: '' (or absent) is none.
local function origin_arg(value)
  if value == nil or value == '' then return nil end
  return value
end
