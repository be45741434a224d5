"""The workflow context's use cases: core rules applied to a store.

Pure rules live in `core`; atomic steps live in the store; this module only sequences
them. It knows nothing of gRPC (tests/test_layering.py checks): tracing and metrics come in
as an EngineObserver (observability.ENGINE_OBSERVER in the server).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pynenc_sidecar.clock import Clock, Monotonic, monotonic_s, wall_clock_us
from pynenc_sidecar.core import commits, derivations, outcomes, replay
from pynenc_sidecar.core.dispatch import DispatchPolicy, DispatchState
from pynenc_sidecar.core.errors import (
    INVOCATION_NOT_FOUND,
    LEASE_NOT_HELD,
    WORKFLOW_ACCESS_DENIED,
    WORKFLOW_NOT_FAILED,
    WORKFLOW_NOT_FOUND,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
)
from pynenc_sidecar.core.positions import (
    BASE_TIME_FIELD,
    DATA_NOT_FOUND,
    ORIGIN_PREFIX,
    Kind,
    Position,
    SeriesParser,
    parse_field,
)
from pynenc_sidecar.core.tasks import (
    FAILED,
    SUCCESS,
    TaskCall,
    TaskState,
    WorkflowRef,
    check_replay,
    child_workflow,
    status_name,
)
from pynenc_sidecar.dispatcher import Dispatcher, dispatch_store_for, is_dispatch_lease
from pynenc_sidecar.storage.interface import (
    CommitConflict,
    LeaseNotHeld,
    LeaseRequest,
    Recorded,
    ScopeFinished,
    Store,
    TaskNotFound,
)

if TYPE_CHECKING:
    from pynenc_sidecar.projection import StateProjection


WAIT_POLL_S = (0.005, 0.25)  # first and longest pause between looks at a waited-for task


class EngineObserver(Protocol):
    """What the engine tells tracing and metrics, and asks of them."""

    def origin(self) -> str | None:
        """The current span's trace context to store with a new record (None: untraced)."""

    def recorded(self, kind: Kind, replayed: bool, origin_text: str = "") -> None:
        """A value was recorded or replayed (a replay links to its origin's span)."""

    def lease_taken_over(self) -> None:
        """A lapsed lease was granted to another caller."""


class SilentObserver:
    """No tracing, no metrics: the engine's default (tests, the CLI)."""

    def origin(self) -> str | None:
        return None

    def recorded(self, kind: Kind, replayed: bool, origin_text: str = "") -> None:
        pass

    def lease_taken_over(self) -> None:
        pass


@dataclass(frozen=True)
class TaskOutcome:
    state: TaskState
    replayed: bool
    lease: LeaseRequest | None  # the lease granted to the caller, if any
    lease_expire_us: int = 0
    dispatch: DispatchState | None = None  # set when the invocation is dispatched


# One recorded operation of a log: ((scope, kind, custom name), sequence, value, field).
LogEntry = tuple[tuple[str, Kind, str], int, str, str]
LOG_BATCH = 1000  # operations per GetWorkflowLog message (the proto's promise)
# ...and a message stops once its values pass this many bytes (at least one operation), so a
# log of large custom values streams in messages far below gRPC's limits.
LOG_BATCH_BYTES = 1024 * 1024
LOG_SCAN = 4096  # fields read from the store at a time


@dataclass(frozen=True)
class LogBatch:
    operations: list[LogEntry]
    tasks: list[TaskState]
    base_time_us: int | None
    # Per operation, the trace origin of its record (None if untraced); None: none has one.
    origins: list[str | None] | None = None


class WorkflowEngine:
    def __init__(self, store: Store, clock: Clock = wall_clock_us,
                 projection: StateProjection | None = None, observer: EngineObserver | None = None,
                 monotonic: Monotonic = monotonic_s) -> None:
        self.store = store
        self.clock = clock
        self.monotonic = monotonic
        self.observer: EngineObserver = observer or SilentObserver()
        # Shows task states through StateBackendService (projection.py); None: not shown.
        self.projection = projection
        self.dispatcher = Dispatcher(self, dispatch_store_for(store))

    async def _project(self, app_id: str, state: TaskState, now_us: int) -> None:
        """After the executor's write, unless the store wrote it in that write's own step (one
        Redis: ensure_task's and complete_task's `projection`): a crash before this step loses
        nothing that the next step of the task (a lease taken, an outcome) does not write again."""
        if self.projection is not None:
            await self.projection.task_changed(app_id, state, now_us)

    # --- values ----------------------------------------------------------------
    # Every record is guarded by its scope (guard=pos.scope): a finished invocation records
    # nothing new (the store checks in the write's own atomic step), so a replay starts no
    # new work. With tracing on, the value is stored with the recording span's context
    # (self.observer.origin()), and a replay's span links to the span that recorded it.
    async def _guarded(self, pos: Position, step: Awaitable[Recorded]) -> Recorded:
        try:
            recorded = await step
        except ScopeFinished as refused:
            raise replay.finished_scope(pos, refused.status) from None
        self.observer.recorded(pos.kind, recorded.replayed, recorded.origin)
        return recorded

    async def _record(self, app_id: str, pos: Position, value: str) -> Recorded:
        return await self._guarded(pos, self.store.record(
            app_id, pos.workflow_id, pos.field, pos.count_field, value, self.observer.origin(), guard=pos.scope))

    async def random(self, app_id: str, pos: Position) -> tuple[float, bool]:
        value = repr(derivations.random_value(pos.scope, pos.sequence))
        stored, replayed = await self._record(app_id, pos, value)
        return float(stored), replayed

    async def uuid(self, app_id: str, pos: Position) -> tuple[str, bool]:
        return await self._record(app_id, pos, derivations.uuid_value(pos.scope, pos.sequence))

    async def utc_now(self, app_id: str, pos: Position) -> tuple[int, bool]:
        return await self._guarded(pos, self.store.record_time(
            app_id, pos.workflow_id, pos.field, pos.count_field, self.clock(), self.observer.origin(), guard=pos.scope))

    async def record(self, app_id: str, pos: Position, value_json: str) -> tuple[str, bool]:
        return await self._record(app_id, pos, value_json)

    async def get_recorded(self, app_id: str, pos: Position) -> str | None:
        return await self.store.get_recorded(app_id, pos.workflow_id, pos.field)

    async def get_recorded_with_origin(self, app_id: str, pos: Position) -> tuple[str | None, str]:
        """The recorded value (None if none) and its origin ("" if unknown); a found value is a
        replay for the current span and the metrics."""
        value = await self.store.get_recorded(app_id, pos.workflow_id, pos.field)
        if value is None:
            return None, ""
        origin = (await self.store.get_origins(app_id, pos.workflow_id, [pos.field]))[0] or ""
        self.observer.recorded(pos.kind, True, origin)
        return value, origin

    async def base_time(self, app_id: str, workflow_id: str) -> tuple[int, bool]:
        return await self.store.base_time(app_id, workflow_id, self.clock())

    async def operation_count(self, app_id: str, pos: Position) -> int:
        return await self.store.get_count(app_id, pos.workflow_id, pos.count_field)

    # --- data ------------------------------------------------------------------
    async def get_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.store.get_data(app_id, workflow_id, key)

    async def set_data(self, app_id: str, workflow_id: str, invocation_id: str, key: str, value_json: str) -> None:
        self._check_owner(workflow_id, invocation_id)
        await self.store.set_data(app_id, workflow_id, key, value_json)

    async def get_data_at(self, app_id: str, pos: Position) -> tuple[str | None, bool]:
        """A read recorded at pos (kind DATA_READ, name the key): (value or None, replayed)."""
        recorded = await self._guarded(pos, self.store.record_data_read(
            app_id, pos.workflow_id, pos.field, pos.count_field, pos.name, self.observer.origin(), guard=pos.scope))
        return (None if recorded.value == DATA_NOT_FOUND else recorded.value), recorded.replayed

    async def set_data_at(self, app_id: str, pos: Position, value_json: str) -> bool:
        """A write recorded at pos (kind DATA_WRITE, name the key); True when replayed (and
        so not applied again)."""
        self._check_owner(pos.workflow_id, pos.scope)
        recorded = await self._guarded(pos, self.store.record_data_write(
            app_id, pos.workflow_id, pos.field, pos.count_field, pos.name, value_json, self.observer.origin(),
            guard=pos.scope))
        if recorded.replayed:
            replay.check_data_write(pos, recorded.value, value_json)
        return recorded.replayed

    @staticmethod
    def _check_owner(workflow_id: str, invocation_id: str) -> None:
        if invocation_id and invocation_id != workflow_id:
            raise PermissionDenied(
                f"invocation {invocation_id!r} is not the main task of workflow {workflow_id!r}: "
                "only the workflow's main task may write its data",
                reason=WORKFLOW_ACCESS_DENIED,
                metadata={"workflow_id": workflow_id, "invocation_id": invocation_id},
            )

    # --- buffered operations ---------------------------------------------------
    async def commit(self, app_id: str, workflow_id: str, scope: str, lease_id: str,
                     operations: list[tuple[Position, str]]) -> int:
        """Record a run's buffered operations (position, stored text) in one atomic step,
        fenced by its lease on scope; returns how many were new. All or nothing: a position
        recorded with another value refuses it all (COMMIT_CONFLICT)."""
        if not operations:
            return 0
        if any(pos.kind is Kind.DATA_WRITE for pos, _ in operations):
            self._check_owner(workflow_id, scope)
        entries = [commits.entry(pos, value) for pos, value in operations]
        origin = self.observer.origin()
        # A value recorded as other JSON text of the same value (another SDK's spelling) is
        # the same value: commit the stored text there and try again (each retry settles
        # one more position, so this ends).
        for _ in range(len(entries) + 1):
            try:
                recorded = await self.store.commit(app_id, workflow_id, scope, lease_id, entries, origin)
            except CommitConflict as refused:
                pos, given = operations[refused.index]
                if not commits.same_value(pos.kind, refused.stored, given):
                    raise commits.conflict(pos, refused.stored, given) from None
                entries[refused.index] = commits.entry(pos, refused.stored)
                continue
            except TaskNotFound:
                raise _not_found(scope) from None
            except LeaseNotHeld:
                raise _lease_not_held(scope) from None
            except ScopeFinished as refused:  # named by the first position not recorded yet
                raise replay.finished_scope(operations[refused.index or 0][0], refused.status) from None
            for (pos, _), new in zip(operations, recorded):
                self.observer.recorded(pos.kind, not new)
            return sum(recorded)
        raise AssertionError("unreachable: every retry settles one position")

    # --- tasks -----------------------------------------------------------------
    def _lease(self, runner_id: str, ttl_us: int) -> LeaseRequest:
        return LeaseRequest(uuid.uuid4().hex, ttl_us, runner_id)

    async def _ensure(self, app_id: str, state: TaskState, replayed: bool, runner_id: str, ttl_us: int,
                      index_run: bool = False) -> TaskOutcome:
        lease = self._lease(runner_id, ttl_us)
        now = self.clock()
        current, granted, created = await self.store.ensure_task(app_id, state, lease, now, index_run=index_run,
                                                                 projection=self.projection)
        if granted and not created:
            self.observer.lease_taken_over()
        if (granted or created) and not current.projected:
            await self._project(app_id, current, now)
        return TaskOutcome(current, replayed, lease if granted else None, current.lease_expire_us if granted else 0)

    async def execute_task(
        self, app_id: str, caller: WorkflowRef, pos: Position, task_id: str, arguments_json: str,
        force_new_workflow: bool, runner_id: str, ttl_us: int, dispatch: DispatchPolicy | None = None,
    ) -> TaskOutcome:
        requested = TaskCall(uuid.uuid4().hex, task_id, arguments_json, force_new_workflow, dispatch is not None)
        stored, replayed = await self._record(app_id, pos, requested.encode())
        call = TaskCall.decode(stored)
        check_replay(call, requested, f"{pos.scope} task #{pos.sequence}")
        if call.dispatched:  # as recorded: a replay keeps the first call's choice
            done = await self.dispatcher.execute(app_id, caller, pos.scope, call, dispatch or DispatchPolicy())
            return TaskOutcome(done.state, replayed, None, dispatch=done.dispatch)
        # The record names the invocation; its state is (re)created idempotently, so a
        # crash between the two steps leaves nothing a later call cannot repair.
        state = TaskState(
            invocation_id=call.invocation_id,
            task_id=call.task_id,
            arguments_json=call.arguments_json,
            workflow=child_workflow(call, caller),
            parent_invocation_id=pos.scope,
        )
        # A child workflow's run is indexed in the step that registers it.
        return await self._ensure(app_id, state, replayed, runner_id, ttl_us, index_run=call.force_new_workflow)

    async def start_workflow(
        self, app_id: str, workflow: WorkflowRef, arguments_json: str, runner_id: str, ttl_us: int
    ) -> TaskOutcome:
        requested = TaskState(workflow.workflow_id, workflow.workflow_type, arguments_json, workflow)
        lease = self._lease(runner_id, ttl_us)
        # The task and its run in one atomic step: a call cut short (a client deadline) never
        # leaves a task that no listing or retention sweep finds.
        now = self.clock()
        current, granted, created = await self.store.ensure_task(app_id, requested, lease, now, index_run=True,
                                                                 projection=self.projection)
        recorded_call = TaskCall(current.invocation_id, current.task_id, current.arguments_json)
        check_replay(recorded_call, TaskCall(workflow.workflow_id, workflow.workflow_type, arguments_json),
                     f"workflow {workflow.workflow_id} start")
        if granted and not created:
            self.observer.lease_taken_over()
        if (granted or created) and not current.projected:
            await self._project(app_id, current, now)
        return TaskOutcome(current, not created, lease if granted else None, current.lease_expire_us if granted else 0)

    async def renew_lease(self, app_id: str, invocation_id: str, lease_id: str, ttl_us: int) -> int:
        if is_dispatch_lease(lease_id):
            await self.dispatcher.renew(app_id, invocation_id, lease_id)
        try:
            return await self.store.renew_lease(app_id, invocation_id, lease_id, ttl_us, self.clock())
        except TaskNotFound:
            raise _not_found(invocation_id) from None
        except LeaseNotHeld:
            raise _lease_not_held(invocation_id) from None

    async def complete_task(
        self, app_id: str, invocation_id: str, lease_id: str, result_json: str | None, error: dict[str, str] | None
    ) -> tuple[TaskState, bool]:
        """Record the outcome; a dispatched attempt's error is retried when its policy says so
        (the state comes back in status RETRY, accepted)."""
        if not is_dispatch_lease(lease_id):
            return await self.record_outcome(app_id, invocation_id, lease_id, result_json, error)
        if error is not None:
            try:
                retried = await self.dispatcher.fail_attempt(
                    app_id, invocation_id, lease_id, json.dumps(error, separators=(",", ":")))
            except TaskNotFound:
                raise _not_found(invocation_id) from None
            except LeaseNotHeld:
                raise _lease_not_held(invocation_id) from None
            if retried is not None:
                return retried.state, True
        state, accepted = await self.record_outcome(app_id, invocation_id, lease_id, result_json, error)
        await self.dispatcher.completed(app_id, state)
        return state, accepted

    async def record_outcome(
        self, app_id: str, invocation_id: str, lease_id: str, result_json: str | None, error: dict[str, str] | None
    ) -> tuple[TaskState, bool]:
        """The task's outcome, first one wins (fenced by the lease)."""
        status = SUCCESS if error is None else FAILED
        error_json = None if error is None else json.dumps(error, separators=(",", ":"))
        now = self.clock()
        try:
            state, accepted = await self.store.complete_task(app_id, invocation_id, lease_id, status, result_json,
                                                             error_json, now, projection=self.projection)
        except TaskNotFound:
            raise _not_found(invocation_id) from None
        except LeaseNotHeld:
            raise _lease_not_held(invocation_id) from None
        # Also when not accepted (a repeated completion): it repairs a projection lost after
        # the first, and writes nothing twice. Unless the store wrote it in the outcome's step.
        if not state.projected:
            await self._project(app_id, state, now)
        return state, accepted

    async def refuse_result(self, app_id: str, invocation_id: str, lease_id: str, error_type: str,
                            problem: str) -> tuple[TaskState, bool]:
        """Record a result the store cannot keep (outcomes.refused_result) as the task's failure."""
        state = await self.store.get_task(app_id, invocation_id)
        if state is None:
            raise _not_found(invocation_id)
        error = outcomes.refusal_error(error_type, problem, state.task_id, invocation_id)
        return await self.complete_task(app_id, invocation_id, lease_id, None, error)

    # --- retry -----------------------------------------------------------------
    async def retry_workflow(self, app_id: str, workflow_id: str) -> list[tuple[TaskState, str | None]]:
        """Reset a FAILED workflow's failed invocations to RETRY, keeping everything recorded.
        Returns each reset invocation's new state with the error it had, the main task last."""
        main = await self.store.get_task(app_id, workflow_id)
        if main is None:
            raise NotFound(f"workflow {workflow_id!r} not found in app {app_id!r}", reason=WORKFLOW_NOT_FOUND,
                           metadata={"workflow_id": workflow_id})
        if main.status != FAILED:
            raise _not_failed(workflow_id, main.status)
        failed = await self._failed_inside(app_id, workflow_id, set())
        errors = {state.invocation_id: state.error_json for state in failed} | {workflow_id: main.error_json}
        reset = await self.store.retry_failed(app_id, [state.invocation_id for state in failed] + [workflow_id])
        if not reset or reset[-1].invocation_id != workflow_id:  # another retry reset it first
            current = await self.store.get_task(app_id, workflow_id)
            raise _not_failed(workflow_id, current.status if current else main.status)
        now = self.clock()
        for state in reset:  # StateBackendService readers see the RETRY status too
            await self._project(app_id, state, now)
        return [(state, errors.get(state.invocation_id)) for state in reset]

    async def _failed_inside(self, app_id: str, workflow_id: str, seen: set[str]) -> list[TaskState]:
        """The FAILED invocations recorded in the workflow (any scope) in call order, children
        before parents: a failed child workflow (force_new_workflow) after its own failed
        invocations."""
        seen.add(workflow_id)
        positions: list[tuple[tuple[bool, str, int], str]] = []
        async for chunk in self.store.scan_log(app_id, workflow_id, LOG_SCAN):
            for name, value in chunk.items():
                pos = parse_field(workflow_id, name)
                if pos is not None and pos.kind is Kind.TASK:
                    positions.append(((pos.scope != workflow_id, pos.scope, pos.sequence), value))
        positions.sort()  # the main task's calls first, in call order: a stable reply
        states = await self.store.get_tasks(app_id, [TaskCall.decode(value).invocation_id for _, value in positions])
        failed: list[TaskState] = []
        for state in states:
            if state is None or state.status != FAILED or state.invocation_id == workflow_id:
                continue
            own_workflow = state.workflow.workflow_id == state.invocation_id
            if own_workflow and state.invocation_id not in seen:
                failed += await self._failed_inside(app_id, state.invocation_id, seen)
            failed.append(state)
        return failed

    async def poll_task(self, app_id: str, invocation_id: str, runner_id: str, ttl_us: int) -> TaskOutcome:
        """One look at a task: finished, or leased to this caller if its holder's lapsed."""
        lease = self._lease(runner_id, ttl_us)
        now = self.clock()
        try:
            state, granted = await self.store.acquire_lease(app_id, invocation_id, lease, now)
        except TaskNotFound:
            raise _not_found(invocation_id) from None
        if granted:
            self.observer.lease_taken_over()
            await self._project(app_id, state, now)
            return TaskOutcome(state, True, lease, state.lease_expire_us)
        return TaskOutcome(state, True, None)

    async def wait_task(self, app_id: str, invocation_id: str, runner_id: str, ttl_us: int, wait_s: float
                        ) -> TaskOutcome:
        """Look at the task until it is finished or leased to this caller, for at most wait_s
        seconds; pauses grow from WAIT_POLL_S[0] to WAIT_POLL_S[1]. The last look's outcome.
        A dispatched task is never leased to a waiter (its worker runs it): see _wait_dispatched."""
        deadline = self.monotonic() + max(wait_s, 0.0)
        found = await self.dispatcher.get(app_id, invocation_id)
        if found is not None and found.dispatch is not None:
            return await self._wait_dispatched(app_id, invocation_id, deadline)
        pause = WAIT_POLL_S[0]
        while True:
            outcome = await self.poll_task(app_id, invocation_id, runner_id, ttl_us)
            if outcome.state.finished or outcome.lease is not None or self.monotonic() >= deadline:
                return outcome
            await asyncio.sleep(min(pause, max(deadline - self.monotonic(), 0)))
            pause = min(pause * 2, WAIT_POLL_S[1])

    async def _wait_dispatched(self, app_id: str, invocation_id: str, deadline: float) -> TaskOutcome:
        """Wait for a dispatched task until it is finished or the deadline passes; the outcome
        carries its dispatch state and no lease. An outcome recorded through this replica wakes
        the wait at once; others are seen at the next look, WAIT_POLL_S[1] later at most."""
        repair = True
        while True:
            look = await self.dispatcher.look(app_id, invocation_id, repair)
            repair = False  # once per wait: a lost queue entry is put back
            if look.state.finished or self.monotonic() >= deadline:
                return TaskOutcome(look.state, True, None, dispatch=look.dispatch)
            await self.dispatcher.wait(app_id, invocation_id, min(WAIT_POLL_S[1], max(deadline - self.monotonic(), 0)))
            await asyncio.sleep(0)

    # --- the whole log ---------------------------------------------------------
    async def workflow_log(self, app_id: str, workflow_id: str, batch_size: int = LOG_BATCH,
                           scan_size: int = LOG_SCAN) -> AsyncIterator[LogBatch]:
        """Every recorded operation of the workflow, in batches of at most batch_size, in no
        particular order; the store is read scan_size fields at a time (one read for most
        workflows)."""
        reader = _LogReader(workflow_id)
        sent = False
        async for chunk in self.store.scan_log(app_id, workflow_id, max(batch_size, scan_size)):
            for batch, task_ids in reader.batches(chunk, batch_size, first=not sent):
                yield await self._with_tasks(app_id, batch, task_ids)
                sent = True
        if not sent:
            yield LogBatch([], [], reader.base_time_us)

    async def small_log(self, app_id: str, workflow_id: str, max_fields: int = LOG_SCAN,
                        batch_size: int = LOG_BATCH) -> list[LogBatch] | None:
        """The batches workflow_log would give, read at once, when the workflow's record has
        at most about max_fields fields; None (having read little) when it is larger."""
        chunk = await self.store.read_log(app_id, workflow_id, max_fields)
        if chunk is None:
            return None
        reader = _LogReader(workflow_id)
        batches = [await self._with_tasks(app_id, batch, task_ids)
                   for batch, task_ids in reader.batches(chunk, batch_size, first=True)]
        return batches or [LogBatch([], [], reader.base_time_us)]

    async def _with_tasks(self, app_id: str, batch: LogBatch, task_ids: list[str]) -> LogBatch:
        """The batch with the current state of the tasks recorded in it (task_ids)."""
        if not task_ids:
            return batch
        tasks = [t for t in await self.store.get_tasks(app_id, task_ids) if t is not None]
        return LogBatch(batch.operations, tasks, batch.base_time_us, batch.origins)


class _LogReader:
    """Turns the store's chunks of one workflow's record hash into LogBatches (no tasks yet)."""

    def __init__(self, workflow_id: str) -> None:
        self.parser = SeriesParser(workflow_id)
        self.seen: set[str] = set()
        self.base_time_us: int | None = None

    def batches(self, chunk: dict[str, str], batch_size: int, first: bool) -> list[tuple[LogBatch, list[str]]]:
        """The chunk's operations in LogBatches of at most batch_size, each with the ids of
        the task invocations recorded in it."""
        entries: list[LogEntry] = []
        append = entries.append
        parser = self.parser
        origins: dict[str, str] = {}
        # HSCAN may return a field twice (when the hash is rehashed mid-scan); send it once.
        seen = self.seen
        items = chunk.items() if not seen else [(f, v) for f, v in chunk.items() if f not in seen]
        for name, value in items:
            if name[0] == "#":  # metadata: the base time, counters, origins (no field is empty)
                if name.startswith(ORIGIN_PREFIX):
                    origins[name[len(ORIGIN_PREFIX):]] = value
                elif name == BASE_TIME_FIELD:
                    self.base_time_us = int(value)
                continue
            series, _, seq = name.rpartition(":")
            append((parser[series], int(seq), value, name))
        seen.update(chunk)
        has_tasks = any(kind is Kind.TASK for _, kind, _ in parser.values())  # a few series: cheap
        batches: list[tuple[LogBatch, list[str]]] = []
        for batch in _cut(entries, batch_size, LOG_BATCH_BYTES):
            batch_origins = [origins.get(entry[3]) for entry in batch] if origins else None
            task_ids = [TaskCall.decode(value).invocation_id for (_, kind, _), _, value, _ in batch
                        if kind is Kind.TASK] if has_tasks else []
            # The base time goes in the first batch sent only.
            base_time_us = self.base_time_us if first and not batches else None
            batches.append((LogBatch(batch, [], base_time_us, batch_origins), task_ids))
        return batches


def _cut(entries: list[LogEntry], count: int, budget: int) -> list[list[LogEntry]]:
    """entries in runs of at most `count`, each cut once its values pass `budget` bytes
    (at least one entry a run)."""
    runs: list[list[LogEntry]] = []
    run: list[LogEntry] = []
    size = 0
    for entry in entries:
        if run and (len(run) == count or size + len(entry[2]) > budget):
            runs.append(run)
            run, size = [], 0
        run.append(entry)
        size += len(entry[2])
    if run:
        runs.append(run)
    return runs


def _not_found(invocation_id: str) -> NotFound:
    return NotFound(f"invocation {invocation_id!r} not found", reason=INVOCATION_NOT_FOUND,
                    metadata={"invocation_id": invocation_id})


def _not_failed(workflow_id: str, status: int) -> FailedPrecondition:
    name = status_name(status)
    return FailedPrecondition(
        f"workflow {workflow_id!r} is {name}, not FAILED: only a failed workflow can be retried",
        reason=WORKFLOW_NOT_FAILED, metadata={"workflow_id": workflow_id, "status": name},
    )


def _lease_not_held(invocation_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the lease on invocation {invocation_id!r} is not held by the caller (expired and taken over, or finished)",
        reason=LEASE_NOT_HELD, metadata={"invocation_id": invocation_id},
    )
