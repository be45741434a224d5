"""The storage interface. Every store (Redis, embedded) passes tests/conformance.

Stores are small and atomic: each method is one atomic step on one workflow (or one
invocation), and the rules that need no I/O (derivations, replay checks, encodings) stay
in `pynenc_sidecar.core`. Times are integer microseconds since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from pynenc_sidecar.core.tasks import TaskState, WorkflowRef


@dataclass(frozen=True)
class LeaseRequest:
    lease_id: str
    ttl_us: int
    runner_id: str


class LeaseNotHeld(Exception):
    """Renew/complete by a caller whose lease another live holder took over."""


class TaskNotFound(Exception):
    """No invocation with that id in the app."""


class Store(Protocol):
    # --- recorded operations (one hash per workflow) -------------------------------
    async def record(self, app_id: str, workflow_id: str, field: str, count_field: str, value: str) -> tuple[str, bool]:
        """Store value at field unless one is there; return (stored value, replayed)."""

    async def record_time(self, app_id: str, workflow_id: str, field: str, count_field: str, now_us: int) -> tuple[int, bool]:
        """Record max(now, last recorded time + 1) at field unless recorded; also fixes the
        base time if unset. Returns (stored time, replayed)."""

    async def base_time(self, app_id: str, workflow_id: str, now_us: int) -> tuple[int, bool]:
        """The workflow's base time, recording now_us if it has none."""

    async def get_recorded(self, app_id: str, workflow_id: str, field: str) -> str | None: ...

    async def get_count(self, app_id: str, workflow_id: str, count_field: str) -> int: ...

    def scan_log(self, app_id: str, workflow_id: str, batch_size: int) -> AsyncIterator[dict[str, str]]:
        """Every field of the workflow's record hash (metadata fields too), in batches."""

    # --- workflow data (apart from recorded operations) ----------------------------
    async def get_data(self, app_id: str, workflow_id: str, key: str) -> str | None: ...

    async def set_data(self, app_id: str, workflow_id: str, key: str, value: str) -> None: ...

    # --- task invocations ---------------------------------------------------------
    async def ensure_task(
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int
    ) -> tuple[TaskState, bool, bool]:
        """Register the invocation unless it exists; then, if a lease is asked for and the
        task is unfinished with no live lease, grant it (status RUNNING). Returns the
        state, whether the lease was granted, and whether the invocation was created."""

    async def acquire_lease(self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int) -> tuple[TaskState, bool]:
        """Grant the lease when the task is unfinished with no live lease. TaskNotFound."""

    async def get_task(self, app_id: str, invocation_id: str) -> TaskState | None: ...

    async def get_tasks(self, app_id: str, invocation_ids: list[str]) -> list[TaskState | None]: ...

    async def renew_lease(self, app_id: str, invocation_id: str, lease_id: str, ttl_us: int, now_us: int) -> int:
        """New expiry. LeaseNotHeld if finished or leased to another; TaskNotFound."""

    async def complete_task(
        self, app_id: str, invocation_id: str, lease_id: str, status: int, result_json: str | None,
        error_json: str | None, now_us: int,
    ) -> tuple[TaskState, bool]:
        """First outcome wins: (state, accepted). LeaseNotHeld when another holder's lease
        is live; TaskNotFound."""

    # --- workflow runs ------------------------------------------------------------
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None: ...

    async def close(self) -> None: ...
