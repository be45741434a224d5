"""Request validation shared by the servicers: every failure names its field."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import duration_pb2

from pynenc_sidecar.core.derivations import canonical_json, parse_json
from pynenc_sidecar.core.errors import InvalidArgument

MAX_SEQUENCE = 2**53  # every JSON number a client can send exactly


@dataclass(frozen=True)
class Limits:
    """Size limits, configurable at start (`--max-value-bytes`, `--max-payload-bytes`)."""

    max_id_bytes: int = 1024
    max_name_bytes: int = 256
    max_value_bytes: int = 1024 * 1024
    # StateBackend payloads (results, exception details, arguments, workflow data,
    # deterministic values): Pynenc has no limit, so this one is large.
    max_payload_bytes: int = 16 * 1024 * 1024


def require_id(value: str, field: str, limits: Limits) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    size = len(value.encode("utf-8"))
    if size > limits.max_id_bytes:
        raise InvalidArgument(field, f"is {size} bytes; at most {limits.max_id_bytes} are allowed")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


def optional_id(value: str, field: str, limits: Limits) -> str:
    return require_id(value, field, limits) if value else ""


def require_name(value: str, field: str, limits: Limits) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    size = len(value.encode("utf-8"))
    if size > limits.max_name_bytes:
        raise InvalidArgument(field, f"is {size} bytes; at most {limits.max_name_bytes} are allowed")
    return value


def require_sequence(value: int, field: str) -> int:
    if value < 1:
        raise InvalidArgument(field, f"must be >= 1 (sequences are 1-based), got {value}")
    if value > MAX_SEQUENCE:
        raise InvalidArgument(field, f"must be <= 2^53, got {value}")
    return value


def require_json(text: str, field: str, limits: Limits) -> str:
    """Valid JSON text within the size limit, returned unchanged."""
    if not text:
        raise InvalidArgument(field, "is required (JSON text; use `null` for no value)")
    size = len(text.encode("utf-8"))
    if size > limits.max_value_bytes:
        raise InvalidArgument(field, f"is {size} bytes; at most {limits.max_value_bytes} are allowed")
    try:
        parse_json(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(field, f"is not valid JSON: {exc}") from None
    return text


def require_json_object(text: str, field: str, limits: Limits) -> str:
    """A JSON object of arguments, returned in canonical form."""
    require_json(text, field, limits)
    value = parse_json(text)
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be a JSON object of arguments by name (\"{}\" for none)")
    return canonical_json(value)


def duration_us(
    value: duration_pb2.Duration, present: bool, field: str, default_s: float, low_s: float, high_s: float
) -> int:
    if not present:
        return int(default_s * 1_000_000)
    seconds = value.seconds + value.nanos / 1e9
    if not low_s <= seconds <= high_s:
        raise InvalidArgument(field, f"must be between {low_s:g}s and {high_s:g}s, got {seconds:g}s")
    return int(seconds * 1_000_000)
