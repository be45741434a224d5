-- One invocation's StateBackend projection alone (project_rules.lua). KEYS and ARGV as
-- project's K and A.
--#include project_rules.lua
return project(KEYS, ARGV)
