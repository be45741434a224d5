"""The Redis stores: the executor store and the StateBackend store, one key layout, Lua scripts."""
