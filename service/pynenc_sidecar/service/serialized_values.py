"""StateBackend payloads on the wire (SerializedValue: JSON or opaque text) and in the store
(core.payloads: JSON as is, opaque text in a JSON envelope); and their size limit."""

from __future__ import annotations

from pynenc_sidecar.core import payloads
from pynenc_sidecar.core.derivations import parse_json
from pynenc_sidecar.core.errors import InvalidArgument
from pynenc_sidecar.service.validation import Limits
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb

LIMIT_SETTING = "--max-payload-bytes (env PYNENC_SIDECAR_MAX_PAYLOAD_BYTES)"


def check_size(text: str, field: str, subject: str, limits: Limits) -> None:
    """A payload over the limit names its field, what it belongs to and the setting."""
    size = len(text.encode("utf-8"))
    if size > limits.max_payload_bytes:
        raise InvalidArgument(field, f"is {size} bytes for {subject}; at most {limits.max_payload_bytes} are "
                                     f"allowed (the server's {LIMIT_SETTING})")


def check(kind: payloads.Kind, text: str, field: str, subject: str, limits: Limits) -> str:
    """The stored form of a payload, once its size (and, for JSON, its syntax) are right."""
    check_size(text, field, subject, limits)
    if kind == "json":
        try:
            value = parse_json(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(field, f"is not valid JSON: {exc} (send non-JSON text as opaque)") from None
        if payloads.is_envelope(value):
            raise InvalidArgument(field, f'has the form {{"{payloads.OPAQUE_KEY}": text}} that opaque values are '
                                         "kept in; send that text as opaque instead")
    return payloads.encode(kind, text)


def from_request(request, json_field: str, value_field: str, subject: str, limits: Limits) -> str:
    """The stored form of a request's payload, given as JSON text (`json_field`, the older
    form) or as a SerializedValue (`value_field`): exactly one of them."""
    legacy = getattr(request, json_field)
    if request.HasField(value_field):
        if legacy:
            raise InvalidArgument(value_field, f"set {json_field} or {value_field}, not both")
        return from_message(getattr(request, value_field), value_field, subject, limits)
    if not legacy:
        raise InvalidArgument(json_field, f"is required: JSON text (`null` for no value), or set {value_field}")
    return check("json", legacy, json_field, subject, limits)


def from_message(value: sb.SerializedValue, field: str, subject: str, limits: Limits) -> str:
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(field, "set json or opaque")
    return check(kind, getattr(value, kind), f"{field}.{kind}", subject, limits)


def to_message(stored: str) -> sb.SerializedValue:
    kind, text = payloads.decode(stored)
    return sb.SerializedValue(**{kind: text})


def json_text(stored: str) -> str:
    """What the older `*_json` fields carry: the JSON text, or "" for an opaque value."""
    kind, text = payloads.decode(stored)
    return text if kind == "json" else ""
