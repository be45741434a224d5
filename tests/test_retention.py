"""Retention and purge: which workflows count as finished and old enough (both stores, time
controlled), the server's periodic sweep (a real server on each store), and
`pynenc-sidecar purge` (one workflow, finished ones older than a period, a whole app)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from conformance.test_purge_conformance import HISTORY_DONE, _finish, _task, dump, seed_workflow
from executor_client import start_workflows_cut_short
from pynenc_sidecar import inspector
from pynenc_sidecar.clock import Clock, wall_clock_us
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.maintenance_engine import MaintenanceEngine
from pynenc_sidecar.server import Stores
from pynenc_sidecar.settings import Settings
from pynenc_sidecar.storage.interface import LeaseRequest
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar.storage.redis.state_backend_store import RedisStateBackendStore
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore
from pynenc_sidecar.storage.sqlite.state_backend_store import SqliteStateBackendStore
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import SidecarServer, wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=["redis", "sqlite"])
def stores(request, loop, tmp_path):
    if request.param == "redis":
        store: Any = RedisStore(request.getfixturevalue("redis_server").url)
        subject = Stores(store, RedisStateBackendStore(store.client), "redis")
    else:
        store = SqliteStore(tmp_path / "state.db")
        subject = Stores(store, SqliteStateBackendStore(store), "sqlite")
    yield subject
    loop.run_until_complete(subject.close())


def maintenance(stores: Stores, clock: Clock = wall_clock_us) -> MaintenanceEngine:
    return MaintenanceEngine(stores.store, stores.state_backend, clock)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    env.update(extra)
    return env


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pynenc_sidecar", *args], capture_output=True, text=True,
                          env=clean_env(), timeout=60)


# --- what is finished, and when ----------------------------------------------------------------
async def seed_cases(stores: Stores, app: str) -> None:
    store, backend = stores.store, stores.state_backend
    # Finished at 101 (seed_workflow completes its tasks at 100 + 1), started at 10.
    await seed_workflow(stores, app, "done-old", "mod.flow")
    # Finished at 5_001, started at 4_000.
    recent = WorkflowRef("done-recent", "mod.flow")
    await _finish(stores, app, _task("done-recent", "mod.flow", recent), now_us=5_000)
    await store.store_workflow_run(app, recent, 4_000)
    # Started at 10, never finished.
    running = WorkflowRef("running-old", "mod.flow")
    await store.ensure_task(app, _task("running-old", "mod.flow", running), LeaseRequest("l", 10**12, "r"), 10)
    await store.store_workflow_run(app, running, 10)
    # Pynenc's own runners (StateBackendService only): finished by history at 900, or still running.
    for name, payload in (("sb-done", HISTORY_DONE), ("sb-running", '{"status":"INVOCATION_STATUS_RUNNING"}')):
        await backend.store_workflow_run(app, WorkflowRef(name, "mod.sb"), 20)
        await backend.add_history(app, [name], 800, HISTORY_DONE if name == "sb-running" else "{}")
        await backend.add_history(app, [name], 900, payload)


def test_only_finished_workflows_past_the_cutoff_are_purged(stores, loop):
    app = f"ret-{uuid.uuid4().hex}"
    other = app + "-other"

    async def body() -> None:
        await seed_cases(stores, app)
        await seed_workflow(stores, other, "done-old", "mod.flow")
        before = await dump(stores, app)

        engine = maintenance(stores)
        dry = [f async for f in engine.finished_workflows(2_000, [app])]
        assert sorted((f.workflow.workflow_id, f.finished_us) for f in dry) == [("done-old", 101), ("sb-done", 900)]
        previews = await engine.finished_previews(2_000, [app])
        assert sorted((f.workflow.workflow_id, counts.workflows) for f, counts in previews) == [
            ("done-old", 1), ("sb-done", 1)]
        assert await dump(stores, app) == before  # neither deletes anything

        done = [f.workflow.workflow_id async for f in engine.purge_finished(2_000, [app])]
        assert sorted(done) == ["done-old", "sb-done"]
        left = sorted([r.workflow.workflow_id async for b in stores.store.scan_runs(app) for r in b])
        assert left == ["done-recent", "running-old", "sb-running"]
        assert await stores.store.get_task(app, "done-old") is None
        assert await stores.store.get_task(other, "done-old") is not None  # other apps untouched
        assert [f async for f in engine.purge_finished(2_000, [app])] == []
        # A later cutoff reaches the recent one; the unfinished ones stay, however old.
        assert [f.workflow.workflow_id async for f in engine.purge_finished(10**9, [app])] == ["done-recent"]
        left = sorted([r.workflow.workflow_id async for b in stores.store.scan_runs(app) for r in b])
        assert left == ["running-old", "sb-running"]

    loop.run_until_complete(body())


def test_a_sweep_visits_every_app_with_runs(stores, loop):
    apps = [f"sweep-{uuid.uuid4().hex}" for _ in range(2)]

    async def body() -> None:
        for app in apps:
            await seed_workflow(stores, app, "done-old", "mod.flow")
        # retention 1 s at "now" = 1 s + 2 ms: everything that finished by 2 ms goes.
        deleted = await maintenance(stores, clock=lambda: 1_002_000).sweep_once(1.0)
        assert deleted >= 2
        for app in apps:
            assert await stores.store.get_task(app, "done-old") is None

    loop.run_until_complete(body())


# --- the server's sweep ----------------------------------------------------------------------
def start_workflow(address: str, app_id: str, workflow_id: str) -> None:
    """A main task that starts and never finishes (its worker 'died')."""
    with grpc.insecure_channel(address) as channel:
        de_grpc.DeterministicExecutorServiceStub(channel).StartWorkflow(de.StartWorkflowRequest(
            app_id=app_id, workflow=common_pb2.WorkflowIdentity(workflow_id=workflow_id, workflow_type="mod.flow"),
            arguments_json="{}"), timeout=10)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_server_sweeps_finished_workflows_past_the_retention(kind, tmp_path, request):
    if kind == "redis":
        # Database 1: this server deletes finished workflows of every app in its store.
        url = request.getfixturevalue("redis_server").url.rsplit("/", 1)[0] + "/1"
        server = SidecarServer(url, extra_args=["--retention", "2s", "--sweep-interval", "300ms"])
        store_args = ["--redis-url", url]
    else:
        data_file = str(tmp_path / "sweep.db")
        server = SidecarServer(None, data_file=data_file, extra_args=["--retention", "2s", "--sweep-interval", "300ms"])
        store_args = ["--data-file", data_file]
    server.start()
    try:
        finished_id, running_id = f"done-{uuid.uuid4().hex[:8]}", f"running-{uuid.uuid4().hex[:8]}"
        start_workflow(server.address, "pynenc", running_id)
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "run_seed.py"), "process_order_workflow",
                                 finished_id], env=clean_env(PYNENC_SIDECAR_ADDRESS=server.address),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert cli("inspect", finished_id, *store_args).returncode == 0  # kept for 2 s after it finished
        wait_until(lambda: cli("inspect", finished_id, *store_args).returncode == 1, 20,
                   "the sweep to delete the finished workflow")
        listed = json.loads(cli("workflows", *store_args, "--json").stdout)
        assert [r["workflow_id"] for r in listed["runs"]] == [running_id]
        assert json.loads(cli("inspect", running_id, *store_args, "--json").stdout)["status"] == "RUNNING"
        messages = [json.loads(line)["message"] for line in server.log().splitlines() if line.startswith("{")]
        assert any(m.startswith("retention sweep deleted 1 finished workflow(s)") for m in messages), messages
        assert any("retention=2s (command line)" in m for m in messages)
    finally:
        assert server.stop() == 0, server.log()


# --- pynenc-sidecar purge ----------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "redis"])
def target(request):
    if request.param == "sqlite":
        server = request.getfixturevalue("sqlite_sidecar")
        return server, ["--data-file", server.data_file]
    server = request.getfixturevalue("sidecar")
    return server, ["--redis-url", server.redis_url]


def run_flow(server: SidecarServer, app_id: str, workflow_id: str, tmp_path: Path) -> None:
    env = clean_env(PYNENC_SIDECAR_ADDRESS=server.address, PSC_TEST_APP=app_id, PYTHONPATH=str(ROOT / "tests"))
    subprocess.run([sys.executable, str(ROOT / "tests" / "sdk_workflows.py"), workflow_id, "o-1",
                    str(tmp_path / f"{workflow_id}.json")], env=env, check=True, timeout=60)


def test_purge_one_workflow_finished_ones_and_a_whole_app(target, tmp_path):
    server, store_args = target
    app = f"purge-cli-{uuid.uuid4().hex[:8]}"
    ids = [f"wf-{n}" for n in range(3)]
    for workflow_id in ids:
        run_flow(server, app, workflow_id, tmp_path)
    app_args = ["--app-id", app, *store_args]

    one = cli("purge", "--workflow-id", ids[0], *app_args)
    assert one.returncode == 0 and one.stdout.strip() == f"purged workflow '{ids[0]}' of app '{app}'"
    assert cli("inspect", ids[0], *app_args).returncode == 1
    again = cli("purge", "--workflow-id", ids[0], *app_args)
    assert again.returncode == 0 and "nothing to purge" in again.stdout

    dry = cli("purge", "--older-than", "0s", "--dry-run", *app_args)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("dry run, nothing deleted (workflows that finished before 20")
    assert "): the purge would delete 2 workflow run(s), 6 task(s), " in dry.stdout.splitlines()[0]
    rows = [line.split()[:3] for line in dry.stdout.splitlines()[2:]]
    assert rows == [[app, ids[1], "sdk_workflows.order_flow"], [app, ids[2], "sdk_workflows.order_flow"],
                    ["total", "-", "-"]]
    assert cli("inspect", ids[1], *app_args).returncode == 0  # a dry run deletes nothing
    kept = cli("purge", "--older-than", "1h", *app_args, "--json")
    assert json.loads(kept.stdout)["workflows"] == []
    gone = json.loads(cli("purge", "--older-than", "0s", *app_args, "--json").stdout)
    assert sorted(w["workflow_id"] for w in gone["workflows"]) == ids[1:] and not gone["dry_run"]
    assert "no workflow runs in app" in cli("workflows", *app_args).stdout

    run_flow(server, app, "wf-app", tmp_path)
    refused = cli("purge", *app_args)
    assert refused.returncode == 2 and "Add --yes" in refused.stderr
    assert "deletes all its state: 1 workflow run(s), " in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert cli("inspect", "wf-app", *app_args).returncode == 0
    whole = cli("purge", *app_args, "--yes")
    assert whole.returncode == 0 and whole.stdout.strip() == f"purged app '{app}'"
    assert cli("inspect", "wf-app", *app_args).returncode == 1


@pytest.mark.parametrize("args,message", [
    ([], "purge needs exactly one of"),
    (["--dry-run"], "purge needs exactly one of"),
    (["--workflow-id", "w", "--older-than", "1d"], "purge needs exactly one of"),
    (["--workflow-id", "w", "--older-than", "1d", "--dry-run"], "purge needs exactly one of"),
    (["--older-than", "a while"], "--older-than: 'a while' must be a duration"),
    (["--workflow-id", "w", "--yes"], "--yes confirms purging a whole app (--app-id alone); --workflow-id needs"),
    (["--older-than", "1d", "--app-id", "a", "--yes"], "--older-than needs no confirmation: drop --yes"),
])
def test_purge_argument_errors(args, message, tmp_path):
    result = cli("purge", *args, "--data-file", str(tmp_path / "x.db"))
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert not (tmp_path / "x.db").exists()


async def _dump_store(store_args: list[str], app: str) -> dict:
    """Everything of the app in the server's store, read in this process."""
    flag, value = store_args
    settings = Settings(**({"redis_url": value} if flag == "--redis-url" else {"data_file": value}))
    stores = await inspector.open_existing_stores(settings)
    try:
        return await dump(stores, app)
    finally:
        await stores.close()


def test_purge_dry_run_deletes_nothing_in_any_mode(target, tmp_path):
    server, store_args = target
    app = f"dry-{uuid.uuid4().hex[:8]}"
    for workflow_id in ("wf-a", "wf-b"):
        run_flow(server, app, workflow_id, tmp_path)
    app_args = ["--app-id", app, *store_args]
    before = asyncio.run(_dump_store(store_args, app))
    unit = "KEYS" if store_args[0] == "--redis-url" else "ROWS"

    one = cli("purge", "--workflow-id", "wf-a", "--dry-run", *app_args)
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0].startswith("dry run, nothing deleted: the purge would delete 1 workflow run(s), 3 task(s), ")
    assert len(lines) == 3  # one workflow: no total row
    assert lines[1].split() == ["APP", "WORKFLOW", "TYPE", "FINISHED", "AT", "WORKFLOWS", "TASKS", unit]
    assert lines[2].split()[:2] == [app, "wf-a"] and lines[2].split()[-3:-1] == ["1", "3"]
    aged = cli("purge", "--older-than", "0s", "--dry-run", *app_args)
    assert aged.returncode == 0 and "would delete 2 workflow run(s), 6 task(s)" in aged.stdout
    assert [line.split()[0] for line in aged.stdout.splitlines()[2:]] == [app, app, "total"]
    whole = cli("purge", "--dry-run", "--yes", *app_args)
    assert whole.returncode == 0 and whole.stdout.splitlines()[2].split()[:4] == [app, "(the", "whole", "app)"]
    as_json = json.loads(cli("purge", "--dry-run", *app_args, "--json").stdout)
    assert as_json["dry_run"] is True and as_json["would_delete"]["workflows"] == 2
    assert as_json["would_delete"]["tasks"] == 6
    refused = cli("purge", *app_args)
    assert refused.returncode == 2 and "2 workflow run(s), 6 task(s)" in refused.stderr

    assert asyncio.run(_dump_store(store_args, app)) == before  # the data is really all there
    assert cli("inspect", "wf-a", *app_args).returncode == 0
    # The counts are what the purge then deletes.
    assert cli("purge", "--workflow-id", "wf-a", *app_args).returncode == 0
    assert "would delete 1 workflow run(s), 3 task(s)" in cli("purge", "--dry-run", *app_args).stdout


def test_a_sweep_indexes_and_then_ages_runs_an_older_version_left_unindexed(stores, loop):
    # 0.1.0's StartWorkflow, cut short by a client deadline, could register the main task
    # without its run: never listed, never swept. The broken state, written directly:
    app = f"ret-{uuid.uuid4().hex}"
    old, recent = WorkflowRef("lost-old", "mod.flow"), WorkflowRef("lost-recent", "mod.flow")

    async def body() -> None:
        store = stores.store
        await _finish(stores, app, _task("lost-old", "mod.flow", old), now_us=1_000)
        await _finish(stores, app, _task("lost-recent", "mod.flow", recent), now_us=10**12)
        assert [r async for b in store.scan_runs(app) for r in b] == []

        engine = maintenance(stores, clock=lambda: 10**12 + 500_000)
        purged = await engine.sweep_once(retention_s=1.0)
        assert purged >= 1  # found by the repair, then aged by its finish time like any run
        assert await store.get_task(app, "lost-old") is None
        assert [r.workflow async for b in store.scan_runs(app) for r in b] == [recent]
        assert app in await store.app_ids()
        report = inspector.workflows_report(await engine.workflow_runs(app))
        assert [r["workflow_id"] for r in report["runs"]] == ["lost-recent"]

    loop.run_until_complete(body())


async def _unindexed(store_args: list[str], app: str) -> list[str]:
    flag, value = store_args
    stores = await inspector.open_existing_stores(
        Settings(**({"redis_url": value} if flag == "--redis-url" else {"data_file": value})))
    try:
        return sorted(ref.workflow_id for a, ref in await stores.store.index_unindexed_runs(0) if a == app)
    finally:
        await stores.close()


def test_start_workflow_cut_short_by_a_client_deadline_never_leaves_its_run_unindexed(target):
    # 0.1.0 wrote the task, then its run: a deadline between the two left a task that no
    # listing or sweep found (Redis: 7 of 573 such calls; SQLite: 61 of 265).
    server, store_args = target
    app = f"deadline-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(server.address) as channel:
        start_workflows_cut_short(channel, app)
    assert asyncio.run(_unindexed(store_args, app)) == []  # every registered task has its run
