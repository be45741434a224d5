"""The Pynenc plugin (plugin/) against a real sidecar, on Redis and on the embedded store:

- Pynenc 0.4.0's own suites, imported from its installed `pynenc_tests` package by
  plugin/pynenc_suites (state backend unit and integration, app-id isolation unit and
  integration, the combinations, the workflow state, deterministic-executor and identity
  tests) plus the plugin's own tests, run in .venv-pynenc (Python 3.12, which Pynenc needs;
  scripts/test creates it) with SidecarStateBackend selected;
- the seed order workflow run by a Pynenc app with Pynenc's ThreadRunner, then read back
  through StateBackendService and GetWorkflowLog with the raw stubs;
- two Pynenc worker processes racing one workflow's deterministic steps
  (tests/pynenc_race_workers.py): they agree with the plugin's executor, and disagree with
  Pynenc's own (its SQLite backend), so the race test is not blind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as dx
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as dx_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import ROOT, RedisServer, SidecarServer

PYNENC_PYTHON = ROOT / ".venv-pynenc" / "bin" / "python"
SUITES = ROOT / "plugin" / "pynenc_suites"
SEED = ROOT / "examples" / "pynenc_app"
RACE_WORKERS = ROOT / "tests" / "pynenc_race_workers.py"
TOKEN = "pynenc-plugin-test-token-0123456789"
# Every suite module must contribute passing tests (a module that stops collecting would
# otherwise go unnoticed).
SUITE_MODULES = [
    "test_state_backend", "test_state_backend_integration", "test_app_id_isolation",
    "test_app_id_isolation_integration", "test_workflow_identity", "test_workflow_identity_inheritance",
    "test_workflow_root_api", "test_sidecar_plugin", "test_sidecar_executor", "combinations.test_combinations",
    "workflow_state.test_data", "workflow_state.test_deterministic", "workflow_state.test_deterministic_task_execution",
    "workflow_deterministic.test_builtin_functions", "workflow_deterministic.test_deterministic_operations",
    "workflow_deterministic.test_execute_task", "workflow_deterministic.test_replay_behavior",
    "workflow_deterministic.test_sequence_tracking", "workflow_deterministic.test_workflow_isolation",
]


@pytest.fixture(scope="module")
def pynenc_python() -> Path:
    if not PYNENC_PYTHON.exists():
        pytest.fail(
            f"{PYNENC_PYTHON} is missing: scripts/test creates it (Python 3.12 with pynenc==0.4.0 and the plugin)"
        )
    return PYNENC_PYTHON


@pytest.fixture(scope="module", params=["redis", "embedded"])
def plugin_sidecar(request) -> Iterator[SidecarServer]:
    """A sidecar of these tests' own: Pynenc's suites purge every app on it."""
    directory = tempfile.mkdtemp(prefix="psc-pynenc-")
    redis = RedisServer().start() if request.param == "redis" else None
    # The server's default limits (16 MiB payloads, 20 MiB messages) hold Pynenc's 10 MB test argument.
    server = SidecarServer(redis.url if redis else None, data_file=None if redis else f"{directory}/sidecar.db").start()
    yield server
    server.stop()
    if redis:
        redis.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def token_sidecar(redis_server: RedisServer) -> Iterator[SidecarServer]:
    server = SidecarServer(redis_server.url, env={"PYNENC_SIDECAR_AUTH_TOKEN": TOKEN}).start()
    yield server
    server.stop()


def _pynenc_env(address: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYNENC", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PYNENC_SIDECAR_ADDRESS=address, PYNENC__STATE_BACKEND_CLS="SidecarStateBackend")
    return env


def _outcomes(junit: Path) -> tuple[dict[str, Counter], list[str]]:
    """(outcome -> Counter of test names (classname::name), the failures' messages)."""
    found: dict[str, Counter] = {"passed": Counter(), "failed": Counter(), "skipped": Counter(), "xfailed": Counter()}
    messages = []
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        skipped = case.find("skipped")
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        if failure is not None:
            found["failed"][name] += 1
            messages.append(f"{name}: {failure.get('message', '')[:1500]}")
        elif skipped is not None:
            found["xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"][name] += 1
        else:
            found["passed"][name] += 1
    return found, messages


def test_pynencs_suites_pass_on_the_sidecar(pynenc_python, plugin_sidecar, token_sidecar, tmp_path):
    junit = tmp_path / "pynenc.xml"
    env = _pynenc_env(plugin_sidecar.address)
    env.update(PSC_TOKEN_SIDECAR_ADDRESS=token_sidecar.address, PSC_TOKEN=TOKEN)
    # In a session of its own: some of Pynenc's runner tests (a SIGKILLed persistent-process
    # runner) leave worker processes behind, which the group kill below stops.
    process = subprocess.Popen(
        [str(pynenc_python), "-m", "pytest", "-q", "-p", "no:logging", "--timeout", "300", f"--junitxml={junit}"],
        cwd=SUITES, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=2400)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    run = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    summary = run.stdout[-3000:] + run.stderr[-2000:]
    assert junit.exists(), summary
    found, failures = _outcomes(junit)
    assert not found["failed"], "\n".join(failures)
    assert not found["xfailed"], summary
    assert run.returncode == 0, summary
    passed_modules = {name.split("::")[0] for name in found["passed"]}
    missing = [m for m in SUITE_MODULES if m not in passed_modules]
    assert not missing, f"no test passed in {missing}\n{summary}"
    assert sum(found["passed"].values()) >= 200, summary


def _stub(server: SidecarServer) -> tuple[grpc.Channel, sb_grpc.StateBackendServiceStub]:
    channel = server.channel()
    return channel, sb_grpc.StateBackendServiceStub(channel)


def test_the_seed_workflow_runs_with_pynencs_runner_and_reads_back_through_the_service(pynenc_python, plugin_sidecar):
    env = _pynenc_env(plugin_sidecar.address)
    env.update(PYNENC__FILEPATH=str(SEED / "pynenc.yaml"), PYNENC__SIDECAR_ADDRESS=plugin_sidecar.address,
               PYNENC__LOGGING_LEVEL="warning")
    run = subprocess.run([str(pynenc_python), str(SEED / "run_seed.py"), "order-7"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    printed = json.loads(run.stdout.strip().splitlines()[-1])
    assert printed["status"] == "SUCCESS"
    workflow_id, result = printed["workflow_id"], printed["result"]
    assert result["order_id"] == "order-7" and result["payment_status"]["status"] == "completed"

    app = "seed-orders"  # pynenc.yaml's app_id
    channel, stub = _stub(plugin_sidecar)
    with channel:
        main = stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id=workflow_id), timeout=10).invocation
        assert main.task_id == "seed_order_app.process_order_workflow"
        assert main.workflow.workflow_id == workflow_id
        assert json.loads(main.serialized_arguments["order_id"]) == "order-7"
        assert main.arguments["order_id"].json == '"order-7"'  # JsonPickle's text of a str is JSON
        statuses = [h.status for h in stub.GetHistory(
            sb.GetHistoryRequest(app_id=app, invocation_id=workflow_id), timeout=10).history]
        assert statuses[0] == common_pb2.INVOCATION_STATUS_REGISTERED
        assert statuses[-1] == common_pb2.INVOCATION_STATUS_SUCCESS
        stored = stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id=workflow_id), timeout=10)
        # JsonPickle's text of a plain dict is JSON, so it travels as `json` (codec.py).
        assert stored.result.WhichOneof("kind") == "json" and json.loads(stored.result.json) == result
        runs = stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app), timeout=10).workflows
        assert workflow_id in [w.workflow_id for w in runs]
        types = stub.ListWorkflowTypes(sb.ListWorkflowTypesRequest(app_id=app), timeout=10).workflow_types
        assert "seed_order_app.process_order_workflow" in types
        members = stub.ListInvocationIdsByWorkflow(sb.ListInvocationIdsByWorkflowRequest(
            app_id=app, workflow_id=workflow_id), timeout=10).invocation_ids
        tasks = {stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id=i), timeout=10).invocation.task_id
                 for i in members}
        assert "seed_order_app.process_payment" in tasks
        tracking = stub.GetWorkflowData(sb.GetWorkflowDataRequest(
            app_id=app, workflow_id=workflow_id, key="tracking_number"), timeout=10)
        assert tracking.found and json.loads(tracking.value_json) == result["tracking_number"]
        history = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id=workflow_id), timeout=10).history
        assert all(h.status_timestamp.seconds and not h.execution_context_json for h in history)
        # Pynenc's wf.root values were recorded as the sidecar's positions (the plugin's executor).
        log = [op for batch in dx_grpc.DeterministicExecutorServiceStub(channel).GetWorkflowLog(
            dx.GetWorkflowLogRequest(app_id=app, workflow_id=workflow_id), timeout=10) for op in batch.operations]
        kinds = Counter(op.kind for op in log)
        counted = (kinds[dx.OPERATION_KIND_RANDOM], kinds[dx.OPERATION_KIND_UUID], kinds[dx.OPERATION_KIND_TIME])
        assert counted == (1, 1, 2)
        (random_op,) = [op for op in log if op.kind == dx.OPERATION_KIND_RANDOM]
        assert result["tracking_number"] == f"TRK-order-7-{int(random_op.random_value * 100000):05d}"
        (uuid_op,) = [op for op in log if op.kind == dx.OPERATION_KIND_UUID]
        assert result["payment_status"]["payment_id"] == uuid_op.uuid_value
        (task_op,) = [op for op in log if op.kind == dx.OPERATION_KIND_CUSTOM]
        assert task_op.custom_name.startswith("task_invocation:seed_order_app.process_payment")
        assert json.loads(task_op.json_value)["invocation_id"] in members
        stub.PurgeApp(sb.PurgeAppRequest(app_id=app, delete_app_info=True), timeout=10)


def _race(pynenc_python: Path, env: dict[str, str], *args: str) -> list[dict]:
    run = subprocess.run([str(pynenc_python), str(RACE_WORKERS), *args], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tempfile.gettempdir())
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_two_pynenc_workers_racing_a_workflow_agree_on_every_value(pynenc_python, plugin_sidecar):
    env = {k: v for k, v in _pynenc_env(plugin_sidecar.address).items() if k != "PYNENC__STATE_BACKEND_CLS"}
    first, second = _race(pynenc_python, env, "sidecar", "psc.race", "wf-race")
    assert first["executor"] == second["executor"] == "SidecarDeterministicExecutor"
    assert {k: first[k] for k in ("random", "uuid", "time", "draw")} == {k: second[k] for k in ("random", "uuid",
                                                                                                "time", "draw")}
    channel = plugin_sidecar.channel()
    with channel:
        log = {(op.kind, op.custom_name): op for batch in dx_grpc.DeterministicExecutorServiceStub(channel)
               .GetWorkflowLog(dx.GetWorkflowLogRequest(app_id="psc.race", workflow_id="wf-race"), timeout=10)
               for op in batch.operations}
    assert json.loads(log[(dx.OPERATION_KIND_CUSTOM, "draw")].json_value) == first["draw"]
    assert log[(dx.OPERATION_KIND_RANDOM, "")].random_value == first["random"]
    assert log[(dx.OPERATION_KIND_UUID, "")].uuid_value == first["uuid"]


def test_the_same_race_with_pynencs_own_backend_disagrees(pynenc_python, tmp_path):
    """Pynenc's executor does get-then-set: under the interleaving the workers force (both read
    before either writes), each returns its own custom value."""
    env = {k: v for k, v in _pynenc_env("127.0.0.1:1").items() if k != "PYNENC__STATE_BACKEND_CLS"}
    first, second = _race(pynenc_python, env, "pynenc-sqlite", "psc.race.own", "wf-race", str(tmp_path / "pynenc.db"))
    assert first["executor"] == second["executor"] == "DeterministicExecutor"
    assert first["backend"] == "SQLiteStateBackend"
    assert first["draw"] != second["draw"]
