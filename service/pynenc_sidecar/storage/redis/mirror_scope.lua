-- Mirror a task scope's status and lease id (of a task other than the workflow's main task,
-- whose hash has a tag of its own) into the workflow's record hash, where the finished-scope
-- guard (record_guard.lua) and commit.lua's fence read them in a script of one hash tag.
-- KEYS[1] record hash. ARGV: version field, status field, lease field, then the task's
-- 'ver', status and lease id as its own script left them. A mirror older than the one stored
-- (a slow caller's) changes nothing: transitions of one task are ordered by 'ver'.
-- Returns 1 when written, 0 when the stored mirror is as new or newer.
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[4]) <= stored then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], ARGV[2], ARGV[5], ARGV[3], ARGV[6])
return 1
