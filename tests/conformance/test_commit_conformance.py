"""Conformance: a run's buffered operations committed in one atomic, lease-fenced step
(Store.commit), on every store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from conformance import conftest as conformance_conftest
from conformance.test_store_conformance import LAPSING_US, Run, lapsed, lease, task
from pynenc_sidecar.core import commits
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, LAST_TIME_FIELD, Kind, Position
from pynenc_sidecar.core.tasks import FAILED, RETRY, SUCCESS
from pynenc_sidecar.storage.interface import CommitConflict, LeaseNotHeld, ScopeFinished, Store, TaskNotFound
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar.storage.redis.keys import (
    scope_lease_field,
    scope_status_field,
    scope_version_field,
    task_key,
    workflow_tag,
)

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


# A task scope inside the workflow has its own task hash; on Redis (and Redis Cluster, where
# that hash lives on another slot) its commits are fenced by a mirror of its status and lease
# in the workflow's record hash. These follow the scope through its transitions.
def test_a_task_scope_commit_follows_its_lease_to_a_new_holder_and_its_finish(
        store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("main"), 1)
        await store.ensure_task(app, task("child", workflow_id=WF, parent=WF), lease("old", LAPSING_US), 1)
        await lapsed(store, app, "child")
        _, granted = await store.acquire_lease(app, "child", lease("new"), 2)
        assert granted
        entries = batch("child")
        with pytest.raises(LeaseNotHeld):
            await store.commit(app, WF, "child", "lease-old", entries[:1])
        assert await store.commit(app, WF, "child", "lease-new", entries[:1]) == [True]
        await store.complete_task(app, "child", "lease-new", SUCCESS, "1", None, 3)
        with pytest.raises(ScopeFinished):
            await store.commit(app, WF, "child", "lease-new", entries)
        assert await store.get_recorded(app, WF, "child|t:1") is None

    run(body())


def test_a_retried_task_scope_records_again(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("main"), 1)
        await store.ensure_task(app, task("child", workflow_id=WF, parent=WF), lease("child"), 1)
        await store.complete_task(app, "child", "lease-child", FAILED, None, '{"e":1}', 2)
        with pytest.raises(ScopeFinished):
            await store.record(app, WF, "child|r:1", "#n:child|r", "0.5", guard="child")
        await store.complete_task(app, WF, "lease-main", FAILED, None, '{"e":1}', 2)
        assert {s.invocation_id for s in await store.retry_failed(app, ["child", WF])} == {"child", WF}
        recorded = await store.record(app, WF, "child|r:1", "#n:child|r", "0.5", guard="child")
        assert (recorded.value, recorded.replayed) == ("0.5", False)
        _, granted = await store.acquire_lease(app, "child", lease("again"), 3)
        assert granted
        assert await store.commit(app, WF, "child", "lease-again", batch("child")[1:2]) == [True]

    run(body())


@pytest.fixture(params=["redis", "cluster"])
def redis_store(request: pytest.FixtureRequest, run: Run) -> Iterator[RedisStore]:
    subject = conformance_conftest.redis_store(request, request.param)
    yield subject
    run(subject.close())


def test_a_scope_mirror_lost_or_late_on_redis_neither_refuses_nor_reverts(
        redis_store: RedisStore, run: Run, app: str) -> None:
    """The mirror is a later step than the task's own script: a crash may lose it, and a slow
    caller may write an older one after a newer. A commit refused by a lost mirror mirrors the
    task anew and is asked again; an older mirror changes nothing (the task's 'ver')."""
    store, ops = redis_store, workflow_tag(app, WF) + ":ops"

    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("main"), 1)
        state, _, _ = await store.ensure_task(app, task("child", workflow_id=WF, parent=WF), lease("child"), 1)
        fields = await store.client.hgetall(task_key(app, "child"))
        await store.client.hdel(ops, *(field("child") for field in (scope_status_field, scope_lease_field,
                                                                     scope_version_field)))
        assert await store.commit(app, WF, "child", "lease-child", batch("child")[:1]) == [True]
        assert await store.client.hget(ops, scope_lease_field("child")) == "lease-child"
        await store.mirror_scope(app, "child", {**fields, "ver": "0", "status": "12", "lease_id": "lease-late"})
        assert await store.client.hget(ops, scope_lease_field("child")) == "lease-child"
        assert await store.commit(app, WF, "child", "lease-child", batch("child")[1:2]) == [True]
        assert state.lease_id == "lease-child"

    run(body())


def test_a_retry_cut_short_before_its_mirror_neither_refuses_the_scope_nor_stays_so(
        redis_store: RedisStore, run: Run, app: str) -> None:
    """A crash between a failed scope's reset (its task script) and its mirror: a record in
    that scope is not refused for the stale FAILED, and retrying again mirrors it too."""
    store, ops = redis_store, workflow_tag(app, WF) + ":ops"

    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("main"), 1)
        await store.ensure_task(app, task("child", workflow_id=WF, parent=WF), lease("child"), 1)
        await store.complete_task(app, "child", "lease-child", FAILED, None, '{"e":1}', 2)
        await store._task_call(app, "child", ["retry", 0])  # the reset alone: its mirror step lost
        assert await store.client.hget(ops, scope_status_field("child")) == str(FAILED)
        recorded = await store.record(app, WF, "child|r:1", "#n:child|r", "0.5", guard="child")
        assert (recorded.value, recorded.replayed) == ("0.5", False)
        await store.client.hset(ops, scope_version_field("child"), "1")  # as if lost again: an older mirror
        await store.client.hset(ops, scope_status_field("child"), str(FAILED))
        await store.retry_failed(app, ["child"])
        assert await store.client.hget(ops, scope_status_field("child")) == str(RETRY)

    run(body())
