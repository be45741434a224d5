"""Dispatched tasks' use cases: queue, hand out, retry, time out, cancel, hand back.

Pure rules live in core.dispatch; atomic steps in the dispatch store; this module sequences
them (docs/client-contract.md, "Dispatch"). It knows nothing of gRPC.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pynenc_sidecar.core import dispatch as rules
from pynenc_sidecar.core.dispatch import DISPATCH_LEASE_PREFIX, DispatchPolicy, DispatchState
from pynenc_sidecar.core.errors import INVOCATION_NOT_FOUND, LEASE_NOT_HELD, FailedPrecondition, NotFound
from pynenc_sidecar.core.tasks import FAILED, REGISTERED, RETRY, TaskCall, TaskState, WorkflowRef, child_workflow
from pynenc_sidecar.storage.interface import (
    EXPIRED,
    GRANTED,
    LEASED,
    DispatchStore,
    LeaseNotHeld,
    LeaseRequest,
    Store,
    TaskNotFound,
)

if TYPE_CHECKING:
    from pynenc_sidecar.engine import WorkflowEngine

# A poller with nothing to do looks at its queues this often: what another replica queued is
# seen within this time (one queued through this replica wakes it at once).
POLL_INTERVAL_S = 0.25


def is_dispatch_lease(lease_id: str) -> bool:
    return lease_id.startswith(DISPATCH_LEASE_PREFIX)


def dispatch_store_for(store: Store) -> DispatchStore:
    """The dispatch store that lives beside `store` (same Redis, same SQLite file)."""
    from pynenc_sidecar.storage.redis.executor_store import RedisStore
    from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore

    if isinstance(store, RedisStore):
        from pynenc_sidecar.storage.redis.dispatch_store import RedisDispatchStore

        return RedisDispatchStore(store)
    if isinstance(store, SqliteStore):
        from pynenc_sidecar.storage.sqlite.dispatch_store import SqliteDispatchStore

        return SqliteDispatchStore(store)
    raise TypeError(f"no dispatch store for {type(store).__name__}")


class Wakeups:
    """In-process wake-ups: a poller waits on its queues, a caller on its invocation."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)

    def notify(self, app_id: str, name: str) -> None:
        for event in self._waiting.get((app_id, name), ()):
            event.set()

    async def wait(self, app_id: str, names: Iterable[str], timeout_s: float) -> None:
        event = asyncio.Event()
        keys = [(app_id, name) for name in names]
        for key in keys:
            self._waiting[key].add(event)
        try:
            await asyncio.wait_for(event.wait(), max(timeout_s, 0))
        except TimeoutError:
            pass
        finally:
            for key in keys:
                waiting = self._waiting.get(key)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiting[key]


@dataclass(frozen=True)
class Dispatched:
    """An invocation and its dispatch state; `lease` when it was just leased to a worker."""

    state: TaskState
    dispatch: DispatchState | None
    lease: LeaseRequest | None = None


def _queue(task_id: str) -> str:
    return "q:" + task_id


def _invocation(invocation_id: str) -> str:
    return "i:" + invocation_id


class Dispatcher:
    def __init__(self, engine: WorkflowEngine, store: DispatchStore) -> None:
        self.engine = engine
        self.store = store
        self.wakeups = Wakeups()

    def _now(self) -> int:
        return self.engine.clock()

    # --- the caller's side -------------------------------------------------------------
    async def execute(self, app_id: str, caller: WorkflowRef, scope: str, call: TaskCall,
                      policy: DispatchPolicy) -> Dispatched:
        """Register the recorded call's invocation as dispatched (the first policy is kept)
        and make sure it is queued."""
        requested = TaskState(call.invocation_id, call.task_id, call.arguments_json, child_workflow(call, caller),
                              parent_invocation_id=scope)
        now = self._now()
        state, dispatch = await self.store.register(app_id, requested, policy, now)
        if call.force_new_workflow:  # the child workflow's run, indexed as ExecuteTask does inline
            await self.engine.store.ensure_task(app_id, requested, None, now, index_run=True)
        if dispatch.attempt == 0 and not state.finished:
            await self.engine._project(app_id, state, now)
        await self._keep_queued(app_id, state, dispatch)
        return Dispatched(state, dispatch)

    async def _keep_queued(self, app_id: str, state: TaskState, dispatch: DispatchState) -> None:
        """Put an unfinished, unheld invocation in its queue unless it is there (repairing a
        step lost between the task's write and the queue's)."""
        if state.finished or (state.lease_id and state.lease_expire_us > self._now()):
            return
        await self.store.queue_push(app_id, state.task_id, state.invocation_id, dispatch.queued_us or self._now(),
                                    keep_existing=True)
        self.wakeups.notify(app_id, _queue(state.task_id))

    async def get(self, app_id: str, invocation_id: str) -> Dispatched | None:
        found = await self.store.get(app_id, invocation_id)
        return None if found is None else Dispatched(*found)

    async def look(self, app_id: str, invocation_id: str, repair: bool) -> Dispatched:
        """One look for a waiting caller (WaitTask): never leases; fails an invocation past
        its schedule-to-start deadline; with repair, puts back a lost queue entry."""
        found = await self.get(app_id, invocation_id)
        if found is None:
            raise NotFound(f"invocation {invocation_id!r} not found", reason=INVOCATION_NOT_FOUND,
                           metadata={"invocation_id": invocation_id})
        state, dispatch = found.state, found.dispatch
        if dispatch is None or state.finished:
            return found
        deadline = dispatch.schedule_deadline_us()
        if deadline and deadline < self._now() and state.lease_expire_us <= self._now():
            return await self._schedule_timeout(app_id, state, dispatch)
        if repair:
            await self._keep_queued(app_id, state, dispatch)
        return found

    async def wait(self, app_id: str, invocation_id: str, timeout_s: float) -> None:
        await self.wakeups.wait(app_id, [_invocation(invocation_id)], timeout_s)

    # --- the worker's side -------------------------------------------------------------
    async def poll(self, app_id: str, task_ids: list[str], worker_id: str, max_tasks: int, ttl_us: int,
                   timeout_s: float) -> list[Dispatched]:
        """Lease up to max_tasks queued invocations of task_ids, waiting up to timeout_s."""
        deadline = self.engine.monotonic() + timeout_s
        start = 0
        while True:
            taken: list[Dispatched] = []
            # Each round starts at another task id, so that one busy queue starves none.
            for task_id in task_ids[start:] + task_ids[:start]:
                if len(taken) >= max_tasks:
                    break
                taken += await self._take(app_id, task_id, worker_id, max_tasks - len(taken), ttl_us)
            start = (start + 1) % len(task_ids)
            left = deadline - self.engine.monotonic()
            if taken or left <= 0:
                return taken
            await self.wakeups.wait(app_id, [_queue(task_id) for task_id in task_ids], min(POLL_INTERVAL_S, left))

    async def _take(self, app_id: str, task_id: str, worker_id: str, wanted: int, ttl_us: int) -> list[Dispatched]:
        taken: list[Dispatched] = []
        # A few more than wanted: some entries are stale (finished, held) and only repaired.
        for invocation_id in await self.store.queue_ready(app_id, task_id, self._now(), wanted + 4):
            if len(taken) >= wanted:
                break
            lease = LeaseRequest(DISPATCH_LEASE_PREFIX + uuid.uuid4().hex, ttl_us, worker_id)
            now = self._now()
            claim = await self.store.claim(app_id, invocation_id, lease, now)
            if claim.code == GRANTED and claim.state is not None:
                # Seen again at the lease's expiry: a dead worker's invocation is handed out anew.
                await self.store.queue_defer(app_id, task_id, invocation_id, claim.state.lease_expire_us)
                await self.engine._project(app_id, claim.state, now)
                taken.append(Dispatched(claim.state, claim.dispatch, lease))
            elif claim.code == LEASED and claim.state is not None:
                await self.store.queue_defer(app_id, task_id, invocation_id, claim.state.lease_expire_us)
            elif claim.code == EXPIRED and claim.state is not None and claim.dispatch is not None:
                await self._schedule_timeout(app_id, claim.state, claim.dispatch)
            else:  # finished, gone, or not dispatched: nothing to hand out
                await self.store.queue_remove(app_id, task_id, invocation_id)
        return taken

    async def _schedule_timeout(self, app_id: str, state: TaskState, dispatch: DispatchState) -> Dispatched:
        now = self._now()
        error = rules.schedule_to_start_error(state.task_id, state.invocation_id, now - dispatch.queued_us,
                                              dispatch.policy.schedule_to_start_us)
        current, _ = await self._fail(app_id, state.invocation_id, error, force=False)
        return await self._finished(app_id, state.task_id, current or state, dispatch)

    async def _fail(self, app_id: str, invocation_id: str, error_json: str, *, force: bool
                    ) -> tuple[TaskState | None, bool]:
        """Record the invocation FAILED unless it finished: force, whoever holds it; else only
        while it waits to start. Through CompleteTask's own step, fenced by the lease id read
        just before (a compare-and-set: a claim in between makes it look again), so a failure
        recorded here is stored exactly as any outcome is."""
        error = _error_fields(error_json)
        for _ in range(8):
            state = await self.engine.store.get_task(app_id, invocation_id)
            if state is None or state.finished:
                return state, False
            if not force and state.status not in (REGISTERED, RETRY):
                return state, False
            try:
                return await self.engine.record_outcome(app_id, invocation_id, state.lease_id, None, error)
            except FailedPrecondition:  # leased to another meanwhile: look again
                continue
        return await self.engine.store.get_task(app_id, invocation_id), False

    async def _finished(self, app_id: str, task_id: str, state: TaskState, dispatch: DispatchState | None
                        ) -> Dispatched:
        if state.finished:
            await self.store.queue_remove(app_id, task_id, state.invocation_id)
            self.wakeups.notify(app_id, _invocation(state.invocation_id))
        return Dispatched(state, dispatch)

    async def renew(self, app_id: str, invocation_id: str, lease_id: str) -> None:
        """Before renewing a dispatched lease: an attempt past its start-to-close deadline
        loses the lease and fails (retried per its policy)."""
        found = await self.get(app_id, invocation_id)
        if found is None or found.dispatch is None:
            return
        deadline = found.dispatch.start_deadline_us()
        if not deadline or self._now() <= deadline or found.state.finished or found.state.lease_id != lease_id:
            return
        dispatch = found.dispatch
        error = rules.start_to_close_error(found.state.task_id, invocation_id, dispatch.attempt,
                                           dispatch.policy.start_to_close_us)
        await self.fail_attempt(app_id, invocation_id, lease_id, error)
        raise FailedPrecondition(
            f"the lease on invocation {invocation_id!r} was taken back: its attempt ran longer than its "
            f"start-to-close timeout ({dispatch.policy.start_to_close_us / 1e6:g} s)",
            reason=LEASE_NOT_HELD, metadata={"invocation_id": invocation_id, "cause": rules.START_TO_CLOSE})

    async def fail_attempt(self, app_id: str, invocation_id: str, lease_id: str, error_json: str
                           ) -> Dispatched | None:
        """A failed attempt of a dispatched invocation: queued again after its backoff when
        its policy retries it (returned); None when the failure is final (the caller then
        records it as the outcome). LeaseNotHeld/TaskNotFound as CompleteTask."""
        found = await self.get(app_id, invocation_id)
        if found is None:
            raise TaskNotFound(invocation_id)
        state, dispatch = found.state, found.dispatch
        if dispatch is None or state.finished:
            return None
        if not dispatch.policy.retries(rules.error_type(error_json), dispatch.attempt):
            if rules.error_type(error_json) == rules.START_TO_CLOSE:  # no one else records it
                state, _ = await self.engine.record_outcome(app_id, invocation_id, lease_id, None,
                                                            _error_fields(error_json))
                await self.completed(app_id, state)
            return None
        now = self._now()
        available = now + dispatch.policy.backoff_us(dispatch.attempt)
        requeued = await self.store.requeue(app_id, invocation_id, lease_id, available, error_json)
        if requeued is None:  # finished meanwhile
            return None
        await self.store.queue_push(app_id, state.task_id, invocation_id, available, keep_existing=False)
        await self.engine._project(app_id, requeued[0], now)
        self.wakeups.notify(app_id, _queue(state.task_id))
        return Dispatched(*requeued)

    async def completed(self, app_id: str, state: TaskState) -> None:
        """After a dispatched invocation's outcome: out of its queue, its waiters woken."""
        await self.store.queue_remove(app_id, state.task_id, state.invocation_id)
        self.wakeups.notify(app_id, _invocation(state.invocation_id))

    async def release(self, app_id: str, invocation_id: str, lease_id: str) -> Dispatched:
        """Hand a leased invocation back to its queue at once, the attempt not counted."""
        now = self._now()
        try:
            requeued = await self.store.requeue(app_id, invocation_id, lease_id, now, None)
        except TaskNotFound:
            raise NotFound(f"invocation {invocation_id!r} not found", reason=INVOCATION_NOT_FOUND,
                           metadata={"invocation_id": invocation_id}) from None
        except LeaseNotHeld:
            raise _not_held(invocation_id) from None
        if requeued is None:
            found = await self.get(app_id, invocation_id)
            assert found is not None
            return found
        state = requeued[0]
        await self.store.queue_push(app_id, state.task_id, invocation_id, now, keep_existing=False)
        await self.engine._project(app_id, state, now)
        self.wakeups.notify(app_id, _queue(state.task_id))
        return Dispatched(*requeued)

    async def cancel(self, app_id: str, invocation_id: str, reason: str) -> tuple[Dispatched, bool]:
        """Record an unfinished invocation (dispatched or not) FAILED with TaskCancelled."""
        found = await self.get(app_id, invocation_id)
        if found is None:
            raise NotFound(f"invocation {invocation_id!r} not found", reason=INVOCATION_NOT_FOUND,
                           metadata={"invocation_id": invocation_id})
        if found.state.finished:
            return found, False
        error = rules.cancelled_error(found.state.task_id, invocation_id, reason)
        state, changed = await self._fail(app_id, invocation_id, error, force=True)
        if state is None:
            return found, False
        done = await self._finished(app_id, found.state.task_id, state, found.dispatch)
        return done, changed and state.status == FAILED


def _error_fields(error_json: str) -> dict[str, str]:
    return {key: str(value) for key, value in json.loads(error_json).items()}


def _not_held(invocation_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the lease on invocation {invocation_id!r} is not held by the caller (expired and taken over, or finished)",
        reason=LEASE_NOT_HELD, metadata={"invocation_id": invocation_id})
