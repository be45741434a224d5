"""The storage interface: the executor's Store, the StateBackendStore and the DispatchStore,
with the records they exchange. Each engine implements all three (redis/, sqlite/); every
store passes tests/conformance. Nothing here knows an engine.

Stores are small and atomic: each method is one atomic step on one workflow (or one
invocation), and the rules that need no I/O (derivations, replay checks, encodings) stay
in `pynenc_sidecar.core`. Times are integer microseconds since the Unix epoch.

Leases are measured on the store's own clock (Redis `TIME` inside the script; for SQLite the
host's kernel clock, `clock.host_clock_us`), never on the `now_us` a call passes (a
replica's clock, which may be skewed): replicas that disagree on the time still agree on
when a lease lapses. `now_us` is only what a finished task records. Leases are fenced: once
another caller was granted a task's lease, the previous holder can neither renew it nor
complete the task, even after the new holder's lease lapsed in turn.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from pynenc_sidecar.core.commits import CommitEntry
from pynenc_sidecar.core.dispatch import DispatchPolicy, DispatchState
from pynenc_sidecar.core.tasks import TaskState, WorkflowRef


@dataclass(frozen=True)
class LeaseRequest:
    lease_id: str
    ttl_us: int
    runner_id: str


class Recorded(tuple[Any, bool]):
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

    def __init__(self, status: int, index: int | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.index = index  # commit: the first entry not recorded yet


class CommitConflict(Exception):
    """A commit refused: its entry at `index` is recorded with the other value `stored`."""

    def __init__(self, index: int, stored: str) -> None:
        super().__init__(index, stored)
        self.index = index
        self.stored = stored


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

    async def commit(
        self, app_id: str, workflow_id: str, scope: str, lease_id: str, entries: list[CommitEntry],
        origin: str | None = None,
    ) -> list[bool]:
        """A run's buffered operations, all or nothing in one atomic step, fenced by the lease
        lease_id on the invocation scope (its task): TaskNotFound when scope has no task;
        LeaseNotHeld unless lease_id is the lease last granted on it (a lapsed lease nobody
        took over still commits); CommitConflict(index, stored) for the first entry whose
        field holds another text; ScopeFinished(status, index of the first new entry) when
        an entry is new and scope is finished. Else each new entry is recorded as `record`
        does (its count up, the origin stored); a time entry also raises the workflow's last
        time to it and fixes the base time if unset; a data entry also sets its data key.
        Entries whose field holds the same text change nothing. Returns, per entry, whether
        it was recorded now."""

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
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int, *, index_run: bool = False,
        projection: TaskProjection | None = None,
    ) -> tuple[TaskState, bool, bool]:
        """Register the invocation unless it exists; then, if a lease is asked for and the
        task is unfinished with no live lease (on the store's clock), grant it (status
        RUNNING) until the store's now + lease.ttl_us. With index_run, also index
        state.workflow as a run (as store_workflow_run), in the same atomic step. Returns the
        state, whether the lease was granted, and whether the invocation was created.
        With a projection, a store may also write the new state's StateBackend projection
        (projection.of(state, now_us)) in the same atomic step, and then marks the returned
        state `projected`; one that does not leaves it to the caller."""

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
        error_json: str | None, now_us: int, *, projection: TaskProjection | None = None,
    ) -> tuple[TaskState, bool]:
        """First outcome wins: (state, accepted); an accepted outcome keeps now_us as the
        task's finished_us. LeaseNotHeld when the lease was granted to another caller since
        (live or lapsed: fenced); TaskNotFound. A projection as for ensure_task."""

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

    async def ping(self) -> bool:
        """The store answers (health); Unavailable when it does not."""

    async def close(self) -> None: ...


# --- the StateBackend store ---------------------------------------------------------
# Runs' paging cursor: (score, member) of the last run returned; opaque to the service.
Cursor = tuple[float, str]
# A history entry's place: (time in microseconds, arrival sequence, rank in the invocation's
# history). The rank is a hint for Redis (a page starts there when the entry is still there).
HistoryCursor = tuple[int, int, int]


@dataclass(frozen=True)
class InvocationRecord:
    """An invocation as indexed here; `payload` is the service's encoding of the rest."""

    invocation_id: str
    payload: str
    workflow_id: str = ""
    workflow_type: str = ""
    parent_invocation_id: str = ""
    parent_event_id: str = ""

    def encode(self) -> str:
        return json.dumps([self.workflow_id, self.workflow_type, self.parent_invocation_id, self.payload,
                           self.parent_event_id], separators=(",", ":"))

    @classmethod
    def decode(cls, invocation_id: str, text: str) -> InvocationRecord:
        workflow_id, workflow_type, parent, payload, *rest = json.loads(text)  # 4 items before paging
        return cls(invocation_id, payload, workflow_id, workflow_type, parent, rest[0] if rest else "")


@dataclass(frozen=True)
class PurgeCounts:
    """What a purge removes (or, previewed, would remove): workflow runs, executor tasks,
    and every stored item (`unit`: Redis keys and index entries, or SQLite rows)."""

    workflows: int
    tasks: int
    entries: int
    unit: str


@dataclass(frozen=True)
class HistoryRecord:
    invocation_id: str
    timestamp_us: int
    payload: str
    cursor: HistoryCursor = (0, 0, 0)


@dataclass(frozen=True)
class HistoryEvent:
    """A history entry projected from the executor; `event_id` names what happened (unique per
    invocation), so projecting it again appends nothing."""

    event_id: str
    timestamp_us: int
    payload: str


@dataclass(frozen=True)
class ProjectedInvocation:
    """What StateBackendService shows of one executor invocation (projection.py), written in
    one atomic, idempotent step."""

    record: InvocationRecord
    events: tuple[HistoryEvent, ...] = ()
    result_json: str | None = None
    exception: str | None = None
    # The workflow whose sub-invocations list it ("" for none).
    sub_invocation_of: str = ""
    # (runner id, runner context payload), stored unless a context with that id is.
    runner: tuple[str, str] | None = None


class TaskProjection(Protocol):
    """What StateBackendService shows of a task state (projection.StateProjection): given to a
    task transition, so that a store able to may write it in the transition's atomic step
    (only when `store`, where it goes, is its own)."""

    store: StateBackendStore

    def of(self, state: TaskState, now_us: int) -> ProjectedInvocation: ...


class StateBackendStore(Protocol):
    """What StateBackendService stores. Payloads are opaque text (the service's encoding);
    times are integer microseconds since the Unix epoch; id lists come back sorted."""

    async def purge_app(self, app_id: str, *, keep_app_info: bool = False) -> int:
        """Delete everything of the app (the executor's state too) and, unless kept, its app info."""

    async def purge_workflow(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None) -> int:
        """Delete everything of one workflow, atomically, and take it out of every index:
        recorded operations, data, deterministic values, its tasks (the main task and every
        task recorded in its log, except child workflows: those are workflows of their own),
        the StateBackend invocations of the workflow (record, history, result, exception,
        children), its runs and, when none of its type is left, its type. `runs`, when given,
        are its run identities (saves looking them up). Returns how much was deleted: 0 when
        nothing of the workflow was there."""

    purge_unit: str  # what PurgeCounts.entries counts: "keys" (Redis) or "rows" (SQLite)

    async def purge_app_preview(self, app_id: str) -> PurgeCounts:
        """What purge_app would delete now; deletes nothing."""

    async def purge_workflow_preview(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None
                                     ) -> PurgeCounts:
        """What purge_workflow would delete now; deletes nothing."""

    async def store_app_info(self, app_id: str, payload: str) -> None: ...

    async def get_app_info(self, app_id: str) -> str | None: ...

    async def all_app_infos(self) -> dict[str, str]: ...

    async def app_infos_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` (app_id, payload) of the apps after `after`, by app id."""

    async def upsert_invocations(self, app_id: str, records: list[InvocationRecord]) -> None:
        """All or nothing; the last of repeated ids wins; a replaced invocation leaves the
        indexes (children, workflow, type) of its former values."""

    async def get_invocation(self, app_id: str, invocation_id: str) -> InvocationRecord | None: ...

    async def project_invocation(self, app_id: str, projected: ProjectedInvocation) -> int:
        """Write the projection atomically: the record replaced (its indexes added; those of a
        former record under that id with other values stay), each event appended to the
        history unless one with its id was, result, exception, sub-invocation entry, and the
        runner context unless one is stored. Returns how many history entries were appended."""

    # Id lists: sorted, the first `limit` ids after `after` (all when limit is None).
    async def child_invocations(self, app_id: str, parent_invocation_id: str, limit: int | None = None,
                                after: str | None = None) -> list[str]: ...

    async def invocations_by_parent_event(self, app_id: str, parent_event_id: str, limit: int | None = None,
                                          after: str | None = None) -> list[str]: ...

    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str,
                                         limit: int | None = None, after: str | None = None) -> list[str]:
        """Invocations of the workflow, of the type, or of both (an empty argument is no filter)."""

    async def add_history(self, app_id: str, invocation_ids: list[str], timestamp_us: int, payload: str) -> None:
        """One entry per distinct invocation, atomically; identical entries are kept apart."""

    async def get_history(self, app_id: str, invocation_id: str, limit: int | None = None,
                          after: HistoryCursor | None = None) -> list[HistoryRecord]:
        """Oldest first; entries of the same microsecond in arrival order; the first `limit`
        (all when None) after the entry whose `cursor` is `after`."""

    def history_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                         ) -> AsyncIterator[list[HistoryRecord]]:
        """Every entry of the app in [start, end], in get_history's order, in batches of at
        most batch_size; entries added meanwhile shift no batch."""

    def invocations_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                             ) -> AsyncIterator[list[str]]:
        """Each invocation with an entry in [start, end] once, at its first entry."""

    async def set_result(self, app_id: str, invocation_id: str, result_json: str) -> None: ...

    async def get_result(self, app_id: str, invocation_id: str) -> str | None: ...

    async def set_exception(self, app_id: str, invocation_id: str, payload: str) -> None: ...

    async def get_exception(self, app_id: str, invocation_id: str) -> str | None: ...

    async def get_workflow_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        """The same data the deterministic executor's Store reads and writes."""

    async def set_workflow_data(self, app_id: str, workflow_id: str, key: str, value_json: str) -> None: ...

    async def get_deterministic_value(self, app_id: str, workflow_id: str, key: str) -> str | None: ...

    async def set_deterministic_value(
        self, app_id: str, workflow_id: str, key: str, value_json: str
    ) -> tuple[str, bool]:
        """Store unless stored (first writer wins, atomically); return (stored value, replayed)."""

    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        """The same runs the executor's Store records; a run stored again keeps its first time."""

    async def workflow_types(self, app_id: str, limit: int | None = None, after: str | None = None) -> list[str]: ...

    async def workflow_runs(self, app_id: str, workflow_type: str, page_size: int, after: Cursor | None
                            ) -> tuple[list[WorkflowRef], Cursor | None]:
        """One page of runs, oldest first, and the cursor of the next page (None on the last)."""

    async def store_sub_invocation(self, app_id: str, workflow_id: str, invocation_id: str) -> None: ...

    async def sub_invocations(self, app_id: str, workflow_id: str, limit: int | None = None,
                              after: str | None = None) -> list[str]: ...

    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None: ...

    async def get_runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str | None]:
        """One payload or None per runner id, in the order asked."""

    async def search_runner_contexts(self, app_id: str, partial_id: str, limit: int, after: str | None = None
                                     ) -> tuple[list[tuple[str, str]], str | None]:
        """(runner id, payload) of up to `limit` runners whose id contains partial_id literally
        and sorts after `after`, by id; and where to go on from (None: no runner is left). A
        store may look at only some ids per call, so a short or empty list is no end."""

    async def close(self) -> None: ...


# --- dispatched tasks ----------------------------------------------------------------------
# The storage interface of dispatched tasks: their state beside the task's, and the queues.
#
# A queue per (app, task id) holds invocation ids, each scored by when it becomes available
# to a worker (microseconds on the replicas' clocks): when queued, after a retry's backoff, at
# the expiry of the lease a worker took (so that a dead worker's invocation is seen again).
# The task state is the truth and a queue only an index: a step never writes both at once
# (on Redis Cluster they live on different slots), and every later step repairs what a crash
# between two steps left (docs/client-contract.md, "Dispatch", "Store").

# What a claim found (ClaimResult.code).
GRANTED = "granted"  # the lease is the caller's
FINISHED = "finished"  # nothing to do: drop the queue entry
MISSING = "missing"  # the invocation is gone (purged, swept): drop the entry
LEASED = "leased"  # another worker holds a live lease: look again at its expiry
EXPIRED = "expired"  # it waited longer than its schedule-to-start timeout: fail it
NOT_DISPATCHED = "not_dispatched"  # an inline task: drop the entry
# The lease id of an invocation handed back or queued for a retry: no lease id equals it, so
# the previous holder can neither renew nor complete (fenced) while any worker may claim it.
RELEASED_LEASE = "-"


@dataclass(frozen=True)
class ClaimResult:
    code: str
    state: TaskState | None = None
    dispatch: DispatchState | None = None


@dataclass(frozen=True)
class QueuedEntry:
    task_id: str
    invocation_id: str
    available_us: int


class DispatchStore(Protocol):
    # Methods return awaitables (implementations are coroutines, or wrapped ones on Redis).
    # --- an invocation's dispatch state (atomic with its task state) -----------------
    def register(self, app_id: str, state: TaskState, policy: DispatchPolicy, now_us: int
                       ) -> Awaitable[tuple[TaskState, DispatchState]]:
        """Register the invocation unless it exists, and make it dispatched with policy
        (queued since now_us) unless it is: the first policy is kept."""

    def get(self, app_id: str, invocation_id: str) -> Awaitable[tuple[TaskState, DispatchState | None] | None]:
        """The task state and its dispatch state (None: not dispatched); None: no such task."""

    def claim(self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int) -> Awaitable[ClaimResult]:
        """Lease a dispatched invocation that is unfinished with no live lease (store clock),
        unless it never started and waited past its schedule-to-start deadline (EXPIRED).
        A fresh start counts an attempt (a redelivery after a lapsed lease does not) and
        records now_us as the attempt's start."""

    def requeue(self, app_id: str, invocation_id: str, lease_id: str, available_us: int,
                      last_error_json: str | None) -> Awaitable[tuple[TaskState, DispatchState] | None]:
        """End the held lease and make the invocation wait for a worker again from
        available_us: with last_error_json, as a retry (status RETRY); without, handed back
        (status REGISTERED, the attempt not counted). The lease id becomes RELEASED_LEASE.
        LeaseNotHeld when the caller does not hold the lease; None when the invocation is
        finished (nothing changed); TaskNotFound."""

    # --- queues ---------------------------------------------------------------------
    def queue_push(self, app_id: str, task_id: str, invocation_id: str, available_us: int, *,
                         keep_existing: bool) -> Awaitable[None]:
        """Put the invocation in its queue from available_us; keep_existing leaves an entry
        that is there already as it is."""

    def queue_ready(self, app_id: str, task_id: str, now_us: int, limit: int) -> Awaitable[list[str]]:
        """Up to limit invocation ids available at now_us, earliest first."""

    def queue_defer(self, app_id: str, task_id: str, invocation_id: str, until_us: int) -> Awaitable[None]:
        """Move a queued entry's availability to until_us (nothing if it is not queued)."""

    def queue_remove(self, app_id: str, task_id: str, invocation_id: str) -> Awaitable[None]: ...

    def queued(self, app_id: str) -> Awaitable[list[QueuedEntry]]:
        """Every queue entry of the app, by task id then availability (for inspect)."""
