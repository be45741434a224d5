"""StateBackendService (placeholder until implemented; registers nothing)."""

from __future__ import annotations


def register_state_backend(server, store, limits) -> list[str]:
    return []
