-- mirror(key, A): mirror a task scope's status and lease id (of a task other than the
-- workflow's main task, whose hash has a tag of its own) into the workflow's record hash, where
-- the finished-scope guard (record_guard.lua) and commit.lua's fence read them in a script of
-- one hash tag.
-- key: the record hash. A: version field, status field, lease field, then the task's 'ver',
-- status and lease id as its own transition left them. A mirror older than the one stored (a
-- slow caller's) changes nothing: transitions of one task are ordered by 'ver'.
-- Returns 1 when written, 0 when the stored mirror is as new or newer.
local function mirror(key, A)
  local stored = tonumber(redis.call('HGET', key, A[1]) or '-1')
  if tonumber(A[4]) <= stored then return 0 end
  redis.call('HSET', key, A[1], A[4], A[2], A[5], A[3], A[6])
  return 1
end
