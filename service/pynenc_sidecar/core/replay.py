"""Replay rules beyond a task call's: finished invocations start no new work, and a
recorded data write is not written again with another value."""

from __future__ import annotations

from pynenc_sidecar.core.derivations import canonical_json, parse_json
from pynenc_sidecar.core.errors import NONDETERMINISTIC_REPLAY, FailedPrecondition
from pynenc_sidecar.core.positions import OPERATION_LABELS, Position
from pynenc_sidecar.core.tasks import FAILED, SUCCESS

STATUS_NAMES = {SUCCESS: "SUCCESS", FAILED: "FAILED"}


def _metadata(pos: Position) -> dict[str, str]:
    return {"workflow_id": pos.workflow_id, "invocation_id": pos.scope, "operation": OPERATION_LABELS[pos.kind],
            "name": pos.name, "sequence": str(pos.sequence)}


def finished_scope(pos: Position, status: int) -> FailedPrecondition:
    """The refusal of a new record in an invocation that already has its outcome."""
    name = STATUS_NAMES.get(status, str(status))
    return FailedPrecondition(
        f"non-deterministic replay: {pos.describe()} is not recorded and invocation {pos.scope!r} already "
        f"finished ({name}): a replay cannot start new work; a finished invocation's code must only reach "
        "recorded steps",
        reason=NONDETERMINISTIC_REPLAY,
        metadata={**_metadata(pos), "status": name},
    )


def check_data_write(pos: Position, recorded_json: str, requested_json: str) -> None:
    """Raise NONDETERMINISTIC_REPLAY when a replayed write carries another value than the
    one recorded at its position (compared as canonical JSON, so 1.0 equals 1)."""
    recorded, requested = canonical_json(parse_json(recorded_json)), canonical_json(parse_json(requested_json))
    if recorded == requested:
        return
    raise FailedPrecondition(
        f"non-deterministic replay at {pos.describe()}: data key {pos.name!r} was written {recorded[:256]} "
        f"there, the replay writes {requested[:256]}",
        reason=NONDETERMINISTIC_REPLAY,
        metadata={**_metadata(pos), "key": pos.name, "recorded_value": recorded[:512],
                  "requested_value": requested[:512]},
    )
