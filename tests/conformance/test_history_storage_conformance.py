"""History storage on every store: a payload shared by many entries is stored once (storage
proportional to the request), purges leave no payload behind and delete none still named,
and time-range pages neither repeat nor skip entries that share a timestamp.

Stored bytes are what the store reports for the app (Redis: MEMORY USAGE of each of its
keys; SQLite: the pages of the file in use), not timings.
"""

from __future__ import annotations

import sqlite3
import uuid

from pynenc_sidecar.core.positions import escape
from pynenc_sidecar.server import Stores
from pynenc_sidecar.storage.interface import HistoryEvent, InvocationRecord, ProjectedInvocation
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar.storage.redis.keys import glob_escape

# The bound docs/reliability.md states: bytes stored <= 2 x request bytes + 512 bytes per id
# (each invocation's history index; + the store's fixed costs, well under PER_CALL).
PER_ID, PER_CALL = 512, 16 * 1024


async def stored_bytes(stores: Stores, app_id: str) -> int:
    """The app's bytes on Redis; on SQLite the file's (its tables created first, by a write
    to another app, so that they are not counted as the app's)."""
    if isinstance(stores.store, RedisStore):
        client = stores.store.client
        total = 0
        async for key in client.scan_iter(match=f"psc:{{{glob_escape(escape(app_id))}[:}}]*", count=1000):
            total += await client.memory_usage(key, samples=0) or 0
        return total
    await stores.state_backend.project_invocation(app_id + "-tables", ProjectedInvocation(InvocationRecord("t", "{}")))
    with sqlite3.connect(stores.store.path) as conn:
        (pages,), (free,), (size,) = (conn.execute(f"PRAGMA {p}").fetchone()
                                      for p in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


def context_payload(kib: int, tag: str = "") -> str:
    return '{"executionContextJson":"' + tag + "x" * (kib * 1024) + '"}'


def test_a_payload_shared_by_many_ids_is_stored_once(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        ids = [f"inv-{n:04d}-{uuid.uuid4()}" for n in range(500)]  # 45 characters
        payload = context_payload(64)
        request_bytes = len(payload) + sum(len(i) + 2 for i in ids)
        before = await stored_bytes(stores, app)
        await backend.add_history(app, ids, 1_000, payload)
        grown = await stored_bytes(stores, app) - before
        # Before: every id stored its own copy (x2 on Redis: timeline and history), ~x460.
        assert grown <= 2 * request_bytes + PER_ID * len(ids) + PER_CALL, (grown, request_bytes)
        # A second request with the same context adds its entries, not another copy.
        more = await stored_bytes(stores, app)
        await backend.add_history(app, ids, 2_000, payload)
        assert await stored_bytes(stores, app) - more <= PER_ID * len(ids) + PER_CALL
        # Every entry reads back whole, in order, from either read.
        for invocation_id in (ids[0], ids[-1]):
            history = await backend.get_history(app, invocation_id)
            assert [(h.timestamp_us, h.payload) for h in history] == [(1_000, payload), (2_000, payload)]
        ranged = [r async for page in backend.history_in_range(app, 0, 10_000, 333) for r in page]
        assert [r.invocation_id for r in ranged] == ids + ids
        assert all(r.payload == payload for r in ranged)

    run(body())


def test_the_projection_stores_a_shared_payload_once_too(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        payload, small = context_payload(64), context_payload(0)
        grown = {}
        for app_id, each in ((app, payload), (app + "-small", small)):
            before = await stored_bytes(stores, app_id)
            for n in range(100):
                await backend.project_invocation(app_id, ProjectedInvocation(
                    InvocationRecord(f"task-{n}", "{}"), (HistoryEvent("final", 5_000, each),)))
            grown[app_id] = await stored_bytes(stores, app_id) - before
        # What the context adds to 100 projections (their records and indexes aside): before,
        # a copy per task (x2 on Redis).
        assert grown[app] - grown[app + "-small"] <= 2 * len(payload) + PER_CALL, grown
        assert [h.payload for h in await backend.get_history(app, "task-42")] == [payload]
        # Projected again: nothing appended, the payload still counted once per entry (a
        # purge of one task leaves it to the others).
        await backend.project_invocation(app, ProjectedInvocation(
            InvocationRecord("task-0", "{}"), (HistoryEvent("final", 5_000, payload),)))
        await backend.purge_workflow(app, "task-0")
        assert await backend.get_history(app, "task-0") == []
        assert [h.payload for h in await backend.get_history(app, "task-99")] == [payload]

    run(body())


def test_a_purge_deletes_a_payload_only_with_the_last_entry_naming_it(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        shared, own = context_payload(8, "shared"), context_payload(8, "own")
        await backend.add_history(app, ["wf-a", "wf-b"], 1_000, shared)
        await backend.add_history(app, ["wf-a"], 1_001, own)
        await backend.add_history(app, ["wf-a"], 1_002, own)  # the same payload, named twice
        await backend.purge_workflow(app, "wf-a")
        # wf-b still reads the shared context; wf-a's own one is gone with it.
        assert [h.payload for h in await backend.get_history(app, "wf-b")] == [shared]
        ranged = [r async for page in backend.history_in_range(app, 0, 10_000, 10) for r in page]
        assert [(r.invocation_id, r.payload) for r in ranged] == [("wf-b", shared)]
        await backend.purge_workflow(app, "wf-b")
        assert await backend.get_history(app, "wf-b") == []
        if isinstance(stores.store, RedisStore):
            # Only the counter that numbers entries is left (it only grows).
            assert await _redis_keys(stores, app) == [f"psc:{{{escape(app)}}}:hist_seq"]
        else:
            with sqlite3.connect(stores.store.path) as conn:
                assert conn.execute("SELECT count(*) FROM sb_history_payloads WHERE app=?", (app,)).fetchone() == (0,)
                assert conn.execute("SELECT count(*) FROM sb_history WHERE app=?", (app,)).fetchone() == (0,)

    run(body())


async def _redis_keys(stores: Stores, app_id: str) -> list[str]:
    pattern = f"psc:{{{glob_escape(escape(app_id))}[:}}]*"
    return sorted([key async for key in stores.store.client.scan_iter(match=pattern, count=1000)])


def test_history_written_before_payloads_were_stored_once_still_reads(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        await backend.add_history(app, ["inv"], 1_000, '{"new":1}')
        if isinstance(stores.store, RedisStore):
            client, tag = stores.store.client, f"psc:{{{escape(app)}}}"
            old = f"{2**40:016x}|inv|{{\"old\":1}}"  # the inline member of earlier versions
            await client.zadd(tag + ":hist:inv", {old: 500})
            await client.zadd(tag + ":timeline", {old: 500})
        else:
            with sqlite3.connect(stores.store.path) as conn:
                conn.execute("INSERT INTO sb_history (app, invocation, ts_us, payload) VALUES (?,?,?,?)",
                             (app, "inv", 500, '{"old":1}'))
        assert [h.payload for h in await backend.get_history(app, "inv")] == ['{"old":1}', '{"new":1}']
        ranged = [r async for page in backend.history_in_range(app, 0, 10_000, 1) for r in page]
        assert [r.payload for r in ranged] == ['{"old":1}', '{"new":1}']
        await backend.purge_workflow(app, "inv")
        assert await backend.get_history(app, "inv") == []
        assert [r async for page in backend.history_in_range(app, 0, 10_000, 1) for r in page] == []

    run(body())


async def _zset_reads(stores: Stores) -> int:
    stats = await stores.store.client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
               for name in ("zrange", "zrangebyscore", "zrank", "zscore", "zcount"))


def test_time_range_pages_over_ties_repeat_and_skip_nothing(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        # 600 entries on one microsecond between neighbours, paged across the ties.
        await backend.add_history(app, ["before"], 999, "{}")
        for chunk in range(6):
            await backend.add_history(app, [f"tie-{chunk}-{n:03d}" for n in range(100)], 1_000, f'{{"c":{chunk}}}')
        await backend.add_history(app, ["after"], 1_001, "{}")
        expected = ["before", *(f"tie-{c}-{n:03d}" for c in range(6) for n in range(100)), "after"]
        for batch in (1, 7, 100, 1000):
            got = [r.invocation_id for page in [p async for p in backend.history_in_range(app, 0, 2_000, batch)]
                   for r in page]
            assert got == expected, batch
        ids = [i async for page in backend.invocations_in_range(app, 1_000, 1_000, 13) for i in page]
        assert ids == expected[1:-1]

        # The cursor's entry purged between two pages: the next page starts right after it.
        pages = backend.history_in_range(app, 0, 2_000, 50)
        first = await anext(pages)
        await backend.purge_workflow(app, first[-1].invocation_id)
        rest = [r.invocation_id async for page in pages for r in page]
        assert [r.invocation_id for r in first] + rest == expected

    run(body())


def test_a_time_range_page_costs_the_page_not_the_ties_before_it(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        if not isinstance(stores.store, RedisStore):
            return  # SQLite pages by an index on (app, ts_us, seq): a keyset seek per page
        backend = stores.state_backend
        for chunk in range(10):
            await backend.add_history(app, [f"tie-{chunk}-{n:03d}" for n in range(100)], 1_000, "{}")
        reads = await _zset_reads(stores)
        pages = [page async for page in backend.history_in_range(app, 0, 2_000, 10)]
        assert sum(map(len, pages)) == 1000 and len(pages) == 100
        # Sorted-set reads per page, commands inside scripts included: before, page k read the
        # k pages of ties before it again (5,050 reads for these 100 pages).
        assert await _zset_reads(stores) - reads <= 4 * (len(pages) + 1)

    run(body())
