"""Pynenc's tools see sidecar workflows, on Redis and on the embedded store (issue 10):

- pynmon (Pynenc 0.4.0's monitor, in .venv-pynenc) opened on examples/pynmon/seed_monitor.py
  shows a seed workflow that the Python SDK ran through DeterministicExecutorService: the
  app, the workflow type and run, its invocations with task ids and statuses, and an
  invocation's detail page with its status history;
- a seed workflow run by a real Pynenc app (Pynenc's ThreadRunner, SidecarStateBackend) is
  listed by `pynenc-sidecar workflows`, shown by `pynenc-sidecar inspect`, and read back
  through StateBackendService by the TypeScript client (sdk/ts/tools/xlang.ts state).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from support import ROOT, SidecarServer, free_port
from test_one_state import TS_DIR, ts_xlang  # noqa: F401  (the TypeScript client, built once)

PYNENC_BIN = ROOT / ".venv-pynenc" / "bin"
MONITOR_APP = ROOT / "examples" / "pynmon" / "seed_monitor.py"
SDK_SEED = ROOT / "examples" / "run_seed.py"
PYNENC_SEED = ROOT / "examples" / "pynenc_app"


@pytest.fixture(params=["sidecar", "sqlite_sidecar"])
def server(request) -> SidecarServer:
    return request.getfixturevalue(request.param)


@pytest.fixture()
def pynenc_bin():
    if not (PYNENC_BIN / "python").exists():
        pytest.fail(f"{PYNENC_BIN / 'python'} is missing: scripts/test creates it "
                    "(Python 3.12, pynenc[monitor], the plugin)")
    return PYNENC_BIN


def _pynenc_env(address: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYNENC", "PYTHON", "VIRTUAL_ENV"))}
    env["PYNENC_SIDECAR_ADDRESS"] = address
    return env


@pytest.fixture()
def pynmon(server, pynenc_bin, tmp_path) -> Iterator[str]:
    """pynmon on a free loopback port, as README shows it; yields its base URL."""
    port = free_port()
    log = open(tmp_path / "pynmon.log", "w")
    process = subprocess.Popen(
        [str(pynenc_bin / "pynenc"), "--app", str(MONITOR_APP), "monitor", "--host", "127.0.0.1", "--port", str(port)],
        env=_pynenc_env(server.address), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # readiness wait on a shared machine, not a timing assertion
        while True:
            assert process.poll() is None, (tmp_path / "pynmon.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as reply:
                    if json.load(reply)["app"] == "pynenc":
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "pynmon.log").read_text()[-3000:]
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _text(base: str, path: str) -> str:
    """The page's visible text, one space between words."""
    with urllib.request.urlopen(base + path, timeout=60) as reply:
        assert reply.status == 200
        page = reply.read().decode()
    page = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _run_sdk_seed(server: SidecarServer, workflow_id: str) -> dict:
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": server.address}
    run = subprocess.run([sys.executable, str(SDK_SEED), "process_order_workflow", workflow_id], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["result"]


def _payment_id(server: SidecarServer, workflow_id: str) -> str:
    from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
    from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc

    with server.channel() as channel:
        reply = sb_grpc.StateBackendServiceStub(channel).ListWorkflowSubInvocations(
            sb.ListWorkflowSubInvocationsRequest(app_id="pynenc", workflow_id=workflow_id), timeout=10)
    (payment_id,) = reply.invocation_ids
    return payment_id


def test_pynmon_shows_a_workflow_that_an_sdk_worker_ran(server, pynmon):
    workflow_id = f"order-{uuid.uuid4().hex}"
    _run_sdk_seed(server, workflow_id)
    payment_id = _payment_id(server, workflow_id)

    home = _text(pynmon, "/")
    assert "App: pynenc" in home and "SidecarStateBackend" in home and "SidecarMonitorOrchestrator" in home

    types = _text(pynmon, "/workflows/")
    assert "seed_workflows.process_order_workflow" in types
    runs = _text(pynmon, "/workflows/runs")
    assert re.search(rf"seed_workflows\.process_order_workflow {workflow_id}\b", runs), runs
    detail = _text(pynmon, "/workflows/seed_workflows.process_order_workflow")
    assert "Workflow Details" in detail and re.search(rf"{workflow_id} - View All Invocations", detail), detail

    # The run's invocations: each with its task id, call id and current status (SUCCESS,
    # from the sidecar's history).
    listed = _text(pynmon, f"/invocations/?workflow_id={workflow_id}")
    assert "2 invocations in this list" in listed, listed
    assert re.search(rf"{workflow_id} timeline process_order_workflow seed_workflows\.process_order_workflow:\w+ "
                     r"SUCCESS", listed), listed
    assert re.search(rf"{payment_id} timeline process_payment seed_workflows\.process_payment:\w+ SUCCESS",
                     listed), listed

    # An invocation's detail: its status, workflow role, arguments and status history, each
    # status with the SDK worker's runner.
    main = _text(pynmon, f"/invocations/{workflow_id}")
    assert f"Invocation ID: {workflow_id} Status: SUCCESS Workflow role: Workflow root" in main, main
    assert "Task ID: seed_workflows.process_order_workflow" in main
    assert "Arguments order_id A-1" in main
    timeline = re.findall(r"(REGISTERED|RUNNING|SUCCESS) \S+ Runner: DeterministicExecutorService py-", main)
    assert timeline == ["REGISTERED", "RUNNING", "SUCCESS"], main
    payment = _text(pynmon, f"/invocations/{payment_id}")
    assert f"Invocation ID: {payment_id} Status: SUCCESS Workflow role: Workflow member" in payment
    assert f"Parent Invocation: {workflow_id}" in payment or workflow_id in payment
    with urllib.request.urlopen(f"{pynmon}/invocations/{workflow_id}/history", timeout=60) as reply:
        history = json.load(reply)
    assert [entry["status"] for entry in history] == ["registered", "running", "success"]
    assert {entry["runner_cls"] for entry in history} == {"DeterministicExecutorService"}


def _store_args(server: SidecarServer) -> list[str]:
    return ["--redis-url", server.redis_url] if server.redis_url else ["--data-file", server.data_file]


def _cli(server: SidecarServer, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    run = subprocess.run([sys.executable, "-m", "pynenc_sidecar", *args, *_store_args(server), "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_pynenc_apps_workflow_is_listed_inspected_and_read_from_typescript(server, pynenc_bin, ts_xlang):  # noqa: F811
    app_id = f"seed-orders-{uuid.uuid4().hex[:8]}"
    env = _pynenc_env(server.address)
    env.update(PYNENC__FILEPATH=str(PYNENC_SEED / "pynenc.yaml"), PYNENC__SIDECAR_ADDRESS=server.address,
               PYNENC__APP_ID=app_id, PYNENC__LOGGING_LEVEL="warning")
    run = subprocess.run([str(pynenc_bin / "python"), str(PYNENC_SEED / "run_seed.py"), "order-9"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    printed = json.loads(run.stdout.strip().splitlines()[-1])
    workflow_id, result = printed["workflow_id"], printed["result"]
    assert printed["status"] == "SUCCESS"

    listed = _cli(server, "workflows", "--app-id", app_id)
    assert listed["types"] == [{"workflow_type": "seed_order_app.process_order_workflow", "runs": 1}]
    assert [run["workflow_id"] for run in listed["runs"]] == [workflow_id]

    inspected = _cli(server, "inspect", "--app-id", app_id, workflow_id)
    assert inspected["workflow"]["workflow_type"] == "seed_order_app.process_order_workflow"
    invocations = {inv["invocation_id"]: inv for inv in inspected["state_backend_invocations"]}
    assert len(invocations) == 2 and {inv["status"] for inv in invocations.values()} == {"SUCCESS"}
    # Pynenc's serializer text (JsonPickle's JSON of a plain dict) is JSON, so it travels as
    # JSON (docs/pynenc-plugin.md) and inspect shows it parsed.
    assert invocations[workflow_id]["result"] == result
    (payment_id,) = set(invocations) - {workflow_id}
    assert invocations[payment_id]["parent_invocation_id"] == workflow_id
    # The plugin's executor records Pynenc's deterministic values as the sidecar's positions:
    # inspect lists them (the random one made the tracking number), and the value Pynenc's
    # own data layout keeps (random:1) is the same one.
    assert inspected["data"]["tracking_number"] == result["tracking_number"]
    randoms = [op for op in inspected["operations"] if op["operation"] == "random"]
    assert [(op["scope"], op["sequence"]) for op in randoms] == [(workflow_id, 1)]
    assert result["tracking_number"].endswith(f"{int(randoms[0]['value'] * 100000):05d}")
    assert float(inspected["data"]["random:1"]) == randoms[0]["value"]
    assert {op["operation"] for op in inspected["operations"]} >= {"random", "uuid", "utc_now"}

    out = subprocess.run(["node", str(ts_xlang), "state", "--address", server.address, "--app", app_id,
                          "--workflow", workflow_id], cwd=TS_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert state["workflow_type"] == "seed_order_app.process_order_workflow" and state["listed_as_run"]
    assert state["sub_invocations"] == [payment_id]
    assert set(state["invocations"]) == {workflow_id, payment_id}
    main, payment = state["invocations"][workflow_id], state["invocations"][payment_id]
    assert main["task_id"] == "seed_order_app.process_order_workflow" and main["arguments"] == {"order_id": "order-9"}
    assert payment["task_id"] == "seed_order_app.process_payment" and payment["parent_invocation_id"] == workflow_id
    assert payment["arguments"]["payment_id"] == result["payment_status"]["payment_id"]
    # Pynenc's runner writes every status Pynenc has, PENDING included (the executor has none).
    for inv in (main, payment):
        assert [status for status, _ in inv["history"]] == [
            "INVOCATION_STATUS_REGISTERED", "INVOCATION_STATUS_PENDING", "INVOCATION_STATUS_RUNNING",
            "INVOCATION_STATUS_SUCCESS"]
    # The serializer's text is JSON here: a TypeScript reader parses it as it is.
    assert main["outcome"] == result
