"""Config values that look secret are masked before they leave through a listing.

A key looks secret when one of its words (split at non-letters and camelCase) is one of
SECRET_WORDS, or it contains one of SECRET_PARTS; its value, whatever it is, becomes "***".
Any other string value has the password of a URL in it masked (`scheme://user:pw@host` ->
`scheme://***@host`, `password=...` -> `password=***`). Nested objects and lists are walked.
Over-masking is the safe side: a listing is for people and dashboards, not for the app.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pynenc_sidecar.logs import redact_secrets

MASK = "***"
SECRET_WORDS = frozenset({"password", "passwd", "pwd", "pass", "secret", "token", "key", "credential",
                          "credentials", "auth", "private", "signature", "cookie", "session", "dsn"})
SECRET_PARTS = ("password", "passwd", "secret", "token", "apikey", "privatekey", "accesskey", "credential")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def secret_key(key: str) -> bool:
    words = [w.lower() for w in _WORD.findall(key)]
    squashed = "".join(words)
    return any(w in SECRET_WORDS for w in words) or any(part in squashed for part in SECRET_PARTS)


def mask_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if secret_key(str(k)) else mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, str):
        return redact_secrets(value)
    return value


def mask_config_json(text: str) -> str:
    """The JSON text with secret-looking values masked (as stored when none is); text that is not JSON
    (never stored: it is validated on the way in) is masked whole."""
    if not text:
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return MASK
    masked = mask_value(data)
    return text if masked == data else json.dumps(masked, separators=(",", ":"))  # unchanged: as stored
