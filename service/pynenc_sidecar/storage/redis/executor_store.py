"""The Redis store: redis-py (asyncio, hiredis parser) and one Lua script per atomic step.

Key layout (keys.py builds every key; ids percent-escaped, so no id can reach another's keys):
    psc:{<app>:<workflow>}:ops    hash  recorded operations of the workflow (+ "#" metadata, and
                                        "#s:<field>" origins of traced records: 48 hex digits)
    psc:{<app>:<workflow>}:data   hash  the workflow's user data
    psc:{<app>:<invocation>}:task hash  a task invocation's state and lease
    psc:{<app>}:wf_types          set   workflow types
    psc:{<app>}:runs              zset  identities of all runs, scored by first store time
    psc:{<app>}:runs:<type>       zset  runs of one type
    psc:app_ids                   set   apps that stored a run (what a retention sweep visits)
Everything of one workflow shares a hash tag. Steps that write a workflow and an app index at
once (StartWorkflow's task and its run, purge) are one script or MULTI across those keys.
One exception to "one tag per step": a record guarded by a task scope other than the workflow's
main task also reads that task's hash (psc:{<app>:<invocation>}:task, another tag) in its
script; so does commit.lua, whose lease check reads the committing scope's task hash (the
main task's shares the workflow's tag, a task inside the workflow has its own). On one Redis
that is atomic; on Redis Cluster those scripts would need the task's status (and lease id)
kept under the workflow's tag.
A task hash keeps 'done' (microseconds) once its outcome is stored: retention ages by it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pynenc_sidecar.core.commits import CommitEntry
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, origin_field
from pynenc_sidecar.core.tasks import TaskState, WorkflowRef
from pynenc_sidecar.storage.interface import (
    CommitConflict,
    LeaseNotHeld,
    LeaseRequest,
    Recorded,
    RunRecord,
    ScopeFinished,
    TaskNotFound,
)
from pynenc_sidecar.storage.redis.connection import (
    connect,
    load_script,
    redis_unavailable,
    unavailable_on_redis_errors,
)
from pynenc_sidecar.storage.redis.keys import (
    APP_IDS_KEY,
    TASK_KEY_PATTERN,
    parse_task_key,
    run_index_keys,
    runs_key,
    task_key,
    workflow_tag,
)
from pynenc_sidecar.storage.redis.paging import ScorePager, scan_key_batches
from pynenc_sidecar.storage.redis.run_index import index_workflow_run


def _recorded(reply: list[Any], convert: Callable[[Any], Any] = str) -> Recorded:
    """A record script's reply: {value, replayed[, origin]}, or {status, 2} when refused."""
    if reply[1] == 2:
        raise ScopeFinished(int(reply[0]))
    return Recorded(convert(reply[0]), bool(reply[1]), reply[2] if len(reply) > 2 else "")


def reply_fields(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisStore:
    """Implements storage.interface.Store on one Redis (or a cluster-compatible layout)."""

    def __init__(self, url: str, *, socket_timeout: float = 2.0, max_connections: int = 256) -> None:
        self.url = url
        self.client = connect(url, socket_timeout=socket_timeout, max_connections=max_connections)
        self._record = self.client.register_script(load_script("record.lua"))
        self._record_time = self.client.register_script(load_script("record_time.lua"))
        self._record_data = self.client.register_script(load_script("record_data.lua"))
        self._base_time = self.client.register_script(load_script("base_time.lua"))
        self._task = self.client.register_script(load_script("task.lua"))
        self._commit = self.client.register_script(load_script("commit.lua"))
        self._pager = ScorePager(self.client)

    async def close(self) -> None:
        await self.client.aclose()

    @unavailable_on_redis_errors
    async def ping(self) -> bool:
        return bool(await self.client.ping())

    # --- recorded operations -----------------------------------------------------
    def _keys(self, app_id: str, workflow_id: str, guard: str | None, *middle: str) -> list[str]:
        """The record hash, the workflow's other keys a script touches (middle), and the
        guard's task hash when there is a guard."""
        ops = workflow_tag(app_id, workflow_id) + ":ops"
        return [ops, *middle, task_key(app_id, guard)] if guard else [ops, *middle]

    @unavailable_on_redis_errors
    async def record(
        self, app_id: str, workflow_id: str, field: str, count_field: str, value: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        args = [field, count_field, value, origin] if origin else [field, count_field, value]
        return _recorded(await self._record(keys=self._keys(app_id, workflow_id, guard), args=args))

    @unavailable_on_redis_errors
    async def record_time(
        self, app_id: str, workflow_id: str, field: str, count_field: str, now_us: int, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        args: list[str | int] = [field, count_field, now_us, origin] if origin else [field, count_field, now_us]
        return _recorded(await self._record_time(keys=self._keys(app_id, workflow_id, guard), args=args), int)

    async def _data_step(self, mode: str, app_id: str, workflow_id: str, field: str, count_field: str, key: str,
                         value: str, origin: str | None, guard: str | None) -> Recorded:
        keys = self._keys(app_id, workflow_id, guard, workflow_tag(app_id, workflow_id) + ":data")
        args = [mode, field, count_field, key, value, *([origin] if origin else [])]
        return _recorded(await self._record_data(keys=keys, args=args))

    @unavailable_on_redis_errors
    async def record_data_read(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        return await self._data_step("read", app_id, workflow_id, field, count_field, key, "", origin, guard)

    @unavailable_on_redis_errors
    async def record_data_write(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, value: str,
        origin: str | None = None, guard: str | None = None,
    ) -> Recorded:
        return await self._data_step("write", app_id, workflow_id, field, count_field, key, value, origin, guard)

    @unavailable_on_redis_errors
    async def commit(
        self, app_id: str, workflow_id: str, scope: str, lease_id: str, entries: list[CommitEntry],
        origin: str | None = None,
    ) -> list[bool]:
        tag = workflow_tag(app_id, workflow_id)
        args: list[str] = [lease_id, origin or ""]
        for e in entries:
            args += (e.field, e.count_field, e.value, e.data_key or "", "t" if e.is_time else "d" if e.data_key
                     is not None else "v")
        reply = await self._commit(keys=[tag + ":ops", tag + ":data", task_key(app_id, scope)], args=args)
        code = reply[0]
        if code == "ok":
            return [flag == "1" for flag in reply[1]]
        if code == "missing":
            raise TaskNotFound(scope)
        if code == "not_held":
            raise LeaseNotHeld(scope)
        if code == "conflict":
            raise CommitConflict(int(reply[1]), reply[2])
        raise ScopeFinished(int(reply[1]), int(reply[2]))

    @unavailable_on_redis_errors
    async def get_origins(self, app_id: str, workflow_id: str, fields: list[str]) -> list[str | None]:
        if not fields:
            return []
        return await self.client.hmget(workflow_tag(app_id, workflow_id) + ":ops", [origin_field(f) for f in fields])

    @unavailable_on_redis_errors
    async def base_time(self, app_id: str, workflow_id: str, now_us: int) -> tuple[int, bool]:
        stored, replayed = await self._base_time(keys=[workflow_tag(app_id, workflow_id) + ":ops"], args=[now_us])
        return int(stored), bool(replayed)

    @unavailable_on_redis_errors
    async def get_recorded(self, app_id: str, workflow_id: str, field: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":ops", field)

    @unavailable_on_redis_errors
    async def get_count(self, app_id: str, workflow_id: str, count_field: str) -> int:
        return int(await self.client.hget(workflow_tag(app_id, workflow_id) + ":ops", count_field) or 0)

    async def scan_log(self, app_id: str, workflow_id: str, batch_size: int) -> AsyncIterator[dict[str, str]]:
        key = workflow_tag(app_id, workflow_id) + ":ops"
        with redis_unavailable():
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

    @unavailable_on_redis_errors
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
    @unavailable_on_redis_errors
    async def get_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":data", key)

    @unavailable_on_redis_errors
    async def set_data(self, app_id: str, workflow_id: str, key: str, value: str) -> None:
        await self.client.hset(workflow_tag(app_id, workflow_id) + ":data", key, value)

    # --- tasks -------------------------------------------------------------------
    async def _task_call(self, app_id: str, invocation_id: str, args: list[Any], index_keys: Sequence[str] = ()
                         ) -> tuple[str, int, dict[str, str]]:
        code, flag, flat = await self._task(keys=[task_key(app_id, invocation_id), *index_keys], args=args)
        return code, int(flag), reply_fields(flat)

    @unavailable_on_redis_errors
    async def ensure_task(
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int, *, index_run: bool = False
    ) -> tuple[TaskState, bool, bool]:
        lease_args = [lease.lease_id, lease.ttl_us, lease.runner_id] if lease else ["", 0, ""]
        run = state.workflow
        run_args = [run.encode(), run.workflow_type, app_id] if index_run else ["", "", ""]
        definition = [item for pair in state.definition().items() for item in pair]
        code, granted, data = await self._task_call(
            app_id, state.invocation_id, ["ensure", now_us, *lease_args, *run_args, *definition],
            run_index_keys(app_id, run) if index_run else [])
        return TaskState.from_fields(state.invocation_id, data), bool(granted), code == "created"

    @unavailable_on_redis_errors
    async def acquire_lease(
        self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int
    ) -> tuple[TaskState, bool]:
        code, granted, data = await self._task_call(
            app_id, invocation_id, ["acquire", now_us, lease.lease_id, lease.ttl_us, lease.runner_id]
        )
        if code == "missing":
            raise TaskNotFound(invocation_id)
        return TaskState.from_fields(invocation_id, data), bool(granted)

    @unavailable_on_redis_errors
    async def get_task(self, app_id: str, invocation_id: str) -> TaskState | None:
        data = await self.client.hgetall(task_key(app_id, invocation_id))
        return TaskState.from_fields(invocation_id, data) if data else None

    @unavailable_on_redis_errors
    async def get_tasks(self, app_id: str, invocation_ids: list[str]) -> list[TaskState | None]:
        if not invocation_ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for invocation_id in invocation_ids:
                pipe.hgetall(task_key(app_id, invocation_id))
            rows = await pipe.execute()
        return [TaskState.from_fields(i, row) if row else None for i, row in zip(invocation_ids, rows)]

    @unavailable_on_redis_errors
    async def renew_lease(self, app_id: str, invocation_id: str, lease_id: str, ttl_us: int, now_us: int) -> int:
        code, _, data = await self._task_call(app_id, invocation_id, ["renew", now_us, lease_id, ttl_us])
        if code == "missing":
            raise TaskNotFound(invocation_id)
        if code == "not_held":
            raise LeaseNotHeld(invocation_id)
        return int(data["lease_exp"])

    @unavailable_on_redis_errors
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

    @unavailable_on_redis_errors
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
    @unavailable_on_redis_errors
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        await index_workflow_run(self.client, app_id, workflow, now_us)

    @unavailable_on_redis_errors
    async def index_unindexed_runs(self, now_us: int) -> list[tuple[str, WorkflowRef]]:
        found: list[tuple[str, WorkflowRef, int]] = []
        async for keys in scan_key_batches(self.client, TASK_KEY_PATTERN):
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
                    pipe.zscore(runs_key(app_id), workflow.encode())
                scores = await pipe.execute()
            found += [main for main, score in zip(mains, scores) if score is None]
        indexed = []
        for app_id, workflow, first_us in found:
            code, _, _ = await self._task_call(app_id, workflow.workflow_id, [
                "index", now_us, workflow.encode(), workflow.workflow_type, app_id, first_us],
                run_index_keys(app_id, workflow))
            if code == "ok":  # else purged meanwhile
                indexed.append((app_id, workflow))
        return indexed

    # --- reads for the operator's tools ------------------------------------------
    async def scan_runs(self, app_id: str, workflow_type: str = "", until_us: int | None = None,
                        batch_size: int = 500) -> AsyncIterator[list[RunRecord]]:
        high = "+inf" if until_us is None else str(until_us)
        with redis_unavailable():
            async for page in self._pager.pages(runs_key(app_id, workflow_type), "-inf", high, batch_size):
                yield [RunRecord(WorkflowRef.decode(member), int(score)) for member, score in page]

    @unavailable_on_redis_errors
    async def app_ids(self) -> list[str]:
        return sorted(await self.client.smembers(APP_IDS_KEY))

    @unavailable_on_redis_errors
    async def run_started(self, app_id: str, workflow: WorkflowRef) -> int | None:
        score = await self.client.zscore(runs_key(app_id), workflow.encode())
        return None if score is None else int(score)

    @unavailable_on_redis_errors
    async def workflow_data(self, app_id: str, workflow_id: str) -> dict[str, str]:
        return await self.client.hgetall(workflow_tag(app_id, workflow_id) + ":data")

