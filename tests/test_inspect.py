"""`pynenc-sidecar inspect` and `workflows`, on both stores: a seed workflow runs against a real
server (and replays), then the inspector shows what it recorded, its tasks and its data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from support import SidecarServer

ROOT = Path(__file__).resolve().parent.parent
ORDER_TYPE = "seed_workflows.process_order_workflow"


@pytest.fixture(params=["sqlite", "redis"])
def target(request) -> tuple[SidecarServer, list[str]]:
    """A running server and the store flags that point the tools at its store."""
    if request.param == "sqlite":
        server = request.getfixturevalue("sqlite_sidecar")
        return server, ["--data-file", server.data_file]
    server = request.getfixturevalue("sidecar")
    return server, ["--redis-url", server.redis_url]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pynenc_sidecar", *args], capture_output=True, text=True,
                          env=env or clean_env(), timeout=60)


def run_seed(server: SidecarServer, workflow: str, workflow_id: str) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "run_seed.py"), workflow, workflow_id],
                            capture_output=True, text=True, timeout=60,
                            env=clean_env(PYNENC_SIDECAR_ADDRESS=server.address))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def inspect_json(store_args: list[str], workflow_id: str) -> dict:
    result = cli("inspect", workflow_id, *store_args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inspect_shows_operations_tasks_and_data_of_a_replayed_workflow(target):
    server, store_args = target
    workflow_id = f"order-{uuid.uuid4().hex[:8]}"
    first = run_seed(server, "process_order_workflow", workflow_id)
    second = run_seed(server, "process_order_workflow", workflow_id)
    assert (first["replayed"], second["replayed"]) == (False, True) and first["result"] == second["result"]
    result = first["result"]
    payment = result["payment_status"]

    report = inspect_json(store_args, workflow_id)
    assert report["app_id"] == "pynenc"
    assert report["workflow"] == {"workflow_id": workflow_id, "workflow_type": ORDER_TYPE, "parent_workflow_id": None}
    assert report["status"] == "SUCCESS" and report["finished_at"] >= report["started_at"]
    assert [r["workflow_id"] for r in report["runs"]] == [workflow_id]

    # The operations in order: the main task's, then those of the task it called.
    ops = [(o["main_task"], o["operation"], o["sequence"]) for o in report["operations"]]
    assert ops == [(True, "random", 1), (True, "utc_now", 1), (True, "task", 1), (True, "data_write", 1),
                   (True, "data_write", 1), (False, "utc_now", 1), (False, "uuid", 1)]
    random_op, main_time, task_op, write_time, write_tracking, task_time, task_uuid = report["operations"]
    # data writes are recorded steps, each key with its own sequence
    assert (write_time["name"], write_time["value"]) == ("notification_time", result["notification_scheduled"])
    assert (write_tracking["name"], write_tracking["value"]) == ("tracking_number", result["tracking_number"])
    assert result["tracking_number"] == f"TRK-A-1-{int(random_op['value'] * 100000):05d}"
    assert task_op["value"]["task_id"] == "seed_workflows.process_payment"
    assert task_op["value"]["arguments"] == {"order_id": "A-1"}
    payment_invocation = task_op["value"]["invocation_id"]
    assert task_time["scope"] == task_uuid["scope"] == payment_invocation
    assert task_uuid["value"] == payment["payment_id"]
    assert datetime.fromisoformat(task_time["value"]) == datetime.fromisoformat(payment["processed_at"])
    assert main_time["value_us"] > task_time["value_us"]

    tasks = {t["task_id"]: t for t in report["tasks"]}
    assert set(tasks) == {ORDER_TYPE, "seed_workflows.process_payment"}
    assert tasks[ORDER_TYPE]["result"] == result and tasks[ORDER_TYPE]["status"] == "SUCCESS"
    assert tasks["seed_workflows.process_payment"]["result"] == payment
    assert tasks["seed_workflows.process_payment"]["workflow"]["workflow_id"] == workflow_id
    assert tasks["seed_workflows.process_payment"]["parent_invocation_id"] == workflow_id
    assert report["data"] == {"tracking_number": result["tracking_number"],
                              "notification_time": result["notification_scheduled"]}

    text = cli("inspect", workflow_id, *store_args)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert f"Workflow {workflow_id} (app pynenc)" in out and ORDER_TYPE in out
    for heading in ("Runs (1)", "Recorded operations (7)", "Tasks (2)", "Data (2)"):
        assert heading in out
    assert payment["payment_id"] in out and result["tracking_number"] in out and payment_invocation in out
    assert "seed_workflows.process_payment({\"order_id\":\"A-1\"})" in out
    assert "data_write tracking_number" in out


def test_inspect_shows_child_workflows(target):
    server, store_args = target
    workflow_id = f"parent-{uuid.uuid4().hex[:8]}"
    result = run_seed(server, "call_independent_workflow", workflow_id)["result"]
    report = inspect_json(store_args, workflow_id)
    child_id = result["child_workflow_id"]
    assert report["child_workflows"] == [{
        "workflow_id": child_id, "workflow_type": "seed_workflows.independent_workflow",
        "parent_workflow_id": workflow_id, "status": "SUCCESS",
        "finished_at": report["child_workflows"][0]["finished_at"]}]
    assert report["operations"][0]["value"]["force_new_workflow"] is True
    child = inspect_json(store_args, child_id)
    assert child["workflow"]["parent_workflow_id"] == workflow_id
    assert [o["operation"] for o in child["operations"]] == ["random", "utc_now"]
    assert "Child workflows (1)" in cli("inspect", workflow_id, *store_args).stdout


def test_workflows_lists_types_and_runs(target):
    server, store_args = target
    ids = [f"listed-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for workflow_id in ids:
        run_seed(server, "process_order_workflow", workflow_id)
    result = cli("workflows", *store_args, "--type", ORDER_TYPE, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    runs = {r["workflow_id"]: r for r in report["runs"]}
    assert set(ids) <= set(runs)
    assert all(runs[i]["status"] == "SUCCESS" and runs[i]["workflow_type"] == ORDER_TYPE for i in ids)
    assert report["types"] == [{"workflow_type": ORDER_TYPE, "runs": report["total_runs"]}]
    # Oldest first: the two just run are the last two.
    assert [r["workflow_id"] for r in report["runs"][-2:]] == ids
    latest = json.loads(cli("workflows", *store_args, "--type", ORDER_TYPE, "--limit", "1", "--json").stdout)
    assert [r["workflow_id"] for r in latest["runs"]] == [ids[1]]

    text = cli("workflows", *store_args).stdout
    assert "Workflow types in app 'pynenc'" in text and ORDER_TYPE in text and ids[0] in text


def test_tools_read_the_store_from_the_environment_or_a_config_file(sqlite_sidecar, tmp_path):
    workflow_id = f"env-{uuid.uuid4().hex[:8]}"
    run_seed(sqlite_sidecar, "deterministic_operations_example", workflow_id)
    by_env = cli("inspect", workflow_id, "--json", env=clean_env(PYNENC_SIDECAR_DATA_FILE=sqlite_sidecar.data_file))
    assert by_env.returncode == 0, by_env.stderr
    conf = tmp_path / "tools.toml"
    conf.write_text(f'data_file = "{sqlite_sidecar.data_file}"\n')
    by_config = cli("inspect", workflow_id, "--json", "--config", str(conf))
    assert by_config.returncode == 0, by_config.stderr
    assert json.loads(by_env.stdout) == json.loads(by_config.stdout)
    ops = json.loads(by_env.stdout)["operations"]
    assert {o["operation"] for o in ops} >= {"random", "utc_now", "uuid"}


def test_inspect_unknown_workflow_missing_store_and_other_app(target, tmp_path):
    server, store_args = target
    missing = cli("inspect", "no-such-workflow", *store_args)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        missing.stderr.strip()] and "workflow 'no-such-workflow' not found in app 'pynenc'" in missing.stderr
    workflow_id = f"scoped-{uuid.uuid4().hex[:8]}"
    run_seed(server, "stateful_workflow", workflow_id)
    assert cli("inspect", workflow_id, *store_args, "--app-id", "another-app").returncode == 1
    no_file = cli("inspect", "wf", "--data-file", str(tmp_path / "absent.db"))
    assert no_file.returncode == 1 and "no data file at" in no_file.stderr
    assert not (tmp_path / "absent.db").exists()  # the tools never create a store
    empty = cli("workflows", *store_args, "--app-id", f"empty-{uuid.uuid4().hex}")
    assert empty.returncode == 0 and "no workflow runs in app" in empty.stdout and "pynenc" in empty.stdout


def test_inspect_with_redis_down_fails_quickly_with_one_line(redis_server):
    from support import free_port

    result = cli("inspect", "wf", "--redis-url", f"redis://:pw@127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert result.stderr.startswith("pynenc-sidecar: cannot reach the store (redis redis://***@127.0.0.1:")
    assert "pw@" not in result.stderr and "Traceback" not in result.stderr
