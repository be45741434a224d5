"""History rules both StateBackend stores share: how a payload is named when stored once,
and how a time range's entries become each invocation once."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from pynenc_sidecar.storage.interface import HistoryRecord


def payload_digest(payload: str) -> bytes:
    """The SHA-256 a history payload is stored under, once per app."""
    return hashlib.sha256(payload.encode()).digest()


async def first_sightings(pages: AsyncIterator[list[HistoryRecord]], batch_size: int) -> AsyncIterator[list[str]]:
    """Each invocation of the history pages once, at its first entry, in batches.

    The seen set grows with the number of distinct invocations, not with their entries."""
    seen: set[str] = set()
    pending: list[str] = []
    async for records in pages:
        for record in records:
            if record.invocation_id not in seen:
                seen.add(record.invocation_id)
                pending.append(record.invocation_id)
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]
    if pending:
        yield pending
