"""An OperationCommit of a request, validated: (lease id, [(position, stored text)])."""

from __future__ import annotations

from typing import Any

from pynenc_sidecar.core import commits
from pynenc_sidecar.core.errors import InvalidArgument
from pynenc_sidecar.core.positions import Kind, Position
from pynenc_sidecar.service.validation import Limits, require_id, require_json, require_name, require_sequence

_KIND_NAMES = "RANDOM, TIME, UUID, CUSTOM or DATA_WRITE"
_BUFFERED = {kind.value: kind for kind in commits.BUFFERED_KINDS}
_VALUE_FIELDS = {Kind.RANDOM: "random_value", Kind.UUID: "uuid_value", Kind.TIME: "time_value",
                 Kind.CUSTOM: "json_value", Kind.DATA_WRITE: "json_value"}


def parse_commit(commit: Any, workflow_id: str, scope: str, limits: Limits, *, field: str = "commit",
                 lease_id: str | None = None) -> tuple[str, list[tuple[Position, str]]]:
    """The commit's lease and operations at positions of scope in workflow_id. lease_id, when
    given, is the request's own (CompleteTask) and the commit's may be empty."""
    operations = commit.operations
    if not operations:
        return "", []
    if len(operations) > commits.MAX_OPERATIONS:
        raise InvalidArgument(f"{field}.operations", f"holds {len(operations)} operations, more than "
                                                     f"{commits.MAX_OPERATIONS}: commit more often (CommitOperations)")
    if commit.workflow_id and commit.workflow_id != workflow_id:
        raise InvalidArgument(f"{field}.workflow_id", f"is {commit.workflow_id!r} but the request's workflow is "
                                                      f"{workflow_id!r}: leave it empty, or make them equal")
    if lease_id is None or commit.lease_id:
        given = require_id(commit.lease_id, f"{field}.lease_id", limits)
        if lease_id is not None and given != lease_id:
            raise InvalidArgument(f"{field}.lease_id", "differs from the request's lease_id: leave it empty")
        lease_id = given
    parsed = [_operation(op, workflow_id, scope, limits, f"{field}.operations[{i}]")
              for i, op in enumerate(operations)]
    commits.check_unique([pos for pos, _ in parsed], f"{field}.operations")
    return lease_id, parsed


def _operation(op: Any, workflow_id: str, scope: str, limits: Limits, where: str) -> tuple[Position, str]:
    kind = _BUFFERED.get(op.kind)
    if kind is None:
        raise InvalidArgument(f"{where}.kind", f"must be {_KIND_NAMES} (a task or a data read is its own call)")
    if kind is Kind.CUSTOM:
        name = require_name(op.custom_name, f"{where}.custom_name", limits)
    elif kind is Kind.DATA_WRITE:
        name = require_id(op.custom_name, f"{where}.custom_name", limits)
    elif op.custom_name:
        raise InvalidArgument(f"{where}.custom_name", "is only allowed when kind is CUSTOM or DATA_WRITE")
    else:
        name = ""
    pos = Position(workflow_id, scope, kind, name, require_sequence(op.sequence, f"{where}.sequence"))
    which, expected = op.WhichOneof("value"), _VALUE_FIELDS[kind]
    if which is not None and which != expected:
        raise InvalidArgument(f"{where}.{which}", f"does not go with kind {kind.name}: set {expected}")
    value_field = f"{where}.{expected}"
    if kind is Kind.RANDOM:
        return pos, commits.random_text(pos, op.random_value if which else None, value_field)
    if kind is Kind.UUID:
        return pos, commits.uuid_text(pos, op.uuid_value if which else None, value_field)
    if which is None:
        raise InvalidArgument(value_field, "is required")
    if kind is Kind.TIME:
        stamp = op.time_value
        if stamp.nanos % 1000:
            raise InvalidArgument(value_field, f"has {stamp.nanos} nanoseconds: send whole microseconds (the "
                                               "value the code was given, which the sidecar records exactly)")
        return pos, str(stamp.seconds * 1_000_000 + stamp.nanos // 1000)
    return pos, require_json(op.json_value, value_field, limits)
