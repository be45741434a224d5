"""The workflow context's use cases: core rules applied to a store.

Pure rules live in `core`; atomic steps live in the store; this module only sequences
them. It knows nothing of gRPC.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pynenc_sidecar import observability as obs
from pynenc_sidecar.core import derivations
from pynenc_sidecar.core.errors import (
    INVOCATION_NOT_FOUND,
    LEASE_NOT_HELD,
    WORKFLOW_ACCESS_DENIED,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
)
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, Kind, Position, origin_field, parse_field
from pynenc_sidecar.core.tasks import FAILED, SUCCESS, TaskCall, TaskState, WorkflowRef, check_replay, child_workflow
from pynenc_sidecar.storage.base import LeaseNotHeld, LeaseRequest, Recorded, Store, TaskNotFound


def wall_clock_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class TaskOutcome:
    state: TaskState
    replayed: bool
    lease: LeaseRequest | None  # the lease granted to the caller, if any
    lease_expire_us: int = 0


@dataclass(frozen=True)
class LogBatch:
    operations: list[tuple[Position, str]]
    tasks: list[TaskState]
    base_time_us: int | None
    origins: dict[Position, str] = field(default_factory=dict)  # trace origins of traced records


class WorkflowEngine:
    def __init__(self, store: Store, clock: Callable[[], int] = wall_clock_us) -> None:
        self.store = store
        self.clock = clock

    # --- values ----------------------------------------------------------------
    async def _record(self, app_id: str, pos: Position, value: str) -> Recorded:
        # With tracing on, the value is stored with the recording span's context, and a
        # replay's span links to the span that recorded it (observability.py).
        recorded = await self.store.record(app_id, pos.workflow_id, pos.field, pos.count_field, value, obs.origin())
        obs.recorded(pos.kind, recorded.replayed, recorded.origin)
        return recorded

    async def random(self, app_id: str, pos: Position) -> tuple[float, bool]:
        value = repr(derivations.random_value(pos.scope, pos.sequence))
        stored, replayed = await self._record(app_id, pos, value)
        return float(stored), replayed

    async def uuid(self, app_id: str, pos: Position) -> tuple[str, bool]:
        return await self._record(app_id, pos, derivations.uuid_value(pos.scope, pos.sequence))

    async def utc_now(self, app_id: str, pos: Position) -> tuple[int, bool]:
        recorded = await self.store.record_time(app_id, pos.workflow_id, pos.field, pos.count_field, self.clock(), obs.origin())
        obs.recorded(pos.kind, recorded.replayed, recorded.origin)
        return recorded

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
        obs.recorded(pos.kind, True, origin)
        return value, origin

    async def base_time(self, app_id: str, workflow_id: str) -> tuple[int, bool]:
        return await self.store.base_time(app_id, workflow_id, self.clock())

    async def operation_count(self, app_id: str, pos: Position) -> int:
        return await self.store.get_count(app_id, pos.workflow_id, pos.count_field)

    # --- data ------------------------------------------------------------------
    async def get_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.store.get_data(app_id, workflow_id, key)

    async def set_data(self, app_id: str, workflow_id: str, invocation_id: str, key: str, value_json: str) -> None:
        if invocation_id and invocation_id != workflow_id:
            raise PermissionDenied(
                f"invocation {invocation_id!r} is not the main task of workflow {workflow_id!r}: "
                "only the workflow's main task may write its data",
                reason=WORKFLOW_ACCESS_DENIED,
                metadata={"workflow_id": workflow_id, "invocation_id": invocation_id},
            )
        await self.store.set_data(app_id, workflow_id, key, value_json)

    # --- tasks -----------------------------------------------------------------
    def _lease(self, runner_id: str, ttl_us: int) -> LeaseRequest:
        return LeaseRequest(uuid.uuid4().hex, ttl_us, runner_id)

    async def _ensure(self, app_id: str, state: TaskState, replayed: bool, runner_id: str, ttl_us: int) -> TaskOutcome:
        lease = self._lease(runner_id, ttl_us)
        current, granted, created = await self.store.ensure_task(app_id, state, lease, self.clock())
        if granted and not created:
            obs.lease_taken_over()
        return TaskOutcome(current, replayed, lease if granted else None, current.lease_expire_us if granted else 0)

    async def execute_task(
        self, app_id: str, caller: WorkflowRef, pos: Position, task_id: str, arguments_json: str,
        force_new_workflow: bool, runner_id: str, ttl_us: int,
    ) -> TaskOutcome:
        requested = TaskCall(uuid.uuid4().hex, task_id, arguments_json, force_new_workflow)
        stored, replayed = await self._record(app_id, pos, requested.encode())
        call = TaskCall.decode(stored)
        check_replay(call, requested, f"{pos.scope} task #{pos.sequence}")
        # The record names the invocation; its state is (re)created idempotently, so a
        # crash between the two steps leaves nothing a later call cannot repair.
        state = TaskState(
            invocation_id=call.invocation_id,
            task_id=call.task_id,
            arguments_json=call.arguments_json,
            workflow=child_workflow(call, caller),
            parent_invocation_id=pos.scope,
        )
        outcome = await self._ensure(app_id, state, replayed, runner_id, ttl_us)
        if call.force_new_workflow and not replayed:
            await self.store.store_workflow_run(app_id, state.workflow, self.clock())
        return outcome

    async def start_workflow(
        self, app_id: str, workflow: WorkflowRef, arguments_json: str, runner_id: str, ttl_us: int
    ) -> TaskOutcome:
        requested = TaskState(workflow.workflow_id, workflow.workflow_type, arguments_json, workflow)
        lease = self._lease(runner_id, ttl_us)
        current, granted, created = await self.store.ensure_task(app_id, requested, lease, self.clock())
        recorded_call = TaskCall(current.invocation_id, current.task_id, current.arguments_json)
        check_replay(recorded_call, TaskCall(workflow.workflow_id, workflow.workflow_type, arguments_json),
                     f"workflow {workflow.workflow_id} start")
        if created:
            await self.store.store_workflow_run(app_id, current.workflow, self.clock())
        elif granted:
            obs.lease_taken_over()
        return TaskOutcome(current, not created, lease if granted else None, current.lease_expire_us if granted else 0)

    async def renew_lease(self, app_id: str, invocation_id: str, lease_id: str, ttl_us: int) -> int:
        try:
            return await self.store.renew_lease(app_id, invocation_id, lease_id, ttl_us, self.clock())
        except TaskNotFound:
            raise _not_found(invocation_id) from None
        except LeaseNotHeld:
            raise _lease_not_held(invocation_id) from None

    async def complete_task(
        self, app_id: str, invocation_id: str, lease_id: str, result_json: str | None, error: dict[str, str] | None
    ) -> tuple[TaskState, bool]:
        status = SUCCESS if error is None else FAILED
        error_json = None if error is None else json.dumps(error, separators=(",", ":"))
        try:
            return await self.store.complete_task(app_id, invocation_id, lease_id, status, result_json, error_json, self.clock())
        except TaskNotFound:
            raise _not_found(invocation_id) from None
        except LeaseNotHeld:
            raise _lease_not_held(invocation_id) from None

    async def poll_task(self, app_id: str, invocation_id: str, runner_id: str, ttl_us: int) -> TaskOutcome:
        """One look at a task: finished, or leased to this caller if its holder's lapsed."""
        lease = self._lease(runner_id, ttl_us)
        try:
            state, granted = await self.store.acquire_lease(app_id, invocation_id, lease, self.clock())
        except TaskNotFound:
            raise _not_found(invocation_id) from None
        if granted:
            obs.lease_taken_over()
            return TaskOutcome(state, True, lease, state.lease_expire_us)
        return TaskOutcome(state, True, None)

    # --- the whole log ---------------------------------------------------------
    async def workflow_log(self, app_id: str, workflow_id: str, batch_size: int = 1000) -> AsyncIterator[LogBatch]:
        base_time_us: int | None = None
        sent = False
        seen: set[str] = set()
        async for chunk in self.store.scan_log(app_id, workflow_id, batch_size):
            if BASE_TIME_FIELD in chunk:
                base_time_us = int(chunk[BASE_TIME_FIELD])
            # HSCAN may return a field twice (when the hash is rehashed mid-scan); send it once.
            parsed = [(pos, value) for field, value in chunk.items()
                      if field not in seen and not seen.add(field) and (pos := parse_field(workflow_id, field))]
            parsed.sort(key=lambda item: (item[0].scope != workflow_id, item[0].scope, item[0].kind, item[0].name, item[0].sequence))
            for start in range(0, len(parsed), batch_size):
                batch = parsed[start:start + batch_size]
                task_ids = [TaskCall.decode(value).invocation_id for pos, value in batch if pos.kind is Kind.TASK]
                tasks = [t for t in await self.store.get_tasks(app_id, task_ids) if t is not None]
                origins = {pos: origin for pos, _ in batch if (origin := chunk.get(origin_field(pos.field)))}
                yield LogBatch(batch, tasks, None if sent else base_time_us, origins)
                sent = True
        if not sent:
            yield LogBatch([], [], base_time_us)


def _not_found(invocation_id: str) -> NotFound:
    return NotFound(f"invocation {invocation_id!r} not found", reason=INVOCATION_NOT_FOUND,
                    metadata={"invocation_id": invocation_id})


def _lease_not_held(invocation_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the lease on invocation {invocation_id!r} is not held by the caller (expired and taken over, or finished)",
        reason=LEASE_NOT_HELD, metadata={"invocation_id": invocation_id},
    )
