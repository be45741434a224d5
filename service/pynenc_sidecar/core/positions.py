"""Where a recorded value lives, and how it is written compactly.

A workflow's recorded operations share one hash (one field per position), so the field
name must say scope, kind, custom name and sequence in few bytes and be unambiguous:

    [<escaped scope>|]<kind code>[.<escaped name>]:<sequence>

(the name: a custom operation's, or the data key of a data read or write).

The scope prefix is left out for the workflow's main task (scope == workflow id), which
is where most operations are recorded. Metadata fields start with "#", which no position
field can; among them "#s:<field>" holds the origin (trace context) of the value at <field>.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from urllib.parse import quote, unquote

# Characters kept as they are in escaped ids; every other byte is %XX-encoded, so an
# escaped id never holds ':', '|', '#', '{', '}', '*' or whitespace.
_SAFE = "-_.~"


@functools.lru_cache(maxsize=4096)  # ids and names repeat across a workflow's positions
def escape(text: str) -> str:
    """Percent-encode everything but [A-Za-z0-9-_.~]."""
    return quote(text, safe=_SAFE)


def unescape(text: str) -> str:
    return unquote(text)


class Kind(enum.IntEnum):
    """Operation kinds; values equal the proto's OperationKind."""

    RANDOM = 1
    TIME = 2
    UUID = 3
    TASK = 4
    CUSTOM = 5
    DATA_READ = 6
    DATA_WRITE = 7


# Kinds whose series is per name: a custom operation's name, a data key.
NAMED_KINDS = frozenset({Kind.CUSTOM, Kind.DATA_READ, Kind.DATA_WRITE})
_CODES = {Kind.RANDOM: "r", Kind.TIME: "t", Kind.UUID: "u", Kind.TASK: "k", Kind.CUSTOM: "c",
          Kind.DATA_READ: "g", Kind.DATA_WRITE: "s"}
_KINDS = {code: kind for kind, code in _CODES.items()}
# A data read that found nothing is recorded as this value (no JSON text is empty).
DATA_NOT_FOUND = ""

OPERATION_LABELS = {Kind.RANDOM: "random", Kind.TIME: "utc_now", Kind.UUID: "uuid", Kind.TASK: "task",
                    Kind.CUSTOM: "custom", Kind.DATA_READ: "data_read", Kind.DATA_WRITE: "data_write"}

BASE_TIME_FIELD = "#base"
LAST_TIME_FIELD = "#last"
# "#s:<field>" holds the origin of the value at <field>: the trace and span id (48 hex
# digits) of the span that recorded it first, when that span was traced (observability.py).
ORIGIN_PREFIX = "#s:"


def origin_field(field: str) -> str:
    return ORIGIN_PREFIX + field


@dataclass(frozen=True)
class Position:
    """One recorded value's place: (workflow, scope, kind, custom name, sequence)."""

    workflow_id: str
    scope: str
    kind: Kind
    name: str
    sequence: int

    @property
    def series(self) -> str:
        """The field prefix shared by every sequence of this scope and kind."""
        prefix = "" if self.scope == self.workflow_id else escape(self.scope) + "|"
        code = _CODES[self.kind]
        if self.kind in NAMED_KINDS:
            code += "." + escape(self.name)
        return prefix + code

    @property
    def field(self) -> str:
        return f"{self.series}:{self.sequence}"

    def describe(self) -> str:
        """How error messages name the position."""
        operation = OPERATION_LABELS[self.kind] + (f" {self.name!r}" if self.kind in NAMED_KINDS else "")
        return (f"position (workflow {self.workflow_id!r}, scope {self.scope!r}, operation {operation}, "
                f"sequence {self.sequence})")

    @property
    def count_field(self) -> str:
        """Metadata field counting the values recorded in this series."""
        return "#n:" + self.series


def parse_field(workflow_id: str, field: str) -> Position | None:
    """Inverse of Position.field; None for metadata fields."""
    if field.startswith("#"):
        return None
    series, _, seq = field.rpartition(":")
    scope = workflow_id
    if "|" in series:
        escaped_scope, _, series = series.partition("|")
        scope = unescape(escaped_scope)
    kind = _KINDS[series[0]]
    name = unescape(series[2:]) if kind in NAMED_KINDS else ""
    return Position(workflow_id, scope, kind, name, int(seq))


class SeriesParser(dict[str, tuple[str, Kind, str]]):
    """Reads one workflow's fields fast, without a Position per field: the series part of a
    field (before the last ':') repeats across a workflow's fields, so each series is
    parsed once and remembered.

        series, _, sequence = field.rpartition(":")
        scope, kind, name = SeriesParser(workflow_id)[series]   # as parse_field(...) gives
    """

    def __init__(self, workflow_id: str) -> None:
        super().__init__()
        self.workflow_id = workflow_id

    def __missing__(self, series: str) -> tuple[str, Kind, str]:
        scope = self.workflow_id
        if "|" in series:
            escaped_scope, _, series_rest = series.partition("|")
            scope = unescape(escaped_scope)
        else:
            series_rest = series
        kind = _KINDS[series_rest[0]]
        parsed = (scope, kind, unescape(series_rest[2:]) if kind in NAMED_KINDS else "")
        self[series] = parsed
        return parsed
