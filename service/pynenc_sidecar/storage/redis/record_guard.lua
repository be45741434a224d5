-- Shared by the record scripts (included where they say `--#include record_guard.lua`).
-- A recorded field replays: {value, 1[, its stored origin]} (the origin when one is asked
-- for, '' if none is stored). An unrecorded field is refused while the guard invocation (the
-- position's scope; nil: none) is finished: {status, 2}. nil: go on and record.
local function replay_or_refuse(ops, field, origin, guard)
  local existing = redis.call('HGET', ops, field)
  if existing then
    if origin then return {existing, 1, redis.call('HGET', ops, '#s:' .. field) or ''} end
    return {existing, 1}
  end
  if guard then
    local status = redis.call('HGET', guard, 'status')
    if status == '11' or status == '12' then return {status, 2} end
  end
  return nil
end
