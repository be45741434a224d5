"""The Python SDK: its workflow semantics against pynenc_sidecar_sdk.testing's in-process server
(fast; the server and store are the real ones, only in this process and in memory), and
workers killed mid-workflow against a real sidecar process on a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC
from pathlib import Path

import pytest

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk import NondeterministicReplayError, Pynenc, TaskFailedError
from pynenc_sidecar_sdk.errors import SidecarError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def flows(in_process_sidecar, tmp_path, monkeypatch):
    """The sdk_workflows module bound to the in-process sidecar, journaling to a temp file."""
    monkeypatch.setenv("PYNENC_SIDECAR_ADDRESS", in_process_sidecar.address)
    monkeypatch.setenv("PSC_TEST_JOURNAL", str(tmp_path / "journal"))
    monkeypatch.setenv("PSC_TEST_APP", f"sdk-{uuid.uuid4().hex}")
    sys.modules.pop("sdk_workflows", None)
    import sdk_workflows

    sdk_workflows.journal_path = tmp_path / "journal"
    yield sdk_workflows
    sys.modules.pop("sdk_workflows", None)


def journal(flows) -> list[str]:
    path = flows.journal_path
    return path.read_text().split() if path.exists() else []


def test_rerun_with_the_same_id_replays_every_value_and_runs_no_finished_task(flows):
    first = flows.order_flow.run_workflow("wf-replay", "o-1")
    assert not first.replayed
    assert journal(flows) == ["order_flow", "charge:o-1", "ship:o-1"]
    second = flows.order_flow.run_workflow("wf-replay", "o-1")
    assert second.replayed
    assert second.result == first.result
    # The workflow had finished: its recorded outcome comes back and none of its code runs.
    assert journal(flows) == ["order_flow", "charge:o-1", "ship:o-1"]


def crashed_run(flows, task, workflow_id: str, *args, monkeypatch) -> None:
    """Run task as workflow_id and crash it at its crash point (no outcome recorded), then
    wait for its lease to lapse so the next run resumes it at once."""
    monkeypatch.setenv("PSC_TEST_CRASH", task.func.__name__)
    with pytest.raises(SidecarError, match="simulated crash"):
        task.run_workflow(workflow_id, *args)
    monkeypatch.delenv("PSC_TEST_CRASH")
    time.sleep(flows.app.lease_ttl + 0.5)


def test_a_replay_gets_its_log_with_start_workflow_or_else_reads_it(flows, monkeypatch):
    """Resuming a crashed run, the log comes in StartWorkflow's reply (include_log); from a
    server that predates it (no log in the reply) the SDK reads it with GetWorkflowLog, and
    replays the same: every recorded value, data reads and writes included, from the log."""
    crashed_run(flows, flows.order_flow, "wf-log", "o-7", monkeypatch=monkeypatch)
    methods: list[str] = []
    client = flows.app.client
    real_call, real_stream = client.call, client.stream

    def call(method, request, timeout=None):
        reply = real_call(method, request, timeout)
        methods.append(type(request).__name__)
        if old_server and isinstance(reply, de.StartWorkflowResponse):
            reply.ClearField("log")
        return reply

    def stream(method, request):
        methods.append(type(request).__name__)
        return real_stream(method, request)

    monkeypatch.setattr(client, "call", call)
    monkeypatch.setattr(client, "stream", stream)
    old_server = False
    monkeypatch.setenv("PSC_TEST_CRASH", "order_flow")  # crash again, after the replay
    with pytest.raises(SidecarError, match="simulated crash"):
        flows.order_flow.run_workflow("wf-log", "o-7")
    assert methods == ["StartWorkflowRequest"]  # every value from the log
    monkeypatch.delenv("PSC_TEST_CRASH")
    time.sleep(flows.app.lease_ttl + 0.5)
    methods.clear()
    old_server = True
    result = flows.order_flow.run_workflow("wf-log", "o-7").result
    assert [m for m in methods if m != "RenewTaskLeaseRequest"] == [
        "StartWorkflowRequest", "GetWorkflowLogRequest", "CompleteTaskRequest"]
    assert result["status"] == "done"
    assert journal(flows) == ["order_flow", "charge:o-7", "ship:o-7", "order_flow", "order_flow"]


def test_values_are_deterministic_and_distinct(flows):
    result = flows.order_flow.run_workflow("wf-values", "o-2", steps=4).result
    assert len(set(result["random"])) == 4 and all(0 <= v < 1 for v in result["random"])
    assert len(set(result["uuid"])) == 4
    assert result["time"] == sorted(result["time"]) and len(set(result["time"])) == 4
    assert result["status"] == "done"
    other = flows.order_flow.run_workflow("wf-values-other", "o-2", steps=4).result
    assert other["random"] != result["random"] and other["uuid"] != result["uuid"]


def test_custom_operation_generator_runs_only_when_nothing_is_recorded(flows):
    calls = []

    @flows.app.task
    def dice_flow() -> list:
        def roll() -> int:
            calls.append(1)
            return len(calls) * 100
        return [dice_flow.wf.deterministic._deterministic_operation("roll", roll) for _ in range(3)]

    assert dice_flow.run_workflow("wf-dice").result == [100, 200, 300]
    assert dice_flow.run_workflow("wf-dice").result == [100, 200, 300]
    assert len(calls) == 3


def test_task_error_is_recorded_and_replayed_without_rerunning(flows):
    first = flows.failing_flow.run_workflow("wf-fail").result
    assert first == {"error": "TaskFailedError", "message": "ValueError: card declined"}
    again = flows.failing_flow.run_workflow("wf-fail").result
    assert again == first
    assert journal(flows).count("fail_always") == 1


def test_failed_main_task_result_raises(flows):
    @flows.app.task
    def broken() -> None:
        raise KeyError("boom")

    with pytest.raises(TaskFailedError) as info:
        broken.run_workflow("wf-broken").result
    assert info.value.error_type == "KeyError"


def test_only_the_main_task_writes_workflow_data(flows):
    message = flows.access_flow.run_workflow("wf-access").result
    assert "WorkflowAccessError" in message


def test_replay_with_a_different_call_is_nondeterministic(flows, monkeypatch):
    crashed_run(flows, flows.branching_flow, "wf-branch", "charge", monkeypatch=monkeypatch)
    recorded = journal(flows)
    monkeypatch.setenv("PSC_TEST_BRANCH", "ship")
    with pytest.raises(NondeterministicReplayError) as info:
        flows.branching_flow.run_workflow("wf-branch", "charge")
    assert info.value.reason == "NONDETERMINISTIC_REPLAY"
    assert "charge" in str(info.value) and "ship" in str(info.value)
    # The record is untouched: the original branch still replays to the same invocation.
    time.sleep(flows.app.lease_ttl + 0.5)
    monkeypatch.setenv("PSC_TEST_BRANCH", "charge")
    first = flows.branching_flow.run_workflow("wf-branch", "charge").result
    assert first == flows.app.client.call(flows.app.client.executor.GetRecorded, de.GetRecordedRequest(
        position=de.OperationPosition(app_id=flows.app.app_id, workflow={"workflow_id": "wf-branch"}, sequence=1),
        kind=de.OPERATION_KIND_TASK)).operation.task_value.invocation_id
    assert journal(flows) == recorded  # charge finished in the crashed run: it did not run again


def test_force_new_workflow_child_gets_its_own_workflow(flows):
    @flows.app.task
    def outer() -> dict:
        child = outer.wf.execute_task(flows.order_flow, "o-9", 1)
        return {"mine": outer.workflow.workflow_id, "child": child.workflow.workflow_id,
                "parent": child.workflow.parent_workflow_id, "child_id": child.invocation_id}

    result = outer.run_workflow("wf-outer").result
    assert result["child"] == result["child_id"] != result["mine"]
    assert result["parent"] == "wf-outer"


def test_racing_workers_replaying_one_workflow_run_each_task_once(flows):
    results, errors = [], []

    def worker() -> None:
        try:
            app = Pynenc(app_id=flows.app.app_id, lease_ttl=5)
            # Each worker has its own app and client, like separate processes.
            task = app.task(flows.order_flow.func, force_new_workflow=True)
            task.task_id = flows.order_flow.task_id
            results.append(json.dumps(app.run_workflow(task, "wf-race", "o-r").result, sort_keys=True))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(set(results)) == 1
    entries = journal(flows)
    assert entries.count("charge:o-r") == 1 and entries.count("ship:o-r") == 1


def _run_worker(sidecar, tmp_path, workflow_id: str, out: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": sidecar.address, "PSC_TEST_JOURNAL": str(tmp_path / "journal"),
           "PSC_TEST_APP": "kill-tests", "PSC_TEST_PAUSE": str(pause), "PSC_TEST_LEASE": "1.5",
           "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "sdk_workflows.py"), workflow_id, "o-k", str(out)],
                            env=env)


def test_worker_killed_mid_workflow_resumes_from_first_unrecorded_step(sidecar, tmp_path):
    from support import wait_until

    workflow_id = f"wf-kill-{uuid.uuid4().hex}"
    journal_path = tmp_path / "journal"
    worker = _run_worker(sidecar, tmp_path, workflow_id, tmp_path / "first.json", pause=0.6)
    # Kill it while `charge` (the first task) is running: after it started, before ship.
    wait_until(lambda: journal_path.exists() and "charge:o-k" in journal_path.read_text(), 30, "charge to start")
    worker.kill()
    worker.wait()
    assert "ship:o-k" not in journal_path.read_text()
    resumed = _run_worker(sidecar, tmp_path, workflow_id, tmp_path / "second.json", pause=0)
    assert resumed.wait(60) == 0
    entries = journal_path.read_text().split()
    # charge had not finished: it runs again (after its lease lapsed); ship runs once.
    assert entries == ["order_flow", "charge:o-k", "order_flow", "charge:o-k", "ship:o-k"]
    replay = _run_worker(sidecar, tmp_path, workflow_id, tmp_path / "third.json", pause=0)
    assert replay.wait(60) == 0
    assert (tmp_path / "second.json").read_text() == (tmp_path / "third.json").read_text()
    assert journal_path.read_text().split() == entries  # finished: no code ran again


def test_worker_killed_after_a_task_finished_does_not_rerun_it(sidecar, tmp_path):
    from support import wait_until

    workflow_id = f"wf-kill2-{uuid.uuid4().hex}"
    journal_path = tmp_path / "journal"
    worker = _run_worker(sidecar, tmp_path, workflow_id, tmp_path / "first.json", pause=0.6)
    wait_until(lambda: journal_path.exists() and "ship:o-k" in journal_path.read_text(), 30, "ship to start")
    worker.kill()
    worker.wait()
    resumed = _run_worker(sidecar, tmp_path, workflow_id, tmp_path / "second.json", pause=0)
    assert resumed.wait(60) == 0
    entries = journal_path.read_text().split()
    assert entries.count("charge:o-k") == 1
    assert entries.count("ship:o-k") == 2


def test_a_run_waiting_for_a_dead_workers_lease_says_what_it_waits_for_and_until_when(sidecar, tmp_path):
    from support import wait_until

    workflow_id = f"wf-wait-{uuid.uuid4().hex}"
    journal_path = tmp_path / "journal"
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": sidecar.address, "PSC_TEST_JOURNAL": str(journal_path),
           "PSC_TEST_APP": "kill-tests", "PSC_TEST_PAUSE": "0.6", "PYTHONPATH": str(ROOT / "tests")}
    command = [sys.executable, str(ROOT / "tests" / "sdk_workflows.py"), workflow_id, "o-w"]
    # A 6 s lease, so the rerun surely starts while the dead worker's lease is still live.
    worker = subprocess.Popen([*command, str(tmp_path / "first.json")], env={**env, "PSC_TEST_LEASE": "6"})
    wait_until(lambda: journal_path.exists() and "charge:o-w" in journal_path.read_text(), 30, "charge to start")
    worker.kill()
    worker.wait()
    inspected = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "inspect", workflow_id, "--json",
                                "--app-id", "kill-tests", "--redis-url", sidecar.redis_url],
                               capture_output=True, text=True, check=True, timeout=60)
    main_task = next(t for t in json.loads(inspected.stdout)["tasks"] if t["invocation_id"] == workflow_id)
    expires = main_task["lease_expires_at"][:23] + "Z"  # to the millisecond, as the SDKs print it

    resumed = subprocess.run([*command, str(tmp_path / "second.json")], env={**env, "PSC_TEST_PAUSE": "0"},
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    waiting = [line for line in resumed.stderr.splitlines() if line.startswith("waiting for task ")]
    assert waiting, resumed.stderr
    # Once at the start (a WARNING: shown without any logging set up), for the main task:
    # what (task, invocation, workflow), who (the dead worker's runner id), until when.
    assert waiting[0].startswith(f"waiting for task sdk_workflows.order_flow (invocation {workflow_id}, workflow "
                                 f"{workflow_id}) held by runner \"py-{worker.pid}-"), waiting[0]
    assert f": its lease expires at {expires} (" in waiting[0], (expires, waiting[0])
    assert " s left); this run takes the task over then unless the holder renews it" in waiting[0]
    assert json.loads((tmp_path / "second.json").read_text())["status"] == "done"  # and then it finished


def test_the_wait_message_names_the_holder_and_counts_down():
    from datetime import datetime, timedelta

    from pynenc_sidecar_proto.v1 import common_pb2
    from pynenc_sidecar_sdk.runner import describe_wait

    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    inv = de.TaskInvocation(invocation_id="inv-1", task_id="mod.step", status=common_pb2.INVOCATION_STATUS_RUNNING,
                            workflow=common_pb2.WorkflowIdentity(workflow_id="wf-1"), lease_runner_id="r-9")
    assert describe_wait(inv, now) == ("waiting for task mod.step (invocation inv-1, workflow wf-1) held by "
                                       "runner \"r-9\": its lease expiry is unknown")
    inv.lease_expire_time.FromDatetime(now + timedelta(seconds=12.5))
    assert describe_wait(inv, now, again=True) == (
        "still waiting for task mod.step (invocation inv-1, workflow wf-1) held by runner \"r-9\": its lease "
        "expires at 2026-01-02T03:04:18.178Z (12.5 s left); this run takes the task over then unless the holder "
        "renews it")
    assert describe_wait(inv, now + timedelta(seconds=20)).endswith(
        "its lease expired at 2026-01-02T03:04:18.178Z; this run takes the task over now")
