"""The Redis store: redis-py (asyncio, hiredis parser) and one Lua script per atomic step.

Key layout (ids percent-escaped, so no id can reach another's keys):
    psc:{<app>:<workflow>}:ops    hash  recorded operations of the workflow (+ "#" metadata)
    psc:{<app>:<workflow>}:data   hash  the workflow's user data
    psc:{<app>:<invocation>}:task hash  a task invocation's state and lease
    psc:{<app>}:wf_types          set   workflow types
    psc:{<app>}:runs              zset  identities of all runs, scored by first store time
    psc:{<app>}:runs:<type>       zset  runs of one type
Everything of one workflow shares a hash tag, so the layout is Redis-Cluster ready.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.core.positions import escape
from pynenc_sidecar.core.tasks import TaskState, WorkflowRef
from pynenc_sidecar.storage.base import LeaseNotHeld, LeaseRequest, TaskNotFound

PREFIX = "psc"
T = TypeVar("T")


def workflow_tag(app_id: str, workflow_id: str) -> str:
    return f"{PREFIX}:{{{escape(app_id)}:{escape(workflow_id)}}}"


def app_tag(app_id: str) -> str:
    return f"{PREFIX}:{{{escape(app_id)}}}"


def _script(name: str) -> str:
    return resources.files("pynenc_sidecar.storage").joinpath(name).read_text()


def _unavailable_on_redis_errors(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await method(*args, **kwargs)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise Unavailable(f"redis unavailable: {exc.__class__.__name__}") from exc

    return wrapper


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisStore:
    """Implements storage.base.Store on one Redis (or a cluster-compatible layout)."""

    def __init__(self, url: str, *, socket_timeout: float = 2.0, max_connections: int = 256) -> None:
        self.url = url
        self.client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            max_connections=max_connections,
            health_check_interval=0,
        )
        self._record = self.client.register_script(_script("record.lua"))
        self._record_time = self.client.register_script(_script("record_time.lua"))
        self._base_time = self.client.register_script(_script("base_time.lua"))
        self._task = self.client.register_script(_script("task.lua"))

    async def close(self) -> None:
        await self.client.aclose()

    @_unavailable_on_redis_errors
    async def ping(self) -> bool:
        return bool(await self.client.ping())

    # --- recorded operations -----------------------------------------------------
    @_unavailable_on_redis_errors
    async def record(self, app_id: str, workflow_id: str, field: str, count_field: str, value: str) -> tuple[str, bool]:
        stored, replayed = await self._record(keys=[workflow_tag(app_id, workflow_id) + ":ops"], args=[field, count_field, value])
        return stored, bool(replayed)

    @_unavailable_on_redis_errors
    async def record_time(self, app_id: str, workflow_id: str, field: str, count_field: str, now_us: int) -> tuple[int, bool]:
        stored, replayed = await self._record_time(
            keys=[workflow_tag(app_id, workflow_id) + ":ops"], args=[field, count_field, now_us]
        )
        return int(stored), bool(replayed)

    @_unavailable_on_redis_errors
    async def base_time(self, app_id: str, workflow_id: str, now_us: int) -> tuple[int, bool]:
        stored, replayed = await self._base_time(keys=[workflow_tag(app_id, workflow_id) + ":ops"], args=[now_us])
        return int(stored), bool(replayed)

    @_unavailable_on_redis_errors
    async def get_recorded(self, app_id: str, workflow_id: str, field: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":ops", field)

    @_unavailable_on_redis_errors
    async def get_count(self, app_id: str, workflow_id: str, count_field: str) -> int:
        return int(await self.client.hget(workflow_tag(app_id, workflow_id) + ":ops", count_field) or 0)

    async def scan_log(self, app_id: str, workflow_id: str, batch_size: int) -> AsyncIterator[dict[str, str]]:
        key = workflow_tag(app_id, workflow_id) + ":ops"
        try:
            # Small logs (the common case) come back in one HGETALL; large ones by HSCAN.
            if await self.client.hlen(key) <= batch_size:
                yield await self.client.hgetall(key)
                return
            cursor = 0
            while True:
                cursor, chunk = await self.client.hscan(key, cursor, count=batch_size)
                if chunk:
                    yield chunk
                if cursor == 0:
                    return
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise Unavailable(f"redis unavailable: {exc.__class__.__name__}") from exc

    # --- workflow data -----------------------------------------------------------
    @_unavailable_on_redis_errors
    async def get_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":data", key)

    @_unavailable_on_redis_errors
    async def set_data(self, app_id: str, workflow_id: str, key: str, value: str) -> None:
        await self.client.hset(workflow_tag(app_id, workflow_id) + ":data", key, value)

    # --- tasks -------------------------------------------------------------------
    def _task_key(self, app_id: str, invocation_id: str) -> str:
        return workflow_tag(app_id, invocation_id) + ":task"

    async def _task_call(self, app_id: str, invocation_id: str, args: list[Any]) -> tuple[str, int, dict[str, str]]:
        code, flag, flat = await self._task(keys=[self._task_key(app_id, invocation_id)], args=args)
        return code, int(flag), _pairs(flat)

    @_unavailable_on_redis_errors
    async def ensure_task(
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int
    ) -> tuple[TaskState, bool, bool]:
        lease_args = [lease.lease_id, lease.ttl_us, lease.runner_id] if lease else ["", 0, ""]
        definition = [item for pair in state.definition().items() for item in pair]
        code, granted, data = await self._task_call(app_id, state.invocation_id, ["ensure", now_us, *lease_args, *definition])
        return TaskState.from_fields(state.invocation_id, data), bool(granted), code == "created"

    @_unavailable_on_redis_errors
    async def acquire_lease(self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int) -> tuple[TaskState, bool]:
        code, granted, data = await self._task_call(
            app_id, invocation_id, ["acquire", now_us, lease.lease_id, lease.ttl_us, lease.runner_id]
        )
        if code == "missing":
            raise TaskNotFound(invocation_id)
        return TaskState.from_fields(invocation_id, data), bool(granted)

    @_unavailable_on_redis_errors
    async def get_task(self, app_id: str, invocation_id: str) -> TaskState | None:
        data = await self.client.hgetall(self._task_key(app_id, invocation_id))
        return TaskState.from_fields(invocation_id, data) if data else None

    @_unavailable_on_redis_errors
    async def get_tasks(self, app_id: str, invocation_ids: list[str]) -> list[TaskState | None]:
        if not invocation_ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for invocation_id in invocation_ids:
                pipe.hgetall(self._task_key(app_id, invocation_id))
            rows = await pipe.execute()
        return [TaskState.from_fields(i, row) if row else None for i, row in zip(invocation_ids, rows)]

    @_unavailable_on_redis_errors
    async def renew_lease(self, app_id: str, invocation_id: str, lease_id: str, ttl_us: int, now_us: int) -> int:
        code, _, data = await self._task_call(app_id, invocation_id, ["renew", now_us, lease_id, ttl_us])
        if code == "missing":
            raise TaskNotFound(invocation_id)
        if code == "not_held":
            raise LeaseNotHeld(invocation_id)
        return int(data["lease_exp"])

    @_unavailable_on_redis_errors
    async def complete_task(
        self, app_id: str, invocation_id: str, lease_id: str, status: int, result_json: str | None,
        error_json: str | None, now_us: int,
    ) -> tuple[TaskState, bool]:
        has_result = result_json is not None
        code, accepted, data = await self._task_call(
            app_id,
            invocation_id,
            ["complete", now_us, lease_id, status, result_json or "", error_json or "", "1" if has_result else "0"],
        )
        if code == "missing":
            raise TaskNotFound(invocation_id)
        if code == "not_held":
            raise LeaseNotHeld(invocation_id)
        return TaskState.from_fields(invocation_id, data), bool(accepted)

    # --- workflow runs -----------------------------------------------------------
    @_unavailable_on_redis_errors
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        tag = app_tag(app_id)
        member = workflow.encode()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(tag + ":wf_types", workflow.workflow_type)
            pipe.zadd(tag + ":runs", {member: now_us}, nx=True)
            pipe.zadd(f"{tag}:runs:{escape(workflow.workflow_type)}", {member: now_us}, nx=True)
            await pipe.execute()
