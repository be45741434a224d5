"""The Redis store: redis-py (asyncio, hiredis parser) and one Lua script per atomic step, on
one Redis or a Redis Cluster (redis_connection.py).

Key layout (ids percent-escaped, so no id can reach another's keys):
    psc:{<app>:<workflow>}:ops    hash  recorded operations of the workflow (+ "#" metadata,
                                        "#s:<field>" origins of traced records: 48 hex digits,
                                        and "#f:<invocation>" the status of a finished task
                                        scope other than the main task, for the guard)
    psc:{<app>:<workflow>}:data   hash  the workflow's user data
    psc:{<app>:<invocation>}:task hash  a task invocation's state and lease
    psc:{<app>}:wf_types          set   workflow types
    psc:{<app>}:runs              zset  identities of all runs, scored by first store time
    psc:{<app>}:runs:<type>       zset  runs of one type
    psc:app_ids                   set   apps that stored a run (what a retention sweep visits)
Every atomic step names keys of one hash tag, so it runs on Redis Cluster. Steps spanning
tags (a task and its run, a finished scope and its mirror, a retry) are ordered single-tag
steps; docs/deployment.md ("Steps that are not atomic across slots") says why each is safe.
A task hash keeps 'done' (microseconds) once its outcome is stored: retention ages by it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, escape, origin_field, unescape
from pynenc_sidecar.core.tasks import TaskState, WorkflowRef
from pynenc_sidecar.storage.interface import (
    LeaseNotHeld,
    LeaseRequest,
    Recorded,
    RunRecord,
    ScopeFinished,
    TaskNotFound,
)
from pynenc_sidecar.storage.redis import connection as redis_connection
from pynenc_sidecar.storage.redis.connection import DEFAULT_OPTIONS, NotAcknowledged, RedisOptions, connect

PREFIX = "psc"
APP_IDS_KEY = f"{PREFIX}:app_ids"
T = TypeVar("T")


def workflow_tag(app_id: str, workflow_id: str) -> str:
    return f"{PREFIX}:{{{escape(app_id)}:{escape(workflow_id)}}}"


def app_tag(app_id: str) -> str:
    return f"{PREFIX}:{{{escape(app_id)}}}"


def _script(name: str) -> str:
    return resources.files("pynenc_sidecar.storage.redis").joinpath(name).read_text()


def _unavailable_on_redis_errors(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await method(*args, **kwargs)
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    return wrapper


# What a caller may retry: Redis down or unreachable, a cluster without a master for the key's
# slot (during a failover), or a write the replicas did not acknowledge in time.
UNAVAILABLE_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ClusterError,
                      redis_errors.TryAgainError, redis_errors.SlotNotCoveredError, redis_errors.ReadOnlyError,
                      NotAcknowledged)


def unavailable(exc: Exception) -> Unavailable:
    if isinstance(exc, NotAcknowledged):
        return Unavailable(f"redis write not acknowledged: {exc}; it may not survive a failover, retry it")
    return Unavailable(f"redis unavailable: {exc.__class__.__name__}")


def _recorded(reply: list[Any], convert: Callable[[Any], Any] = str) -> Recorded:
    """A record script's reply: {value, replayed[, origin]}, or {status, 2} when refused."""
    if reply[1] == 2:
        raise ScopeFinished(int(reply[0]))
    return Recorded(convert(reply[0]), bool(reply[1]), reply[2] if len(reply) > 2 else "")


def finished_scope_field(invocation_id: str) -> str:
    """The record-hash field mirroring a finished task scope's status (not the main task's)."""
    return "#f:" + escape(invocation_id)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


async def scan_batches(client: Any, pattern: str, count: int = 1000) -> AsyncIterator[list[str]]:
    """The keys matching a pattern in batches; on a cluster, of every master (SCAN per node)."""
    batch: list[str] = []
    async for key in client.scan_iter(match=pattern, count=count):
        batch.append(key)
        if len(batch) >= count:
            yield batch
            batch = []
    if batch:
        yield batch


# A purge drops a run from the app's indexes, and its type from the type list when no run of
# that type is left. KEYS: runs, runs:<type>, wf_types. ARGV: member, type.
DROP_RUN = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
return removed
"""


def run_keys(app_id: str, workflow_type: str) -> list[str]:
    """The keys indexing a run (all of the app's tag), in DROP_RUN's KEYS order."""
    tag = app_tag(app_id)
    return [tag + ":runs", f"{tag}:runs:{escape(workflow_type)}", tag + ":wf_types"]


async def drop_workflow_run(client: Any, app_id: str, workflow: WorkflowRef) -> int:
    return int(await client.eval(DROP_RUN, 3, *run_keys(app_id, workflow.workflow_type), workflow.encode(),
                                 workflow.workflow_type))


def parse_task_key(key: str) -> tuple[str, str] | None:
    """(app id, invocation id) of a task hash key, or None for another key."""
    if not (key.startswith(PREFIX + ":{") and key.endswith("}:task")):
        return None
    app, sep, invocation = key[len(PREFIX) + 2:-len("}:task")].partition(":")
    return (unescape(app), unescape(invocation)) if sep else None


async def index_workflow_run(client: Any, app_id: str, workflow: WorkflowRef, now_us: int, *,
                             app_listed: bool = False) -> None:
    """Index a run by app and type (first store time wins); both services write runs here."""
    # The app goes into the app index first (its own slot, so outside the MULTI): a run
    # is never indexed under an app a retention sweep does not visit.
    if not app_listed:
        await client.sadd(APP_IDS_KEY, app_id)
    tag = app_tag(app_id)
    member = workflow.encode()
    async with client.pipeline(transaction=True) as pipe:
        pipe.sadd(tag + ":wf_types", workflow.workflow_type)
        pipe.zadd(tag + ":runs", {member: now_us}, nx=True)
        pipe.zadd(f"{tag}:runs:{escape(workflow.workflow_type)}", {member: now_us}, nx=True)
        await pipe.execute()


class RedisStore:
    """Implements storage.interface.Store on one Redis (or a cluster-compatible layout)."""

    def __init__(self, url: str, options: RedisOptions = DEFAULT_OPTIONS, *, socket_timeout: float = 2.0,
                 max_connections: int = 256) -> None:
        self.url = url
        self.options = options
        self.client: Any = connect(
            url, options,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            max_connections=max_connections,
            health_check_interval=0,
        )
        self._record = self.client.register_script(_script("record.lua"))
        self._record_time = self.client.register_script(_script("record_time.lua"))
        self._record_data = self.client.register_script(_script("record_data.lua"))
        self._base_time = self.client.register_script(_script("base_time.lua"))
        self._task = self.client.register_script(_script("task.lua"))

    async def close(self) -> None:
        await self.client.aclose()

    @_unavailable_on_redis_errors
    async def ping(self) -> bool:
        return await redis_connection.ping(self.client)

    # --- recorded operations -----------------------------------------------------
    def _keys(self, app_id: str, workflow_id: str, guard: str | None, *middle: str) -> list[str]:
        """The record hash, the workflow's other keys a script touches (middle), and the hash
        holding the guard's status when there is a guard: the workflow's main task hash (same
        hash tag), or for another scope the record hash itself, where complete_task mirrors a
        finished scope's status (a task hash of another tag cannot be read in the script)."""
        ops = workflow_tag(app_id, workflow_id) + ":ops"
        if not guard:
            return [ops, *middle]
        return [ops, *middle, self._task_key(app_id, guard) if guard == workflow_id else ops]

    @staticmethod
    def _guard_args(workflow_id: str, guard: str | None) -> list[str]:
        """The origin slot is always filled then ('' for none), followed by the status field."""
        if not guard:
            return []
        return ["status" if guard == workflow_id else finished_scope_field(guard)]

    @_unavailable_on_redis_errors
    async def record(
        self, app_id: str, workflow_id: str, field: str, count_field: str, value: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        args = [field, count_field, value, origin or "", *self._guard_args(workflow_id, guard)]
        return _recorded(await self._record(keys=self._keys(app_id, workflow_id, guard), args=args))

    @_unavailable_on_redis_errors
    async def record_time(
        self, app_id: str, workflow_id: str, field: str, count_field: str, now_us: int, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        args = [field, count_field, now_us, origin or "", *self._guard_args(workflow_id, guard)]
        return _recorded(await self._record_time(keys=self._keys(app_id, workflow_id, guard), args=args), int)

    async def _data_step(self, mode: str, app_id: str, workflow_id: str, field: str, count_field: str, key: str,
                         value: str, origin: str | None, guard: str | None) -> Recorded:
        keys = self._keys(app_id, workflow_id, guard, workflow_tag(app_id, workflow_id) + ":data")
        args = [mode, field, count_field, key, value, origin or "", *self._guard_args(workflow_id, guard)]
        return _recorded(await self._record_data(keys=keys, args=args))

    @_unavailable_on_redis_errors
    async def record_data_read(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        return await self._data_step("read", app_id, workflow_id, field, count_field, key, "", origin, guard)

    @_unavailable_on_redis_errors
    async def record_data_write(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, value: str,
        origin: str | None = None, guard: str | None = None,
    ) -> Recorded:
        return await self._data_step("write", app_id, workflow_id, field, count_field, key, value, origin, guard)

    @_unavailable_on_redis_errors
    async def get_origins(self, app_id: str, workflow_id: str, fields: list[str]) -> list[str | None]:
        if not fields:
            return []
        return await self.client.hmget(workflow_tag(app_id, workflow_id) + ":ops", [origin_field(f) for f in fields])

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
            # HSCAN returns a hash of up to about `batch_size` fields in one reply (a listpack
            # whole, a hashtable once COUNT covers its buckets): the common case is then one
            # round trip, with every origin beside its value. A larger hash comes in chunks.
            cursor, chunk = await self.client.hscan(key, 0, count=batch_size)
            if cursor == 0:
                if chunk:
                    yield chunk
                return
            first = True
            while True:
                if chunk:
                    yield await self._with_origins(key, chunk, first)
                    first = False
                if cursor == 0:
                    return
                cursor, chunk = await self.client.hscan(key, cursor, count=batch_size)
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    @_unavailable_on_redis_errors
    async def read_log(self, app_id: str, workflow_id: str, max_fields: int) -> dict[str, str] | None:
        # One HSCAN with COUNT max_fields returns the whole of a hash that small (cursor 0);
        # a larger one returns about max_fields fields and a cursor: give up then.
        cursor, chunk = await self.client.hscan(workflow_tag(app_id, workflow_id) + ":ops", 0, count=max_fields)
        return chunk if cursor == 0 else None

    async def _with_origins(self, key: str, chunk: dict[str, str], first: bool) -> dict[str, str]:
        """HSCAN may return a value and its origin field in different chunks: fetch the
        origins of this chunk's values that it lacks (one HMGET), so they come together;
        and the base time with the first chunk."""
        missing = [origin_field(f) for f in chunk if not f.startswith("#") and origin_field(f) not in chunk]
        if first and BASE_TIME_FIELD not in chunk:
            missing.append(BASE_TIME_FIELD)
        if missing:
            for name, value in zip(missing, await self.client.hmget(key, missing)):
                if value is not None:
                    chunk[name] = value
        return chunk

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
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int, *, index_run: bool = False
    ) -> tuple[TaskState, bool, bool]:
        lease_args = [lease.lease_id, lease.ttl_us, lease.runner_id] if lease else ["", 0, ""]
        definition = [item for pair in state.definition().items() for item in pair]
        if index_run:  # the app first: a sweep then visits every app whose task exists
            await self.client.sadd(APP_IDS_KEY, app_id)
        code, granted, data = await self._task_call(
            app_id, state.invocation_id, ["ensure", now_us, *lease_args, *definition])
        if index_run:
            # The task (its tag) and the run index (the app's tag) are two steps on a cluster:
            # the task first, so a crash between them leaves a task without its run, which the
            # caller's retry indexes (first time kept) and a retention sweep repairs
            # (index_unindexed_runs); never a run without its task.
            await index_workflow_run(self.client, app_id, state.workflow, now_us, app_listed=True)
        return TaskState.from_fields(state.invocation_id, data), bool(granted), code == "created"

    @_unavailable_on_redis_errors
    async def acquire_lease(
        self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int
    ) -> tuple[TaskState, bool]:
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
        state = TaskState.from_fields(invocation_id, data)
        workflow_id = state.workflow.workflow_id
        if accepted and workflow_id != invocation_id:
            # The finished-scope guard reads this mirror in the workflow's record hash (one hash
            # tag per script). Written after the task's own step: a crash between them leaves
            # the scope unguarded, never a running task refused.
            await self.client.hset(workflow_tag(app_id, workflow_id) + ":ops", finished_scope_field(invocation_id),
                                   data.get("status", ""))
        return state, bool(accepted)

    @_unavailable_on_redis_errors
    async def retry_failed(self, app_id: str, invocation_ids: list[str]) -> list[TaskState]:
        # Each invocation's hash has its own hash tag (slot), so no one script may touch them
        # all on a cluster: one atomic step each, in the caller's order. The caller lists the
        # workflow's main task last, so it is the commit point: until it is reset the workflow
        # stays FAILED (nothing runs it) and a retry cut short is completed by retrying again.
        reset = []
        for invocation_id in invocation_ids:
            code, changed, data = await self._task_call(app_id, invocation_id, ["retry", 0])
            if code == "ok" and changed:
                reset.append(TaskState.from_fields(invocation_id, data))
        return reset

    # --- workflow runs -----------------------------------------------------------
    @_unavailable_on_redis_errors
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        await index_workflow_run(self.client, app_id, workflow, now_us)

    @_unavailable_on_redis_errors
    async def index_unindexed_runs(self, now_us: int) -> list[tuple[str, WorkflowRef]]:
        found: list[tuple[str, WorkflowRef, int]] = []
        async for keys in self._task_key_batches():
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, "wf", "done")
                rows = await pipe.execute()
            mains = []
            for key, (wf, done) in zip(keys, rows):
                app_invocation = parse_task_key(key)
                if wf is None or app_invocation is None:
                    continue
                workflow = WorkflowRef.decode(wf)
                if workflow.workflow_id == app_invocation[1]:  # the workflow's main task
                    mains.append((app_invocation[0], workflow, int(done or 0) or now_us))
            if not mains:
                continue
            async with self.client.pipeline(transaction=False) as pipe:
                for app_id, workflow, _ in mains:
                    pipe.zscore(app_tag(app_id) + ":runs", workflow.encode())
                scores = await pipe.execute()
            found += [main for main, score in zip(mains, scores) if score is None]
        indexed = []
        for app_id, workflow, first_us in found:
            task_key = self._task_key(app_id, workflow.workflow_id)
            if not await self.client.exists(task_key):
                continue  # purged meanwhile
            await index_workflow_run(self.client, app_id, workflow, first_us)
            # Indexed in a step of its own (the app's tag): a purge that deleted the task in
            # between would leave a run without a task, so look again and take it back then.
            if not await self.client.exists(task_key):
                await drop_workflow_run(self.client, app_id, workflow)
                continue
            indexed.append((app_id, workflow))
        return indexed

    async def _task_key_batches(self) -> AsyncIterator[list[str]]:
        async for keys in scan_batches(self.client, f"{PREFIX}:{{*}}:task"):
            yield keys

    # --- reads for the operator's tools ------------------------------------------
    async def scan_runs(self, app_id: str, workflow_type: str = "", until_us: int | None = None,
                        batch_size: int = 500) -> AsyncIterator[list[RunRecord]]:
        tag = app_tag(app_id)
        key = f"{tag}:runs:{escape(workflow_type)}" if workflow_type else tag + ":runs"
        high = "+inf" if until_us is None else str(until_us)
        after: tuple[float, str] | None = None
        try:
            while page := await zrange_page(self.client, key, "-inf", high, max(1, batch_size), after):
                yield [RunRecord(WorkflowRef.decode(member), int(score)) for member, score in page]
                after = (page[-1][1], page[-1][0])
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    @_unavailable_on_redis_errors
    async def app_ids(self) -> list[str]:
        return sorted(await self.client.smembers(APP_IDS_KEY))

    @_unavailable_on_redis_errors
    async def run_started(self, app_id: str, workflow: WorkflowRef) -> int | None:
        score = await self.client.zscore(app_tag(app_id) + ":runs", workflow.encode())
        return None if score is None else int(score)

    @_unavailable_on_redis_errors
    async def workflow_data(self, app_id: str, workflow_id: str) -> dict[str, str]:
        return await self.client.hgetall(workflow_tag(app_id, workflow_id) + ":data")


async def zrange_page(client: aioredis.Redis, key: str, low: str, high: str, size: int,
                      after: tuple[float, str] | None) -> list[tuple[str, float]]:
    """Up to `size` (member, score) of a zset in [low, high] after the (score, member)
    cursor, in zset order. Keyset paging: members added or removed meanwhile shift no page."""
    page: list[tuple[str, float]] = []
    offset = 0
    while len(page) < size:
        rows = await client.zrangebyscore(key, repr(after[0]) if after else low, high,
                                          start=offset, num=size, withscores=True)
        if not rows:
            break
        offset += len(rows)
        # Only members sharing the cursor's score can sort at or before it.
        page.extend(r for r in rows if after is None or (r[1], r[0]) > after)
    return page[:size]
