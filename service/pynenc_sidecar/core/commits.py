"""Buffered operations committed with a blocking call: what each records, and when two
records of one position are the same value (docs/client-contract.md, "One round trip per
blocking point"). Pure rules; the store writes a commit in one atomic step."""

from __future__ import annotations

from dataclasses import dataclass

from pynenc_sidecar.core import derivations
from pynenc_sidecar.core.errors import COMMIT_CONFLICT, Aborted, InvalidArgument
from pynenc_sidecar.core.positions import OPERATION_LABELS, Kind, Position

MAX_OPERATIONS = 10_000  # per commit (tests/vectors/client_contract.json, commit.max_operations)
BUFFERED_KINDS = frozenset({Kind.RANDOM, Kind.TIME, Kind.UUID, Kind.CUSTOM, Kind.DATA_WRITE})
# Kinds whose value is JSON text: two texts of one value (1.0 and 1, other spacing) are the same.
_JSON_KINDS = frozenset({Kind.CUSTOM, Kind.DATA_WRITE})


@dataclass(frozen=True)
class CommitEntry:
    """One buffered operation as the store writes it."""

    field: str
    count_field: str
    value: str
    data_key: str | None = None  # DATA_WRITE: the data key the value is applied to
    is_time: bool = False  # TIME: the workflow's last time and base time follow it


def entry(pos: Position, value: str) -> CommitEntry:
    return CommitEntry(pos.field, pos.count_field, value,
                       data_key=pos.name if pos.kind is Kind.DATA_WRITE else None, is_time=pos.kind is Kind.TIME)


def random_text(pos: Position, given: float | None, where: str) -> str:
    """The recorded text of a buffered random: its derivation (a given value must equal it)."""
    derived = derivations.random_value(pos.scope, pos.sequence)
    if given is not None and given != derived:
        raise InvalidArgument(where, f"is {given!r} but the derivation at {pos.describe()} gives {derived!r} "
                                     "(tests/vectors/derivations.json): send the derived value, or leave it unset")
    return repr(derived)


def uuid_text(pos: Position, given: str | None, where: str) -> str:
    derived = derivations.uuid_value(pos.scope, pos.sequence)
    if given is not None and given.lower() != derived:
        raise InvalidArgument(where, f"is {given!r} but the derivation at {pos.describe()} gives {derived!r} "
                                     "(tests/vectors/derivations.json): send the derived value, or leave it unset")
    return derived


def check_unique(positions: list[Position], where: str) -> None:
    seen: dict[str, int] = {}
    for index, pos in enumerate(positions):
        first = seen.setdefault(pos.field, index)
        if first != index:
            raise InvalidArgument(f"{where}[{index}]", f"repeats the position of {where}[{first}] "
                                                       f"({pos.describe()}): each position is committed once")


def same_value(kind: Kind, stored: str, given: str) -> bool:
    """Whether a position's stored value and a commit's value are one value."""
    if stored == given:
        return True
    if kind in _JSON_KINDS:
        try:
            return (derivations.canonical_json(derivations.parse_json(stored))
                    == derivations.canonical_json(derivations.parse_json(given)))
        except ValueError:
            return False
    return False


def conflict(pos: Position, stored: str, given: str) -> Aborted:
    """The refusal of a commit one of whose positions another run recorded with another value."""
    operation = OPERATION_LABELS[pos.kind]
    return Aborted(
        f"commit refused: {pos.describe()} was recorded by another run with {stored[:256]}, this run has "
        f"{given[:256]}; nothing of the commit was written. This run's log was stale: read the workflow's log "
        "again and run the invocation's code again from its top (it replays the recorded values)",
        reason=COMMIT_CONFLICT,
        metadata={"workflow_id": pos.workflow_id, "invocation_id": pos.scope, "operation": operation,
                  "name": pos.name, "sequence": str(pos.sequence), "recorded_value": stored[:512]},
    )
