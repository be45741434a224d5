"""The storage interface of dispatched tasks: their state beside the task's, and the queues.

A queue per (app, task id) holds invocation ids, each scored by when it becomes available
to a worker (microseconds on the replicas' clocks): when queued, after a retry's backoff, at
the expiry of the lease a worker took (so that a dead worker's invocation is seen again).
The task state is the truth and a queue only an index: a step never writes both at once
(on Redis Cluster they live on different slots), and every later step repairs what a crash
between two steps left (docs/client-contract.md, "Dispatch", "Store").
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from pynenc_sidecar.core.dispatch import DispatchPolicy, DispatchState
from pynenc_sidecar.core.tasks import TaskState
from pynenc_sidecar.storage.interface import LeaseRequest

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
