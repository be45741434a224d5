"""The storage interface. Every store (Redis, embedded) passes tests/conformance.

Stores are small and atomic: each method is one atomic step on one workflow (or one
invocation), and the rules that need no I/O (derivations, replay checks, encodings) stay
in `pynenc_sidecar.core`. Times are integer microseconds since the Unix epoch.

Leases are measured on the store's own clock (Redis `TIME` inside the script; for SQLite the
host's kernel clock, `sqlite_store.host_clock_us`), never on the `now_us` a call passes (a
replica's clock, which may be skewed): replicas that disagree on the time still agree on
when a lease lapses. `now_us` is only what a finished task records. Leases are fenced: once
another caller was granted a task's lease, the previous holder can neither renew it nor
complete the task, even after the new holder's lease lapsed in turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from pynenc_sidecar.core.tasks import TaskState, WorkflowRef


@dataclass(frozen=True)
class LeaseRequest:
    lease_id: str
    ttl_us: int
    runner_id: str


class Recorded(tuple):
    """What `record` and `record_time` return: the pair (stored value, replayed) — it unpacks
    as that pair and equals it — plus `origin`, the stored origin of a replayed value ("" when
    none is stored, or when the call passed no origin and so asked for none)."""

    origin: str = ""  # per instance only when there is one: untraced calls stay cheap

    def __new__(cls, value: Any, replayed: bool, origin: str = "") -> Recorded:
        self = tuple.__new__(cls, (value, replayed))
        if origin:
            self.origin = origin
        return self

    @property
    def value(self) -> Any:
        return self[0]

    @property
    def replayed(self) -> bool:
        return self[1]


@dataclass(frozen=True)
class RunRecord:
    """A workflow run as indexed: its identity and when it was first stored."""

    workflow: WorkflowRef
    first_us: int


class LeaseNotHeld(Exception):
    """Renew/complete by a caller whose lease another live holder took over."""


class TaskNotFound(Exception):
    """No invocation with that id in the app."""


class ScopeFinished(Exception):
    """A new record refused: the guard invocation (the position's scope) is finished."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Store(Protocol):
    # --- recorded operations (one hash per workflow) -------------------------------
    # `origin` (optional): the trace context of the span recording the value, 48 hex digits.
    # Given, it is stored at positions.origin_field(field) with a value recorded now, and a
    # replay returns the origin stored with the value (Recorded.origin). Not given (tracing
    # is off), the call neither writes nor reads an origin.
    # `guard` (optional): an invocation id, the position's scope. When the field holds no
    # value yet and that invocation is finished (SUCCESS or FAILED), nothing is written and
    # ScopeFinished(status) is raised, in the same atomic step as the write would be. A
    # recorded field replays whatever the guard's status; an unknown guard is unfinished.
    async def record(
        self, app_id: str, workflow_id: str, field: str, count_field: str, value: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        """Store value at field unless one is there; return (stored value, replayed)."""

    async def record_time(
        self, app_id: str, workflow_id: str, field: str, count_field: str, now_us: int, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        """Record max(now, last recorded time + 1) at field unless recorded; also fixes the
        base time if unset. Returns (stored time, replayed)."""

    async def record_data_read(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        """Unless field is recorded, read data key and record what was read there
        (positions.DATA_NOT_FOUND when the key has no value), atomically. Returns (the
        recorded read, replayed)."""

    async def record_data_write(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, value: str,
        origin: str | None = None, guard: str | None = None,
    ) -> Recorded:
        """Unless field is recorded, set data key to value and record value at field,
        atomically; a recorded field changes nothing. Returns (the recorded value, replayed)."""

    async def get_origins(self, app_id: str, workflow_id: str, fields: list[str]) -> list[str | None]:
        """The origins stored with the values at fields (None where there is none), in order."""

    async def base_time(self, app_id: str, workflow_id: str, now_us: int) -> tuple[int, bool]:
        """The workflow's base time, recording now_us if it has none."""

    async def get_recorded(self, app_id: str, workflow_id: str, field: str) -> str | None: ...

    async def get_count(self, app_id: str, workflow_id: str, count_field: str) -> int: ...

    def scan_log(self, app_id: str, workflow_id: str, batch_size: int) -> AsyncIterator[dict[str, str]]:
        """Every field of the workflow's record hash (metadata fields too), in batches. A
        value's origin field, if it has one, comes in the same batch as the value, and the
        base time field, if there is one, in the first batch (it may come again later)."""

    async def read_log(self, app_id: str, workflow_id: str, max_fields: int) -> dict[str, str] | None:
        """The whole record hash in one read (as scan_log's batches merged), if it has at most
        about max_fields fields; None, having read little, when it is larger."""

    # --- workflow data (apart from recorded operations) ----------------------------
    async def get_data(self, app_id: str, workflow_id: str, key: str) -> str | None: ...

    async def set_data(self, app_id: str, workflow_id: str, key: str, value: str) -> None: ...

    # --- task invocations ---------------------------------------------------------
    async def ensure_task(
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int, *, index_run: bool = False
    ) -> tuple[TaskState, bool, bool]:
        """Register the invocation unless it exists; then, if a lease is asked for and the
        task is unfinished with no live lease (on the store's clock), grant it (status
        RUNNING) until the store's now + lease.ttl_us. With index_run, also index
        state.workflow as a run (as store_workflow_run), in the same atomic step. Returns the
        state, whether the lease was granted, and whether the invocation was created."""

    async def acquire_lease(
        self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int
    ) -> tuple[TaskState, bool]:
        """Grant the lease when the task is unfinished with no live lease. TaskNotFound."""

    async def get_task(self, app_id: str, invocation_id: str) -> TaskState | None: ...

    async def get_tasks(self, app_id: str, invocation_ids: list[str]) -> list[TaskState | None]: ...

    async def renew_lease(self, app_id: str, invocation_id: str, lease_id: str, ttl_us: int, now_us: int) -> int:
        """New expiry: the store's now + ttl_us (a lapsed lease nobody took over may be
        renewed). LeaseNotHeld if finished or leased to another since; TaskNotFound."""

    async def complete_task(
        self, app_id: str, invocation_id: str, lease_id: str, status: int, result_json: str | None,
        error_json: str | None, now_us: int,
    ) -> tuple[TaskState, bool]:
        """First outcome wins: (state, accepted); an accepted outcome keeps now_us as the
        task's finished_us. LeaseNotHeld when the lease was granted to another caller since
        (live or lapsed: fenced); TaskNotFound."""

    async def retry_failed(self, app_id: str, invocation_ids: list[str]) -> list[TaskState]:
        """Reset each listed invocation that is FAILED to RETRY: error, lease and finished
        time cleared, everything else kept (a missing or unfailed one is left as it is).
        Returns the new states of those reset, in order. In the listed order: the caller
        lists a workflow's main task last, so that it is reset last (on SQLite the whole
        call is one transaction; on Redis one atomic step per invocation)."""

    # --- workflow runs ------------------------------------------------------------
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        """Index the run (first store time kept) and its app (see app_ids)."""

    async def index_unindexed_runs(self, now_us: int) -> list[tuple[str, WorkflowRef]]:
        """Repair: index the run of every workflow main task (an invocation whose id is its
        workflow's id) that has no run entry, as (app id, run): 0.1.0 wrote the
        two apart. A run is indexed as first stored when its task finished, else now_us."""

    # --- reads for the operator's tools (inspect, workflows, retention) --------------
    def scan_runs(self, app_id: str, workflow_type: str = "", until_us: int | None = None, batch_size: int = 500
                  ) -> AsyncIterator[list[RunRecord]]:
        """Runs of the app (of one type when given), first stored at or before until_us when
        given, oldest first (ties by identity), in batches. Keyset-paged: runs removed
        meanwhile (a retention sweep) make no other run be skipped or repeated."""

    async def app_ids(self) -> list[str]:
        """Every app that stored a workflow run and was not purged since, sorted."""

    async def run_started(self, app_id: str, workflow: WorkflowRef) -> int | None:
        """When this run (this exact identity) was first stored; None if it was not."""

    async def workflow_data(self, app_id: str, workflow_id: str) -> dict[str, str]:
        """All the workflow's data, key -> JSON text."""

    async def close(self) -> None: ...
