"""`StateBackendStore.project_invocation` on every store: one step that writes an executor
invocation's StateBackend view, idempotently, and reads back through the store's other methods."""

from __future__ import annotations

import json

from pynenc_sidecar.projection import project
from pynenc_sidecar.server import Stores
from pynenc_sidecar.storage.interface import HistoryEvent, InvocationRecord, ProjectedInvocation


def _projected(invocation_id: str, events: tuple[HistoryEvent, ...], **fields) -> ProjectedInvocation:
    record = InvocationRecord(invocation_id, json.dumps({"invocationId": invocation_id}), "wf", "mod.flow", "wf")
    return ProjectedInvocation(record, events, **fields)


def test_projecting_again_writes_nothing_twice(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        events = (HistoryEvent("registered", 100, '{"s":1}'), HistoryEvent("running:L1", 100, '{"s":7}'))
        projected = _projected("inv-1", events, sub_invocation_of="wf", runner=("r-1", '{"runnerId":"r-1"}'))
        assert await backend.project_invocation(app, projected) == 2
        assert await backend.project_invocation(app, projected) == 0
        history = await backend.get_history(app, "inv-1")
        assert [(h.timestamp_us, h.payload) for h in history] == [(100, '{"s":1}'), (100, '{"s":7}')]
        # A new event is appended after the others, even at the same time; known ones are not.
        final = _projected("inv-1", (*events, HistoryEvent("final", 100, '{"s":11}')), result_json='{"x":[1]}')
        assert await backend.project_invocation(app, final) == 1
        assert [h.payload for h in await backend.get_history(app, "inv-1")] == ['{"s":1}', '{"s":7}', '{"s":11}']
        assert [h.invocation_id async for b in backend.history_in_range(app, 0, 1000, 10) for h in b] == ["inv-1"] * 3
        assert await backend.get_result(app, "inv-1") == '{"x":[1]}'
        assert await backend.get_exception(app, "inv-1") is None
        assert await backend.get_invocation(app, "inv-1") == projected.record
        assert await backend.child_invocations(app, "wf") == ["inv-1"]
        assert await backend.invocation_ids_by_workflow(app, "wf", "mod.flow") == ["inv-1"]
        assert await backend.sub_invocations(app, "wf") == ["inv-1"]
        assert await backend.get_runner_contexts(app, ["r-1"]) == ['{"runnerId":"r-1"}']

    run(body())


def test_a_projection_keeps_a_stored_runner_context_and_stores_an_exception(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        await backend.store_runner_context(app, "r-1", '{"runnerId":"r-1","pid":"42"}')
        failed = _projected("inv-2", (HistoryEvent("final", 5, '{"s":12}'),), exception='{"type":"ValueError"}',
                            runner=("r-1", '{"runnerId":"r-1"}'))
        assert await backend.project_invocation(app, failed) == 1
        assert await backend.get_runner_contexts(app, ["r-1"]) == ['{"runnerId":"r-1","pid":"42"}']
        assert await backend.get_exception(app, "inv-2") == '{"type":"ValueError"}'
        assert await backend.get_result(app, "inv-2") is None
        assert await backend.sub_invocations(app, "wf") == []  # none asked for
        # Another app sees none of it.
        assert await backend.get_invocation(app + "-other", "inv-2") is None
        assert await backend.get_history(app + "-other", "inv-2") == []

    run(body())


def test_a_projection_lost_after_an_executor_step_is_written_by_the_next(stores: Stores, run, app: str) -> None:
    """The engine's repair: the state at the task's next step implies every earlier status."""
    from pynenc_sidecar.core.tasks import SUCCESS, TaskState, WorkflowRef
    from pynenc_sidecar.storage.interface import LeaseRequest

    async def body() -> None:
        store, backend = stores.store, stores.state_backend
        ref = WorkflowRef("wf", "mod.flow")
        lease = LeaseRequest("L1", 10_000_000, "runner-a")
        await store.ensure_task(app, TaskState("t-1", "mod.step", '{"n":1}', ref, "wf"), lease, 100)
        # (the server died here: registered and running were never projected)
        state, accepted = await store.complete_task(app, "t-1", "L1", SUCCESS, '"ok"', None, 200)
        assert accepted
        assert await backend.project_invocation(app, project(state, 250)) == 3
        history = await backend.get_history(app, "t-1")
        statuses = [json.loads(h.payload)["status"] for h in history]
        assert statuses == ["INVOCATION_STATUS_REGISTERED", "INVOCATION_STATUS_RUNNING", "INVOCATION_STATUS_SUCCESS"]
        assert {h.timestamp_us for h in history} == {200}  # all at the outcome: they sort before it
        assert await backend.get_result(app, "t-1") == '"ok"'
        assert (await backend.get_invocation(app, "t-1")).parent_invocation_id == "wf"
        assert await backend.project_invocation(app, project(state, 300)) == 0

    run(body())


def test_the_engine_repairs_a_lost_projection_at_a_repeated_completion(stores: Stores, run, app: str) -> None:
    from pynenc_sidecar.core.positions import Kind, Position
    from pynenc_sidecar.core.tasks import WorkflowRef
    from pynenc_sidecar.engine import WorkflowEngine
    from pynenc_sidecar.projection import StateProjection

    async def body() -> None:
        backend = stores.state_backend
        crashed = WorkflowEngine(stores.store)  # the executor's writes without their projection
        engine = WorkflowEngine(stores.store, projection=StateProjection(backend))
        wf = WorkflowRef("wf", "mod.flow")
        await crashed.start_workflow(app, wf, "{}", "r-main", 10_000_000)
        child = await crashed.execute_task(app, wf, Position("wf", "wf", Kind.TASK, "", 1), "mod.step", '{"n":1}',
                                           False, "r-1", 10_000_000)
        _, accepted = await crashed.complete_task(app, child.state.invocation_id, child.lease.lease_id, "5", None)
        assert accepted and await backend.get_invocation(app, child.state.invocation_id) is None
        # The worker, unsure its completion arrived, sends it again: refused, and projected.
        state, accepted = await engine.complete_task(app, child.state.invocation_id, child.lease.lease_id, "5", None)
        assert not accepted and state.finished
        history = await backend.get_history(app, child.state.invocation_id)
        assert [json.loads(h.payload)["status"] for h in history] == [
            "INVOCATION_STATUS_REGISTERED", "INVOCATION_STATUS_RUNNING", "INVOCATION_STATUS_SUCCESS"]
        assert await backend.get_result(app, child.state.invocation_id) == "5"
        assert await backend.sub_invocations(app, "wf") == [child.state.invocation_id]
        await engine.complete_task(app, child.state.invocation_id, child.lease.lease_id, "5", None)
        assert len(await backend.get_history(app, child.state.invocation_id)) == 3

    run(body())


def test_projected_ids_page_in_the_same_indexes_as_the_servicers(stores: Stores, run, app: str) -> None:
    """Projected invocations go into the id indexes StateBackendService pages (sorted sets on
    Redis), beside the ones its clients wrote, and its runners into the paged runner search."""
    async def body() -> None:
        backend = stores.state_backend
        written = [InvocationRecord(i, "{}", "wf", "mod.flow", "wf", "ev") for i in ("b", "d")]
        await backend.upsert_invocations(app, written)
        await backend.store_sub_invocation(app, "wf", "d")
        await backend.store_runner_context(app, "runner-1", '{"runnerId":"runner-1"}')
        for invocation_id in ("a", "c", "e"):
            projected = _projected(invocation_id, (HistoryEvent("registered", 1, "{}"),), sub_invocation_of="wf",
                                   runner=(f"runner-{invocation_id}", "{}"))
            await backend.project_invocation(app, projected)
        everything = ["a", "b", "c", "d", "e"]
        assert await backend.child_invocations(app, "wf") == everything
        assert await backend.child_invocations(app, "wf", 2, "b") == ["c", "d"]
        assert await backend.invocation_ids_by_workflow(app, "wf", "", 2, "c") == ["d", "e"]
        assert await backend.invocation_ids_by_workflow(app, "wf", "mod.flow", 3, None) == ["a", "b", "c"]
        assert await backend.invocation_ids_by_workflow(app, "", "mod.flow", 10, "d") == ["e"]
        assert await backend.sub_invocations(app, "wf", 2, "a") == ["c", "d"]
        # A projected invocation has no parent event: the event index holds the servicer's only.
        assert await backend.invocations_by_parent_event(app, "ev") == ["b", "d"]
        assert (await backend.get_invocation(app, "a")).parent_event_id == ""
        found, _ = await backend.search_runner_contexts(app, "runner-", 3, None)
        assert [runner for runner, _ in found] == ["runner-1", "runner-a", "runner-c"]
        found, _ = await backend.search_runner_contexts(app, "runner-", 3, "runner-c")
        assert [runner for runner, _ in found] == ["runner-e"]

    run(body())


def test_a_projection_converts_redis_indexes_left_as_sets(redis_server, run, app: str) -> None:
    """Indexes written as sets by a version before paging are converted by the projection, as
    by the servicer's own writes; the runner it stores is in the runner-id index at once."""
    import redis

    from pynenc_sidecar.storage.redis.executor_store import RedisStore
    from pynenc_sidecar.storage.redis.keys import app_tag
    from pynenc_sidecar.storage.redis.state_backend_store import RedisStateBackendStore

    store = RedisStore(redis_server.url)
    backend = RedisStateBackendStore(store.client)
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    indexes = [f"{app_tag(app)}:children:wf", f"{app_tag(app)}:invs:wf",
               f"{app_tag(app)}:subs:wf", f"{app_tag(app)}:invs_by_type:mod.flow"]
    try:
        for key in indexes:
            raw.sadd(key, "old")
        projected = _projected("new", (HistoryEvent("registered", 1, "{}"),), sub_invocation_of="wf",
                               runner=("r-new", "{}"))
        assert run(backend.project_invocation(app, projected)) == 1
        assert [raw.type(key) for key in indexes] == ["zset"] * 4
        assert run(backend.child_invocations(app, "wf")) == ["new", "old"]
        assert run(backend.sub_invocations(app, "wf", 1, "new")) == ["old"]
        assert run(backend.invocation_ids_by_workflow(app, "wf", "mod.flow")) == ["new", "old"]
        assert raw.zscore(f"{app_tag(app)}:runner_ids", "r-new") == 0
    finally:
        raw.close()
        run(store.close())


def test_the_projection_a_task_step_writes_itself_is_what_the_separate_step_writes(stores: Stores, run,
                                                                                  app: str) -> None:
    """On one Redis a registration's and an outcome's projection are written in the task's own
    script (task_fused.lua); SQLite and the cluster write it as a step of its own. Either way
    StateBackendService reads what `project_invocation` of each new state writes."""
    from pynenc_sidecar.core.positions import Kind, Position
    from pynenc_sidecar.core.tasks import WorkflowRef
    from pynenc_sidecar.engine import WorkflowEngine
    from pynenc_sidecar.projection import StateProjection

    backend = stores.state_backend
    now_us = 1_700_000_000_000_000

    async def order(engine: WorkflowEngine, app_id: str, project_each: bool) -> list[str]:
        """Start, a child registered, leased and finished, the workflow failed: the ids."""
        wf = WorkflowRef("wf", "mod.order")
        main = await engine.start_workflow(app_id, wf, '{"order_id":"o-1"}', "r-main", 10_000_000)
        child = await engine.execute_task(app_id, wf, Position("wf", "wf", Kind.TASK, "", 1), "mod.pay",
                                          '{"n":1}', False, "r-1", 10_000_000)
        paid, _ = await engine.complete_task(app_id, child.state.invocation_id, child.lease.lease_id, '{"paid":1}',
                                             None)
        failed, _ = await engine.complete_task(app_id, "wf", main.lease.lease_id, None,
                                               {"type": "ValueError", "message": "no stock"})
        if project_each:
            for state in (main.state, child.state, paid, failed):
                await backend.project_invocation(app_id, project(state, now_us))
        return ["wf", child.state.invocation_id]

    async def shown(app_id: str, ids: list[str]) -> str:
        seen = {}
        for name, invocation_id in zip(("main", "child"), ids):
            record = await backend.get_invocation(app_id, invocation_id)
            history = await backend.get_history(app_id, invocation_id)
            seen[name] = [record.encode() if record else None,
                          [(entry.timestamp_us, entry.payload) for entry in history],
                          await backend.get_result(app_id, invocation_id),
                          await backend.get_exception(app_id, invocation_id)]
        seen["subs"] = await backend.sub_invocations(app_id, "wf")
        seen["invocations"] = await backend.invocation_ids_by_workflow(app_id, "wf", "")
        seen["children"] = await backend.child_invocations(app_id, "wf")
        seen["runners"] = await backend.get_runner_contexts(app_id, ["r-main", "r-1"])
        text = json.dumps(seen, sort_keys=True, default=str)
        return text.replace(ids[1], "<child>").replace(app_id, "<app>")

    async def body() -> None:
        with_steps = WorkflowEngine(stores.store, clock=lambda: now_us, projection=StateProjection(backend))
        separate = WorkflowEngine(stores.store, clock=lambda: now_us)
        fused_ids = await order(with_steps, app, project_each=False)
        separate_ids = await order(separate, app + "-separate", project_each=True)
        fused, apart = await shown(app, fused_ids), await shown(app + "-separate", separate_ids)
        assert fused == apart
        assert "INVOCATION_STATUS_SUCCESS" in fused and "no stock" in fused  # it did show the outcomes

    run(body())
