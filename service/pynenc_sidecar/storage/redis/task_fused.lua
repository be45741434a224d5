-- On one Redis (never on a cluster: its keys have several hash tags), a task transition and
-- the steps that otherwise follow it as scripts of their own, in one atomic script and one
-- round trip: the task scope's mirror in its workflow's record hash, the run index of a
-- workflow it registers, and its StateBackend projection (computed by the caller for the state
-- it expects the transition to leave, and written only when the transition left exactly that).
-- KEYS: 1 task hash, 2 the workflow's record hash (the mirror's), 3 app ids, 4 workflow types,
--       5 runs, 6 runs of the type (3-6: the run index, any key when none is written),
--       then the projection's keys (project_rules.lua's K).
-- ARGV: 1 t, the number of task_step arguments; 2 mirror (1/0) and 3-5 its version, status
--       and lease fields; 6 the run's member ('' none), 7 app id, 8 workflow type;
--       9 when the projection applies: 'granted' (the lease was granted and the task has the
--       definition given to ensure), 'held' (the outcome was accepted from the lease in 10),
--       '' never; 10 that lease id; 11 p, the number of projection keys;
--       then task_step's t arguments (task_rules.lua's A), then the projection's (project's A).
-- Returns task_step's reply and a fourth element: 1 when the projection was written.
--#include task_rules.lua
--#include mirror_rules.lua
--#include project_rules.lua
local function slice(list, first, last)
  local part = {}
  for i = first, last do part[#part + 1] = list[i] end
  return part
end
local t, p = tonumber(ARGV[1]), tonumber(ARGV[11])
local task_args = slice(ARGV, 12, 11 + t)
local key = KEYS[1]
local reply = task_step(key, task_args)
local code, changed = reply[1], reply[2]
if code ~= 'ok' and code ~= 'created' then
  reply[4] = 0
  return reply
end
if ARGV[2] == '1' and (code == 'created' or changed == 1) then
  local state = redis.call('HMGET', key, 'ver', 'status', 'lease_id')
  mirror(KEYS[2], {ARGV[3], ARGV[4], ARGV[5], state[1] or '0', state[2] or '', state[3] or ''})
end
if ARGV[6] ~= '' then  -- the app first, as run_index.index_workflow_run does
  redis.call('SADD', KEYS[3], ARGV[7])
  redis.call('SADD', KEYS[4], ARGV[8])
  redis.call('ZADD', KEYS[5], 'NX', task_args[2], ARGV[6])
  redis.call('ZADD', KEYS[6], 'NX', task_args[2], ARGV[6])
end
local applies = false
if ARGV[9] == 'granted' and changed == 1 then
  applies = true
  if code ~= 'created' then  -- an existing task: projected as expected only with that definition
    for i = 6, t, 2 do
      if task_args[i] ~= 'status' and redis.call('HGET', key, task_args[i]) ~= task_args[i + 1] then
        applies = false
      end
    end
  end
elseif ARGV[9] == 'held' and changed == 1 then
  applies = redis.call('HGET', key, 'lease_id') == ARGV[10]
end
reply[4] = 0
if applies then
  project(slice(KEYS, 7, 6 + p), slice(ARGV, 12 + t, #ARGV))
  reply[4] = 1
end
return reply
