"""How StateBackend payloads are kept: a JSON value as its own text, so that every reader
(DeterministicExecutorService.GetData included) parses it as it was written, and opaque text
(e.g. Pynenc's serializer output) inside the JSON envelope {"$opaque": "<text>"}, so that it
stays valid JSON for JSON-only readers too. A JSON value of the envelope's exact form would
read back as opaque, so writers refuse it (`is_envelope`)."""

from __future__ import annotations

import json
from typing import Literal

Kind = Literal["json", "opaque"]

OPAQUE_KEY = "$opaque"
_PREFIX = '{"' + OPAQUE_KEY + '":'


def encode(kind: Kind, text: str) -> str:
    if kind == "json":
        return text
    return json.dumps({OPAQUE_KEY: text}, separators=(",", ":"), ensure_ascii=False)


def decode(stored: str) -> tuple[Kind, str]:
    if stored.startswith(_PREFIX):
        value = json.loads(stored)
        if _is_envelope_value(value):
            return "opaque", value[OPAQUE_KEY]
    return "json", stored


def is_envelope(value: object) -> bool:
    """Whether a parsed JSON value has the envelope's form (and so cannot be stored as JSON)."""
    return _is_envelope_value(value)


def _is_envelope_value(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(OPAQUE_KEY), str)
