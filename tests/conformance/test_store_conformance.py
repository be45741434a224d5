"""The storage conformance suite: every store behind `storage.interface.Store` passes it.

Each test runs against every store (the `store` fixture's params). Tests are sync and
drive their coroutine on the fixture's own event loop, so no pytest plugin is needed.
Lease tests move time by passing `now_us`, never by sleeping.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.core.tasks import FAILED, REGISTERED, RUNNING, SUCCESS, TaskState, WorkflowRef
from pynenc_sidecar.storage.interface import LeaseNotHeld, LeaseRequest, Store, TaskNotFound
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

# Ids that would collide under naive key concatenation or escaping.
TRICKY_IDS = ["a", "a:b", "a:b:c", "b:c", "{a}", "a}:{b", "}", "{", "*", "a*", "%", "%3A", "a%3Ab",
              "a|b", "|", "#", "#base", "a#b", "\u00fc", "u\u0308", "日本", "🙂", "a b", "a\nb", ""]


def task(invocation_id: str, *, task_id: str = "mod.task", args: str = '{"x":1}', workflow_id: str = "wf-1",
         parent: str = "") -> TaskState:
    return TaskState(invocation_id, task_id, args, WorkflowRef(workflow_id, "mod.flow", ""), parent)


# Leases are measured on the store's clock (Redis TIME, the host clock for SQLite), not on the
# now_us a call passes: a lease of LIVE_US stays live for any test, one of LAPSING_US lapses at
# once, and `lapsed` waits (a few ms at most) until the store's clock is past it.
LIVE_US = 3_600_000_000
LAPSING_US = 1


def lease(name: str, ttl_us: int = LIVE_US) -> LeaseRequest:
    return LeaseRequest(f"lease-{name}", ttl_us, f"runner-{name}")


async def store_now_us(store: Store) -> int:
    if isinstance(store, SqliteStore):
        return store.clock_us()
    seconds, micros = await store.client.time()  # type: ignore[attr-defined]
    return int(seconds) * 1_000_000 + int(micros)


async def lapsed(store: Store, app_id: str, invocation_id: str) -> None:
    """Return once the store's clock is past the invocation's lease expiry."""
    expire_us = (await store.get_task(app_id, invocation_id)).lease_expire_us
    for _ in range(1000):
        if await store_now_us(store) >= expire_us:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the store's clock never passed the lease's expiry")


async def whole_log(store: Store, app_id: str, workflow_id: str, batch_size: int = 1000) -> tuple[dict[str, str], int]:
    """The log merged from every batch, and how many batches it took."""
    merged: dict[str, str] = {}
    batches = 0
    async for chunk in store.scan_log(app_id, workflow_id, batch_size):
        for field, value in chunk.items():
            assert merged.setdefault(field, value) == value, f"{field} changed value mid-scan"
        batches += 1
    return merged, batches


async def stored_runs(store: Store, app_id: str) -> dict[str, int]:
    """The runs a store kept, read through the interface: encoded identity -> first time."""
    return {run.workflow.encode(): run.first_us async for batch in store.scan_runs(app_id) for run in batch}


async def all_runs(store: Store, app_id: str, **kwargs: Any) -> list[tuple[str, int]]:
    """scan_runs flattened to (workflow id, first time), checking every batch's size."""
    found = []
    async for batch in store.scan_runs(app_id, **kwargs):
        assert 0 < len(batch) <= kwargs.get("batch_size", 500)
        found += [(run.workflow.workflow_id, run.first_us) for run in batch]
    return found


# --- recorded operations -----------------------------------------------------------------
def test_record_first_writer_wins(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.record(app, "wf", "c.op:1", "#n:c.op", '"first"') == ('"first"', False)
        assert await store.record(app, "wf", "c.op:1", "#n:c.op", '"second"') == ('"first"', True)
        assert await store.get_recorded(app, "wf", "c.op:1") == '"first"'
        assert await store.get_count(app, "wf", "#n:c.op") == 1
        assert await store.record(app, "wf", "c.op:2", "#n:c.op", "2") == ("2", False)
        assert await store.get_count(app, "wf", "#n:c.op") == 2

    run(body())


def test_count_is_per_series_and_replays_do_not_count(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        for seq in range(1, 4):
            await store.record(app, "wf", f"r:{seq}", "#n:r", "0.5")
        await store.record(app, "wf", "u:1", "#n:u", '"id"')
        for seq in range(1, 4):
            assert (await store.record(app, "wf", f"r:{seq}", "#n:r", "0.9"))[1] is True
        assert await store.get_count(app, "wf", "#n:r") == 3
        assert await store.get_count(app, "wf", "#n:u") == 1
        assert await store.get_count(app, "wf", "#n:never") == 0
        assert await store.get_count(app, "other-wf", "#n:r") == 0

    run(body())


def test_racing_records_at_one_field_all_get_one_value(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        results = await asyncio.gather(*(store.record(app, "wf", "c.race:1", "#n:c.race", str(i)) for i in range(32)))
        values = {value for value, _ in results}
        assert len(values) == 1
        assert [replayed for _, replayed in results].count(False) == 1
        assert await store.get_recorded(app, "wf", "c.race:1") == values.pop()
        assert await store.get_count(app, "wf", "#n:c.race") == 1

    run(body())


def test_racing_records_at_many_fields_count_every_one(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        results = await asyncio.gather(*(store.record(app, "wf", f"r:{i}", "#n:r", str(i)) for i in range(1, 33)))
        assert results == [(str(i), False) for i in range(1, 33)]
        assert await store.get_count(app, "wf", "#n:r") == 32

    run(body())


def test_empty_string_and_json_null_are_values(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.get_recorded(app, "wf", "c.x:1") is None
        assert await store.record(app, "wf", "c.x:1", "#n:c.x", "null") == ("null", False)
        assert await store.get_recorded(app, "wf", "c.x:1") == "null"
        assert await store.record(app, "wf", "c.x:1", "#n:c.x", "1") == ("null", True)
        assert await store.record(app, "wf", "c.x:2", "#n:c.x", "") == ("", False)
        assert await store.record(app, "wf", "c.x:2", "#n:c.x", "2") == ("", True)
        assert await store.get_recorded(app, "wf", "c.x:2") == ""
        assert await store.get_recorded(app, "wf", "c.x:3") is None

    run(body())


# --- time --------------------------------------------------------------------------------
def test_record_time_strictly_increases_even_when_now_goes_back(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.record_time(app, "wf", "t:1", "#n:t", 1_000_000) == (1_000_000, False)
        assert await store.record_time(app, "wf", "t:2", "#n:t", 500) == (1_000_001, False)
        assert await store.record_time(app, "wf", "t:3", "#n:t", 1_000_001) == (1_000_002, False)
        assert await store.record_time(app, "wf", "t:4", "#n:t", 5_000_000) == (5_000_000, False)
        # Replays return what was recorded, whatever the clock says now.
        assert await store.record_time(app, "wf", "t:2", "#n:t", 9_999_999) == (1_000_001, True)
        assert await store.get_count(app, "wf", "#n:t") == 4
        # The first recorded time is the workflow's time zero.
        assert await store.base_time(app, "wf", 42) == (1_000_000, True)
        assert await store.get_recorded(app, "wf", "t:3") == "1000002"

    run(body())


def test_record_time_is_after_an_earlier_base_time(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.base_time(app, "wf", 2_000_000) == (2_000_000, False)
        assert await store.record_time(app, "wf", "t:1", "#n:t", 1_000_000) == (2_000_001, False)
        assert await store.base_time(app, "wf", 3_000_000) == (2_000_000, True)

    run(body())


def test_racing_record_times_are_distinct(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        results = await asyncio.gather(*(store.record_time(app, "wf", f"t:{i}", "#n:t", 7_000_000) for i in range(32)))
        times = [t for t, _ in results]
        assert len(set(times)) == 32
        assert min(times) == 7_000_000 and max(times) == 7_000_031
        assert await store.base_time(app, "wf", 0) == (7_000_000, True)

    run(body())


def test_base_time_is_set_once(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.base_time(app, "wf", 10) == (10, False)
        assert await store.base_time(app, "wf", 20) == (10, True)
        assert await store.get_recorded(app, "wf", "#base") == "10"
        results = await asyncio.gather(*(store.base_time(app, "wf2", now) for now in range(100, 116)))
        assert len({t for t, _ in results}) == 1
        assert [replayed for _, replayed in results].count(False) == 1

    run(body())


# --- the whole log -----------------------------------------------------------------------
def test_scan_log_returns_every_field_with_metadata(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.record(app, "wf", "r:1", "#n:r", "0.25")
        await store.record(app, "wf", "sub%3A1|c.op:1", "#n:sub%3A1|c.op", "null")
        await store.record_time(app, "wf", "t:1", "#n:t", 123)
        merged, _ = await whole_log(store, app, "wf", 1000)
        assert merged == {
            "r:1": "0.25", "#n:r": "1", "sub%3A1|c.op:1": "null", "#n:sub%3A1|c.op": "1",
            "t:1": "123", "#n:t": "1", "#base": "123", "#last": "123",
        }
        assert (await whole_log(store, app, "never-recorded", 1000))[0] == {}

    run(body())


def test_scan_log_batches_a_large_log(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        for start in range(1, 2501, 250):
            await asyncio.gather(
                *(store.record(app, "wf", f"u:{i}", "#n:u", f'"{i}"') for i in range(start, start + 250))
            )
        merged, batches = await whole_log(store, app, "wf", 1000)
        assert len(merged) == 2501
        assert merged["#n:u"] == "2500"
        assert all(merged[f"u:{i}"] == f'"{i}"' for i in range(1, 2501))
        assert batches >= 2

    run(body())


def test_scan_log_brings_the_base_time_in_its_first_batch(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        for start in range(1, 2501, 250):
            await asyncio.gather(
                *(store.record(app, "wf", f"u:{i}", "#n:u", f'"{i}"') for i in range(start, start + 250))
            )
        await store.record_time(app, "wf", "t:1", "#n:t", 123)
        batches = [chunk async for chunk in store.scan_log(app, "wf", 200)]
        assert len(batches) >= 2 and batches[0]["#base"] == "123"

    run(body())


def test_read_log_reads_a_small_log_at_once_and_declines_a_large_one(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.read_log(app, "never-recorded", 100) == {}
        await store.record(app, "wf", "r:1", "#n:r", "0.25", "a" * 48)
        await store.record_time(app, "wf", "t:1", "#n:t", 123)
        assert await store.read_log(app, "wf", 100) == (await whole_log(store, app, "wf", 1000))[0]
        for start in range(1, 2001, 250):
            await asyncio.gather(
                *(store.record(app, "wf", f"u:{i}", "#n:u", f'"{i}"') for i in range(start, start + 250))
            )
        assert await store.read_log(app, "wf", 1000) is None
        merged = await store.read_log(app, "wf", 4096)
        assert merged is not None and merged == (await whole_log(store, app, "wf", 1000))[0]
        assert len(merged) == 2002 + 3 + 2 + 1  # values, counters, #base and #last, one origin

    run(body())


# --- workflow data -----------------------------------------------------------------------
def test_data_lives_apart_from_recorded_operations(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.record(app, "wf", "c.k:1", "#n:c.k", '"recorded"')
        await store.set_data(app, "wf", "c.k:1", '"data"')
        await store.set_data(app, "wf", "#n:c.k", "99")
        await store.set_data(app, "wf", "#base", "1")
        assert await store.get_recorded(app, "wf", "c.k:1") == '"recorded"'
        assert await store.get_data(app, "wf", "c.k:1") == '"data"'
        assert await store.get_count(app, "wf", "#n:c.k") == 1
        assert await store.base_time(app, "wf", 5) == (5, False)
        assert await store.get_data(app, "wf", "#base") == "1"
        merged, _ = await whole_log(store, app, "wf")
        assert merged == {"c.k:1": '"recorded"', "#n:c.k": "1", "#base": "5", "#last": "5"}

    run(body())


def test_data_get_set_overwrite_and_null(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.get_data(app, "wf", "key") is None
        await store.set_data(app, "wf", "key", '{"a":1}')
        assert await store.get_data(app, "wf", "key") == '{"a":1}'
        await store.set_data(app, "wf", "key", "null")
        assert await store.get_data(app, "wf", "key") == "null"
        assert await store.get_data(app, "other-wf", "key") is None
        assert await store.get_recorded(app, "wf", "key") is None

    run(body())


# --- tasks -------------------------------------------------------------------------------
def test_ensure_task_creates_once_and_keeps_the_first_definition(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        first = task("inv-1", parent="wf-1")
        state, granted, created = await store.ensure_task(app, first, None, 100)
        assert (granted, created) == (False, True)
        assert (state.invocation_id, state.task_id, state.arguments_json) == ("inv-1", "mod.task", '{"x":1}')
        assert state.workflow == first.workflow and state.parent_invocation_id == "wf-1"
        assert state.status == REGISTERED and state.lease_id == "" and state.lease_expire_us == 0
        assert state.result_json is None and state.error_json is None

        other = task("inv-1", task_id="mod.other", args='{"x":2}', workflow_id="wf-9")
        again, granted, created = await store.ensure_task(app, other, None, 200)
        assert (granted, created) == (False, False)
        assert (again.task_id, again.arguments_json, again.workflow) == ("mod.task", '{"x":1}', first.workflow)
        assert await store.get_task(app, "inv-1") == again

    run(body())


def test_ensure_task_indexes_its_run_in_the_same_step(store: Store, run: Run, app: str) -> None:
    # StartWorkflow's one write: a task found registered always has its run indexed.
    async def body() -> None:
        main = task("wf-1", task_id="mod.flow")
        _, granted, created = await store.ensure_task(app, main, lease("a"), 500, index_run=True)
        assert (granted, created) == (True, True)
        assert await store.run_started(app, main.workflow) == 500
        assert await stored_runs(store, app) == {main.workflow.encode(): 500}
        assert app in await store.app_ids()
        # Again (a replay, or a retry after a deadline): the first time is kept.
        await store.ensure_task(app, main, lease("b"), 900, index_run=True)
        assert await stored_runs(store, app) == {main.workflow.encode(): 500}
        # Without index_run, a task registers no run.
        await store.ensure_task(app, task("inv-2", workflow_id="wf-2"), None, 600)
        assert await stored_runs(store, app) == {main.workflow.encode(): 500}

    run(body())


def test_index_unindexed_runs_indexes_main_tasks_left_without_a_run(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        # What 0.1.0 could leave: main tasks registered, their runs never indexed.
        finished = task("wf-done", task_id="mod.flow", workflow_id="wf-done")
        await store.ensure_task(app, finished, lease("a"), 100)
        await store.complete_task(app, "wf-done", "lease-a", SUCCESS, "1", None, 250)
        running = task("wf-running", task_id="mod.flow", workflow_id="wf-running")
        await store.ensure_task(app, running, lease("a"), 100)
        # Not main tasks: a task of another workflow, and a main task whose run is indexed.
        await store.ensure_task(app, task("child", workflow_id="wf-done"), None, 100)
        indexed = task("wf-ok", task_id="mod.flow", workflow_id="wf-ok")
        await store.ensure_task(app, indexed, None, 50, index_run=True)

        repaired = [(a, ref) for a, ref in await store.index_unindexed_runs(10_000) if a == app]
        assert sorted(ref.workflow_id for _, ref in repaired) == ["wf-done", "wf-running"]
        assert await stored_runs(store, app) == {
            indexed.workflow.encode(): 50, finished.workflow.encode(): 250, running.workflow.encode(): 10_000}
        assert [ref for a, ref in await store.index_unindexed_runs(20_000) if a == app] == []

    run(body())


def test_ensure_task_grants_a_lease_only_when_none_is_live(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        before = await store_now_us(store)
        # now_us (a replica's clock, here absurdly early) does not measure the lease.
        state, granted, created = await store.ensure_task(app, task("inv"), lease("a"), 10_000)
        assert (granted, created) == (True, True)
        assert (state.status, state.lease_id, state.runner_id) == (RUNNING, "lease-a", "runner-a")
        assert before + LIVE_US <= state.lease_expire_us <= await store_now_us(store) + LIVE_US

        state, granted, created = await store.ensure_task(app, task("inv"), lease("b"), state.lease_expire_us + 1)
        assert (granted, created) == (False, False)
        assert state.lease_id == "lease-a"
        # The live holder asking again is not granted a second lease either.
        assert (await store.acquire_lease(app, "inv", lease("a"), 10_500))[1] is False

        # Lapsed, on the store's clock: the next caller takes it over.
        await store.ensure_task(app, task("short"), lease("a", LAPSING_US), 0)
        await lapsed(store, app, "short")
        state, granted, _ = await store.ensure_task(app, task("short"), lease("b"), 0)
        assert granted is True
        assert (state.status, state.lease_id, state.runner_id) == (RUNNING, "lease-b", "runner-b")

    run(body())


def test_racing_ensures_create_once_and_grant_once(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        results = await asyncio.gather(*(store.ensure_task(app, task("inv"), lease(str(i)), 1_000) for i in range(16)))
        assert [created for _, _, created in results].count(True) == 1
        assert [granted for _, granted, _ in results].count(True) == 1
        winner = next(state.lease_id for state, granted, _ in results if granted)
        assert (await store.get_task(app, "inv")).lease_id == winner

    run(body())


def test_acquire_lease_takes_over_after_expiry(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("inv"), None, 0)
        state, granted = await store.acquire_lease(app, "inv", lease("a", LAPSING_US), 1_000)
        assert granted is True and state.lease_id == "lease-a"
        await lapsed(store, app, "inv")
        state, granted = await store.acquire_lease(app, "inv", lease("b"), 0)
        assert granted is True and (state.lease_id, state.runner_id) == ("lease-b", "runner-b")
        # Live: whatever time the callers think it is, nobody else gets it.
        assert (await store.acquire_lease(app, "inv", lease("c"), state.lease_expire_us + 1))[1] is False
        await store.renew_lease(app, "inv", "lease-b", LAPSING_US, 0)
        await lapsed(store, app, "inv")
        racing = await asyncio.gather(*(store.acquire_lease(app, "inv", lease(f"c{i}"), 3_000) for i in range(16)))
        assert [granted for _, granted in racing].count(True) == 1

    run(body())


def test_renew_lease(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("inv"), lease("a", LAPSING_US), 0)
        await lapsed(store, app, "inv")
        # Lapsed but not taken over: its holder may still renew it.
        before = await store_now_us(store)
        expire_us = await store.renew_lease(app, "inv", "lease-a", LIVE_US, 800)
        assert before + LIVE_US <= expire_us <= await store_now_us(store) + LIVE_US
        assert (await store.get_task(app, "inv")).lease_expire_us == expire_us
        with pytest.raises(LeaseNotHeld):
            await store.renew_lease(app, "inv", "lease-b", LIVE_US, 900)
        # Renewed, so live: b is not let in.
        assert (await store.acquire_lease(app, "inv", lease("b"), expire_us + 1))[1] is False
        # Taken over after it lapsed: the old holder can no longer renew.
        await store.renew_lease(app, "inv", "lease-a", LAPSING_US, 0)
        await lapsed(store, app, "inv")
        assert (await store.acquire_lease(app, "inv", lease("b"), 0))[1] is True
        with pytest.raises(LeaseNotHeld):
            await store.renew_lease(app, "inv", "lease-a", LIVE_US, 6_001)
        assert await store.renew_lease(app, "inv", "lease-b", LIVE_US, 6_500) >= expire_us
        # Finished: nobody holds anything any more.
        await store.complete_task(app, "inv", "lease-b", SUCCESS, "1", None, 6_600)
        with pytest.raises(LeaseNotHeld):
            await store.renew_lease(app, "inv", "lease-b", LIVE_US, 6_700)

    run(body())


def test_unknown_invocations(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.get_task(app, "nope") is None
        with pytest.raises(TaskNotFound):
            await store.acquire_lease(app, "nope", lease("a"), 0)
        with pytest.raises(TaskNotFound):
            await store.renew_lease(app, "nope", "lease-a", 1_000, 0)
        with pytest.raises(TaskNotFound):
            await store.complete_task(app, "nope", "lease-a", SUCCESS, "1", None, 0)
        # Looking did not create anything.
        assert await store.get_task(app, "nope") is None

    run(body())


def test_complete_task_first_outcome_wins(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("inv"), lease("a", 1_000), 0)
        state, accepted = await store.complete_task(app, "inv", "lease-a", SUCCESS, "null", None, 10)
        assert accepted is True
        assert (state.status, state.result_json, state.error_json, state.lease_expire_us) == (SUCCESS, "null", None, 0)
        assert state.finished

        state, accepted = await store.complete_task(app, "inv", "lease-a", FAILED, None, '{"type":"E"}', 20)
        assert accepted is False
        assert (state.status, state.result_json) == (SUCCESS, "null")
        # A finished task is never leased again.
        state, granted = await store.acquire_lease(app, "inv", lease("b"), 10_000)
        assert granted is False and state.status == SUCCESS
        assert (await store.ensure_task(app, task("inv"), lease("c"), 10_000))[1] is False

    run(body())


def test_complete_task_with_an_error(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("inv"), lease("a"), 0)
        error = '{"type":"ValueError","message":"bad","detail_json":"{}"}'
        state, accepted = await store.complete_task(app, "inv", "lease-a", FAILED, None, error, 10)
        assert accepted is True
        assert (state.status, state.error_json, state.result_json) == (FAILED, error, None)
        assert await store.get_task(app, "inv") == state

    run(body())


def test_racing_completions_accept_one(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("inv"), lease("a", LAPSING_US), 0)
        await lapsed(store, app, "inv")
        # The holder's lease lapsed, nobody took it over: its outcomes still count, first wins.
        results = await asyncio.gather(*(
            store.complete_task(app, "inv", "lease-a", SUCCESS, str(i), None, 5_000) for i in range(16)
        ))
        assert [accepted for _, accepted in results].count(True) == 1
        final = {(state.status, state.result_json) for state, _ in results}
        assert len(final) == 1

    run(body())


def test_stale_holder_cannot_complete_while_another_lease_is_live(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("inv"), lease("a", LAPSING_US), 0)
        await lapsed(store, app, "inv")
        assert (await store.acquire_lease(app, "inv", lease("b"), 2_000))[1] is True
        with pytest.raises(LeaseNotHeld):
            await store.complete_task(app, "inv", "lease-a", SUCCESS, '"stale"', None, 2_500)
        assert (await store.get_task(app, "inv")).status == RUNNING
        state, accepted = await store.complete_task(app, "inv", "lease-b", SUCCESS, '"fresh"', None, 2_600)
        assert accepted is True and state.result_json == '"fresh"'

    run(body())


def test_a_holder_taken_over_stays_fenced_after_the_new_lease_lapses(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("inv"), lease("a", LAPSING_US), 0)
        await lapsed(store, app, "inv")
        await store.acquire_lease(app, "inv", lease("b", LAPSING_US), 2_000)
        await lapsed(store, app, "inv")
        # b's lease lapsed too, but b may still be running: a's late outcome is refused, and
        # a renewal by a as well. (Before fencing, a's late outcome was accepted here.)
        with pytest.raises(LeaseNotHeld):
            await store.complete_task(app, "inv", "lease-a", SUCCESS, '"late"', None, 3_000)
        with pytest.raises(LeaseNotHeld):
            await store.renew_lease(app, "inv", "lease-a", LIVE_US, 3_000)
        assert (await store.get_task(app, "inv")).status == RUNNING
        state, accepted = await store.complete_task(app, "inv", "lease-b", SUCCESS, '"b"', None, 3_100)
        assert accepted is True and (state.status, state.result_json, state.finished_us) == (SUCCESS, '"b"', 3_100)

    run(body())


def test_get_tasks_keeps_order_and_gives_none_for_missing(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task("one"), None, 0)
        await store.ensure_task(app, task("two", task_id="mod.two"), None, 0)
        states = await store.get_tasks(app, ["two", "missing", "one", "two"])
        assert [s.task_id if s else None for s in states] == ["mod.two", None, "mod.task", "mod.two"]
        assert [s.invocation_id if s else None for s in states] == ["two", None, "one", "two"]
        assert await store.get_tasks(app, []) == []
        assert await store.get_tasks(app, ["missing"]) == [None]

    run(body())


# --- workflow runs -----------------------------------------------------------------------
def test_store_workflow_run_is_idempotent(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        ref = WorkflowRef("wf-1", "mod.flow", "")
        child = WorkflowRef("wf-2", "mod.child", "wf-1")
        await store.store_workflow_run(app, ref, 100)
        await store.store_workflow_run(app, ref, 200)
        await asyncio.gather(*(store.store_workflow_run(app, child, 300 + i) for i in range(8)))
        runs = await stored_runs(store, app)
        assert runs[ref.encode()] == 100
        assert len(runs) == 2 and child.encode() in runs

    run(body())


def test_scan_runs_oldest_first_by_type_and_until(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await all_runs(store, app) == []
        for n in range(7):
            kind = "mod.even" if n % 2 == 0 else "mod.odd"
            await store.store_workflow_run(app, WorkflowRef(f"wf-{n}", kind), 1_000 - n * 100)
        # Two runs of one microsecond are ordered by identity.
        await store.store_workflow_run(app, WorkflowRef("wf-b", "mod.odd"), 400)
        await store.store_workflow_run(app, WorkflowRef("wf-a", "mod.odd"), 400)
        expected = [("wf-6", 400), ("wf-a", 400), ("wf-b", 400), ("wf-5", 500), ("wf-4", 600), ("wf-3", 700),
                    ("wf-2", 800), ("wf-1", 900), ("wf-0", 1_000)]
        assert await all_runs(store, app) == expected
        assert await all_runs(store, app, batch_size=2) == expected
        assert await all_runs(store, app, batch_size=1, until_us=600) == expected[:5]
        assert await all_runs(store, app, until_us=399) == []
        assert await all_runs(store, app, workflow_type="mod.odd") == [
            ("wf-a", 400), ("wf-b", 400), ("wf-5", 500), ("wf-3", 700), ("wf-1", 900)]
        assert await all_runs(store, app, workflow_type="mod.odd", until_us=500, batch_size=2) == [
            ("wf-a", 400), ("wf-b", 400), ("wf-5", 500)]
        assert await all_runs(store, app, workflow_type="mod.none") == []
        batch = [b async for b in store.scan_runs(app, workflow_type="mod.even", batch_size=10)][0]
        assert batch[0].workflow == WorkflowRef("wf-6", "mod.even", "")
        assert await store.run_started(app, WorkflowRef("wf-5", "mod.odd")) == 500
        assert await store.run_started(app, WorkflowRef("wf-5", "mod.even")) is None  # another identity
        assert await store.run_started(app + "-other", WorkflowRef("wf-5", "mod.odd")) is None

    run(body())


def test_app_ids_lists_apps_with_runs(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        others = [app + "-b", app + ":{c}"]
        await store.record(app + "-no-runs", "wf", "r:1", "#n:r", "0.5")
        for name in [app, *others, app]:
            await store.store_workflow_run(name, WorkflowRef("wf", "mod.flow"), 10)
        ids = await store.app_ids()
        assert {app, *others} <= set(ids)
        assert app + "-no-runs" not in ids
        assert ids == sorted(ids) and len(ids) == len(set(ids))

    run(body())


def test_workflow_data_returns_every_key_and_nothing_recorded(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert await store.workflow_data(app, "wf") == {}
        await store.record(app, "wf", "c.k:1", "#n:c.k", '"recorded"')
        await store.set_data(app, "wf", "a", "1")
        await store.set_data(app, "wf", "b", "null")
        await store.set_data(app, "wf", "a", '{"x":[1]}')
        await store.set_data(app, "other", "c", "3")
        assert await store.workflow_data(app, "wf") == {"a": '{"x":[1]}', "b": "null"}

    run(body())


def test_a_finished_task_keeps_when_it_finished(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        state, _, _ = await store.ensure_task(app, task("inv"), lease("a"), 100)
        assert state.finished_us == 0
        state, accepted = await store.complete_task(app, "inv", "lease-a", SUCCESS, "1", None, 5_000)
        assert accepted and state.finished_us == 5_000
        state, accepted = await store.complete_task(app, "inv", "lease-a", FAILED, None, "{}", 9_000)
        assert not accepted and state.finished_us == 5_000
        assert (await store.get_task(app, "inv")).finished_us == 5_000
        assert (await store.get_tasks(app, ["inv"]))[0].finished_us == 5_000

    run(body())


# --- isolation ---------------------------------------------------------------------------
def test_apps_never_see_each_other(store: Store, run: Run, app: str) -> None:
    other = app + "-other"

    async def body() -> None:
        await store.record(app, "wf", "r:1", "#n:r", "0.1")
        await store.base_time(app, "wf", 1)
        await store.set_data(app, "wf", "k", "1")
        await store.ensure_task(app, task("wf"), lease("a"), 0)
        await store.store_workflow_run(app, WorkflowRef("wf", "mod.flow"), 0)

        assert await store.get_recorded(other, "wf", "r:1") is None
        assert await store.get_count(other, "wf", "#n:r") == 0
        assert (await whole_log(store, other, "wf"))[0] == {}
        assert await store.get_data(other, "wf", "k") is None
        assert await store.get_task(other, "wf") is None
        assert await stored_runs(store, other) == {}
        assert await store.record(other, "wf", "r:1", "#n:r", "0.2") == ("0.2", False)
        assert await store.base_time(other, "wf", 2) == (2, False)
        state, granted, created = await store.ensure_task(other, task("wf"), lease("b"), 0)
        assert (granted, created) == (True, True)
        assert await store.get_recorded(app, "wf", "r:1") == "0.1"
        assert (await store.get_task(app, "wf")).lease_id == "lease-a"

    run(body())


def test_tricky_ids_never_collide(store: Store, run: Run, app: str) -> None:
    pairs = [(f"{app}{a}", w) for a in ["", ":", "{x}", "%3A", "|", "#", "ü"] for w in TRICKY_IDS]
    pairs += [(app, f"x:{w}") for w in TRICKY_IDS] + [(f"{app}:x", w) for w in TRICKY_IDS]

    async def body() -> None:
        for n, (a, w) in enumerate(pairs):
            assert await store.record(a, w, "c.op:1", "#n:c.op", str(n)) == (str(n), False), (a, w)
            await store.set_data(a, w, "key", str(n))
            _, _, created = await store.ensure_task(a, task(w, args=str(n)), None, 0)
            assert created, (a, w)
        for n, (a, w) in enumerate(pairs):
            assert await store.get_recorded(a, w, "c.op:1") == str(n), (a, w)
            assert await store.get_count(a, w, "#n:c.op") == 1, (a, w)
            assert await store.get_data(a, w, "key") == str(n), (a, w)
            assert (await store.get_task(a, w)).arguments_json == str(n), (a, w)
            assert (await whole_log(store, a, w))[0] == {"c.op:1": str(n), "#n:c.op": "1"}, (a, w)

    run(body())


# --- the embedded store only -------------------------------------------------------------
def test_sqlite_survives_close_and_reopen(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "state.db"

    async def write() -> None:
        store = SqliteStore(path)
        await store.record("app", "wf", "r:1", "#n:r", "0.5")
        await store.record_time("app", "wf", "t:1", "#n:t", 77)
        await store.set_data("app", "wf", "k", '"v"')
        await store.ensure_task("app", task("inv"), lease("a"), 0)
        await store.complete_task("app", "inv", "lease-a", SUCCESS, '"done"', None, 1)
        await store.close()

    async def read() -> None:
        store = SqliteStore(path)
        try:
            assert await store.record("app", "wf", "r:1", "#n:r", "0.9") == ("0.5", True)
            assert await store.base_time("app", "wf", 999) == (77, True)
            assert await store.record_time("app", "wf", "t:2", "#n:t", 10) == (78, False)
            assert await store.get_data("app", "wf", "k") == '"v"'
            state = await store.get_task("app", "inv")
            assert (state.status, state.result_json) == (SUCCESS, '"done"')
        finally:
            await store.close()

    run(write())
    run(read())


def test_sqlite_two_stores_on_one_file_agree(tmp_path: Path, run: Run) -> None:
    async def body() -> None:
        stores = [SqliteStore(tmp_path / "shared.db", busy_timeout_s=10) for _ in range(2)]
        try:
            results = await asyncio.gather(*(
                stores[i % 2].record("app", "wf", "c.race:1", "#n:c.race", str(i)) for i in range(32)
            ))
            assert len({value for value, _ in results}) == 1
            assert [replayed for _, replayed in results].count(False) == 1
            assert await stores[1].get_count("app", "wf", "#n:c.race") == 1
        finally:
            for store in stores:
                await store.close()

    run(body())


def test_sqlite_uses_wal_and_full_sync(tmp_path: Path, run: Run) -> None:
    store = SqliteStore(tmp_path / "state.db")
    run(store.ping())
    pragmas = run(store.connection.run(lambda conn: (conn.execute("PRAGMA journal_mode").fetchone()[0],
                                           conn.execute("PRAGMA synchronous").fetchone()[0]), write=False))
    run(store.close())
    assert pragmas == ("wal", 2)  # 2 == FULL


def test_sqlite_unopenable_file_is_unavailable_then_recovers(tmp_path: Path, run: Run) -> None:
    missing_dir = tmp_path / "not-yet"
    store = SqliteStore(missing_dir / "state.db")
    try:
        with pytest.raises(Unavailable):
            run(store.record("app", "wf", "r:1", "#n:r", "0.5"))
        missing_dir.mkdir()
        assert run(store.record("app", "wf", "r:1", "#n:r", "0.5")) == ("0.5", False)
    finally:
        run(store.close())


def test_sqlite_locked_file_is_unavailable_quickly(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path, busy_timeout_s=0.2)
    run(store.ping())
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unavailable):
            run(store.record("app", "wf", "r:1", "#n:r", "0.5"))
        holder.execute("ROLLBACK")
        assert run(store.record("app", "wf", "r:1", "#n:r", "0.5")) == ("0.5", False)
    finally:
        holder.close()
        run(store.close())


def test_sqlite_closed_store_is_unavailable(tmp_path: Path, run: Run) -> None:
    store = SqliteStore(tmp_path / "state.db")
    run(store.close())
    run(store.close())
    with pytest.raises(Unavailable):
        run(store.get_count("app", "wf", "#n:r"))


def test_sqlite_a_version_1_file_gains_the_finish_time_column(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the tasks table as version 1 created it
        conn.executescript(
            "CREATE TABLE tasks (app TEXT NOT NULL, invocation TEXT NOT NULL, task_id TEXT NOT NULL,"
            " args TEXT NOT NULL, wf TEXT NOT NULL, parent TEXT NOT NULL, status INTEGER NOT NULL, result TEXT,"
            " error TEXT, lease_id TEXT NOT NULL DEFAULT '', lease_exp INTEGER NOT NULL DEFAULT 0,"
            " runner TEXT NOT NULL DEFAULT '', PRIMARY KEY (app, invocation)) WITHOUT ROWID;"
            " INSERT INTO tasks (app, invocation, task_id, args, wf, parent, status, result)"
            " VALUES ('app', 'old', 'mod.task', '{}', '[\"old\",\"mod.task\",\"\"]', '', 11, '1');"
            " PRAGMA user_version=1;")
    conn.close()

    async def body() -> None:
        stores = [SqliteStore(path) for _ in range(2)]  # two processes opening one old file
        try:
            old = await asyncio.gather(*(s.get_task("app", "old") for s in stores))
            assert [(t.status, t.result_json, t.finished_us) for t in old] == [(SUCCESS, "1", 0)] * 2
            await stores[0].ensure_task("app", task("new"), lease("a"), 0)
            state, _ = await stores[1].complete_task("app", "new", "lease-a", SUCCESS, "2", None, 77)
            assert state.finished_us == 77
        finally:
            for s in stores:
                await s.close()

    run(body())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 2
    conn.close()
