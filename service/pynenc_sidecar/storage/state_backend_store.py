"""Pynenc's StateBackend storage: the interface (StateBackendStore) and its Redis implementation.

The interface is what StateBackendService needs: invocations, history, results, runs,
runner contexts. RedisStateBackendStore (below) and SqliteStateBackendStore
(sqlite_state_backend_store.py) implement it; tests/test_state_backend.py runs against both.

Redis key layout (ids escaped with core.positions.escape; see redis_store for the shared keys):

Key layout (ids escaped with core.positions.escape; see redis_store for the shared keys):
    psc:{<app>:<inv>}:inv          string  [workflow_id, workflow_type, parent_id, payload]
    psc:{<app>:<inv>}:hist         zset    the invocation's history (members below)
    psc:{<app>:<inv>}:result       string  result JSON
    psc:{<app>:<inv>}:exc          string  exception payload
    psc:{<app>:<inv>}:children     set     invocations whose parent is <inv>
    psc:{<app>:<inv>}:projected    hash    event ids of the history entries projected from the
                                           executor (projection.py), each appended once
    psc:{<app>:<wf>}:data          hash    workflow data (the same hash RedisStore uses)
    psc:{<app>:<wf>}:dv            hash    deterministic values, first writer wins
    psc:{<app>:<wf>}:invs          set     invocations of the workflow
    psc:{<app>:<wf>}:subs          set     sub-invocations run inside the workflow
    psc:{<app>}:wf_types, :runs, :runs:<type>   workflow runs (shared with RedisStore)
    psc:{<app>}:invs_by_type:<type> set    invocations of workflows of a type
    psc:{<app>}:timeline           zset    every history entry of the app
    psc:{<app>}:hist_seq           string  counter that makes history members unique
    psc:{<app>}:runners            hash    runner id -> runner context payload
    psc:apps                       hash    app id -> app info payload (discovery, all apps)
    psc:app_ids                    set     apps that stored a run (redis_store.APP_IDS_KEY)

History members are "<seq:016x>|<escaped invocation id>|<payload>", scored by the entry's
time in microseconds: the sequence keeps identical entries apart and orders entries of the
same microsecond by arrival, and the escaped id (which never holds '|') lets a time-range
scan name the invocation without parsing the payload.

Payloads are opaque text to this module: the service layer decides their encoding.
Writes touching several keys run in one MULTI (or one Lua script). They span several hash
tags, so on Redis Cluster those would need to be split; on one Redis they are atomic.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from pynenc_sidecar.core.positions import Kind, escape, parse_field, unescape
from pynenc_sidecar.core.tasks import TaskCall, WorkflowRef
from pynenc_sidecar.storage.redis_store import (
    APP_IDS_KEY,
    PREFIX,
    _script,
    _unavailable_on_redis_errors,
    index_workflow_run,
    app_tag,
    workflow_tag,
)

APPS_KEY = f"{PREFIX}:apps"
_SCAN_COUNT = 1000

# KEYS: counter, app timeline, then one history zset per invocation.
# ARGV: score, payload, then the escaped invocation ids (same order as the zsets).
_ADD_HISTORY = """
local n = #KEYS - 2
local last = redis.call('INCRBY', KEYS[1], n)
for i = 1, n do
  local member = string.format('%016x', last - n + i) .. '|' .. ARGV[i + 2] .. '|' .. ARGV[2]
  redis.call('ZADD', KEYS[2], ARGV[1], member)
  redis.call('ZADD', KEYS[i + 2], ARGV[1], member)
end
return n
"""

# A workflow purge drops a run from the app's indexes, and its type from the type list when
# no run of that type is left. KEYS: runs, runs:<type>, wf_types. ARGV: member, type.
_DROP_RUN = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
return removed
"""

# Per-invocation keys of StateBackendService, and the executor's task hash.
_INVOCATION_SUFFIXES = ("inv", "hist", "result", "exc", "children", "projected")
# Per-workflow keys: recorded operations, data, deterministic values, invocation indexes.
_WORKFLOW_SUFFIXES = ("ops", "data", "dv", "invs", "subs")

Cursor = tuple[float, str]  # (score, member) of the last item returned; opaque to the service


@dataclass(frozen=True)
class InvocationRecord:
    """An invocation as indexed here; `payload` is the service's encoding of the rest."""

    invocation_id: str
    payload: str
    workflow_id: str = ""
    workflow_type: str = ""
    parent_invocation_id: str = ""

    def encode(self) -> str:
        return json.dumps([self.workflow_id, self.workflow_type, self.parent_invocation_id, self.payload],
                          separators=(",", ":"))

    @classmethod
    def decode(cls, invocation_id: str, text: str) -> InvocationRecord:
        workflow_id, workflow_type, parent, payload = json.loads(text)
        return cls(invocation_id, payload, workflow_id, workflow_type, parent)


@dataclass(frozen=True)
class HistoryRecord:
    invocation_id: str
    timestamp_us: int
    payload: str


@dataclass(frozen=True)
class HistoryEvent:
    """A history entry projected from the executor; `event_id` names what happened (unique per
    invocation), so projecting it again appends nothing."""

    event_id: str
    timestamp_us: int
    payload: str


@dataclass(frozen=True)
class ProjectedInvocation:
    """What StateBackendService shows of one executor invocation (projection.py), written in
    one atomic, idempotent step."""

    record: InvocationRecord
    events: tuple[HistoryEvent, ...] = ()
    result_json: str | None = None
    exception: str | None = None
    # The workflow whose sub-invocations list it ("" for none).
    sub_invocation_of: str = ""
    # (runner id, runner context payload), stored unless a context with that id is.
    runner: tuple[str, str] | None = None


@dataclass
class _PurgePlan:
    keys: list[str] = field(default_factory=list)
    set_members: dict[str, list[str]] = field(default_factory=dict)
    timeline_members: list[str] = field(default_factory=list)
    runs: list[WorkflowRef] = field(default_factory=list)


def glob_escape(text: str) -> str:
    """Make text match itself literally in a Redis MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _history_record(member: str, score: float) -> HistoryRecord:
    _, escaped_id, payload = member.split("|", 2)
    return HistoryRecord(unescape(escaped_id), int(score), payload)


class StateBackendStore(Protocol):
    """What StateBackendService stores. Payloads are opaque text (the service's encoding);
    times are integer microseconds since the Unix epoch; id lists come back sorted."""

    async def purge_app(self, app_id: str) -> int:
        """Delete everything of the app (the executor's state too) and its app info."""

    async def purge_workflow(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None) -> int:
        """Delete everything of one workflow, atomically, and take it out of every index:
        recorded operations, data, deterministic values, its tasks (the main task and every
        task recorded in its log, except child workflows: those are workflows of their own),
        the StateBackend invocations of the workflow (record, history, result, exception,
        children), its runs and, when none of its type is left, its type. `runs`, when given,
        are its run identities (saves looking them up). Returns how much was deleted: 0 when
        nothing of the workflow was there."""

    async def store_app_info(self, app_id: str, payload: str) -> None: ...

    async def get_app_info(self, app_id: str) -> str | None: ...

    async def all_app_infos(self) -> dict[str, str]: ...

    async def upsert_invocations(self, app_id: str, records: list[InvocationRecord]) -> None:
        """All or nothing; the last of repeated ids wins; a replaced invocation leaves the
        indexes (children, workflow, type) of its former values."""

    async def get_invocation(self, app_id: str, invocation_id: str) -> InvocationRecord | None: ...

    async def project_invocation(self, app_id: str, projected: ProjectedInvocation) -> int:
        """Write the projection atomically: the record replaced (its indexes added; those of a
        former record under that id with other values stay), each event appended to the
        history unless one with its id was, result, exception, sub-invocation entry, and the
        runner context unless one is stored. Returns how many history entries were appended."""

    async def child_invocations(self, app_id: str, parent_invocation_id: str) -> list[str]: ...

    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str) -> list[str]:
        """Invocations of the workflow, of the type, or of both (an empty argument is no filter)."""

    async def add_history(self, app_id: str, invocation_ids: list[str], timestamp_us: int, payload: str) -> None:
        """One entry per distinct invocation, atomically; identical entries are kept apart."""

    async def get_history(self, app_id: str, invocation_id: str) -> list[HistoryRecord]:
        """Oldest first; entries of the same microsecond in arrival order."""

    def history_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                         ) -> AsyncIterator[list[HistoryRecord]]:
        """Every entry of the app in [start, end], in get_history's order, in batches of at
        most batch_size; entries added meanwhile shift no batch."""

    def invocations_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                             ) -> AsyncIterator[list[str]]:
        """Each invocation with an entry in [start, end] once, at its first entry."""

    async def set_result(self, app_id: str, invocation_id: str, result_json: str) -> None: ...

    async def get_result(self, app_id: str, invocation_id: str) -> str | None: ...

    async def set_exception(self, app_id: str, invocation_id: str, payload: str) -> None: ...

    async def get_exception(self, app_id: str, invocation_id: str) -> str | None: ...

    async def get_workflow_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        """The same data the deterministic executor's Store reads and writes."""

    async def set_workflow_data(self, app_id: str, workflow_id: str, key: str, value_json: str) -> None: ...

    async def get_deterministic_value(self, app_id: str, workflow_id: str, key: str) -> str | None: ...

    async def set_deterministic_value(self, app_id: str, workflow_id: str, key: str, value_json: str) -> tuple[str, bool]:
        """Store unless stored (first writer wins, atomically); return (stored value, replayed)."""

    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        """The same runs the executor's Store records; a run stored again keeps its first time."""

    async def workflow_types(self, app_id: str) -> list[str]: ...

    async def workflow_runs(self, app_id: str, workflow_type: str, page_size: int, after: Cursor | None
                            ) -> tuple[list[WorkflowRef], Cursor | None]:
        """One page of runs, oldest first, and the cursor of the next page (None on the last)."""

    async def store_sub_invocation(self, app_id: str, workflow_id: str, invocation_id: str) -> None: ...

    async def sub_invocations(self, app_id: str, workflow_id: str) -> list[str]: ...

    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None: ...

    async def get_runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str | None]:
        """One payload or None per runner id, in the order asked."""

    async def search_runner_contexts(self, app_id: str, partial_id: str) -> list[tuple[str, str]]:
        """(runner id, payload) of every runner whose id contains partial_id literally, by id."""

    async def close(self) -> None: ...


async def first_sightings(pages: AsyncIterator[list[HistoryRecord]], batch_size: int) -> AsyncIterator[list[str]]:
    """Each invocation of the history pages once, at its first entry, in batches.

    The seen set grows with the number of distinct invocations, not with their entries."""
    seen: set[str] = set()
    pending: list[str] = []
    async for records in pages:
        for record in records:
            if record.invocation_id not in seen:
                seen.add(record.invocation_id)
                pending.append(record.invocation_id)
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]
    if pending:
        yield pending


class RedisStateBackendStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._add_history = client.register_script(_ADD_HISTORY)
        self._project = client.register_script(_script("project.lua"))

    async def close(self) -> None:
        """Nothing to do: the client belongs to the RedisStore it was taken from."""

    # --- keys ----------------------------------------------------------------------
    @staticmethod
    def _inv(app_id: str, invocation_id: str, suffix: str) -> str:
        return f"{workflow_tag(app_id, invocation_id)}:{suffix}"

    @staticmethod
    def _by_type(app_id: str, workflow_type: str) -> str:
        return f"{app_tag(app_id)}:invs_by_type:{escape(workflow_type)}"

    def _index_keys(self, app_id: str, record: InvocationRecord) -> list[str]:
        keys = []
        if record.parent_invocation_id:
            keys.append(self._inv(app_id, record.parent_invocation_id, "children"))
        if record.workflow_id:
            keys.append(workflow_tag(app_id, record.workflow_id) + ":invs")
        if record.workflow_type:
            keys.append(self._by_type(app_id, record.workflow_type))
        return keys

    # --- app -----------------------------------------------------------------------
    @_unavailable_on_redis_errors
    async def purge_app(self, app_id: str) -> int:
        # Every key of the app has the escaped app id right after "{", followed by "}" (app
        # keys) or ":" (workflow/invocation keys); escaped ids hold neither, so no other
        # app's keys match.
        pattern = f"{glob_escape(PREFIX)}:{{{glob_escape(escape(app_id))}[:}}]*"
        deleted = 0
        async for batch in self._scan_batches(pattern):
            deleted += await self.client.unlink(*batch)
        await self.client.hdel(APPS_KEY, app_id)
        await self.client.srem(APP_IDS_KEY, app_id)
        return deleted

    @_unavailable_on_redis_errors
    async def purge_workflow(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None) -> int:
        tag = workflow_tag(app_id, workflow_id)
        watched = [tag + ":ops", tag + ":invs", self._inv(app_id, workflow_id, "task")]
        # WATCH: a write to the workflow while the purge reads what to delete starts it again.
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*watched)
                    plan = await self._purge_plan(pipe, app_id, workflow_id, runs)
                    pipe.multi()
                    for key in plan.keys:
                        pipe.delete(key)
                    for key, members in plan.set_members.items():
                        pipe.srem(key, *members)
                    if plan.timeline_members:
                        pipe.zrem(app_tag(app_id) + ":timeline", *plan.timeline_members)
                    atag = app_tag(app_id)
                    for ref in plan.runs:
                        pipe.eval(_DROP_RUN, 3, atag + ":runs", f"{atag}:runs:{escape(ref.workflow_type)}",
                                  atag + ":wf_types", ref.encode(), ref.workflow_type)
                    results = await pipe.execute()
                    deleted_keys = results[:len(plan.keys)]
                    dropped_runs = results[len(results) - len(plan.runs):]
                    return sum(map(int, deleted_keys)) + sum(map(int, dropped_runs))
                except redis_errors.WatchError:
                    continue

    async def _purge_plan(self, pipe, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None) -> _PurgePlan:
        """What purging the workflow deletes (read under WATCH, in immediate mode)."""
        tag = workflow_tag(app_id, workflow_id)
        plan = _PurgePlan()
        plan.keys += [f"{tag}:{suffix}" for suffix in _WORKFLOW_SUFFIXES]
        # The executor's tasks: the main task, and those its log recorded in this workflow.
        task_ids = {workflow_id}
        cursor = 0
        while True:
            cursor, chunk = await pipe.hscan(tag + ":ops", cursor, count=_SCAN_COUNT)
            for name, value in chunk.items():
                pos = parse_field(workflow_id, name)
                if pos is not None and pos.kind is Kind.TASK:
                    call = TaskCall.decode(value)
                    if not call.force_new_workflow:
                        task_ids.add(call.invocation_id)
            if cursor == 0:
                break
        plan.keys += [self._inv(app_id, i, "task") for i in sorted(task_ids)]
        # The StateBackend invocations of the workflow (and any StateBackend state of its
        # tasks), and where they are indexed.
        invocation_ids = sorted(set(await pipe.smembers(tag + ":invs")) | task_ids)
        for invocation_id in invocation_ids:
            plan.keys += [self._inv(app_id, invocation_id, suffix) for suffix in _INVOCATION_SUFFIXES]
            text = await pipe.get(self._inv(app_id, invocation_id, "inv"))
            if text is not None:
                for index in self._index_keys(app_id, InvocationRecord.decode(invocation_id, text)):
                    if index != tag + ":invs":
                        plan.set_members.setdefault(index, []).append(invocation_id)
            plan.timeline_members += await pipe.zrange(self._inv(app_id, invocation_id, "hist"), 0, -1)
        # Its runs: as given, else as its main task names it, else found in the run index.
        found = list(runs or [])
        main_task = await pipe.hget(self._inv(app_id, workflow_id, "task"), "wf")
        if main_task is not None:
            found.append(WorkflowRef.decode(main_task))
        if not found:
            # Members are WorkflowRef.encode(): '["<id>","<type>","<parent>"]'.
            prefix = json.dumps([workflow_id])[:-1] + ","
            async for member, _ in pipe.zscan_iter(app_tag(app_id) + ":runs", match=glob_escape(prefix) + "*",
                                                   count=_SCAN_COUNT):
                found.append(WorkflowRef.decode(member))
        plan.runs = list(dict.fromkeys(ref for ref in found if ref.workflow_id == workflow_id))
        return plan

    async def _scan_batches(self, pattern: str) -> AsyncIterator[list[str]]:
        cursor = 0
        while True:
            cursor, keys = await self.client.scan(cursor, match=pattern, count=_SCAN_COUNT)
            if keys:
                yield keys
            if cursor == 0:
                return

    @_unavailable_on_redis_errors
    async def store_app_info(self, app_id: str, payload: str) -> None:
        await self.client.hset(APPS_KEY, app_id, payload)

    @_unavailable_on_redis_errors
    async def get_app_info(self, app_id: str) -> str | None:
        return await self.client.hget(APPS_KEY, app_id)

    @_unavailable_on_redis_errors
    async def all_app_infos(self) -> dict[str, str]:
        return await self.client.hgetall(APPS_KEY)

    # --- invocations ---------------------------------------------------------------
    @_unavailable_on_redis_errors
    async def upsert_invocations(self, app_id: str, records: list[InvocationRecord]) -> None:
        latest = {r.invocation_id: r for r in records}  # the last of repeated ids wins
        keys = [self._inv(app_id, i, "inv") for i in latest]
        # WATCH, so that index entries of a replaced invocation are removed even when
        # another caller replaces it at the same time.
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    previous = await pipe.mget(keys)
                    pipe.multi()
                    for key, record, old_text in zip(keys, latest.values(), previous):
                        new_index = self._index_keys(app_id, record)
                        if old_text is not None:
                            old = InvocationRecord.decode(record.invocation_id, old_text)
                            for stale in set(self._index_keys(app_id, old)) - set(new_index):
                                pipe.srem(stale, record.invocation_id)
                        pipe.set(key, record.encode())
                        for index in new_index:
                            pipe.sadd(index, record.invocation_id)
                    await pipe.execute()
                    return
                except redis_errors.WatchError:
                    continue

    @_unavailable_on_redis_errors
    async def get_invocation(self, app_id: str, invocation_id: str) -> InvocationRecord | None:
        text = await self.client.get(self._inv(app_id, invocation_id, "inv"))
        return None if text is None else InvocationRecord.decode(invocation_id, text)

    @_unavailable_on_redis_errors
    async def project_invocation(self, app_id: str, projected: ProjectedInvocation) -> int:
        record = projected.record
        invocation_id = record.invocation_id
        tag, inv = app_tag(app_id), workflow_tag(app_id, invocation_id)
        subs = workflow_tag(app_id, projected.sub_invocation_of) + ":subs" if projected.sub_invocation_of \
            else tag + ":runners"  # unused when there is none; any key of the app will do
        keys = [tag + ":hist_seq", tag + ":timeline", inv + ":inv", inv + ":hist", inv + ":projected",
                inv + ":result", inv + ":exc", tag + ":runners", subs, *self._index_keys(app_id, record)]
        runner_id, runner_payload = projected.runner or ("", "")
        args = [invocation_id, escape(invocation_id), record.encode(), projected.result_json or "",
                "0" if projected.result_json is None else "1", projected.exception or "", runner_id,
                runner_payload, "1" if projected.sub_invocation_of else "0"]
        for event in projected.events:
            args += [event.event_id, event.timestamp_us, event.payload]
        return int(await self._project(keys=keys, args=args))

    @_unavailable_on_redis_errors
    async def child_invocations(self, app_id: str, parent_invocation_id: str) -> list[str]:
        return sorted(await self.client.smembers(self._inv(app_id, parent_invocation_id, "children")))

    @_unavailable_on_redis_errors
    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str) -> list[str]:
        by_type = self._by_type(app_id, workflow_type) if workflow_type else ""
        if not workflow_id:
            return sorted(await self.client.smembers(by_type))
        ids = sorted(await self.client.smembers(workflow_tag(app_id, workflow_id) + ":invs"))
        if not by_type or not ids:
            return ids
        # SMISMEMBER, not SINTER: the two sets sit under different hash tags.
        flags = await self.client.smismember(by_type, ids)
        return [i for i, flag in zip(ids, flags) if flag]

    # --- history -------------------------------------------------------------------
    @_unavailable_on_redis_errors
    async def add_history(self, app_id: str, invocation_ids: list[str], timestamp_us: int, payload: str) -> None:
        ids = list(dict.fromkeys(invocation_ids))
        tag = app_tag(app_id)
        keys = [tag + ":hist_seq", tag + ":timeline", *(self._inv(app_id, i, "hist") for i in ids)]
        await self._add_history(keys=keys, args=[timestamp_us, payload, *(escape(i) for i in ids)])

    @_unavailable_on_redis_errors
    async def get_history(self, app_id: str, invocation_id: str) -> list[HistoryRecord]:
        rows = await self.client.zrange(self._inv(app_id, invocation_id, "hist"), 0, -1, withscores=True)
        return [_history_record(member, score) for member, score in rows]

    async def history_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                               ) -> AsyncIterator[list[HistoryRecord]]:
        async for rows in self._zrange_pages(app_tag(app_id) + ":timeline", str(start_us), str(end_us), batch_size):
            yield [_history_record(member, score) for member, score in rows]

    def invocations_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                             ) -> AsyncIterator[list[str]]:
        return first_sightings(self.history_in_range(app_id, start_us, end_us, batch_size), batch_size)

    async def _zrange_pages(self, key: str, low: str, high: str, size: int) -> AsyncIterator[list[tuple[str, float]]]:
        after: Cursor | None = None
        while page := await self._zrange_page(key, low, high, size, after):
            yield page
            after = (page[-1][1], page[-1][0])

    @_unavailable_on_redis_errors
    async def _zrange_page(self, key: str, low: str, high: str, size: int, after: Cursor | None) -> list[tuple[str, float]]:
        """Up to `size` (member, score) in [low, high] after the cursor, in zset order.

        Keyset paging from the last (score, member) seen, not offsets: members added
        meanwhile shift no page, so nothing is repeated or skipped."""
        page: list[tuple[str, float]] = []
        offset = 0
        while len(page) < size:
            rows = await self.client.zrangebyscore(key, repr(after[0]) if after else low, high,
                                                   start=offset, num=size, withscores=True)
            if not rows:
                break
            offset += len(rows)
            # Only members sharing the cursor's score can sort at or before it.
            page.extend(r for r in rows if after is None or (r[1], r[0]) > after)
        return page[:size]

    # --- results -------------------------------------------------------------------
    @_unavailable_on_redis_errors
    async def set_result(self, app_id: str, invocation_id: str, result_json: str) -> None:
        await self.client.set(self._inv(app_id, invocation_id, "result"), result_json)

    @_unavailable_on_redis_errors
    async def get_result(self, app_id: str, invocation_id: str) -> str | None:
        return await self.client.get(self._inv(app_id, invocation_id, "result"))

    @_unavailable_on_redis_errors
    async def set_exception(self, app_id: str, invocation_id: str, payload: str) -> None:
        await self.client.set(self._inv(app_id, invocation_id, "exc"), payload)

    @_unavailable_on_redis_errors
    async def get_exception(self, app_id: str, invocation_id: str) -> str | None:
        return await self.client.get(self._inv(app_id, invocation_id, "exc"))

    # --- workflow data and deterministic values ------------------------------------
    @_unavailable_on_redis_errors
    async def get_workflow_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":data", key)

    @_unavailable_on_redis_errors
    async def set_workflow_data(self, app_id: str, workflow_id: str, key: str, value_json: str) -> None:
        await self.client.hset(workflow_tag(app_id, workflow_id) + ":data", key, value_json)

    @_unavailable_on_redis_errors
    async def get_deterministic_value(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":dv", key)

    @_unavailable_on_redis_errors
    async def set_deterministic_value(self, app_id: str, workflow_id: str, key: str, value_json: str) -> tuple[str, bool]:
        """Store unless stored; return (stored value, replayed)."""
        hash_key = workflow_tag(app_id, workflow_id) + ":dv"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(hash_key, key, value_json)
            pipe.hget(hash_key, key)
            created, stored = await pipe.execute()
        return stored, not created

    # --- workflow runs -------------------------------------------------------------
    @_unavailable_on_redis_errors
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        # The same index as RedisStore's, so runs started through DeterministicExecutorService
        # are listed here too.
        await index_workflow_run(self.client, app_id, workflow, now_us)

    @_unavailable_on_redis_errors
    async def workflow_types(self, app_id: str) -> list[str]:
        return sorted(await self.client.smembers(app_tag(app_id) + ":wf_types"))

    async def workflow_runs(self, app_id: str, workflow_type: str, page_size: int, after: Cursor | None
                            ) -> tuple[list[WorkflowRef], Cursor | None]:
        """One page of runs, oldest first, and the cursor of the next page (None on the last)."""
        tag = app_tag(app_id)
        key = f"{tag}:runs:{escape(workflow_type)}" if workflow_type else tag + ":runs"
        # One more than asked, to know whether another page follows.
        rows = await self._zrange_page(key, "-inf", "+inf", page_size + 1, after)
        page = rows[:page_size]
        cursor = (page[-1][1], page[-1][0]) if len(rows) > page_size else None
        return [WorkflowRef.decode(member) for member, _ in page], cursor

    @_unavailable_on_redis_errors
    async def store_sub_invocation(self, app_id: str, workflow_id: str, invocation_id: str) -> None:
        await self.client.sadd(workflow_tag(app_id, workflow_id) + ":subs", invocation_id)

    @_unavailable_on_redis_errors
    async def sub_invocations(self, app_id: str, workflow_id: str) -> list[str]:
        return sorted(await self.client.smembers(workflow_tag(app_id, workflow_id) + ":subs"))

    # --- runner contexts -----------------------------------------------------------
    @_unavailable_on_redis_errors
    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None:
        await self.client.hset(app_tag(app_id) + ":runners", runner_id, payload)

    @_unavailable_on_redis_errors
    async def get_runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str | None]:
        if not runner_ids:
            return []
        return await self.client.hmget(app_tag(app_id) + ":runners", runner_ids)

    @_unavailable_on_redis_errors
    async def search_runner_contexts(self, app_id: str, partial_id: str) -> list[tuple[str, str]]:
        """(runner id, payload) of every runner whose id contains partial_id, by id."""
        found: dict[str, str] = {}
        pattern = f"*{glob_escape(partial_id)}*"
        async for runner_id, payload in self.client.hscan_iter(app_tag(app_id) + ":runners", match=pattern,
                                                                count=_SCAN_COUNT):
            if partial_id in runner_id:  # the pattern already says so; this keeps it literal for sure
                found[runner_id] = payload
        return sorted(found.items())
