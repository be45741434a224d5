"""The values a worker derives itself (tests/vectors/derivations.json): random and uuid of a
position, computed exactly as the sidecar does, so a buffered operation needs no call."""

from __future__ import annotations

import hashlib
import uuid

UUID_NAMESPACE = uuid.UUID("4ec88ec1-5c73-580b-b761-48c079c72b4a")  # UUIDv5 of https://pynenc.org/sidecar/uuid/v1
_TWO_53 = float(1 << 53)


def random_value(scope: str, sequence: int) -> float:
    """The top 53 bits of SHA-256("<scope>#<sequence>") over 2**53: a float in [0, 1)."""
    digest = hashlib.sha256(f"{scope}#{sequence}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / _TWO_53


def uuid_value(scope: str, sequence: int) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, f"{scope}#{sequence}"))
