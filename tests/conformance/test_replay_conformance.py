"""Conformance: guarded records (a finished scope records nothing new) and data reads and
writes at positions, atomically, on every store."""

from __future__ import annotations

import pytest

from conformance.test_store_conformance import Run, lease, task
from pynenc_sidecar.core.positions import DATA_NOT_FOUND, Kind, Position
from pynenc_sidecar.core.tasks import FAILED, SUCCESS
from pynenc_sidecar.storage.interface import ScopeFinished, Store

WF = "wf-g"


async def finished(store: Store, app: str, invocation_id: str, status: int = SUCCESS) -> None:
    """Register invocation_id, lease it and store its outcome."""
    await store.ensure_task(app, task(invocation_id, workflow_id=WF), lease("a"), 1)
    await store.complete_task(app, invocation_id, "lease-a", status, "1" if status == SUCCESS else None,
                              None if status == SUCCESS else '{"type":"E","message":"m","detail_json":""}', 2)


def pos(kind: Kind, sequence: int, name: str = "", scope: str = WF) -> Position:
    return Position(WF, scope, kind, name, sequence)


async def record_any(store: Store, app: str, p: Position, guard: str | None) -> object:
    """One record of p's kind through the store operation that records it."""
    if p.kind is Kind.TIME:
        return await store.record_time(app, WF, p.field, p.count_field, 1_000, guard=guard)
    if p.kind is Kind.DATA_READ:
        return await store.record_data_read(app, WF, p.field, p.count_field, p.name, guard=guard)
    if p.kind is Kind.DATA_WRITE:
        return await store.record_data_write(app, WF, p.field, p.count_field, p.name, '"w"', guard=guard)
    return await store.record(app, WF, p.field, p.count_field, '"v"', guard=guard)


OPERATIONS = [pos(Kind.RANDOM, 1), pos(Kind.TIME, 1), pos(Kind.CUSTOM, 1, "op"), pos(Kind.DATA_READ, 1, "k"),
              pos(Kind.DATA_WRITE, 1, "k")]


@pytest.mark.parametrize("status", [SUCCESS, FAILED])
def test_a_guard_that_finished_refuses_a_new_record_and_writes_nothing(store: Store, run: Run, app: str,
                                                                       status: int) -> None:
    async def body() -> None:
        await finished(store, app, WF, status)
        await store.set_data(app, WF, "k", '"kept"')
        for p in OPERATIONS:
            with pytest.raises(ScopeFinished) as info:
                await record_any(store, app, p, WF)
            assert info.value.status == status
            assert await store.get_recorded(app, WF, p.field) is None, p
            assert await store.get_count(app, WF, p.count_field) == 0
        assert await store.get_data(app, WF, "k") == '"kept"'
        log = {f: v for chunk in [c async for c in store.scan_log(app, WF, 100)] for f, v in chunk.items()}
        assert not [f for f in log if not f.startswith("#")]
        # without a guard (or with an unfinished one) the same records are made
        for p in OPERATIONS:
            assert not (await record_any(store, app, p, None))[1]
        assert await store.get_data(app, WF, "k") == '"w"'

    run(body())


def test_a_recorded_position_replays_after_its_guard_finished(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.ensure_task(app, task(WF, workflow_id=WF), lease("a"), 1)
        values = [await record_any(store, app, p, WF) for p in OPERATIONS]
        assert all(not replayed for _, replayed in values)
        await store.complete_task(app, WF, "lease-a", SUCCESS, "1", None, 2)
        for p, (value, _) in zip(OPERATIONS, values):
            assert tuple(await record_any(store, app, p, WF)) == (value, True), p

    run(body())


def test_unknown_or_unfinished_guards_do_not_refuse(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        assert not (await store.record(app, WF, "r:1", "#n:r", "0.5", guard="never-registered"))[1]
        await store.ensure_task(app, task("child", workflow_id=WF), lease("c"), 1)  # RUNNING
        assert not (await store.record(app, WF, "child|r:1", "#n:child|r", "0.5", guard="child"))[1]

    run(body())


def test_the_guard_is_the_scope_invocation_not_the_workflow(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await finished(store, app, "child")
        child = pos(Kind.UUID, 1, scope="child")
        with pytest.raises(ScopeFinished):
            await store.record(app, WF, child.field, child.count_field, "u", guard="child")
        main = pos(Kind.UUID, 1)
        assert not (await store.record(app, WF, main.field, main.count_field, "u", guard=WF))[1]

    run(body())


def test_a_data_write_is_applied_once_and_recorded(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        p = pos(Kind.DATA_WRITE, 1, "n")
        assert tuple(await store.record_data_write(app, WF, p.field, p.count_field, "n", "1")) == ("1", False)
        assert await store.get_data(app, WF, "n") == "1"
        await store.set_data(app, WF, "n", "5")
        # a replay returns the record and applies nothing, whatever value it carries
        assert tuple(await store.record_data_write(app, WF, p.field, p.count_field, "n", "9")) == ("1", True)
        assert await store.get_data(app, WF, "n") == "5"
        assert await store.get_count(app, WF, p.count_field) == 1
        assert await store.get_recorded(app, WF, p.field) == "1"

    run(body())


def test_a_data_read_records_what_it_read_or_that_it_found_nothing(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        first, second = pos(Kind.DATA_READ, 1, "k"), pos(Kind.DATA_READ, 2, "k")
        assert tuple(await store.record_data_read(app, WF, first.field, first.count_field, "k")) == (
            DATA_NOT_FOUND,
            False,
        )
        await store.set_data(app, WF, "k", "null")
        assert tuple(await store.record_data_read(app, WF, first.field, first.count_field, "k")) == (
            DATA_NOT_FOUND,
            True,
        )
        assert tuple(await store.record_data_read(app, WF, second.field, second.count_field, "k")) == ("null", False)
        await store.set_data(app, WF, "k", "2")
        assert tuple(await store.record_data_read(app, WF, second.field, second.count_field, "k")) == ("null", True)
        assert await store.get_count(app, WF, first.count_field) == 2
        # reads and writes of a key, and other keys, are separate series
        assert pos(Kind.DATA_READ, 1, "k").count_field != pos(Kind.DATA_WRITE, 1, "k").count_field
        other = pos(Kind.DATA_READ, 1, "k:2")
        assert tuple(await store.record_data_read(app, WF, other.field, other.count_field, "k:2")) == (
            DATA_NOT_FOUND,
            False,
        )

    run(body())


def test_data_records_carry_their_origin_and_appear_in_the_log(store: Store, run: Run, app: str) -> None:
    origin = "ab" * 24
    async def body() -> None:
        w, r = pos(Kind.DATA_WRITE, 1, "k"), pos(Kind.DATA_READ, 1, "k")
        await store.record_data_write(app, WF, w.field, w.count_field, "k", '"v"', origin)
        await store.record_data_read(app, WF, r.field, r.count_field, "k", origin)
        replay = await store.record_data_read(app, WF, r.field, r.count_field, "k", "cd" * 24)
        assert replay.replayed and replay.origin == origin
        log = {f: v for chunk in [c async for c in store.scan_log(app, WF, 100)] for f, v in chunk.items()}
        assert log[w.field] == '"v"' and log[r.field] == '"v"'
        assert log["#s:" + w.field] == origin

    run(body())
