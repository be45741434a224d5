"""Pynenc's StateBackend storage on Redis: RedisStateBackendStore implements
storage.interface.StateBackendStore (as sqlite/state_backend_store.py does on SQLite);
tests/conformance runs both.

Redis key layout (keys.py builds the shared ones; executor_store.py describes the executor's):
    psc:{<app>}:inv:<inv>          string  [workflow_id, workflow_type, parent_id, payload, event_id]
    psc:{<app>}:hist:<inv>         zset    the invocation's history (members below)
    psc:{<app>}:result:<inv>       string  result (core.payloads encoding)
    psc:{<app>}:exc:<inv>          string  exception payload
    psc:{<app>}:children:<inv>     zset*   invocations whose parent is <inv>
    psc:{<app>}:projected:<inv>    hash    event ids of the history entries projected from the
                                           executor (projection.py), each appended once
    psc:{<app>}:invs:<wf>          zset*   invocations of the workflow
    psc:{<app>}:subs:<wf>          zset*   sub-invocations run inside the workflow
    psc:{<app>:<wf>}:data          hash    workflow data (the same hash RedisStore uses)
    psc:{<app>:<wf>}:dv            hash    deterministic values, first writer wins
    psc:{<app>}:wf_types, :runs, :runs:<type>   workflow runs (shared with RedisStore)
    psc:{<app>}:invs_by_type:<type> zset*  invocations of workflows of a type
    psc:{<app>}:invs_by_event:<ev> zset*   invocations whose parent event is <ev>
    psc:{<app>}:timeline           zset    every history entry of the app
    psc:{<app>}:hist_seq           string  counter that makes history members unique
    psc:{<app>}:hist_payloads      hash    payload digest -> history payload, stored once
    psc:{<app>}:hist_refs          hash    payload digest -> how many history entries name it
    psc:{<app>}:runners            hash    runner id -> runner context payload
    psc:{<app>}:runner_ids         zset*   the runners' ids (paged search)
    psc:apps                       hash    app id -> app info payload (discovery, all apps)
    psc:app_ids                    set     apps that stored a run (keys.APP_IDS_KEY)

zset*: an id index, every member scored 0, so that ZRANGEBYLEX pages it in id order from the
last id seen (bounded memory, nothing repeated or skipped when ids are added meanwhile).
Versions before paging kept these as sets: a script meeting a set converts it first
(AS_ZSET), and :runner_ids is built from :runners when missing.

A history entry is "<seq:016x>:<payload digest>" in its invocation's :hist and
"<seq:016x>:<payload digest>|<escaped invocation id>" in the app's :timeline, scored by the
entry's time in microseconds: the sequence keeps identical entries apart and orders entries
of the same microsecond by arrival, and the escaped id (which never holds '|') lets a
time-range scan name the invocation. The digest is the payload's SHA-256, unpadded base64url
(43 characters, so that a :hist member stays within Redis's compact listpack encoding, 64
bytes). The payload itself is stored once per app under it (:hist_payloads), with a count of
the entries naming it (:hist_refs): one AddHistory for 1,000 invocations stores its execution
context once, not 2,000 times. A purge drops the references of the entries it deletes and a
payload with none left (_DROP_HISTORY); purge_app deletes both hashes with the app's other keys.
Entries written before that held the payload inline, "<seq:016x>|<escaped id>|<payload>" in
both zsets (three fields: a digest member has one or two); they are still read as they are.

Payloads are opaque text to this module: the service layer decides their encoding.
Every StateBackend key of an app shares the app's hash tag, so a write touching several of
them is one MULTI or Lua script on one slot, on one Redis and on Redis Cluster alike. A
workflow purge also deletes executor keys of other tags: it runs as ordered single-tag steps
(purge_workflow; docs/deployment.md, "Steps that are not atomic across slots").
"""

from __future__ import annotations

import base64
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as redis_errors

from pynenc_sidecar.core.positions import escape, unescape
from pynenc_sidecar.core.task_rules import run_prefix, tasks_of_workflow
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.storage.history import first_sightings, payload_digest
from pynenc_sidecar.storage.interface import (
    Cursor,
    HistoryCursor,
    HistoryRecord,
    InvocationRecord,
    ProjectedInvocation,
    PurgeCounts,
)
from pynenc_sidecar.storage.redis.connection import (
    DecodedRedis,
    load_script,
    redis_unavailable,
    unavailable_on_redis_errors,
)
from pynenc_sidecar.storage.redis.keys import (
    APP_IDS_KEY,
    APPS_KEY,
    app_pattern,
    app_tag,
    glob_escape,
    invocation_key,
    parse_task_key,
    run_keys,
    runs_key,
    task_key,
    workflow_tag,
)
from pynenc_sidecar.storage.redis.paging import ScorePager, scan_key_batches
from pynenc_sidecar.storage.redis.run_index import DROP_RUN, index_workflow_run

_SCAN_COUNT = 1000
_SEARCH_CHUNKS = 10  # runner ids looked at per search call: _SEARCH_CHUNKS * _SCAN_COUNT

# KEYS: counter, app timeline, then one history zset per invocation.
# ARGV: score, payload, then the escaped invocation ids (same order as the zsets).
# Converts an id index written as a set by an earlier version into a zset (scores 0).
AS_ZSET = """
local function as_zset(key)
  if redis.call('TYPE', key).ok == 'set' then
    local members = redis.call('SMEMBERS', key)
    redis.call('DEL', key)
    for _, member in ipairs(members) do redis.call('ZADD', key, 0, member) end
  end
end
"""

# KEYS: id indexes. ARGV: 'add' or 'rem', the id.
_INDEX = AS_ZSET + """
for _, key in ipairs(KEYS) do
  as_zset(key)
  if ARGV[1] == 'add' then redis.call('ZADD', key, 0, ARGV[2]) else redis.call('ZREM', key, ARGV[2]) end
end
return #KEYS
"""

# KEYS: an id index. ARGV: the lex minimum ('-' or '(' .. last id), count (-1: all).
_LEX_PAGE = AS_ZSET + """
as_zset(KEYS[1])
return redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
"""

# KEYS: an id index. ARGV: ids. -> 1 or 0 per id: whether the index holds it.
_LEX_HOLDS = AS_ZSET + """
as_zset(KEYS[1])
local held = {}
for i, id in ipairs(ARGV) do held[i] = redis.call('ZSCORE', KEYS[1], id) and 1 or 0 end
return held
"""

# KEYS: runners hash, runner_ids zset. Builds the zset when a runner is missing from it
# (runners stored by a version before paging).
_RUNNER_IDS = """
if redis.call('ZCARD', KEYS[2]) < redis.call('HLEN', KEYS[1]) then
  for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do redis.call('ZADD', KEYS[2], 0, id) end
end
return 1
"""

# KEYS: counter, app timeline, payloads, payload references, then one history zset per
# invocation. ARGV: score, payload, its digest, then the escaped invocation ids (same order).
# The payload is stored once, however many entries name it (see "History members" above).
_ADD_HISTORY = """
local n = #KEYS - 4
local last = redis.call('INCRBY', KEYS[1], n)
redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[2])
redis.call('HINCRBY', KEYS[4], ARGV[3], n)
for i = 1, n do
  local member = string.format('%016x', last - n + i) .. ':' .. ARGV[3]
  redis.call('ZADD', KEYS[2], ARGV[1], member .. '|' .. ARGV[i + 3])
  redis.call('ZADD', KEYS[i + 4], ARGV[1], member)
end
return n
"""

# A purge takes the invocations' entries out of the app timeline and drops their payload
# references; a payload goes when no entry names it any more. Run inside the purge's MULTI,
# so it sees entries added up to the moment of the purge. KEYS: timeline, payloads,
# references, then the history zsets (deleted by the purge itself). ARGV: the escaped
# invocation id of each history zset.
_DROP_HISTORY = """
local dropped = 0
for k = 4, #KEYS do
  for _, member in ipairs(redis.call('ZRANGE', KEYS[k], 0, -1)) do
    if string.find(member, '|', 1, true) then  -- an inline entry: the same member in both
      redis.call('ZREM', KEYS[1], member)
    else
      redis.call('ZREM', KEYS[1], member .. '|' .. ARGV[k - 3])
      local digest = string.sub(member, 18)
      if redis.call('HINCRBY', KEYS[3], digest, -1) <= 0 then
        redis.call('HDEL', KEYS[3], digest)
        redis.call('HDEL', KEYS[2], digest)
      end
    end
    dropped = dropped + 1
  end
end
return dropped
"""

# Per-invocation keys of StateBackendService (under the app's tag).
_INVOCATION_SUFFIXES = ("inv", "hist", "result", "exc", "children", "projected")
# Per-workflow keys under the workflow's tag: recorded operations, data, deterministic values;
# and under the app's tag: its invocation indexes.
_WORKFLOW_SUFFIXES = ("ops", "data", "dv")
_WORKFLOW_INDEXES = ("invs", "subs")

@dataclass
class _ExecutorPlan:
    task_ids: list[str]
    task_keys: list[str]
    workflow_keys: list[str]
    runs: list[WorkflowRef]


@dataclass
class _PurgePlan:
    keys: list[str] = field(default_factory=list)
    set_members: dict[str, list[str]] = field(default_factory=dict)
    histories: list[str] = field(default_factory=list)
    history_ids: list[str] = field(default_factory=list)  # the invocation of each history key
    runs: list[WorkflowRef] = field(default_factory=list)


async def in_pipeline(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
    """Run a registered script in a pipeline: at once while the pipeline watches (immediate
    mode), else queued in its MULTI. By EVAL of the text: redis-py's cluster pipeline refuses
    EVALSHA, and a queued EVALSHA of a script the server lacks would fail the whole MULTI."""
    result = pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
    return await result if inspect.isawaitable(result) and not hasattr(result, "execute") else None


def _redis_digest(payload: str) -> str:
    return base64.urlsafe_b64encode(payload_digest(payload)).rstrip(b"=").decode()


def _by_type(app_id: str, workflow_type: str) -> str:
    return f"{app_tag(app_id)}:invs_by_type:{escape(workflow_type)}"


def _by_event(app_id: str, parent_event_id: str) -> str:
    return f"{app_tag(app_id)}:invs_by_event:{escape(parent_event_id)}"


def index_keys(app_id: str, record: InvocationRecord) -> list[str]:
    """The id indexes that list the record: by parent event, parent, workflow and type."""
    keys = []
    if record.parent_event_id:
        keys.append(_by_event(app_id, record.parent_event_id))
    if record.parent_invocation_id:
        keys.append(invocation_key(app_id, record.parent_invocation_id, "children"))
    if record.workflow_id:
        keys.append(invocation_key(app_id, record.workflow_id, "invs"))
    if record.workflow_type:
        keys.append(_by_type(app_id, record.workflow_type))
    return keys


def projection_step(app_id: str, projected: ProjectedInvocation) -> tuple[list[str], list[str | int]]:
    """project_rules.lua's keys and arguments for the projection: run alone (project.lua) or in
    the task transition's script on one Redis (executor_store, task_fused.lua)."""
    record = projected.record
    invocation_id = record.invocation_id
    tag = app_tag(app_id)
    subs = invocation_key(app_id, projected.sub_invocation_of, "subs") if projected.sub_invocation_of \
        else tag + ":runners"  # unused when there is none; any key of the app will do
    keys = [tag + ":hist_seq", tag + ":timeline",
            *(invocation_key(app_id, invocation_id, suffix)
              for suffix in ("inv", "hist", "projected", "result", "exc")),
            tag + ":runners", tag + ":runner_ids", subs,
            tag + ":hist_payloads", tag + ":hist_refs", *index_keys(app_id, record)]
    runner_id, runner_payload = projected.runner or ("", "")
    args: list[str | int] = [invocation_id, escape(invocation_id), record.encode(), projected.result_json or "",
                             "0" if projected.result_json is None else "1", projected.exception or "", runner_id,
                             runner_payload, "1" if projected.sub_invocation_of else "0"]
    for event in projected.events:
        args += [event.event_id, event.timestamp_us, event.payload, _redis_digest(event.payload)]
    return keys, args


def _member_parts(member: str) -> tuple[int, str | None, str | None, str]:
    """(sequence, escaped invocation id (None in a :hist member), inline payload or None,
    payload digest or "")."""
    head, *rest = member.split("|", 2)
    if len(rest) == 2:  # written before payloads were stored once
        return int(head, 16), rest[0], rest[1], ""
    seq, digest = head.split(":", 1)
    return int(seq, 16), rest[0] if rest else None, None, digest


def _member_seq(member: str) -> int:
    return int(member[:16], 16)


def _lex_after(after: str | None) -> str:
    return "-" if after is None else "(" + after


class RedisStateBackendStore:
    purge_unit = "keys"  # what PurgeCounts.entries counts

    def __init__(self, client: DecodedRedis) -> None:
        self.client = client
        self._add_history = client.register_script(_ADD_HISTORY)
        self._drop_history = client.register_script(_DROP_HISTORY)
        self._pager = ScorePager(client)
        self._index = client.register_script(_INDEX)
        self._lex_page_script = client.register_script(_LEX_PAGE)
        self._lex_holds = client.register_script(_LEX_HOLDS)
        self._runner_ids = client.register_script(_RUNNER_IDS)
        self._project = client.register_script(AS_ZSET + load_script("project.lua"))

    async def close(self) -> None:
        """Nothing to do: the client belongs to the RedisStore it was taken from."""

    # --- keys ----------------------------------------------------------------------
    @staticmethod
    def _inv(app_id: str, invocation_id: str, suffix: str) -> str:
        """A StateBackend key of one invocation (or of one workflow: invs, subs). Under the
        app's hash tag, with every other StateBackend key: each write is one slot."""
        return invocation_key(app_id, invocation_id, suffix)

    async def _lex_page(self, key: str, limit: int | None, after: str | None, pipe: Any = None) -> list[str]:
        args: list[str | int] = [_lex_after(after), -1 if limit is None else limit]
        if pipe is not None:
            return list(await in_pipeline(pipe, self._lex_page_script, [key], args))
        return list(await self._lex_page_script(keys=[key], args=args))

    # --- app -----------------------------------------------------------------------
    @unavailable_on_redis_errors
    async def purge_app(self, app_id: str, *, keep_app_info: bool = False) -> int:
        deleted = 0
        async for batch in scan_key_batches(self.client, app_pattern(app_id), _SCAN_COUNT):
            deleted += await self.client.unlink(*batch)
        if not keep_app_info:
            await self.client.hdel(APPS_KEY, app_id)
        await self.client.srem(APP_IDS_KEY, app_id)
        return deleted

    @unavailable_on_redis_errors
    async def purge_workflow(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None) -> int:
        # Three steps, each of one hash tag (Redis Cluster runs no MULTI across slots), in an
        # order a crash cannot break: every step deletes only what the steps after it do not
        # need to find their keys, and the run index entry, by which a sweep or an operator
        # finds the workflow again, goes last. A purge cut short is finished by purging again.
        executor = await self._executor_plan(app_id, workflow_id, runs)
        deleted = 0
        if executor.task_keys:  # 1. the tasks (each its own tag), found from the record hash
            deleted += await self.client.unlink(*executor.task_keys)
        deleted += await self.client.unlink(*executor.workflow_keys)  # 2. the workflow's tag
        return deleted + await self._purge_state_backend(app_id, workflow_id, executor)  # 3. the app's tag

    async def _executor_plan(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None) -> _ExecutorPlan:
        """The executor's keys of the workflow: its tasks (the main task, and those its log
        recorded in this workflow) and its record, data and deterministic values; and its runs
        as given or as its main task names them."""
        tag = workflow_tag(app_id, workflow_id)
        log = [item async for item in self.client.hscan_iter(tag + ":ops", count=_SCAN_COUNT)]
        task_ids = sorted(tasks_of_workflow(workflow_id, log))
        found = list(runs or [])
        main_task = await self.client.hget(task_key(app_id, workflow_id), "wf")
        if main_task is not None:
            found.append(WorkflowRef.decode(main_task))
        return _ExecutorPlan(task_ids, [task_key(app_id, i) for i in task_ids],
                             [f"{tag}:{suffix}" for suffix in _WORKFLOW_SUFFIXES], found)

    async def _purge_state_backend(self, app_id: str, workflow_id: str, executor: _ExecutorPlan) -> int:
        """The app-tag part of a workflow purge, in one MULTI: a write to the workflow's
        invocation index while the purge reads what to delete starts it again (WATCH)."""
        atag = app_tag(app_id)
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._inv(app_id, workflow_id, "invs"))
                    plan = await self._state_backend_plan(pipe, app_id, workflow_id, executor)
                    pipe.multi()
                    # Before the deletes, in the same MULTI: it reads the history zsets.
                    history_keys = [atag + ":timeline", atag + ":hist_payloads", atag + ":hist_refs"]
                    await in_pipeline(pipe, self._drop_history, [*history_keys, *plan.histories],
                                      [escape(i) for i in plan.history_ids])
                    for key in plan.keys:
                        pipe.delete(key)
                    for key, members in plan.set_members.items():
                        for member in members:
                            await in_pipeline(pipe, self._index, [key], ["rem", member])
                    for ref in plan.runs:
                        pipe.eval(DROP_RUN, 3, *run_keys(app_id, ref.workflow_type), ref.encode(), ref.workflow_type)
                    results = await pipe.execute()
                    deleted_keys = results[1:1 + len(plan.keys)]
                    dropped_runs = results[len(results) - len(plan.runs):] if plan.runs else []
                    return sum(map(int, deleted_keys)) + sum(map(int, dropped_runs))
                except redis_errors.WatchError:
                    continue

    async def _state_backend_plan(self, pipe: Any, app_id: str, workflow_id: str, executor: _ExecutorPlan
                                  ) -> _PurgePlan:
        """What the app-tag step deletes (read under WATCH, in immediate mode): the StateBackend
        invocations of the workflow (and any StateBackend state of its tasks), where they are
        indexed, the workflow's indexes, and its runs."""
        plan = _PurgePlan()
        plan.keys += [self._inv(app_id, workflow_id, suffix) for suffix in _WORKFLOW_INDEXES]
        invs = self._inv(app_id, workflow_id, "invs")
        invocation_ids = sorted(set(await self._lex_page(invs, None, None, pipe)) | set(executor.task_ids))
        for invocation_id in invocation_ids:
            plan.keys += [self._inv(app_id, invocation_id, suffix) for suffix in _INVOCATION_SUFFIXES]
            text = await pipe.get(self._inv(app_id, invocation_id, "inv"))
            if text is not None:
                for index in index_keys(app_id, InvocationRecord.decode(invocation_id, text)):
                    if index != invs:
                        plan.set_members.setdefault(index, []).append(invocation_id)
            plan.histories.append(self._inv(app_id, invocation_id, "hist"))
            plan.history_ids.append(invocation_id)
        # Its runs: as given or named by its main task, else found in the run index.
        found = list(executor.runs)
        if not found:
            async for member, _ in pipe.zscan_iter(runs_key(app_id), match=glob_escape(run_prefix(workflow_id)) + "*",
                                                   count=_SCAN_COUNT):
                found.append(WorkflowRef.decode(member))
        plan.runs = list(dict.fromkeys(ref for ref in found if ref.workflow_id == workflow_id))
        return plan

    @unavailable_on_redis_errors
    async def purge_app_preview(self, app_id: str) -> PurgeCounts:
        keys = tasks = 0
        async for batch in scan_key_batches(self.client, app_pattern(app_id), _SCAN_COUNT):
            keys += len(batch)
            tasks += sum(1 for key in batch if parse_task_key(key))
        return PurgeCounts(await self.client.zcard(runs_key(app_id)), tasks, keys, self.purge_unit)

    @unavailable_on_redis_errors
    async def purge_workflow_preview(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None
                                     ) -> PurgeCounts:
        executor = await self._executor_plan(app_id, workflow_id, runs)
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(self._inv(app_id, workflow_id, "invs"))  # immediate mode, as a purge reads
            plan = await self._state_backend_plan(pipe, app_id, workflow_id, executor)
            await pipe.unwatch()
        keys = [*executor.task_keys, *executor.workflow_keys, *plan.keys]
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            for ref in plan.runs:
                pipe.zscore(runs_key(app_id), ref.encode())
                pipe.zscore(runs_key(app_id, ref.workflow_type), ref.encode())
            found = await pipe.execute()
        present = [key for key, there in zip(keys, found) if there]
        scores = found[len(keys):]
        # Counted as purge_workflow counts: keys deleted, and index entries of its runs removed.
        return PurgeCounts(sum(score is not None for score in scores[::2]),
                           sum(1 for key in present if key.endswith(":task")),
                           len(present) + sum(score is not None for score in scores), self.purge_unit)

    @unavailable_on_redis_errors
    async def store_app_info(self, app_id: str, payload: str) -> None:
        await self.client.hset(APPS_KEY, app_id, payload)

    @unavailable_on_redis_errors
    async def get_app_info(self, app_id: str) -> str | None:
        return await self.client.hget(APPS_KEY, app_id)

    @unavailable_on_redis_errors
    async def all_app_infos(self) -> dict[str, str]:
        return await self.client.hgetall(APPS_KEY)

    @unavailable_on_redis_errors
    async def app_infos_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        # A hash has no order: the ids are read whole (small: an app id), the payloads
        # (up to the payload limit each) only for the page.
        every = await self.client.hkeys(APPS_KEY)
        ids = sorted(app_id for app_id in every if after is None or app_id > after)[:limit]
        payloads = await self.client.hmget(APPS_KEY, ids) if ids else []
        return [(app_id, payload) for app_id, payload in zip(ids, payloads) if payload is not None]

    # --- invocations ---------------------------------------------------------------
    @unavailable_on_redis_errors
    async def upsert_invocations(self, app_id: str, records: list[InvocationRecord]) -> None:
        latest = {r.invocation_id: r for r in records}  # the last of repeated ids wins
        keys = [self._inv(app_id, i, "inv") for i in latest]
        # WATCH, so that index entries of a replaced invocation are removed even when
        # another caller replaces it at the same time.
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    previous = await pipe.execute_command("MGET", *keys)  # pipe.mget is refused on a cluster
                    pipe.multi()
                    for key, record, old_text in zip(keys, latest.values(), previous):
                        new_index = index_keys(app_id, record)
                        stale: list[str] = []
                        if old_text is not None:
                            old = InvocationRecord.decode(record.invocation_id, old_text)
                            stale = sorted(set(index_keys(app_id, old)) - set(new_index))
                        if stale:
                            await in_pipeline(pipe, self._index, stale, ["rem", record.invocation_id])
                        pipe.set(key, record.encode())
                        if new_index:
                            await in_pipeline(pipe, self._index, new_index, ["add", record.invocation_id])
                    await pipe.execute()
                    return
                except redis_errors.WatchError:
                    continue

    @unavailable_on_redis_errors
    async def get_invocation(self, app_id: str, invocation_id: str) -> InvocationRecord | None:
        text = await self.client.get(self._inv(app_id, invocation_id, "inv"))
        return None if text is None else InvocationRecord.decode(invocation_id, text)

    @unavailable_on_redis_errors
    async def project_invocation(self, app_id: str, projected: ProjectedInvocation) -> int:
        keys, args = projection_step(app_id, projected)
        return int(await self._project(keys=keys, args=args))

    @unavailable_on_redis_errors
    async def child_invocations(self, app_id: str, parent_invocation_id: str, limit: int | None = None,
                                after: str | None = None) -> list[str]:
        return await self._lex_page(self._inv(app_id, parent_invocation_id, "children"), limit, after)

    @unavailable_on_redis_errors
    async def invocations_by_parent_event(self, app_id: str, parent_event_id: str, limit: int | None = None,
                                          after: str | None = None) -> list[str]:
        return await self._lex_page(_by_event(app_id, parent_event_id), limit, after)

    @unavailable_on_redis_errors
    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str,
                                         limit: int | None = None, after: str | None = None) -> list[str]:
        by_type = _by_type(app_id, workflow_type) if workflow_type else ""
        if not workflow_id:
            return await self._lex_page(by_type, limit, after)
        invs = self._inv(app_id, workflow_id, "invs")
        if not by_type:
            return await self._lex_page(invs, limit, after)
        # Both: the workflow's ids, in chunks, kept when the type's index holds them (the two
        # indexes sit under different hash tags, so no ZINTER).
        found: list[str] = []
        while limit is None or len(found) < limit:
            chunk = await self._lex_page(invs, _SCAN_COUNT, after)
            if not chunk:
                break
            held = await self._lex_holds(keys=[by_type], args=chunk)
            found += [i for i, flag in zip(chunk, held) if flag]
            after = chunk[-1]
        return found if limit is None else found[:limit]

    # --- history -------------------------------------------------------------------
    @unavailable_on_redis_errors
    async def add_history(self, app_id: str, invocation_ids: list[str], timestamp_us: int, payload: str) -> None:
        ids = list(dict.fromkeys(invocation_ids))
        tag = app_tag(app_id)
        keys = [tag + ":hist_seq", tag + ":timeline", tag + ":hist_payloads", tag + ":hist_refs",
                *(self._inv(app_id, i, "hist") for i in ids)]
        await self._add_history(keys=keys, args=[timestamp_us, payload, _redis_digest(payload),
                                                 *(escape(i) for i in ids)])

    async def _records(self, app_id: str, rows: list[tuple[str, float]], first_rank: int = 0,
                       invocation_id: str = "") -> list[HistoryRecord]:
        """The history entries of zset rows (of the invocation's :hist when given, else of the
        timeline), their payloads read from where they are stored once. An entry whose
        payload is gone was purged since the rows were read: left out."""
        parts = [_member_parts(member) for member, _ in rows]
        digests = sorted({digest for _, _, inline, digest in parts if inline is None})
        stored = dict(zip(digests, await self.client.hmget(app_tag(app_id) + ":hist_payloads", digests))) \
            if digests else {}
        records = []
        for i, ((seq, escaped_id, inline, digest), (_, score)) in enumerate(zip(parts, rows)):
            payload = inline if inline is not None else stored[digest]
            if payload is not None:
                records.append(HistoryRecord(invocation_id if escaped_id is None else unescape(escaped_id),
                                             int(score), payload,
                                             (int(score), seq, first_rank + i)))
        return records

    @unavailable_on_redis_errors
    async def get_history(self, app_id: str, invocation_id: str, limit: int | None = None,
                          after: HistoryCursor | None = None) -> list[HistoryRecord]:
        key = self._inv(app_id, invocation_id, "hist")
        start = 0
        if after is not None:
            # The cursor's rank is right unless an entry was added before it since (one with an
            # earlier time): read from the rank, the cursor's entry included, to check.
            ts_us, seq, rank = after
            stop = -1 if limit is None else rank + limit
            rows = await self.client.zrange(key, rank, stop, withscores=True)
            if rows and (int(rows[0][1]), _member_seq(rows[0][0])) == (ts_us, seq):
                return await self._records(app_id, rows[1:], rank + 1, invocation_id)
            start = await self._rank_after(key, ts_us, seq)
        stop = -1 if limit is None else start + limit - 1
        rows = await self.client.zrange(key, start, stop, withscores=True)
        return await self._records(app_id, rows, start, invocation_id)

    async def _rank_after(self, key: str, ts_us: int, seq: int) -> int:
        """The rank of the first entry after (ts_us, seq): those of earlier times, then those
        of the same time up to seq (members of one score sort by their fixed-width seq)."""
        rank = await self.client.zcount(key, "-inf", f"({ts_us}")
        offset = 0
        while True:
            same = await self.client.zrangebyscore(key, ts_us, ts_us, start=offset, num=_SCAN_COUNT)
            before = sum(1 for member in same if _member_seq(member) <= seq)
            rank += before
            if before < len(same) or len(same) < _SCAN_COUNT:
                return rank
            offset += len(same)

    async def history_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                               ) -> AsyncIterator[list[HistoryRecord]]:
        with redis_unavailable():
            async for rows in self._pager.pages(app_tag(app_id) + ":timeline", str(start_us), str(end_us),
                                                batch_size):
                if records := await self._records(app_id, rows):
                    yield records

    def invocations_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                             ) -> AsyncIterator[list[str]]:
        return first_sightings(self.history_in_range(app_id, start_us, end_us, batch_size), batch_size)

    # --- results -------------------------------------------------------------------
    @unavailable_on_redis_errors
    async def set_result(self, app_id: str, invocation_id: str, result_json: str) -> None:
        await self.client.set(self._inv(app_id, invocation_id, "result"), result_json)

    @unavailable_on_redis_errors
    async def get_result(self, app_id: str, invocation_id: str) -> str | None:
        return await self.client.get(self._inv(app_id, invocation_id, "result"))

    @unavailable_on_redis_errors
    async def set_exception(self, app_id: str, invocation_id: str, payload: str) -> None:
        await self.client.set(self._inv(app_id, invocation_id, "exc"), payload)

    @unavailable_on_redis_errors
    async def get_exception(self, app_id: str, invocation_id: str) -> str | None:
        return await self.client.get(self._inv(app_id, invocation_id, "exc"))

    # --- workflow data and deterministic values ------------------------------------
    @unavailable_on_redis_errors
    async def get_workflow_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":data", key)

    @unavailable_on_redis_errors
    async def set_workflow_data(self, app_id: str, workflow_id: str, key: str, value_json: str) -> None:
        await self.client.hset(workflow_tag(app_id, workflow_id) + ":data", key, value_json)

    @unavailable_on_redis_errors
    async def get_deterministic_value(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.client.hget(workflow_tag(app_id, workflow_id) + ":dv", key)

    @unavailable_on_redis_errors
    async def set_deterministic_value(
        self, app_id: str, workflow_id: str, key: str, value_json: str
    ) -> tuple[str, bool]:
        """Store unless stored; return (stored value, replayed)."""
        hash_key = workflow_tag(app_id, workflow_id) + ":dv"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(hash_key, key, value_json)
            pipe.hget(hash_key, key)
            created, stored = await pipe.execute()
        return stored, not created

    # --- workflow runs -------------------------------------------------------------
    @unavailable_on_redis_errors
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        # The same index as RedisStore's, so runs started through DeterministicExecutorService
        # are listed here too.
        await index_workflow_run(self.client, app_id, workflow, now_us)

    @unavailable_on_redis_errors
    async def workflow_types(self, app_id: str, limit: int | None = None, after: str | None = None) -> list[str]:
        # The type set is shared with RedisStore (a set, written by the executor's scripts too),
        # so it is read whole here: its size is the number of workflow task ids of the app.
        types = sorted(t for t in await self.client.smembers(app_tag(app_id) + ":wf_types")
                       if after is None or t > after)
        return types if limit is None else types[:limit]

    async def workflow_runs(self, app_id: str, workflow_type: str, page_size: int, after: Cursor | None
                            ) -> tuple[list[WorkflowRef], Cursor | None]:
        """One page of runs, oldest first, and the cursor of the next page (None on the last)."""
        key = runs_key(app_id, workflow_type)
        # One more than asked, to know whether another page follows.
        rows = await self._pager.page(key, "-inf", "+inf", page_size + 1, after)
        page = rows[:page_size]
        cursor = (page[-1][1], page[-1][0]) if len(rows) > page_size else None
        return [WorkflowRef.decode(member) for member, _ in page], cursor

    @unavailable_on_redis_errors
    async def store_sub_invocation(self, app_id: str, workflow_id: str, invocation_id: str) -> None:
        await self._index(keys=[self._inv(app_id, workflow_id, "subs")], args=["add", invocation_id])

    @unavailable_on_redis_errors
    async def sub_invocations(self, app_id: str, workflow_id: str, limit: int | None = None,
                              after: str | None = None) -> list[str]:
        return await self._lex_page(self._inv(app_id, workflow_id, "subs"), limit, after)

    # --- runner contexts -----------------------------------------------------------
    @unavailable_on_redis_errors
    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None:
        tag = app_tag(app_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(tag + ":runners", runner_id, payload)
            pipe.zadd(tag + ":runner_ids", {runner_id: 0})
            await pipe.execute()

    @unavailable_on_redis_errors
    async def get_runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str | None]:
        if not runner_ids:
            return []
        return await self.client.hmget(app_tag(app_id) + ":runners", runner_ids)

    @unavailable_on_redis_errors
    async def search_runner_contexts(self, app_id: str, partial_id: str, limit: int, after: str | None = None
                                     ) -> tuple[list[tuple[str, str]], str | None]:
        tag = app_tag(app_id)
        await self._runner_ids(keys=[tag + ":runners", tag + ":runner_ids"])
        matches: list[str] = []
        exhausted = False
        # A bounded number of ids per call, so that a rare match costs pages, not one call
        # scanning every runner.
        for _ in range(_SEARCH_CHUNKS):
            chunk = await self._lex_page(tag + ":runner_ids", _SCAN_COUNT, after)
            for runner_id in chunk:
                after = runner_id
                if partial_id in runner_id:
                    matches.append(runner_id)
                    if len(matches) == limit:
                        break
            exhausted = len(chunk) < _SCAN_COUNT and (not chunk or after == chunk[-1])
            if len(matches) == limit or exhausted:
                break
        payloads = await self.client.hmget(tag + ":runners", matches) if matches else []
        found = [(i, p) for i, p in zip(matches, payloads) if p is not None]
        return found, (None if exhausted else after)
