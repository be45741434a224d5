-- One task-state transition alone (task_rules.lua). KEYS[1] task hash; ARGV as task_step's A.
--#include task_rules.lua
return task_step(KEYS[1], ARGV)
