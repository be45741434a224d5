"""Values derived from a position, reproducible in any language (see tests/vectors)."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from typing import Any

#: UUIDv5 of the URL "https://pynenc.org/sidecar/uuid/v1"; the namespace of every `uuid()`.
UUID_NAMESPACE = uuid.UUID("4ec88ec1-5c73-580b-b761-48c079c72b4a")


def derivation_name(scope: str, sequence: int) -> str:
    """The name both derivations hash: "<scope>#<sequence>" (sequence in decimal)."""
    return f"{scope}#{sequence}"


def random_value(scope: str, sequence: int) -> float:
    """A float in [0, 1): the top 53 bits of SHA-256("<scope>#<sequence>") over 2**53."""
    digest = hashlib.sha256(derivation_name(scope, sequence).encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def uuid_value(scope: str, sequence: int) -> str:
    """UUIDv5 of "<scope>#<sequence>" in UUID_NAMESPACE."""
    return str(uuid.uuid5(UUID_NAMESPACE, derivation_name(scope, sequence)))


def _normalize(value: Any) -> Any:
    # Integral floats become ints so that 1.0 (Python) and 1 (JavaScript) compare equal.
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    """Strict JSON parse: NaN and Infinity are rejected, as other languages reject them."""
    return json.loads(text, parse_constant=_reject_constant)


def canonical_json(value: Any) -> str:
    """Canonical text of a JSON value: sorted keys, no spaces, integral floats as ints."""
    return json.dumps(_normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
