"""The Redis store: redis-py (asyncio, hiredis parser) and one Lua script per atomic step, on
one Redis or a Redis Cluster (connection.py).

Key layout (keys.py builds every key; ids percent-escaped, so no id can reach another's keys):
    psc:{<app>:<workflow>}:ops    hash  recorded operations of the workflow (+ "#" metadata,
                                        "#s:<field>" origins of traced records: 48 hex digits,
                                        and "#f:" / "#l:" / "#v:<invocation>" the status, lease
                                        id and transition counter of a task scope other than the
                                        main task: mirror_scope.lua, read by the guard and by
                                        commit.lua's fence)
    psc:{<app>:<workflow>}:data   hash  the workflow's user data
    psc:{<app>:<invocation>}:task hash  a task invocation's state and lease
    psc:{<app>}:wf_types          set   workflow types
    psc:{<app>}:runs              zset  identities of all runs, scored by first store time
    psc:{<app>}:runs:<type>       zset  runs of one type
    psc:app_ids                   set   apps that stored a run (what a retention sweep visits)
On a cluster every atomic step names keys of one hash tag. Steps spanning tags (a task and
its run, a scope's task and its mirror in the workflow's record hash, a task and its
StateBackend projection, a retry) are ordered single-tag steps; docs/deployment.md ("Steps
that are not atomic across slots") says why each is safe. On one Redis, where a script may
name keys of any tag, a registration or an outcome runs as one script (task_fused.lua): the
transition with its mirror, its run index and its projection, one round trip instead of up to
four (an outcome whose grant this replica did not see, granted.py, takes the separate steps).
A task hash keeps 'done' (microseconds) once its outcome is stored: retention ages by it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any

from redis.commands.core import AsyncScript

from pynenc_sidecar.core.commits import CommitEntry
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, origin_field
from pynenc_sidecar.core.tasks import RUNNING, TaskState, WorkflowRef
from pynenc_sidecar.storage.interface import (
    CommitConflict,
    LeaseNotHeld,
    LeaseRequest,
    ProjectedInvocation,
    Recorded,
    RunRecord,
    ScopeFinished,
    TaskNotFound,
    TaskProjection,
)
from pynenc_sidecar.storage.redis import connection as redis_connection
from pynenc_sidecar.storage.redis.connection import (
    DEFAULT_OPTIONS,
    RedisOptions,
    connect,
    load_script,
    redis_unavailable,
    unavailable_on_redis_errors,
)
from pynenc_sidecar.storage.redis.granted import GrantedLeases
from pynenc_sidecar.storage.redis.keys import (
    APP_IDS_KEY,
    TASK_KEY_PATTERN,
    parse_task_key,
    run_keys,
    runs_key,
    scope_lease_field,
    scope_status_field,
    scope_version_field,
    task_key,
    workflow_tag,
)
from pynenc_sidecar.storage.redis.paging import ScorePager, scan_key_batches
from pynenc_sidecar.storage.redis.run_index import drop_workflow_run, index_workflow_run
from pynenc_sidecar.storage.redis.state_backend_store import AS_ZSET, RedisStateBackendStore, projection_step


def _recorded(reply: list[Any], convert: Callable[[Any], Any] = str) -> Recorded:
    """A record script's reply: {value, replayed[, origin]}, or {status, 2} when refused."""
    if reply[1] == 2:
        raise ScopeFinished(int(reply[0]))
    return Recorded(convert(reply[0]), bool(reply[1]), reply[2] if len(reply) > 2 else "")


def reply_fields(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisStore:
    """Implements storage.interface.Store on one Redis (or a cluster-compatible layout)."""

    def __init__(self, url: str, options: RedisOptions = DEFAULT_OPTIONS, *, socket_timeout: float = 2.0,
                 max_connections: int = 256) -> None:
        self.url = url
        self.options = options
        self.client = connect(url, options, socket_timeout=socket_timeout, max_connections=max_connections)
        self._record = self.client.register_script(load_script("record.lua"))
        self._record_time = self.client.register_script(load_script("record_time.lua"))
        self._record_data = self.client.register_script(load_script("record_data.lua"))
        self._base_time = self.client.register_script(load_script("base_time.lua"))
        self._task = self.client.register_script(load_script("task.lua"))
        self._commit = self.client.register_script(load_script("commit.lua"))
        self._mirror = self.client.register_script(load_script("mirror_scope.lua"))
        # One Redis only: its keys have several hash tags (a cluster takes the separate steps).
        self._fused = None if options.cluster else self.client.register_script(
            AS_ZSET + load_script("task_fused.lua"))
        self._granted = GrantedLeases()
        self._pager = ScorePager(self.client)

    async def close(self) -> None:
        await self.client.aclose()

    @unavailable_on_redis_errors
    async def ping(self) -> bool:
        return await redis_connection.ping(self.client)

    # --- recorded operations -----------------------------------------------------
    def _keys(self, app_id: str, workflow_id: str, guard: str | None, *middle: str) -> list[str]:
        """The record hash, the workflow's other keys a script touches (middle), and the hash
        holding the guard's status when there is a guard: the workflow's main task hash (same
        hash tag), or for another scope the record hash itself, where the scope's status is
        mirrored (a task hash of another tag cannot be read in the script on a cluster)."""
        ops = workflow_tag(app_id, workflow_id) + ":ops"
        if not guard:
            return [ops, *middle]
        return [ops, *middle, task_key(app_id, guard) if guard == workflow_id else ops]

    @staticmethod
    def _guard_args(workflow_id: str, guard: str | None) -> list[str]:
        """After the origin ('' for none): the field holding the guard's status."""
        if not guard:
            return []
        return ["status" if guard == workflow_id else scope_status_field(guard)]

    @unavailable_on_redis_errors
    async def record(
        self, app_id: str, workflow_id: str, field: str, count_field: str, value: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        args = [field, count_field, value, origin or "", *self._guard_args(workflow_id, guard)]
        return _recorded(await self._guarded(self._record, self._keys(app_id, workflow_id, guard), args,
                                             app_id, workflow_id, guard))

    @unavailable_on_redis_errors
    async def record_time(
        self, app_id: str, workflow_id: str, field: str, count_field: str, now_us: int, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        args: list[str | int] = [field, count_field, now_us, origin or "", *self._guard_args(workflow_id, guard)]
        return _recorded(await self._guarded(self._record_time, self._keys(app_id, workflow_id, guard), args,
                                             app_id, workflow_id, guard), int)

    async def _data_step(self, mode: str, app_id: str, workflow_id: str, field: str, count_field: str, key: str,
                         value: str, origin: str | None, guard: str | None) -> Recorded:
        keys = self._keys(app_id, workflow_id, guard, workflow_tag(app_id, workflow_id) + ":data")
        args = [mode, field, count_field, key, value, origin or "", *self._guard_args(workflow_id, guard)]
        return _recorded(await self._guarded(self._record_data, keys, args, app_id, workflow_id, guard))

    async def _guarded(self, script: AsyncScript, keys: list[str], args: Sequence[str | int], app_id: str,
                       workflow_id: str, guard: str | None) -> list[Any]:
        """A record script's reply; refused by a task scope's mirror that a lost step left
        behind its task (a retried scope still mirrored FAILED), it is mirrored anew and asked again."""
        reply: list[Any] = await script(keys=keys, args=args)
        if reply[1] == 2 and guard and guard != workflow_id and await self._remirror(app_id, guard):
            reply = await script(keys=keys, args=args)
        return reply

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
        if scope == workflow_id:
            fence = [task_key(app_id, scope)], ["status", "lease_id"]
        else:  # the scope's task hash has its own tag: its mirror in the record hash fences
            fence = [tag + ":ops"], [scope_status_field(scope), scope_lease_field(scope)]
        args: list[str] = [lease_id, origin or "", *fence[1]]
        for e in entries:
            args += (e.field, e.count_field, e.value, e.data_key or "", "t" if e.is_time else "d" if e.data_key
                     is not None else "v")
        keys = [tag + ":ops", tag + ":data", *fence[0]]
        reply = await self._commit(keys=keys, args=args)
        if reply[0] != "ok" and scope != workflow_id and await self._remirror(app_id, scope):
            # Refused by a mirror that a lost step left behind its task: mirrored anew, asked again.
            reply = await self._commit(keys=keys, args=args)
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
    async def mirror_scope(self, app_id: str, invocation_id: str, fields: dict[str, str]) -> None:
        """Mirror a task's status and lease id into its workflow's record hash (the step after
        its task script), unless it is the workflow's main task (same hash tag, read directly)."""
        if "wf" not in fields:
            return
        workflow_id = WorkflowRef.decode(fields["wf"]).workflow_id
        if workflow_id == invocation_id:
            return
        await self._mirror(keys=[workflow_tag(app_id, workflow_id) + ":ops"], args=[
            scope_version_field(invocation_id), scope_status_field(invocation_id), scope_lease_field(invocation_id),
            fields.get("ver") or "0", fields.get("status", ""), fields.get("lease_id", "")])

    async def _remirror(self, app_id: str, invocation_id: str) -> bool:
        """Mirror the task as its hash is now; True when that changed the mirror."""
        fields = await self.client.hgetall(task_key(app_id, invocation_id))
        if not fields or "wf" not in fields:
            return False
        workflow_id = WorkflowRef.decode(fields["wf"]).workflow_id
        before = await self.client.hget(workflow_tag(app_id, workflow_id) + ":ops", scope_version_field(invocation_id))
        await self.mirror_scope(app_id, invocation_id, fields)
        return before != (fields.get("ver") or "0")

    async def _task_call(self, app_id: str, invocation_id: str, args: list[Any], index_keys: Sequence[str] = ()
                         ) -> tuple[str, int, dict[str, str]]:
        code, flag, flat = await self._task(keys=[task_key(app_id, invocation_id), *index_keys], args=args)
        return code, int(flag), reply_fields(flat)

    def _projects_here(self, projection: TaskProjection | None) -> bool:
        """The projection goes to this Redis (its StateBackend store shares the client)."""
        return (projection is not None and isinstance(projection.store, RedisStateBackendStore)
                and projection.store.client is self.client)

    async def _fused_call(self, app_id: str, invocation_id: str, task_args: list[Any], workflow: WorkflowRef, *,
                          index_run: bool = False, applies: str = "", lease_id: str = "",
                          projected: ProjectedInvocation | None = None) -> tuple[str, int, dict[str, str], bool]:
        """task_fused.lua: the transition, its scope's mirror (unless it is the workflow's main
        task), the run index (index_run) and the projection when the transition left the task
        as `applies` says (see the script). Whether the projection was written comes last."""
        assert self._fused is not None
        task = task_key(app_id, invocation_id)
        runs, runs_of_type, types = run_keys(app_id, workflow.workflow_type)
        run = [APP_IDS_KEY, types, runs, runs_of_type] if index_run else [task] * 4
        projection_keys, projection_args = projection_step(app_id, projected) if projected else ([], [])
        keys = [task, workflow_tag(app_id, workflow.workflow_id) + ":ops", *run, *projection_keys]
        args: list[Any] = [len(task_args), "0" if workflow.workflow_id == invocation_id else "1",
                scope_version_field(invocation_id), scope_status_field(invocation_id), scope_lease_field(invocation_id),
                workflow.encode() if index_run else "", app_id, workflow.workflow_type,
                applies if projected else "", lease_id, len(projection_keys), *task_args, *projection_args]
        code, flag, flat, written = await self._fused(keys=keys, args=args)
        return code, int(flag), reply_fields(flat), bool(written)

    @unavailable_on_redis_errors
    async def ensure_task(
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int, *, index_run: bool = False,
        projection: TaskProjection | None = None,
    ) -> tuple[TaskState, bool, bool]:
        if self._fused is not None:  # one step, atomic: nothing for a deadline to split
            return await self._ensure_fused(app_id, state, lease, now_us, index_run, projection)
        if not index_run:
            return await self._ensure_task(app_id, state, lease, now_us, index_run=False)
        # The task and its run are two steps (two hash tags). A client's deadline cancels the
        # handler, which could land between them and leave a task no listing or sweep finds
        # until the repair: shielded, the steps finish together, and only a crash splits them.
        steps = asyncio.ensure_future(self._ensure_task(app_id, state, lease, now_us, index_run=True))
        # Its error is the caller's; once the caller has gone, it is not logged as never retrieved.
        steps.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(steps)

    async def _ensure_fused(self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int,
                            index_run: bool, projection: TaskProjection | None) -> tuple[TaskState, bool, bool]:
        lease_args = [lease.lease_id, lease.ttl_us, lease.runner_id] if lease else ["", 0, ""]
        definition = [item for pair in state.definition().items() for item in pair]
        projected = None
        if projection is not None and lease is not None and self._projects_here(projection):
            # What a granted lease leaves (a new task, or one registered with this definition):
            # the script writes this projection only then.
            granted_state = replace(state, status=RUNNING, lease_id=lease.lease_id, runner_id=lease.runner_id,
                                    result_json=None, error_json=None, finished_us=0)
            projected = projection.of(granted_state, now_us)
        code, granted, data, written = await self._fused_call(
            app_id, state.invocation_id, ["ensure", now_us, *lease_args, *definition], state.workflow,
            index_run=index_run, applies="granted", projected=projected)
        current = TaskState.from_fields(state.invocation_id, data)
        current.projected = written
        if granted:
            self._granted.keep(app_id, current)
        return current, bool(granted), code == "created"

    async def _ensure_task(
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int, *, index_run: bool
    ) -> tuple[TaskState, bool, bool]:
        lease_args = [lease.lease_id, lease.ttl_us, lease.runner_id] if lease else ["", 0, ""]
        definition = [item for pair in state.definition().items() for item in pair]
        if index_run:  # the app first: a sweep then visits every app whose task exists
            await self.client.sadd(APP_IDS_KEY, app_id)
        code, granted, data = await self._task_call(
            app_id, state.invocation_id, ["ensure", now_us, *lease_args, *definition])
        if code == "created" or granted:
            await self.mirror_scope(app_id, state.invocation_id, data)
        if index_run:
            # The task (its tag) and the run index (the app's tag) are two steps on a cluster:
            # the task first, so a crash between them leaves a task without its run, which the
            # caller's retry indexes (first time kept) and a retention sweep repairs
            # (index_unindexed_runs); never a run without its task.
            await index_workflow_run(self.client, app_id, state.workflow, now_us, app_listed=True)
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
        state = TaskState.from_fields(invocation_id, data)
        if granted:
            await self.mirror_scope(app_id, invocation_id, data)
            if self._fused is not None:
                self._granted.keep(app_id, state)
        return state, bool(granted)

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
        error_json: str | None, now_us: int, *, projection: TaskProjection | None = None,
    ) -> tuple[TaskState, bool]:
        has_result = result_json is not None
        task_args = ["complete", now_us, lease_id, status, result_json or "", error_json or "",
                     "1" if has_result else "0"]
        granted = self._granted.take(app_id, invocation_id, lease_id) if self._fused is not None else None
        if granted is not None:
            return await self._complete_fused(app_id, granted, task_args, projection)
        code, accepted, data = await self._task_call(app_id, invocation_id, task_args)
        if code == "missing":
            raise TaskNotFound(invocation_id)
        if code == "not_held":
            raise LeaseNotHeld(invocation_id)
        if accepted:
            # The finished-scope guard reads the mirror in the workflow's record hash (one hash
            # tag per script). Written after the task's own step: a crash between them leaves
            # the scope unguarded, never a running task refused.
            await self.mirror_scope(app_id, invocation_id, data)
        return TaskState.from_fields(invocation_id, data), bool(accepted)

    async def _complete_fused(self, app_id: str, granted: TaskState, task_args: list[Any],
                              projection: TaskProjection | None) -> tuple[TaskState, bool]:
        """An outcome of a lease this replica granted: its definition, runner and workflow are
        known, so its mirror and projection go in its own script, the projection written only
        if the outcome is accepted from that very grant (its lease id still on the task)."""
        _, now_us, lease_id, status, result_json, error_json, has_result = task_args
        projected = None
        if projection is not None and self._projects_here(projection):  # what task_rules.lua's complete leaves
            finished = replace(granted, status=status, lease_expire_us=0, finished_us=now_us,
                               result_json=result_json if has_result == "1" else granted.result_json,
                               error_json=granted.error_json if has_result == "1" else error_json)
            projected = projection.of(finished, now_us)
        invocation_id = granted.invocation_id
        code, accepted, data, written = await self._fused_call(
            app_id, invocation_id, task_args, granted.workflow, applies="held", lease_id=lease_id, projected=projected)
        if code == "missing":
            raise TaskNotFound(invocation_id)
        if code == "not_held":
            raise LeaseNotHeld(invocation_id)
        state = TaskState.from_fields(invocation_id, data)
        state.projected = written
        return state, bool(accepted)

    @unavailable_on_redis_errors
    async def retry_failed(self, app_id: str, invocation_ids: list[str]) -> list[TaskState]:
        # Each invocation's hash has its own hash tag (slot), so no one script may touch them
        # all on a cluster: one atomic step each, in the caller's order. The caller lists the
        # workflow's main task last, so it is the commit point: until it is reset the workflow
        # stays FAILED (nothing runs it) and a retry cut short is completed by retrying again.
        reset = []
        for invocation_id in invocation_ids:
            code, changed, data = await self._task_call(app_id, invocation_id, ["retry", 0])
            if code == "ok":
                # Also when not changed: a retry cut short between a reset and its mirror is
                # completed by retrying again.
                await self.mirror_scope(app_id, invocation_id, data)
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
            key = task_key(app_id, workflow.workflow_id)
            if not await self.client.exists(key):
                continue  # purged meanwhile
            await index_workflow_run(self.client, app_id, workflow, first_us)
            # Indexed in a step of its own (the app's tag): a purge that deleted the task in
            # between would leave a run without a task, so look again and take it back then.
            if not await self.client.exists(key):
                await drop_workflow_run(self.client, app_id, workflow)
                continue
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

