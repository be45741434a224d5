"""Purging, on every store: `purge_workflow` removes a workflow from every table, key and
index, and nothing else; `purge_app` takes the app out of the app index too.

The strongest check is a dump: everything the app has in the store (every key and its
content on Redis, every row of every table on SQLite) is the same after seeding a workflow
and purging it as it was before the workflow was seeded.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import pytest

from pynenc_sidecar.core.positions import escape
from pynenc_sidecar.core.tasks import SUCCESS, TaskCall, TaskState, WorkflowRef
from pynenc_sidecar.projection import project
from pynenc_sidecar.server import Stores
from pynenc_sidecar.storage.interface import InvocationRecord, LeaseRequest
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar.storage.redis.keys import glob_escape

HISTORY_DONE = json.dumps({"status": "INVOCATION_STATUS_SUCCESS"})


@pytest.fixture
def app() -> str:
    return f"purge-{uuid.uuid4().hex}"


async def dump(stores: Stores, app_id: str) -> dict[str, Any]:
    """Everything of the app in the store, comparable."""
    if isinstance(stores.store, RedisStore):
        client = stores.store.client
        out: dict[str, Any] = {}
        pattern = f"psc:{{{glob_escape(escape(app_id))}[:}}]*"
        async for key in client.scan_iter(match=pattern, count=1000):
            if key.endswith(":hist_seq"):
                continue  # a counter: it only grows
            kind = await client.type(key)
            if kind == "hash":
                out[key] = await client.hgetall(key)
            elif kind == "set":
                out[key] = sorted(await client.smembers(key))
            elif kind == "zset":
                out[key] = await client.zrange(key, 0, -1, withscores=True)
            else:
                out[key] = await client.get(key)
        out["app_ids"] = app_id in await client.smembers("psc:app_ids")
        return out
    path = stores.store.path
    with sqlite3.connect(path) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        # sb_history rows are numbered by arrival (seq): compare them without it.
        return {t: sorted(tuple(r[1:] if t == "sb_history" else r)
                          for r in conn.execute(f"SELECT * FROM {t} WHERE app=?", (app_id,)))
                for t in tables}


def without_lists_of(dumped: dict[str, Any], app_id: str, workflow_id: str) -> dict[str, Any]:
    """The dump without the workflow's list of sub-invocations and, on Redis, its main
    invocation's set of children (on SQLite a child names its parent in its own row)."""
    if "sb_subs" in dumped:
        return {**dumped, "sb_subs": [row for row in dumped["sb_subs"] if row[1] != workflow_id]}
    tag = f"psc:{{{escape(app_id)}}}"
    return {k: v for k, v in dumped.items()
            if k not in (f"{tag}:subs:{escape(workflow_id)}", f"{tag}:children:{escape(workflow_id)}")}


def _task(invocation_id: str, task_id: str, workflow: WorkflowRef, parent: str = "") -> TaskState:
    return TaskState(invocation_id, task_id, "{}", workflow, parent)


async def _finish(stores: Stores, app_id: str, state: TaskState, now_us: int = 100) -> None:
    """Run the task to its outcome, with its StateBackend projection (as the engine does)."""
    lease = LeaseRequest(uuid.uuid4().hex, 10_000, "runner")
    await stores.store.ensure_task(app_id, state, lease, now_us)
    finished, _ = await stores.store.complete_task(app_id, state.invocation_id, lease.lease_id, SUCCESS, '"ok"',
                                                   None, now_us + 1)
    await stores.state_backend.project_invocation(app_id, project(finished, now_us + 1))


async def seed_workflow(stores: Stores, app_id: str, workflow_id: str, workflow_type: str, *,
                        child_id: str = "", sb_parent: str = "") -> None:
    """A workflow using everything: recorded values, a task in it, a child workflow (only its
    call is this workflow's), data, StateBackend invocations, history, results, dvalues, subs."""
    store, backend = stores.store, stores.state_backend
    ref = WorkflowRef(workflow_id, workflow_type)
    task_id = f"{workflow_id}-task"
    await store.record(app_id, workflow_id, "r:1", "#n:r", "0.5")
    await store.record(app_id, workflow_id, "c.op:1", "#n:c.op", '{"a":1}')
    await store.record_time(app_id, workflow_id, "t:1", "#n:t", 50)
    await store.record(app_id, workflow_id, "k:1", "#n:k", TaskCall(task_id, "mod.step", "{}").encode())
    await store.record(app_id, workflow_id, f"{escape(task_id)}|u:1", f"#n:{escape(task_id)}|u", '"id"')
    if child_id:
        await store.record(app_id, workflow_id, "k:2", "#n:k", TaskCall(child_id, "mod.child", "{}", True).encode())
    await store.set_data(app_id, workflow_id, "key", '"value"')
    await _finish(stores, app_id, _task(workflow_id, workflow_type, ref))
    await _finish(stores, app_id, _task(task_id, "mod.step", ref, workflow_id))
    await store.store_workflow_run(app_id, ref, 10)

    sub = f"{workflow_id}-sb"
    await backend.upsert_invocations(app_id, [
        InvocationRecord(workflow_id, "{}", workflow_id, workflow_type, ""),
        InvocationRecord(sub, "{}", workflow_id, workflow_type, sb_parent or workflow_id, "event-1"),
    ])
    await backend.add_history(app_id, [workflow_id, sub], 1_000, HISTORY_DONE)
    await backend.add_history(app_id, [sub], 2_000, "{}")
    await backend.set_result(app_id, workflow_id, '"done"')
    await backend.set_exception(app_id, sub, '{"type":"E"}')
    await backend.set_deterministic_value(app_id, workflow_id, "dv", "1")
    # StateBackend state of an executor task that was never registered as an invocation.
    await backend.set_result(app_id, task_id, '"step"')
    await backend.add_history(app_id, [task_id], 1_500, HISTORY_DONE)
    await backend.store_sub_invocation(app_id, workflow_id, sub)
    await backend.store_workflow_run(app_id, ref, 10)


def test_purge_workflow_leaves_the_store_as_it_was_before_the_workflow(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        store, backend = stores.store, stores.state_backend
        # Neighbours that must survive: a workflow of the same type, a child workflow of the
        # one to purge (a workflow of its own), an sb-only run, the same id in another app.
        await seed_workflow(stores, app, "keep", "mod.flow")
        child = WorkflowRef("child-of-w", "mod.child", "w:{1}|#*")
        await store.record(app, child.workflow_id, "r:1", "#n:r", "0.1")
        await _finish(stores, app, _task(child.workflow_id, "mod.child", child, "w:{1}|#*"))
        await store.store_workflow_run(app, child, 20)
        await backend.store_workflow_run(app, WorkflowRef("solo*[x]-keep", "mod.solo"), 30)
        await seed_workflow(stores, app + "-other", "w:{1}|#*", "mod.flow")
        before = await dump(stores, app)
        other_before = await dump(stores, app + "-other")

        await seed_workflow(stores, app, "w:{1}|#*", "mod.flow", child_id=child.workflow_id, sb_parent="keep")
        # An sb-only workflow whose run is found by its id alone (no main task names it).
        await backend.store_workflow_run(app, WorkflowRef("solo*[x]", "mod.solo", "p"), 40)
        await backend.upsert_invocations(app, [InvocationRecord("solo*[x]", "{}", "solo*[x]", "mod.solo", "")])
        assert await dump(stores, app) != before

        assert await backend.purge_workflow(app, "w:{1}|#*") > 0
        assert await backend.purge_workflow(app, "solo*[x]") > 0
        # The child workflow's entries in its parent's lists (projected when the child ran)
        # are the parent's: they go with the parent.
        assert await dump(stores, app) == without_lists_of(before, app, "w:{1}|#*")
        assert await dump(stores, app + "-other") == other_before
        # Nothing left to purge the second time.
        assert await backend.purge_workflow(app, "w:{1}|#*") == 0
        assert await backend.purge_workflow(app, "never-was") == 0

    run(body())


def test_purged_workflow_reads_as_never_there(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        store, backend = stores.store, stores.state_backend
        await seed_workflow(stores, app, "keep", "mod.flow")
        await seed_workflow(stores, app, "gone", "mod.gone", sb_parent="keep")
        assert await backend.purge_workflow(app, "gone") > 0
        assert [c async for c in store.scan_log(app, "gone", 100) if c] == []
        assert await store.workflow_data(app, "gone") == {}
        assert await store.get_tasks(app, ["gone", "gone-task"]) == [None, None]
        assert [r.workflow.workflow_id async for b in store.scan_runs(app) for r in b] == ["keep"]
        assert await backend.workflow_types(app) == ["mod.flow"]
        assert await backend.invocation_ids_by_workflow(app, "gone", "") == []
        assert await backend.invocation_ids_by_workflow(app, "", "mod.gone") == []
        assert await backend.child_invocations(app, "keep") == ["keep-sb", "keep-task"]  # not gone-sb any more
        assert await backend.get_invocation(app, "gone-sb") is None
        assert await backend.get_history(app, "gone-sb") == []
        assert await backend.get_result(app, "gone") is None
        assert await backend.get_result(app, "gone-task") is None
        assert await backend.get_exception(app, "gone-sb") is None
        assert await backend.get_deterministic_value(app, "gone", "dv") is None
        assert await backend.sub_invocations(app, "gone") == []
        history = [r.invocation_id async for b in backend.history_in_range(app, 0, 10_000, 100) for r in b]
        assert set(history) == {"keep", "keep-sb", "keep-task"}  # none of gone's
        # The survivor is whole.
        assert (await store.get_task(app, "keep-task")).result_json == '"ok"'
        assert await store.workflow_data(app, "keep") == {"key": '"value"'}

    run(body())


def test_scan_runs_sees_every_run_once_while_runs_are_purged(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        for n in range(10):
            await stores.store.store_workflow_run(app, WorkflowRef(f"wf-{n}", "mod.flow"), 100 + n // 3)
        seen = []
        async for batch in stores.store.scan_runs(app, batch_size=3):
            for record in batch:
                seen.append(record.workflow.workflow_id)
                await stores.state_backend.purge_workflow(app, record.workflow.workflow_id, [record.workflow])
        assert seen == [f"wf-{n}" for n in range(10)]
        assert [r async for b in stores.store.scan_runs(app) for r in b] == []
        assert await stores.state_backend.workflow_types(app) == []

    run(body())


def test_purge_app_takes_it_out_of_the_app_index(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        await seed_workflow(stores, app, "w", "mod.flow")
        await seed_workflow(stores, app + "-kept", "w", "mod.flow")
        assert {app, app + "-kept"} <= set(await stores.store.app_ids())
        assert await stores.state_backend.purge_app(app) > 0
        ids = await stores.store.app_ids()
        assert app not in ids and app + "-kept" in ids
        assert await stores.store.get_task(app + "-kept", "w") is not None

    run(body())


def test_purge_previews_count_what_the_purge_then_deletes_and_delete_nothing(stores: Stores, run, app: str) -> None:
    async def body() -> None:
        backend = stores.state_backend
        await seed_workflow(stores, app, "w", "mod.flow")
        await seed_workflow(stores, app, "keep", "mod.flow")
        before = await dump(stores, app)

        preview = await backend.purge_workflow_preview(app, "w")
        assert (preview.workflows, preview.tasks) == (1, 2)  # its run; its main task and "w-task"
        assert preview.unit == ("keys" if stores.description in ("redis", "cluster") else "rows")
        app_preview = await backend.purge_app_preview(app)
        assert (app_preview.workflows, app_preview.tasks) == (2, 4)
        assert app_preview.entries > preview.entries > 0
        assert await dump(stores, app) == before  # a preview deletes nothing
        never = await backend.purge_workflow_preview(app, "never-was")
        assert (never.workflows, never.tasks, never.entries) == (0, 0, 0)

        assert await backend.purge_workflow(app, "w") == preview.entries
        assert (await backend.purge_app_preview(app)).tasks == 2

    run(body())
