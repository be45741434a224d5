"""One round trip per blocking point (docs/client-contract.md), with the Python SDK against
the real server on both stores: buffered operations travel with the next blocking call;
a worker that lost its lease cannot commit and takes the winner's outcome; a commit refused
because another run recorded first makes the run replay the winner's record; a crash between
two blocking points runs that code again and replays the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from executor_client import position
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk import Pynenc
from pynenc_sidecar_sdk.context import require_run
from support import SIDECAR_FIXTURES, wait_until

HERE = Path(__file__).resolve().parent
RANDOM, TIME, UUID, CUSTOM = (de.OPERATION_KIND_RANDOM, de.OPERATION_KIND_TIME, de.OPERATION_KIND_UUID,
                              de.OPERATION_KIND_CUSTOM)


@pytest.fixture(params=["redis", "sqlite", "cluster"])
def server(request):
    return request.getfixturevalue(SIDECAR_FIXTURES[request.param])


@pytest.fixture
def app(server):
    subject = Pynenc(f"batch-{uuid.uuid4().hex[:8]}", address=server.address, lease_ttl=5)
    yield subject
    subject.client.close()


def counting(app: Pynenc) -> Counter:
    """Counts the app's calls to the sidecar by RPC name."""
    calls: Counter = Counter()
    call, stream = app.client.call, app.client.stream

    def counted_call(method, request, timeout=None):
        calls[type(request).__name__.removesuffix("Request")] += 1
        return call(method, request, timeout)

    def counted_stream(method, request):
        calls[type(request).__name__.removesuffix("Request")] += 1
        return stream(method, request)

    app.client.call, app.client.stream = counted_call, counted_stream
    return calls


def log_of(app: Pynenc, workflow_id: str) -> dict:
    stub = de_grpc.DeterministicExecutorServiceStub(app.client.channel)
    ops = {}
    for batch in stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app.app_id, workflow_id=workflow_id)):
        for op in batch.operations:
            ops[op.scope, op.kind, op.custom_name, op.sequence] = op
    return ops


def test_a_first_run_calls_once_per_blocking_point_and_a_replay_once(app) -> None:
    @app.task
    def child(n: int) -> list:
        return [child.wf.random() for _ in range(3)] + [n]

    @app.task
    def flow() -> dict:
        wf = flow.wf
        seen = {"random": [wf.random() for _ in range(5)], "uuid": [wf.uuid() for _ in range(3)],
                "time": [wf.utc_now().isoformat() for _ in range(3)],
                "custom": wf.deterministic._deterministic_operation("pick", lambda: {"k": [1, 2]})}
        wf.set_data("stage", "before-child")
        seen["child"] = wf.execute_task(child, 7).result
        wf.set_data("stage", "after-child")
        seen["late"] = [wf.random(), wf.utc_now().isoformat()]
        return seen

    calls = counting(app)
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    first = flow.run_workflow(workflow_id).result
    # StartWorkflow, ExecuteTask (carrying 12 operations), the child's CompleteTask (its 3
    # randoms), the main task's CompleteTask (its last 3): four calls for 19 operations.
    assert calls == {"StartWorkflow": 1, "ExecuteTask": 1, "CompleteTask": 2}
    # what the code was given is what is recorded, to the microsecond
    ops = log_of(app, workflow_id)
    assert [ops[workflow_id, RANDOM, "", i].random_value for i in range(1, 6)] == first["random"]
    assert [ops[workflow_id, UUID, "", i].uuid_value for i in range(1, 4)] == first["uuid"]
    recorded_times = [ops[workflow_id, TIME, "", i].time_value.ToDatetime().isoformat() + "+00:00"
                      for i in range(1, 5)]
    assert recorded_times == first["time"] + [first["late"][1]]
    assert len(set(recorded_times)) == 4 and recorded_times == sorted(recorded_times)  # strictly later
    assert json.loads(ops[workflow_id, CUSTOM, "pick", 1].json_value) == {"k": [1, 2]}
    stub = de_grpc.DeterministicExecutorServiceStub(app.client.channel)
    assert stub.GetData(de.GetDataRequest(app_id=app.app_id, workflow_id=workflow_id, key="stage")).value_json == \
        '"after-child"'
    calls.clear()
    assert flow.run_workflow(workflow_id).result == first
    assert calls == {"StartWorkflow": 1}  # finished: its recorded outcome, no code runs


def test_a_conflicting_commit_reruns_the_code_and_replays_the_winners_record(app) -> None:
    generated: list[str] = []

    @app.task
    def flow() -> dict:
        wf = flow.wf
        run = require_run()
        value = wf.deterministic._deterministic_operation("pick", lambda: generated.append("gen") or "mine")
        if len(generated) == 1 and not run.log.operations:
            # Another run records the same position first (a racing writer this run's log
            # never saw), with another value.
            stub = de_grpc.DeterministicExecutorServiceStub(app.client.channel)
            stub.Record(de.RecordRequest(position=position(app.app_id, run.workflow.workflow_id), operation="pick",
                                         value_json='"theirs"'))
        wf.get_data("k")  # the blocking point: its commit is refused, COMMIT_CONFLICT
        return {"pick": value, "time": wf.utc_now().isoformat()}

    calls = counting(app)
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    result = flow.run_workflow(workflow_id).result
    assert result["pick"] == "theirs"  # the rerun replayed the winner's value
    assert generated == ["gen"]  # and did not run the generator again
    assert calls["GetData"] == 2 and calls["GetWorkflowLog"] == 1  # refused once, log read again, run again
    ops = log_of(app, workflow_id)
    assert ops[workflow_id, CUSTOM, "pick", 1].json_value == '"theirs"'


def _worker(server, tmp_path: Path, app_id: str, workflow_id: str, role: str, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": server.address, "PSC_COMMIT_APP": app_id,
           "PSC_COMMIT_DIR": str(tmp_path), "PSC_COMMIT_MODE": mode, "PSC_COMMIT_ROLE": role,
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "commit_workers.py"), workflow_id,
                             str(tmp_path / f"out-{role}.json")], env=env)


def _journal(tmp_path: Path) -> list[str]:
    path = tmp_path / "journal"
    return path.read_text().splitlines() if path.exists() else []


def test_a_worker_that_lost_its_lease_cannot_commit_and_takes_the_winners_outcome(server, tmp_path) -> None:
    app_id, workflow_id = f"batch-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
    stalled = _worker(server, tmp_path, app_id, workflow_id, "A", "stall")
    try:
        wait_until(lambda: (tmp_path / "ready").exists(), 60, "worker A to buffer its last operations")
        os.kill(stalled.pid, signal.SIGSTOP)  # no renewals: its lease lapses
        time.sleep(1.5)
        winner = _worker(server, tmp_path, app_id, workflow_id, "B", "")
        assert winner.wait(60) == 0
    finally:
        (tmp_path / "go").touch()
        os.kill(stalled.pid, signal.SIGCONT)
        try:
            stalled.wait(60)
        finally:
            if stalled.poll() is None:  # never left behind, whatever failed
                stalled.kill()
                stalled.wait()
    assert stalled.returncode == 0
    a, b = (json.loads((tmp_path / f"out-{role}.json").read_text()) for role in "AB")
    seen_a = json.loads((tmp_path / "seen-A.json").read_text())
    assert a == b  # A's completion was refused: it returns B's outcome
    # B replayed what A committed at the blocking point, and recorded its own after it
    assert b["before"] == seen_a["before"] and b["before"]["custom"]["by"] == "A"
    assert b["after"]["custom"]["by"] == "B" and seen_a["after"]["custom"]["by"] == "A"
    stub = de_grpc.DeterministicExecutorServiceStub(server.channel())
    recorded = stub.GetRecorded(de.GetRecordedRequest(position=position(app_id, workflow_id), kind=CUSTOM,
                                                      custom_name="second"))
    assert json.loads(recorded.operation.json_value)["by"] == "B"  # nothing of A's after the blocking point
    assert stub.GetData(de.GetDataRequest(app_id=app_id, workflow_id=workflow_id, key="by")).value_json == '"A"'
    assert _journal(tmp_path) == ["generate:first A", "generate:second A", "generate:second B"]


def test_a_crash_between_blocking_points_reruns_that_code_and_replays_the_rest(server, tmp_path) -> None:
    app_id, workflow_id = f"batch-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
    crashed = _worker(server, tmp_path, app_id, workflow_id, "A", "crash")
    assert crashed.wait(60) == 3
    seen_a = json.loads((tmp_path / "seen-A.json").read_text())
    time.sleep(1.2)  # its lease lapses
    resumed = _worker(server, tmp_path, app_id, workflow_id, "B", "")
    assert resumed.wait(60) == 0
    b = json.loads((tmp_path / "out-B.json").read_text())
    assert b["before"] == seen_a["before"]  # committed at the blocking point: replayed
    assert b["after"]["custom"]["by"] == "B" and b["after"]["time"] > seen_a["after"]["time"]  # ran again
    assert _journal(tmp_path) == ["generate:first A", "generate:second A", "generate:second B"]
