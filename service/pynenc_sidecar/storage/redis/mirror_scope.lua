-- A task scope's mirror alone (mirror_rules.lua), the step after its task's transition.
-- KEYS[1] record hash; ARGV as mirror's A.
--#include mirror_rules.lua
return mirror(KEYS[1], ARGV)
