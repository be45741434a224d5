"""Dispatched tasks on Redis: dispatch state in the task hash, a sorted set per queue.

Keys (ids percent-escaped, as in redis_store):
    psc:{<app>:<invocation>}:task     hash  the task state, and its dispatch state (d_* fields)
    psc:{<app>:q:<task id>}:queue     zset  invocation ids by when each becomes available
    psc:{<app>}:queues                set   task ids of the app's queues (for inspect)
A queue is one key with its own hash tag: on Redis Cluster each queue lives on one slot,
and no step writes two slots at once. dispatch.lua names the task hash only; a claim or
requeue of a task inside a workflow is then mirrored into the workflow's record hash (its
status and lease id, for commit.lua's fence), a step of its own, as RedisStore does.
"""

from __future__ import annotations

from typing import Any, cast

from pynenc_sidecar.core.dispatch import DispatchPolicy, DispatchState
from pynenc_sidecar.core.positions import escape
from pynenc_sidecar.core.tasks import TaskState
from pynenc_sidecar.storage.interface import MISSING, ClaimResult, LeaseNotHeld, LeaseRequest, QueuedEntry, TaskNotFound
from pynenc_sidecar.storage.redis.connection import load_script, unavailable_on_redis_errors
from pynenc_sidecar.storage.redis.executor_store import RedisStore, reply_fields
from pynenc_sidecar.storage.redis.keys import PREFIX, app_tag, task_key


def queue_key(app_id: str, task_id: str) -> str:
    return f"{PREFIX}:{{{escape(app_id)}:q:{escape(task_id)}}}:queue"


def dispatch_state(fields: dict[str, str]) -> DispatchState | None:
    if "d_pol" not in fields:
        return None
    return DispatchState(DispatchPolicy.decode(fields["d_pol"]), int(fields.get("d_att") or 0),
                         int(fields.get("d_q") or 0), int(fields.get("d_st") or 0), fields.get("d_err") or None)


class RedisDispatchStore:
    """Implements storage.dispatch_base.DispatchStore beside a RedisStore."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.client = store.client
        self._script = self.client.register_script(load_script("dispatch.lua"))

    async def _call(self, app_id: str, invocation_id: str, args: list[Any]) -> tuple[str, dict[str, str]]:
        code, flat = await self._script(keys=[task_key(app_id, invocation_id)], args=args)
        return code, reply_fields(flat)

    @staticmethod
    def _states(invocation_id: str, fields: dict[str, str]) -> tuple[TaskState, DispatchState | None]:
        return TaskState.from_fields(invocation_id, fields), dispatch_state(fields)

    @unavailable_on_redis_errors
    async def register(self, app_id: str, state: TaskState, policy: DispatchPolicy, now_us: int
                       ) -> tuple[TaskState, DispatchState]:
        definition = [item for pair in state.definition().items() for item in pair]
        _, fields = await self._call(app_id, state.invocation_id, ["register", now_us, policy.encode(),
                                                                    policy.schedule_to_start_us, *definition])
        task, dispatch = self._states(state.invocation_id, fields)
        assert dispatch is not None
        return task, dispatch

    @unavailable_on_redis_errors
    async def get(self, app_id: str, invocation_id: str) -> tuple[TaskState, DispatchState | None] | None:
        fields = await self.client.hgetall(task_key(app_id, invocation_id))
        return self._states(invocation_id, fields) if fields else None

    @unavailable_on_redis_errors
    async def claim(self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int) -> ClaimResult:
        code, fields = await self._call(app_id, invocation_id,
                                        ["claim", now_us, lease.lease_id, lease.ttl_us, lease.runner_id])
        if not fields:  # missing, or not dispatched
            return ClaimResult(code)
        if code == "granted":
            await self.store.mirror_scope(app_id, invocation_id, fields)
        return ClaimResult(code, *self._states(invocation_id, fields))

    @unavailable_on_redis_errors
    async def requeue(self, app_id: str, invocation_id: str, lease_id: str, available_us: int,
                      last_error_json: str | None) -> tuple[TaskState, DispatchState] | None:
        code, fields = await self._call(app_id, invocation_id,
                                        ["requeue", 0, lease_id, available_us, last_error_json or ""])
        if code == MISSING:
            raise TaskNotFound(invocation_id)
        if code == "not_held":
            raise LeaseNotHeld(invocation_id)
        if code == "finished":
            return None
        await self.store.mirror_scope(app_id, invocation_id, fields)
        task, dispatch = self._states(invocation_id, fields)
        assert dispatch is not None
        return task, dispatch

    # --- queues -------------------------------------------------------------------
    @unavailable_on_redis_errors
    async def queue_push(self, app_id: str, task_id: str, invocation_id: str, available_us: int, *,
                         keep_existing: bool) -> None:
        # The index of queues first (its own slot): a queue is never out of inspect's sight.
        await self.client.sadd(app_tag(app_id) + ":queues", task_id)
        await self.client.zadd(queue_key(app_id, task_id), {invocation_id: available_us}, nx=keep_existing)

    @unavailable_on_redis_errors
    async def queue_ready(self, app_id: str, task_id: str, now_us: int, limit: int) -> list[str]:
        return await self.client.zrangebyscore(queue_key(app_id, task_id), "-inf", now_us, start=0, num=limit)

    @unavailable_on_redis_errors
    async def queue_defer(self, app_id: str, task_id: str, invocation_id: str, until_us: int) -> None:
        await self.client.zadd(queue_key(app_id, task_id), {invocation_id: until_us}, xx=True)

    @unavailable_on_redis_errors
    async def queue_remove(self, app_id: str, task_id: str, invocation_id: str) -> None:
        await self.client.zrem(queue_key(app_id, task_id), invocation_id)

    @unavailable_on_redis_errors
    async def queued(self, app_id: str) -> list[QueuedEntry]:
        entries = []
        for task_id in sorted(await self.client.smembers(app_tag(app_id) + ":queues")):
            scored = await self.client.zrange(queue_key(app_id, task_id), 0, -1, withscores=True)
            for invocation_id, score in cast(list[tuple[str, float]], scored):
                entries.append(QueuedEntry(task_id, invocation_id, int(score)))
        return entries

