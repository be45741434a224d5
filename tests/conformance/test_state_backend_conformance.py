"""Conformance of the StateBackendStore: every list pages in order from a keyset cursor,
without repeats or gaps when items are added between pages, with bounded reads per call;
the parent-event index; PurgeApp keeping the app info; data written before paging existed.
Runs against the Redis store and the embedded SQLite store.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from pynenc_sidecar.core.positions import escape
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.server import Stores
from pynenc_sidecar.storage.interface import InvocationRecord
from pynenc_sidecar.storage.redis import state_backend_store
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar.storage.redis.keys import app_tag
from pynenc_sidecar.storage.redis.state_backend_store import RedisStateBackendStore
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore
from pynenc_sidecar.storage.sqlite.state_backend_store import SqliteStateBackendStore

Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture
def backend(stores: Stores) -> Any:
    """The StateBackendStore of the conftest's stores, on each backend."""
    return stores.state_backend


@pytest.fixture
def app() -> str:
    return f"sbconf-{uuid.uuid4().hex}"


async def pages(fetch: Callable[[int, Any], Awaitable[list]], size: int, key=lambda item: item) -> list[list]:
    """Every page of a list, reading `size` at a time from the last item's key."""
    out, after = [], None
    while page := await fetch(size, after):
        assert len(page) <= size
        out.append(page)
        after = key(page[-1])
    return out


def inv(
    invocation_id: str, *, workflow: str = "", wtype: str = "", parent: str = "", event: str = ""
) -> InvocationRecord:
    return InvocationRecord(invocation_id, "{}", workflow, wtype, parent, event)


IDS = [f"i{n:03d}" for n in range(57)] + ["a*[x]", "z|{y}", "é漢", "m:n"]


# --- id lists ----------------------------------------------------------------------------
def _seeded_lists(backend: Any, app: str) -> dict[str, Callable[[int | None, str | None], Awaitable[list[str]]]]:
    return {
        "children": lambda limit, after: backend.child_invocations(app, "parent", limit, after),
        "by_event": lambda limit, after: backend.invocations_by_parent_event(app, "ev-1", limit, after),
        "by_workflow": lambda limit, after: backend.invocation_ids_by_workflow(app, "wf", "", limit, after),
        "by_type": lambda limit, after: backend.invocation_ids_by_workflow(app, "", "flow", limit, after),
        "by_both": lambda limit, after: backend.invocation_ids_by_workflow(app, "wf", "flow", limit, after),
        "subs": lambda limit, after: backend.sub_invocations(app, "wf", limit, after),
    }


def test_every_id_list_pages_in_order_without_repeats_or_gaps(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        await backend.upsert_invocations(app, [inv(i, workflow="wf", wtype="flow", parent="parent", event="ev-1")
                                               for i in IDS])
        # In the workflow but of another type: listed by workflow, not by type or by both.
        await backend.upsert_invocations(app, [inv("other", workflow="wf", wtype="else")])
        for i in IDS:
            await backend.store_sub_invocation(app, "wf", i)
        expected = sorted(IDS)
        for name, fetch in _seeded_lists(backend, app).items():
            want = sorted(IDS + ["other"]) if name == "by_workflow" else expected
            assert await fetch(None, None) == want, name
            for size in (1, 7, 1000):
                got = await pages(fetch, size)
                assert [i for page in got for i in page] == want, (name, size)
            assert await fetch(5, want[-1]) == [], name  # after the last id: nothing
            assert await fetch(3, "i0") == want[want.index("i000"):][:3], name  # a cursor need not be a member

    run(body())


def test_ids_added_between_pages_shift_nothing(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        await backend.upsert_invocations(app, [inv(f"b{n}", parent="p") for n in range(10)])
        first = await backend.child_invocations(app, "p", 4, None)
        assert first == ["b0", "b1", "b2", "b3"]
        # One sorting before the cursor, one after.
        await backend.upsert_invocations(app, [inv("a0", parent="p"), inv("c0", parent="p")])
        rest = await pages(lambda size, after: backend.child_invocations(app, "p", size, after or first[-1]), 4)
        assert [i for page in rest for i in page] == [f"b{n}" for n in range(4, 10)] + ["c0"]

    run(body())


def test_parent_event_index_follows_upserts(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        await backend.upsert_invocations(app, [inv("x", event="ev-a"), inv("y", event="ev-a"), inv("z")])
        assert await backend.invocations_by_parent_event(app, "ev-a") == ["x", "y"]
        # Replacing an invocation moves it out of its former event's list.
        await backend.upsert_invocations(app, [inv("y", event="ev-b")])
        assert await backend.invocations_by_parent_event(app, "ev-a") == ["x"]
        assert await backend.invocations_by_parent_event(app, "ev-b") == ["y"]
        assert (await backend.get_invocation(app, "y")).parent_event_id == "ev-b"
        assert await backend.invocations_by_parent_event(app, "") == []
        assert await backend.invocations_by_parent_event(app + "-other", "ev-b") == []

    run(body())


def test_workflow_types_page_sorted(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        types = [f"mod.flow{n:02d}" for n in range(23)]
        for n, workflow_type in enumerate(reversed(types)):
            await backend.store_workflow_run(app, WorkflowRef(f"wf{n}", workflow_type), n)
        await backend.store_workflow_run(app, WorkflowRef("again", types[0]), 99)  # a type listed once
        got = await pages(lambda size, after: backend.workflow_types(app, size, after), 5)
        assert [t for page in got for t in page] == types and len(got) == 5

    run(body())


# --- history -----------------------------------------------------------------------------
def _whole(records) -> list[tuple[int, str]]:
    return [(r.timestamp_us, r.payload) for r in records]


def test_history_pages_in_order_even_when_entries_share_a_time(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        for n in range(30):
            await backend.add_history(app, ["h"], 1_000 + (n // 10), f'{{"n":{n}}}')  # 10 entries per microsecond
        whole = await backend.get_history(app, "h")
        assert _whole(whole) == [(1_000 + n // 10, f'{{"n":{n}}}') for n in range(30)]
        for size in (1, 3, 10, 29):
            got = await pages(lambda limit, after: backend.get_history(app, "h", limit, after), size,
                              key=lambda r: r.cursor)
            assert [e for page in got for e in _whole(page)] == _whole(whole), size

    run(body())


def test_history_entries_added_before_the_cursor_neither_repeat_nor_hide_others(backend: Any, run: Run,
                                                                                 app: str) -> None:
    async def body() -> None:
        for n in range(6):
            await backend.add_history(app, ["h"], 5_000 + n, f'"{n}"')
        first = await backend.get_history(app, "h", 3, None)
        assert [r.payload for r in first] == ['"0"', '"1"', '"2"']
        # An entry with an earlier time (a client's own timestamp) lands before the cursor,
        # and one at the cursor's own time after it: the next pages go on from the cursor.
        await backend.add_history(app, ["h"], 1_000, '"early"')
        await backend.add_history(app, ["h"], 5_002, '"same time, later"')
        rest = await pages(lambda limit, after: backend.get_history(app, "h", limit, after or first[-1].cursor), 2,
                           key=lambda r: r.cursor)
        assert [r.payload for page in rest for r in page] == ['"same time, later"', '"3"', '"4"', '"5"']

    run(body())


# --- runner contexts ---------------------------------------------------------------------
def test_runner_search_pages_by_id_and_bounds_each_call(backend: Any, run: Run, app: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Redis looks at _SEARCH_CHUNKS * _SCAN_COUNT ids per call: make that small, so that a
    # call ends early with a place to go on from.
    monkeypatch.setattr(state_backend_store, "_SCAN_COUNT", 5)
    monkeypatch.setattr(state_backend_store, "_SEARCH_CHUNKS", 2)

    async def body() -> None:
        runners = [f"runner-{n:03d}" + ("-hit" if n % 7 == 0 else "") for n in range(60)]
        for runner_id in runners:
            await backend.store_runner_context(app, runner_id, f'{{"runnerId":"{runner_id}"}}')
        found, calls, after = [], 0, None
        while True:
            page, after = await backend.search_runner_contexts(app, "-hit", 2, after)
            calls += 1
            assert len(page) <= 2
            found += page
            if after is None:
                break
        hits = [r for r in runners if r.endswith("-hit")]
        assert [runner_id for runner_id, _ in found] == hits
        assert found[0][1] == f'{{"runnerId":"{hits[0]}"}}'
        assert calls >= len(hits) // 2
        page, after = await backend.search_runner_contexts(app, "no such runner", 10, None)
        while after is not None:  # a search with no match still ends
            assert page == []
            page, after = await backend.search_runner_contexts(app, "no such runner", 10, after)
        assert page == []

    run(body())


# --- purge ---------------------------------------------------------------------------------
def test_purge_app_keeps_the_app_info_when_asked(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        await backend.store_app_info(app, '{"appId":"x"}')
        await backend.set_result(app, "i", '"r"')
        await backend.purge_app(app, keep_app_info=True)
        assert await backend.get_result(app, "i") is None
        assert await backend.get_app_info(app) == '{"appId":"x"}'
        assert app in await backend.all_app_infos()
        await backend.purge_app(app)
        assert await backend.get_app_info(app) is None and app not in await backend.all_app_infos()

    run(body())


def test_app_infos_page_by_app_id_and_resume_after_the_last(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        mine = [f"{app}-{n}" for n in (3, 1, 2)]
        for app_id in mine:
            await backend.store_app_info(app_id, f'{{"appId":"{app_id}"}}')
        seen: list[str] = []
        after = None
        while page := await backend.app_infos_page(after, 2):
            assert len(page) <= 2 and [a for a, _ in page] == sorted(a for a, _ in page)
            seen += [a for a, _ in page]
            after = page[-1][0]
        assert seen == sorted(seen) and len(seen) == len(set(seen))  # every app once, in order
        assert [a for a in seen if a in mine] == sorted(mine)
        assert dict(await backend.app_infos_page(f"{app}-1", 1)) == {f"{app}-2": f'{{"appId":"{app}-2"}}'}
        for app_id in mine:
            await backend.purge_app(app_id)

    run(body())


# --- data written before paging existed --------------------------------------------------
def test_redis_indexes_written_as_sets_still_page_and_grow(redis_server: Any, run: Run, app: str) -> None:
    store = RedisStore(redis_server.url)
    backend = RedisStateBackendStore(store.client)
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        children = f"{app_tag(app)}:children:parent"
        subs = f"{app_tag(app)}:subs:wf"
        raw.sadd(children, "c2", "c1")
        raw.sadd(subs, "s1")
        raw.hset(f"{app_tag(app)}:runners", mapping={"old-runner": "{}"})
        # An invocation record of the earlier 4-item form.
        raw.set(f"{app_tag(app)}:inv:c1", '["","","parent","{}"]')

        async def body() -> None:
            assert await backend.child_invocations(app, "parent", 1, None) == ["c1"]
            assert await backend.child_invocations(app, "parent", 5, "c1") == ["c2"]
            await backend.upsert_invocations(app, [inv("c0", parent="parent")])
            assert await backend.child_invocations(app, "parent") == ["c0", "c1", "c2"]
            await backend.store_sub_invocation(app, "wf", "s0")
            assert await backend.sub_invocations(app, "wf") == ["s0", "s1"]
            assert (await backend.get_invocation(app, "c1")).parent_event_id == ""
            found, _ = await backend.search_runner_contexts(app, "old", 10, None)
            assert found == [("old-runner", "{}")]

        run(body())
        assert raw.type(children) == "zset" and raw.type(subs) == "zset"
    finally:
        raw.close()
        run(store.close())


def test_sqlite_file_from_before_parent_events_gains_the_column(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("""CREATE TABLE sb_invocations (
        app TEXT NOT NULL, invocation TEXT NOT NULL, workflow_id TEXT NOT NULL, workflow_type TEXT NOT NULL,
        parent TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (app, invocation))""")
    conn.execute("INSERT INTO sb_invocations VALUES ('a', 'old', 'wf', 't', '', '{}')")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    backend = SqliteStateBackendStore(store)

    async def body() -> None:
        assert (await backend.get_invocation("a", "old")) == InvocationRecord("old", "{}", "wf", "t", "", "")
        await backend.upsert_invocations("a", [inv("new", event="ev")])
        assert await backend.invocations_by_parent_event("a", "ev") == ["new"]
        await store.close()

    run(body())


def test_event_ids_never_collide_across_apps_or_with_tricky_text(backend: Any, run: Run, app: str) -> None:
    async def body() -> None:
        tricky = ["ev:1", "ev", "ev*", "ev[1]", escape("ev:1")]
        await backend.upsert_invocations(app, [inv(f"i{n}", event=e) for n, e in enumerate(tricky)])
        for n, event in enumerate(tricky):
            assert await backend.invocations_by_parent_event(app, event) == [f"i{n}"], event

    run(body())
