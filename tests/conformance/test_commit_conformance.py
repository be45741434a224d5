"""Conformance: a run's buffered operations committed in one atomic, lease-fenced step
(Store.commit), on every store."""

from __future__ import annotations

import asyncio

import pytest

from conformance.test_store_conformance import LAPSING_US, Run, lapsed, lease, task
from pynenc_sidecar.core import commits
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, LAST_TIME_FIELD, Kind, Position
from pynenc_sidecar.core.tasks import SUCCESS
from pynenc_sidecar.storage.interface import CommitConflict, LeaseNotHeld, ScopeFinished, Store, TaskNotFound

WF = "wf-c"


def pos(kind: Kind, sequence: int, name: str = "", scope: str = WF) -> Position:
    return Position(WF, scope, kind, name, sequence)


def batch(scope: str = WF, time_us: int = 5_000, custom: str = '{"a":1}') -> list[commits.CommitEntry]:
    return [commits.entry(pos(Kind.RANDOM, 1, scope=scope), "0.25"),
            commits.entry(pos(Kind.TIME, 1, scope=scope), str(time_us)),
            commits.entry(pos(Kind.CUSTOM, 1, "op", scope=scope), custom),
            commits.entry(pos(Kind.DATA_WRITE, 1, "k", scope=scope), '"written"')]


async def fields(store: Store, app: str) -> dict[str, str]:
    return {f: v for chunk in [c async for c in store.scan_log(app, WF, 1000)] for f, v in chunk.items()}


def test_a_commit_records_every_entry_once_with_counts_time_and_data(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("a"), 1)
        assert await store.commit(app, WF, WF, "lease-a", batch()) == [True] * 4
        log = await fields(store, app)
        assert {f: log[f] for f in ("r:1", "t:1", "c.op:1", "s.k:1")} == {
            "r:1": "0.25", "t:1": "5000", "c.op:1": '{"a":1}', "s.k:1": '"written"'}
        assert log[LAST_TIME_FIELD] == "5000" and log[BASE_TIME_FIELD] == "5000"
        assert await store.get_data(app, WF, "k") == '"written"'
        for e in batch():
            assert await store.get_count(app, WF, e.count_field) == 1
        # repeated (a retry after a lost reply): nothing new, nothing counted twice
        assert await store.commit(app, WF, WF, "lease-a", batch()) == [False] * 4
        for e in batch():
            assert await store.get_count(app, WF, e.count_field) == 1
        # a later time raises the last time; the base time stays
        later = [commits.entry(pos(Kind.TIME, 2), "9000")]
        assert await store.commit(app, WF, WF, "lease-a", later) == [True]
        log = await fields(store, app)
        assert log[LAST_TIME_FIELD] == "9000" and log[BASE_TIME_FIELD] == "5000"

    run(body())


def test_a_conflicting_entry_refuses_the_whole_commit(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("a"), 1)
        await store.record(app, WF, "c.op:1", "#n:c.op", '{"a":"winner"}')
        with pytest.raises(CommitConflict) as info:
            await store.commit(app, WF, WF, "lease-a", batch())
        assert (info.value.index, info.value.stored) == (2, '{"a":"winner"}')
        log = await fields(store, app)
        assert [f for f in log if not f.startswith("#")] == ["c.op:1"]  # nothing else written
        assert await store.get_data(app, WF, "k") is None
        assert await store.get_count(app, WF, "#n:r") == 0

    run(body())


def test_a_commit_is_fenced_by_the_lease(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        with pytest.raises(TaskNotFound):
            await store.commit(app, WF, WF, "lease-a", batch())
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("a", LAPSING_US), 1)
        await lapsed(store, app, WF)
        # lapsed but nobody took it over: still commits
        assert await store.commit(app, WF, WF, "lease-a", batch()[:1]) == [True]
        await store.acquire_lease(app, WF, lease("b"), 2)
        with pytest.raises(LeaseNotHeld):
            await store.commit(app, WF, WF, "lease-a", batch()[1:])
        with pytest.raises(LeaseNotHeld):  # even a repeat of what it committed
            await store.commit(app, WF, WF, "lease-a", batch()[:1])
        assert await store.get_recorded(app, WF, "t:1") is None
        assert await store.get_data(app, WF, "k") is None
        assert await store.commit(app, WF, WF, "lease-b", batch()[1:]) == [True] * 3

    run(body())


def test_a_finished_scope_takes_no_new_entry_but_accepts_a_repeat(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("a"), 1)
        assert await store.commit(app, WF, WF, "lease-a", batch()[:2]) == [True, True]
        await store.complete_task(app, WF, "lease-a", SUCCESS, "1", None, 2)
        assert await store.commit(app, WF, WF, "lease-a", batch()[:2]) == [False, False]
        with pytest.raises(ScopeFinished) as info:
            await store.commit(app, WF, WF, "lease-a", batch())
        assert (info.value.status, info.value.index) == (SUCCESS, 2)
        assert await store.get_recorded(app, WF, "c.op:1") is None

    run(body())


def test_a_task_scope_is_fenced_by_its_own_lease(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("main"), 1)
        await store.ensure_task(app, task("child", workflow_id=WF, parent=WF), lease("child"), 1)
        entries = batch("child")[:3]
        with pytest.raises(LeaseNotHeld):
            await store.commit(app, WF, "child", "lease-main", entries)
        assert await store.commit(app, WF, "child", "lease-child", entries) == [True] * 3
        assert await store.get_recorded(app, WF, "child|c.op:1") == '{"a":1}'

    run(body())


def test_racing_commits_of_one_position_let_one_win(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("a"), 1)
        attempts = [store.commit(app, WF, WF, "lease-a", batch(custom=f'{{"run":{i}}}')) for i in range(8)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        won = [i for i, r in enumerate(results) if r == [True] * 4]
        assert len(won) == 1
        assert all(isinstance(r, CommitConflict) for i, r in enumerate(results) if i != won[0])
        assert await store.get_recorded(app, WF, "c.op:1") == f'{{"run":{won[0]}}}'
        assert await store.get_count(app, WF, "#n:c.op") == 1

    run(body())
