"""Pynenc's StateBackend storage: the interface (StateBackendStore) and its Redis implementation.

The interface is what StateBackendService needs: invocations, history, results, runs,
runner contexts. RedisStateBackendStore (below) and SqliteStateBackendStore
(sqlite_state_backend_store.py) implement it; tests/test_state_backend.py runs against both.

Redis key layout (ids escaped with core.positions.escape; see redis_store for the shared keys):
    psc:{<app>:<inv>}:inv          string  [workflow_id, workflow_type, parent_id, payload, event_id]
    psc:{<app>:<inv>}:hist         zset    the invocation's history (members below)
    psc:{<app>:<inv>}:result       string  result (core.payloads encoding)
    psc:{<app>:<inv>}:exc          string  exception payload
    psc:{<app>:<inv>}:children     zset*   invocations whose parent is <inv>
    psc:{<app>:<inv>}:projected    hash    event ids of the history entries projected from the
                                           executor (projection.py), each appended once
    psc:{<app>:<wf>}:data          hash    workflow data (the same hash RedisStore uses)
    psc:{<app>:<wf>}:dv            hash    deterministic values, first writer wins
    psc:{<app>:<wf>}:invs          zset*   invocations of the workflow
    psc:{<app>:<wf>}:subs          zset*   sub-invocations run inside the workflow
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
    psc:app_ids                    set     apps that stored a run (redis_store.APP_IDS_KEY)

zset*: an id index, every member scored 0, so that ZRANGEBYLEX pages it in id order from the
last id seen (bounded memory, nothing repeated or skipped when ids are added meanwhile).
Versions before paging kept these as sets: a script meeting a set converts it first
(_AS_ZSET), and :runner_ids is built from :runners when missing.

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
Writes touching several keys run in one MULTI (or one Lua script). They span several hash
tags, so on Redis Cluster those would need to be split; on one Redis they are atomic.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from pynenc_sidecar.core.positions import Kind, escape, parse_field, unescape
from pynenc_sidecar.core.tasks import TaskCall, WorkflowRef
from pynenc_sidecar.storage.redis.executor_store import (
    APP_IDS_KEY,
    DROP_RUN,
    PREFIX,
    _script,
    _unavailable_on_redis_errors,
    app_tag,
    index_workflow_run,
    parse_task_key,
    run_keys,
    scan_batches,
    workflow_tag,
)

APPS_KEY = f"{PREFIX}:apps"
_SCAN_COUNT = 1000
_SEARCH_CHUNKS = 10  # runner ids looked at per search call: _SEARCH_CHUNKS * _SCAN_COUNT

# KEYS: counter, app timeline, then one history zset per invocation.
# ARGV: score, payload, then the escaped invocation ids (same order as the zsets).
# Converts an id index written as a set by an earlier version into a zset (scores 0).
_AS_ZSET = """
local function as_zset(key)
  if redis.call('TYPE', key).ok == 'set' then
    local members = redis.call('SMEMBERS', key)
    redis.call('DEL', key)
    for _, member in ipairs(members) do redis.call('ZADD', key, 0, member) end
  end
end
"""

# KEYS: id indexes. ARGV: 'add' or 'rem', the id.
_INDEX = _AS_ZSET + """
for _, key in ipairs(KEYS) do
  as_zset(key)
  if ARGV[1] == 'add' then redis.call('ZADD', key, 0, ARGV[2]) else redis.call('ZREM', key, ARGV[2]) end
end
return #KEYS
"""

# KEYS: an id index. ARGV: the lex minimum ('-' or '(' .. last id), count (-1: all).
_LEX_PAGE = _AS_ZSET + """
as_zset(KEYS[1])
return redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
"""

# KEYS: an id index. ARGV: ids. -> 1 or 0 per id: whether the index holds it.
_LEX_HOLDS = _AS_ZSET + """
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

# One page of a zset in (score, member) order, from the cursor: the cursor's rank found in
# O(log n) (ZRANK, or a binary search among the members of its score when it is gone), so
# a page costs O(log n + size) however many members share a score.
# KEYS: the zset. ARGV: low, high, size, then the cursor's score and member (none: from low).
_SCORE_PAGE = """
local key, size = KEYS[1], tonumber(ARGV[3])
local function number(text)
  if text == '+inf' then return math.huge elseif text == '-inf' then return -math.huge end
  return tonumber(text)
end
-- Byte order, as Redis orders members (Lua's own < follows the locale).
local function at_or_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
local start
if #ARGV < 5 then
  start = redis.call('ZCOUNT', key, '-inf', '(' .. ARGV[1])
else
  local score, member = ARGV[4], ARGV[5]
  local rank = redis.call('ZRANK', key, member)
  if rank and number(redis.call('ZSCORE', key, member)) == number(score) then
    start = rank + 1
  else
    local low = redis.call('ZCOUNT', key, '-inf', '(' .. score)
    local high = redis.call('ZCOUNT', key, '-inf', score)
    while low < high do
      local mid = math.floor((low + high) / 2)
      if at_or_before(redis.call('ZRANGE', key, mid, mid)[1], member) then low = mid + 1 else high = mid end
    end
    start = low
  end
end
local high, out = number(ARGV[2]), {}
local rows = redis.call('ZRANGE', key, start, start + size - 1, 'WITHSCORES')
for i = 1, #rows, 2 do
  if number(rows[i + 1]) > high then break end
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
end
return out
"""

# Per-invocation keys of StateBackendService (under the app's tag).
_INVOCATION_SUFFIXES = ("inv", "hist", "result", "exc", "children", "projected")
# Per-workflow keys under the workflow's tag: recorded operations, data, deterministic values;
# and under the app's tag: its invocation indexes.
_WORKFLOW_SUFFIXES = ("ops", "data", "dv")
_WORKFLOW_INDEXES = ("invs", "subs")

Cursor = tuple[float, str]  # (score, member) of the last item returned; opaque to the service
# A history entry's place: (time in microseconds, arrival sequence, rank in the invocation's
# history). The rank is a hint for Redis (a page starts there when the entry is still there).
HistoryCursor = tuple[int, int, int]


@dataclass(frozen=True)
class InvocationRecord:
    """An invocation as indexed here; `payload` is the service's encoding of the rest."""

    invocation_id: str
    payload: str
    workflow_id: str = ""
    workflow_type: str = ""
    parent_invocation_id: str = ""
    parent_event_id: str = ""

    def encode(self) -> str:
        return json.dumps([self.workflow_id, self.workflow_type, self.parent_invocation_id, self.payload,
                           self.parent_event_id], separators=(",", ":"))

    @classmethod
    def decode(cls, invocation_id: str, text: str) -> InvocationRecord:
        workflow_id, workflow_type, parent, payload, *rest = json.loads(text)  # 4 items before paging
        return cls(invocation_id, payload, workflow_id, workflow_type, parent, rest[0] if rest else "")


@dataclass(frozen=True)
class PurgeCounts:
    """What a purge removes (or, previewed, would remove): workflow runs, executor tasks,
    and every stored item (`unit`: Redis keys and index entries, or SQLite rows)."""

    workflows: int
    tasks: int
    entries: int
    unit: str


@dataclass(frozen=True)
class HistoryRecord:
    invocation_id: str
    timestamp_us: int
    payload: str
    cursor: HistoryCursor = (0, 0, 0)


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


def glob_escape(text: str) -> str:
    """Make text match itself literally in a Redis MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def payload_digest(payload: str) -> bytes:
    """The SHA-256 a history payload is stored under, once per app."""
    return hashlib.sha256(payload.encode()).digest()


def _redis_digest(payload: str) -> str:
    return base64.urlsafe_b64encode(payload_digest(payload)).rstrip(b"=").decode()


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


class StateBackendStore(Protocol):
    """What StateBackendService stores. Payloads are opaque text (the service's encoding);
    times are integer microseconds since the Unix epoch; id lists come back sorted."""

    async def purge_app(self, app_id: str, *, keep_app_info: bool = False) -> int:
        """Delete everything of the app (the executor's state too) and, unless kept, its app info."""

    async def purge_workflow(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None) -> int:
        """Delete everything of one workflow, atomically, and take it out of every index:
        recorded operations, data, deterministic values, its tasks (the main task and every
        task recorded in its log, except child workflows: those are workflows of their own),
        the StateBackend invocations of the workflow (record, history, result, exception,
        children), its runs and, when none of its type is left, its type. `runs`, when given,
        are its run identities (saves looking them up). Returns how much was deleted: 0 when
        nothing of the workflow was there."""

    purge_unit: str  # what PurgeCounts.entries counts: "keys" (Redis) or "rows" (SQLite)

    async def purge_app_preview(self, app_id: str) -> PurgeCounts:
        """What purge_app would delete now; deletes nothing."""

    async def purge_workflow_preview(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None
                                     ) -> PurgeCounts:
        """What purge_workflow would delete now; deletes nothing."""

    async def store_app_info(self, app_id: str, payload: str) -> None: ...

    async def get_app_info(self, app_id: str) -> str | None: ...

    async def all_app_infos(self) -> dict[str, str]: ...

    async def app_infos_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` (app_id, payload) of the apps after `after`, by app id."""
        ...

    async def upsert_invocations(self, app_id: str, records: list[InvocationRecord]) -> None:
        """All or nothing; the last of repeated ids wins; a replaced invocation leaves the
        indexes (children, workflow, type) of its former values."""

    async def get_invocation(self, app_id: str, invocation_id: str) -> InvocationRecord | None: ...

    async def project_invocation(self, app_id: str, projected: ProjectedInvocation) -> int:
        """Write the projection atomically: the record replaced (its indexes added; those of a
        former record under that id with other values stay), each event appended to the
        history unless one with its id was, result, exception, sub-invocation entry, and the
        runner context unless one is stored. Returns how many history entries were appended."""

    # Id lists: sorted, the first `limit` ids after `after` (all when limit is None).
    async def child_invocations(self, app_id: str, parent_invocation_id: str, limit: int | None = None,
                                after: str | None = None) -> list[str]: ...

    async def invocations_by_parent_event(self, app_id: str, parent_event_id: str, limit: int | None = None,
                                          after: str | None = None) -> list[str]: ...

    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str,
                                         limit: int | None = None, after: str | None = None) -> list[str]:
        """Invocations of the workflow, of the type, or of both (an empty argument is no filter)."""

    async def add_history(self, app_id: str, invocation_ids: list[str], timestamp_us: int, payload: str) -> None:
        """One entry per distinct invocation, atomically; identical entries are kept apart."""

    async def get_history(self, app_id: str, invocation_id: str, limit: int | None = None,
                          after: HistoryCursor | None = None) -> list[HistoryRecord]:
        """Oldest first; entries of the same microsecond in arrival order; the first `limit`
        (all when None) after the entry whose `cursor` is `after`."""

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

    async def set_deterministic_value(
        self, app_id: str, workflow_id: str, key: str, value_json: str
    ) -> tuple[str, bool]:
        """Store unless stored (first writer wins, atomically); return (stored value, replayed)."""

    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        """The same runs the executor's Store records; a run stored again keeps its first time."""

    async def workflow_types(self, app_id: str, limit: int | None = None, after: str | None = None) -> list[str]: ...

    async def workflow_runs(self, app_id: str, workflow_type: str, page_size: int, after: Cursor | None
                            ) -> tuple[list[WorkflowRef], Cursor | None]:
        """One page of runs, oldest first, and the cursor of the next page (None on the last)."""

    async def store_sub_invocation(self, app_id: str, workflow_id: str, invocation_id: str) -> None: ...

    async def sub_invocations(self, app_id: str, workflow_id: str, limit: int | None = None,
                              after: str | None = None) -> list[str]: ...

    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None: ...

    async def get_runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str | None]:
        """One payload or None per runner id, in the order asked."""

    async def search_runner_contexts(self, app_id: str, partial_id: str, limit: int, after: str | None = None
                                     ) -> tuple[list[tuple[str, str]], str | None]:
        """(runner id, payload) of up to `limit` runners whose id contains partial_id literally
        and sorts after `after`, by id; and where to go on from (None: no runner is left). A
        store may look at only some ids per call, so a short or empty list is no end."""

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
    purge_unit = "keys"  # what PurgeCounts.entries counts

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._add_history = client.register_script(_ADD_HISTORY)
        self._drop_history = client.register_script(_DROP_HISTORY)
        self._score_page = client.register_script(_SCORE_PAGE)
        self._index = client.register_script(_INDEX)
        self._lex_page_script = client.register_script(_LEX_PAGE)
        self._lex_holds = client.register_script(_LEX_HOLDS)
        self._runner_ids = client.register_script(_RUNNER_IDS)
        self._project = client.register_script(_AS_ZSET + _script("project.lua"))

    async def close(self) -> None:
        """Nothing to do: the client belongs to the RedisStore it was taken from."""

    # --- keys ----------------------------------------------------------------------
    @staticmethod
    def _inv(app_id: str, invocation_id: str, suffix: str) -> str:
        """A StateBackend key of one invocation (or of one workflow: invs, subs). Under the
        app's hash tag, with every other StateBackend key: each write is one slot."""
        return f"{app_tag(app_id)}:{suffix}:{escape(invocation_id)}"

    @staticmethod
    def _by_type(app_id: str, workflow_type: str) -> str:
        return f"{app_tag(app_id)}:invs_by_type:{escape(workflow_type)}"

    @staticmethod
    def _by_event(app_id: str, parent_event_id: str) -> str:
        return f"{app_tag(app_id)}:invs_by_event:{escape(parent_event_id)}"

    async def _lex_page(self, key: str, limit: int | None, after: str | None, pipe: Any = None) -> list[str]:
        args = [_lex_after(after), -1 if limit is None else limit]
        if pipe is not None:
            return await in_pipeline(pipe, self._lex_page_script, [key], args)
        return await self._lex_page_script(keys=[key], args=args)

    def _index_keys(self, app_id: str, record: InvocationRecord) -> list[str]:
        keys = []
        if record.parent_event_id:
            keys.append(self._by_event(app_id, record.parent_event_id))
        if record.parent_invocation_id:
            keys.append(self._inv(app_id, record.parent_invocation_id, "children"))
        if record.workflow_id:
            keys.append(self._inv(app_id, record.workflow_id, "invs"))
        if record.workflow_type:
            keys.append(self._by_type(app_id, record.workflow_type))
        return keys

    # --- app -----------------------------------------------------------------------
    @_unavailable_on_redis_errors
    async def purge_app(self, app_id: str, *, keep_app_info: bool = False) -> int:
        deleted = 0
        async for batch in self._scan_batches(self._app_pattern(app_id)):
            deleted += await self.client.unlink(*batch)
        if not keep_app_info:
            await self.client.hdel(APPS_KEY, app_id)
        await self.client.srem(APP_IDS_KEY, app_id)
        return deleted

    @_unavailable_on_redis_errors
    async def purge_workflow(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None) -> int:
        # Three steps, each of one hash tag (Redis Cluster runs no MULTI across slots), in an
        # order a crash cannot break: every step deletes only what the steps after it do not
        # need to find their keys, and the run index entry, by which a sweep or an operator
        # finds the workflow again, goes last. A purge cut short is finished by purging again.
        executor = await self._executor_plan(app_id, workflow_id, runs)
        deleted = 0
        if executor.task_keys:  # 1. the tasks (each its own tag), found from the record hash
            deleted += int(await self.client.delete(*executor.task_keys))
        deleted += int(await self.client.delete(*executor.workflow_keys))  # 2. the workflow's tag
        return deleted + await self._purge_state_backend(app_id, workflow_id, executor)  # 3. the app's tag

    async def _executor_plan(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None) -> _ExecutorPlan:
        """The executor's keys of the workflow: its tasks (the main task, and those its log
        recorded in this workflow) and its record, data and deterministic values; and its runs
        as given or as its main task names them."""
        tag = workflow_tag(app_id, workflow_id)
        task_ids = {workflow_id}
        async for name, value in self.client.hscan_iter(tag + ":ops", count=_SCAN_COUNT):
            pos = parse_field(workflow_id, name)
            if pos is not None and pos.kind is Kind.TASK:
                call = TaskCall.decode(value)
                if not call.force_new_workflow:
                    task_ids.add(call.invocation_id)
        found = list(runs or [])
        main_task = await self.client.hget(workflow_tag(app_id, workflow_id) + ":task", "wf")
        if main_task is not None:
            found.append(WorkflowRef.decode(main_task))
        return _ExecutorPlan(sorted(task_ids), [workflow_tag(app_id, i) + ":task" for i in sorted(task_ids)],
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
                for index in self._index_keys(app_id, InvocationRecord.decode(invocation_id, text)):
                    if index != invs:
                        plan.set_members.setdefault(index, []).append(invocation_id)
            plan.histories.append(self._inv(app_id, invocation_id, "hist"))
            plan.history_ids.append(invocation_id)
        # Its runs: as given or named by its main task, else found in the run index.
        found = list(executor.runs)
        if not found:
            # Members are WorkflowRef.encode(): '["<id>","<type>","<parent>"]'.
            prefix = json.dumps([workflow_id])[:-1] + ","
            async for member, _ in pipe.zscan_iter(app_tag(app_id) + ":runs", match=glob_escape(prefix) + "*",
                                                   count=_SCAN_COUNT):
                found.append(WorkflowRef.decode(member))
        plan.runs = list(dict.fromkeys(ref for ref in found if ref.workflow_id == workflow_id))
        return plan

    @_unavailable_on_redis_errors
    async def purge_app_preview(self, app_id: str) -> PurgeCounts:
        keys = tasks = 0
        async for batch in self._scan_batches(self._app_pattern(app_id)):
            keys += len(batch)
            tasks += sum(1 for key in batch if parse_task_key(key))
        return PurgeCounts(await self.client.zcard(app_tag(app_id) + ":runs"), tasks, keys, self.purge_unit)

    @_unavailable_on_redis_errors
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
            atag = app_tag(app_id)
            for ref in plan.runs:
                pipe.zscore(atag + ":runs", ref.encode())
                pipe.zscore(f"{atag}:runs:{escape(ref.workflow_type)}", ref.encode())
            found = await pipe.execute()
        present = [key for key, there in zip(keys, found) if there]
        scores = found[len(keys):]
        # Counted as purge_workflow counts: keys deleted, and index entries of its runs removed.
        return PurgeCounts(sum(score is not None for score in scores[::2]),
                           sum(1 for key in present if key.endswith(":task")),
                           len(present) + sum(score is not None for score in scores), self.purge_unit)

    @staticmethod
    def _app_pattern(app_id: str) -> str:
        # Every key of the app has the escaped app id right after "{", followed by "}" (app
        # keys) or ":" (workflow/invocation keys); escaped ids hold neither, so no other
        # app's keys match.
        return f"{glob_escape(PREFIX)}:{{{glob_escape(escape(app_id))}[:}}]*"

    def _scan_batches(self, pattern: str) -> AsyncIterator[list[str]]:
        return scan_batches(self.client, pattern, _SCAN_COUNT)

    @_unavailable_on_redis_errors
    async def store_app_info(self, app_id: str, payload: str) -> None:
        await self.client.hset(APPS_KEY, app_id, payload)

    @_unavailable_on_redis_errors
    async def get_app_info(self, app_id: str) -> str | None:
        return await self.client.hget(APPS_KEY, app_id)

    @_unavailable_on_redis_errors
    async def all_app_infos(self) -> dict[str, str]:
        return await self.client.hgetall(APPS_KEY)

    @_unavailable_on_redis_errors
    async def app_infos_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        # A hash has no order: the ids are read whole (small: an app id), the payloads
        # (up to the payload limit each) only for the page.
        every: list[str] = cast(list[str], await self.client.hkeys(APPS_KEY))  # decode_responses: str
        ids = sorted(app_id for app_id in every if after is None or app_id > after)[:limit]
        payloads: list[str | None] = cast(list[str | None], await self.client.hmget(APPS_KEY, ids)) if ids else []
        return [(app_id, payload) for app_id, payload in zip(ids, payloads) if payload is not None]

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
                    previous = await pipe.execute_command("MGET", *keys)  # pipe.mget is refused on a cluster
                    pipe.multi()
                    for key, record, old_text in zip(keys, latest.values(), previous):
                        new_index = self._index_keys(app_id, record)
                        stale: list[str] = []
                        if old_text is not None:
                            old = InvocationRecord.decode(record.invocation_id, old_text)
                            stale = sorted(set(self._index_keys(app_id, old)) - set(new_index))
                        if stale:
                            await in_pipeline(pipe, self._index, stale, ["rem", record.invocation_id])
                        pipe.set(key, record.encode())
                        if new_index:
                            await in_pipeline(pipe, self._index, new_index, ["add", record.invocation_id])
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
        tag = app_tag(app_id)
        subs = self._inv(app_id, projected.sub_invocation_of, "subs") if projected.sub_invocation_of \
            else tag + ":runners"  # unused when there is none; any key of the app will do
        keys = [tag + ":hist_seq", tag + ":timeline",
                *(self._inv(app_id, invocation_id, suffix) for suffix in ("inv", "hist", "projected", "result", "exc")),
                tag + ":runners", tag + ":runner_ids", subs,
                tag + ":hist_payloads", tag + ":hist_refs", *self._index_keys(app_id, record)]
        runner_id, runner_payload = projected.runner or ("", "")
        args = [invocation_id, escape(invocation_id), record.encode(), projected.result_json or "",
                "0" if projected.result_json is None else "1", projected.exception or "", runner_id,
                runner_payload, "1" if projected.sub_invocation_of else "0"]
        for event in projected.events:
            args += [event.event_id, event.timestamp_us, event.payload, _redis_digest(event.payload)]
        return int(await self._project(keys=keys, args=args))

    @_unavailable_on_redis_errors
    async def child_invocations(self, app_id: str, parent_invocation_id: str, limit: int | None = None,
                                after: str | None = None) -> list[str]:
        return await self._lex_page(self._inv(app_id, parent_invocation_id, "children"), limit, after)

    @_unavailable_on_redis_errors
    async def invocations_by_parent_event(self, app_id: str, parent_event_id: str, limit: int | None = None,
                                          after: str | None = None) -> list[str]:
        return await self._lex_page(self._by_event(app_id, parent_event_id), limit, after)

    @_unavailable_on_redis_errors
    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str,
                                         limit: int | None = None, after: str | None = None) -> list[str]:
        by_type = self._by_type(app_id, workflow_type) if workflow_type else ""
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
    @_unavailable_on_redis_errors
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

    @_unavailable_on_redis_errors
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
        async for rows in self._zrange_pages(app_tag(app_id) + ":timeline", str(start_us), str(end_us), batch_size):
            if records := await self._records(app_id, rows):
                yield records

    def invocations_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                             ) -> AsyncIterator[list[str]]:
        return first_sightings(self.history_in_range(app_id, start_us, end_us, batch_size), batch_size)

    async def _zrange_pages(self, key: str, low: str, high: str, size: int) -> AsyncIterator[list[tuple[str, float]]]:
        after: Cursor | None = None
        while page := await self._zrange_page(key, low, high, size, after):
            yield page
            after = (page[-1][1], page[-1][0])

    @_unavailable_on_redis_errors
    async def _zrange_page(
        self, key: str, low: str, high: str, size: int, after: Cursor | None
    ) -> list[tuple[str, float]]:
        """Up to `size` (member, score) in [low, high] after the cursor, in zset order.

        Keyset paging from the last (score, member) seen, not offsets: members added
        meanwhile shift no page, so nothing is repeated or skipped; and each page costs
        O(log n + size) however many members share the cursor's score (_SCORE_PAGE)."""
        args = [low, high, max(1, size), *((repr(float(after[0])), after[1]) if after else ())]
        flat = await self._score_page(keys=[key], args=args)
        return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]

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
    @_unavailable_on_redis_errors
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        # The same index as RedisStore's, so runs started through DeterministicExecutorService
        # are listed here too.
        await index_workflow_run(self.client, app_id, workflow, now_us)

    @_unavailable_on_redis_errors
    async def workflow_types(self, app_id: str, limit: int | None = None, after: str | None = None) -> list[str]:
        # The type set is shared with RedisStore (a set, written by the executor's scripts too),
        # so it is read whole here: its size is the number of workflow task ids of the app.
        types = sorted(t for t in await self.client.smembers(app_tag(app_id) + ":wf_types")
                       if after is None or t > after)
        return types if limit is None else types[:limit]

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
        await self._index(keys=[self._inv(app_id, workflow_id, "subs")], args=["add", invocation_id])

    @_unavailable_on_redis_errors
    async def sub_invocations(self, app_id: str, workflow_id: str, limit: int | None = None,
                              after: str | None = None) -> list[str]:
        return await self._lex_page(self._inv(app_id, workflow_id, "subs"), limit, after)

    # --- runner contexts -----------------------------------------------------------
    @_unavailable_on_redis_errors
    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None:
        tag = app_tag(app_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(tag + ":runners", runner_id, payload)
            pipe.zadd(tag + ":runner_ids", {runner_id: 0})
            await pipe.execute()

    @_unavailable_on_redis_errors
    async def get_runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str | None]:
        if not runner_ids:
            return []
        return await self.client.hmget(app_tag(app_id) + ":runners", runner_ids)

    @_unavailable_on_redis_errors
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
