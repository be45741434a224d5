"""Log lines on stderr, as text or as one JSON object a line, with secrets masked.

JSON lines carry `time` (UTC, RFC 3339 with milliseconds), `level`, `logger`, `message`,
`exception` (a traceback, when there is one) and any `extra={...}` fields a caller passed.
Whatever the format, a password in a URL (`scheme://user:password@host`, `?password=`) is
replaced by `***` in every line, whichever library logged it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# "scheme://<anything up to the last @ of the word>@" (a password may hold "@" or "/"),
# and "password=<value>".
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)\S*@")
_PASSWORD_PARAM = re.compile(r"(?P<key>\bpassword=)[^&\s\"']+", re.IGNORECASE)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def redact_secrets(text: str) -> str:
    text = _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    return _PASSWORD_PARAM.sub(lambda m: m.group("key") + "***", text)


class RedactingFilter(logging.Filter):
    """Masks secrets in the formatted message (arguments included) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact_secrets(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return redact_secrets(super().formatException(ei))


def resolve_format(log_format: str, stream: TextIO) -> str:
    """"auto" is text on a terminal and JSON otherwise (a container, a file, a pipe)."""
    if log_format != "auto":
        return log_format
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def configure(level: str = "INFO", log_format: str = "auto", stream: TextIO | None = None) -> str:
    """Send every log record to stderr in the chosen format; returns the format used."""
    stream = stream or sys.stderr
    chosen = resolve_format(log_format, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return chosen
