"""Replay never starts new work and never repeats a write (issue 11, cases 1 and 2), on both
stores: a finished workflow returns its recorded outcome without running code; the server
refuses a new record in a finished invocation; workflow data reads and writes are recorded
at positions, so a replay neither re-reads nor re-applies them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import grpc
import pytest

from executor_client import error_details, position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk import NondeterministicReplayError, Pynenc
from pynenc_sidecar_sdk.errors import SidecarError

SUCCESS, FAILED = common_pb2.INVOCATION_STATUS_SUCCESS, common_pb2.INVOCATION_STATUS_FAILED
DATA_READ, DATA_WRITE = de.OPERATION_KIND_DATA_READ, de.OPERATION_KIND_DATA_WRITE


@pytest.fixture(params=["redis", "sqlite"])
def server(request):
    return request.getfixturevalue("sidecar" if request.param == "redis" else "sqlite_sidecar")


@pytest.fixture
def stub(server):
    channel = server.channel()
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


@pytest.fixture
def flows(server, tmp_path, monkeypatch):
    """tests/sdk_workflows bound to this store's sidecar, journaling to a temp file."""
    monkeypatch.setenv("PYNENC_SIDECAR_ADDRESS", server.address)
    monkeypatch.setenv("PSC_TEST_JOURNAL", str(tmp_path / "journal"))
    monkeypatch.setenv("PSC_TEST_APP", f"replay-{uuid.uuid4().hex}")
    sys.modules.pop("sdk_workflows", None)
    import sdk_workflows

    sdk_workflows.journal_path = tmp_path / "journal"
    yield sdk_workflows
    sys.modules.pop("sdk_workflows", None)


def journal(flows) -> list[str]:
    return flows.journal_path.read_text().split() if flows.journal_path.exists() else []


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def log_operations(stub, app: str, workflow_id: str) -> list[de.RecordedOperation]:
    return [op for batch in stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app, workflow_id=workflow_id))
            for op in batch.operations]


def data(stub, app: str, workflow_id: str, key: str):
    reply = stub.GetData(de.GetDataRequest(app_id=app, workflow_id=workflow_id, key=key))
    return json.loads(reply.value_json) if reply.found else None


def refused(call) -> tuple[str, dict[str, str], str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, info.value.details()
    reason, _, metadata = error_details(info.value)
    return reason, metadata, info.value.details()


def inspect(server, app: str, workflow_id: str) -> dict:
    """`pynenc-sidecar inspect --json` of the workflow, read from the server's store."""
    report = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "inspect", workflow_id, "--app-id", app,
                             *server.store_args(), "--json"], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    return json.loads(report.stdout)


def start(stub, app: str, workflow_id: str) -> de.StartWorkflowResponse:
    reply = stub.StartWorkflow(de.StartWorkflowRequest(
        app_id=app, workflow=common_pb2.WorkflowIdentity(workflow_id=workflow_id, workflow_type="m.flow"),
        arguments_json="{}"))
    assert reply.HasField("lease")
    return reply


def finish(stub, app: str, invocation_id: str, lease_id: str, *, failed: bool = False) -> None:
    request = de.CompleteTaskRequest(app_id=app, invocation_id=invocation_id, lease_id=lease_id)
    if failed:
        request.error.CopyFrom(common_pb2.TaskError(type="ValueError", message="no"))
    else:
        request.result_json = "42"
    assert stub.CompleteTask(request).accepted


# --- case 1: a finished workflow starts no new work ----------------------------------------
def test_finished_workflow_returns_its_outcome_and_a_new_step_never_runs(flows, server, stub):
    version = {"notify": False}

    @flows.app.task
    def step() -> int:
        flows.journal("step")
        return 41

    @flows.app.task
    def notify() -> str:
        flows.journal("notify")
        return "sent"

    @flows.app.task
    def flow() -> int:
        total = flow.wf.execute_task(step).result + 1
        if version["notify"]:  # a newer version of the code adds a step after the recorded ones
            flow.wf.execute_task(notify)
        return total

    workflow_id = fresh("wf-notify")
    assert flow.run_workflow(workflow_id).result == 42
    version["notify"] = True
    again = flow.run_workflow(workflow_id)
    assert again.replayed and again.result == 42
    assert journal(flows) == ["step"]  # notify never ran, nor did the finished code
    tasks = [op.task_value.task_id for op in log_operations(stub, flows.app.app_id, workflow_id)
             if op.kind == de.OPERATION_KIND_TASK]
    assert tasks == [step.task_id]
    assert [t["task_id"] for t in inspect(server, flows.app.app_id, workflow_id)["tasks"]] == [flow.task_id,
                                                                                              step.task_id]


@pytest.mark.parametrize("failed", [False, True])
def test_server_refuses_every_new_record_in_a_finished_invocation(stub, failed):
    app, workflow_id = fresh("app"), fresh("wf")
    lease = start(stub, app, workflow_id).lease.lease_id
    recorded = stub.Random(de.RandomRequest(position=position(app, workflow_id, 1))).value
    stub.SetData(de.SetDataRequest(key="k", value_json='"before"', position=position(app, workflow_id, 1)))
    finish(stub, app, workflow_id, lease, failed=failed)
    status = "FAILED" if failed else "SUCCESS"
    before = log_operations(stub, app, workflow_id)

    # recorded positions replay as always
    again = stub.Random(de.RandomRequest(position=position(app, workflow_id, 1)))
    assert again.replayed and again.value == recorded
    assert stub.SetData(
        de.SetDataRequest(key="k", value_json='"before"', position=position(app, workflow_id, 1))
    ).replayed

    pos2 = position(app, workflow_id, 2)
    calls = {
        "random": lambda: stub.Random(de.RandomRequest(position=pos2)),
        "utc_now": lambda: stub.UtcNow(de.UtcNowRequest(position=position(app, workflow_id, 1))),
        "uuid": lambda: stub.Uuid(de.UuidRequest(position=position(app, workflow_id, 1))),
        "custom": lambda: stub.Record(de.RecordRequest(position=position(app, workflow_id, 1), operation="op",
                                                       value_json="1")),
        "task": lambda: stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app, workflow_id, 1),
                                                               task_id="m.notify", arguments_json="{}")),
        "data_read": lambda: stub.GetData(de.GetDataRequest(key="k", position=position(app, workflow_id, 1))),
        "data_write": lambda: stub.SetData(de.SetDataRequest(key="k", value_json='"after"', position=pos2)),
    }
    for operation, call in calls.items():
        reason, metadata, message = refused(call)
        assert reason == "NONDETERMINISTIC_REPLAY", operation
        assert metadata["status"] == status and metadata["invocation_id"] == workflow_id, metadata
        assert metadata["workflow_id"] == workflow_id and metadata["operation"] == operation
        assert f"operation {operation}" in message and f"already finished ({status})" in message, message
        assert "a replay cannot start new work" in message
    assert "sequence 2" in refused(calls["random"])[2]
    # nothing half-written: no new record, the data untouched
    assert log_operations(stub, app, workflow_id) == before
    assert data(stub, app, workflow_id, "k") == "before"


def test_a_finished_child_task_scope_records_nothing_new(stub):
    app, workflow_id = fresh("app"), fresh("wf")
    start(stub, app, workflow_id)
    child = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app, workflow_id, 1), task_id="m.child",
                                                   arguments_json="{}"))
    child_id = child.invocation.invocation_id
    # while it runs, its scope records
    assert not stub.Uuid(de.UuidRequest(position=position(app, workflow_id, 1, child_id))).replayed
    finish(stub, app, child_id, child.lease.lease_id)
    assert stub.Uuid(de.UuidRequest(position=position(app, workflow_id, 1, child_id))).replayed
    reason, metadata, _ = refused(lambda: stub.Uuid(de.UuidRequest(position=position(app, workflow_id, 2, child_id))))
    assert reason == "NONDETERMINISTIC_REPLAY" and metadata["invocation_id"] == child_id
    # the main task, still running, records as before
    assert not stub.Uuid(de.UuidRequest(position=position(app, workflow_id, 1))).replayed


# --- case 2: workflow data at positions ------------------------------------------------------
def test_read_modify_write_of_data_in_a_finished_workflow_is_not_applied_again(flows, stub):
    workflow_id = fresh("wf-visits")
    results = [flows.visits_flow.run_workflow(workflow_id).result for _ in range(3)]
    assert results == [1, 1, 1]
    assert data(stub, flows.app.app_id, workflow_id, "visits") == 1


def test_a_resumed_run_replays_its_data_reads_and_writes(flows, server, stub, monkeypatch):
    workflow_id = fresh("wf-visits")
    monkeypatch.setenv("PSC_TEST_CRASH", "visits_flow")  # crash after the write, before the outcome
    with pytest.raises(SidecarError, match="simulated crash"):
        flows.visits_flow.run_workflow(workflow_id)
    monkeypatch.delenv("PSC_TEST_CRASH")
    # the write was buffered: no blocking call came after it, so the crash lost it (the code
    # since the last blocking point runs again); the read before it is recorded
    assert data(stub, flows.app.app_id, workflow_id, "visits") is None
    time.sleep(flows.app.lease_ttl + 0.5)  # the crashed run's lease lapses
    resumed = flows.visits_flow.run_workflow(workflow_id)
    # the read returned what it returned first (nothing), the write was not applied again
    assert resumed.result == 1
    assert data(stub, flows.app.app_id, workflow_id, "visits") == 1
    ops = {(op.kind, op.custom_name, op.sequence): op.data_value
           for op in log_operations(stub, flows.app.app_id, workflow_id) if op.kind in (DATA_READ, DATA_WRITE)}
    assert ops == {(DATA_READ, "visits", 1): de.DataValue(found=False),
                   (DATA_WRITE, "visits", 1): de.DataValue(found=True, value_json="1")}
    shown = [{k: op[k] for k in ("operation", "name", "sequence", "value") if k in op} | {"found": op.get("found")}
             for op in inspect(server, flows.app.app_id, workflow_id)["operations"]]
    assert shown == [{"operation": "data_read", "name": "visits", "sequence": 1, "value": None, "found": False},
                     {"operation": "data_write", "name": "visits", "sequence": 1, "value": 1, "found": None}]


def test_a_resumed_run_writing_another_value_is_nondeterministic(flows, stub, monkeypatch):
    workflow_id = fresh("wf-counter")
    monkeypatch.setenv("PSC_TEST_CRASH", "counter_flow")
    with pytest.raises(SidecarError, match="simulated crash"):
        flows.counter_flow.run_workflow(workflow_id)
    monkeypatch.delenv("PSC_TEST_CRASH")
    time.sleep(flows.app.lease_ttl + 0.5)
    monkeypatch.setenv("PSC_TEST_COUNTER", "2")
    with pytest.raises(NondeterministicReplayError) as info:
        flows.counter_flow.run_workflow(workflow_id)
    assert "'counter'" in str(info.value) and "written 1" in str(info.value) and "writes 2" in str(info.value)
    assert data(stub, flows.app.app_id, workflow_id, "counter") == 1


def test_set_data_at_a_position_applies_once_and_judges_replays(stub):
    app, workflow_id = fresh("app"), fresh("wf")
    write = lambda value, seq=1: stub.SetData(de.SetDataRequest(  # noqa: E731
        key="n", value_json=value, position=position(app, workflow_id, seq)))
    assert not write("1").replayed
    assert data(stub, app, workflow_id, "n") == 1
    stub.SetData(de.SetDataRequest(app_id=app, workflow_id=workflow_id, key="n", value_json="7"))  # no position
    assert write("1.0").replayed  # the same value as canonical JSON: replayed, not applied
    assert data(stub, app, workflow_id, "n") == 7
    reason, metadata, message = refused(lambda: write('{"b": 2}'))
    assert reason == "NONDETERMINISTIC_REPLAY"
    assert metadata["key"] == "n" and metadata["recorded_value"] == "1" and metadata["requested_value"] == '{"b":2}'
    assert "data key 'n'" in message and "sequence 1" in message and "written 1" in message and '{"b":2}' in message
    assert data(stub, app, workflow_id, "n") == 7  # nothing applied
    assert not write("2", seq=2).replayed  # the key's next write
    assert data(stub, app, workflow_id, "n") == 2
    got = stub.GetRecorded(de.GetRecordedRequest(position=position(app, workflow_id, 2), kind=DATA_WRITE,
                                                 custom_name="n"))
    assert got.found and got.operation.data_value == de.DataValue(found=True, value_json="2")
    count = stub.GetOperationCount(de.GetOperationCountRequest(app_id=app, workflow_id=workflow_id,
                                                               kind=DATA_WRITE, custom_name="n"))
    assert count.count == 2


def test_get_data_at_a_position_records_what_it_read(stub):
    app, workflow_id = fresh("app"), fresh("wf")
    read = lambda seq, scope="": stub.GetData(de.GetDataRequest(  # noqa: E731
        key="k", position=position(app, workflow_id, seq, scope)))
    first = read(1)
    assert not first.found and not first.replayed
    stub.SetData(de.SetDataRequest(app_id=app, workflow_id=workflow_id, key="k", value_json="null"))
    again = read(1)
    assert not again.found and again.replayed  # what it read the first time: nothing
    second = read(2)
    assert second.found and second.value_json == "null" and not second.replayed  # a stored null is a value
    # any task of the workflow reads, in its own scope
    by_task = read(1, "some-task")
    assert by_task.found and not by_task.replayed
    stub.SetData(de.SetDataRequest(app_id=app, workflow_id=workflow_id, key="k", value_json="3"))
    assert read(1, "some-task").value_json == "null" and read(3).value_json == "3"


def test_positioned_writes_keep_the_ownership_rule_and_write_nothing_when_denied(stub):
    app, workflow_id = fresh("app"), fresh("wf")
    with pytest.raises(grpc.RpcError) as info:
        stub.SetData(de.SetDataRequest(key="k", value_json="1", position=position(app, workflow_id, 1, "child")))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(info.value)[0] == "WORKFLOW_ACCESS_DENIED"
    assert data(stub, app, workflow_id, "k") is None
    assert log_operations(stub, app, workflow_id) == []


@pytest.mark.parametrize(("field", "value"), [("app_id", "other-app"), ("workflow_id", "other-wf"),
                                              ("invocation_id", "other-task")])
def test_request_fields_that_contradict_the_position_are_invalid(stub, field, value):
    app, workflow_id = fresh("app"), fresh("wf")
    request = de.SetDataRequest(key="k", value_json="1", position=position(app, workflow_id, 1), **{field: value})
    with pytest.raises(grpc.RpcError) as info:
        stub.SetData(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value)[1] == field
    assert "position" in info.value.details()
    # equal values are fine
    agreeing = de.SetDataRequest(app_id=app, workflow_id=workflow_id, invocation_id=workflow_id, key="k",
                                 value_json="1", position=position(app, workflow_id, 1))
    assert not stub.SetData(agreeing).replayed


def test_data_without_a_position_behaves_as_before(stub):
    app, workflow_id = fresh("app"), fresh("wf")
    for value in ("1", "2"):
        assert not stub.SetData(de.SetDataRequest(app_id=app, workflow_id=workflow_id, key="k",
                                                  value_json=value)).replayed
    reply = stub.GetData(de.GetDataRequest(app_id=app, workflow_id=workflow_id, key="k"))
    assert reply.found and reply.value_json == "2" and not reply.replayed
    assert log_operations(stub, app, workflow_id) == []


def test_python_sdk_reads_and_writes_at_positions(server):
    app = Pynenc(app_id=fresh("sdk"), address=server.address)
    seen: list = []

    @app.task
    def flow() -> list:
        flow.wf.set_data("a", {"x": 1})
        seen.append(flow.wf.get_data("a"))
        seen.append(flow.wf.get_data("missing", "default"))
        return seen

    workflow_id = fresh("wf")
    assert flow.run_workflow(workflow_id).result == [{"x": 1}, "default"]
    channel = server.channel()
    ops = log_operations(de_grpc.DeterministicExecutorServiceStub(channel), app.app_id, workflow_id)
    channel.close()
    assert sorted((op.kind, op.custom_name, op.sequence) for op in ops) == [
        (DATA_READ, "a", 1), (DATA_READ, "missing", 1), (DATA_WRITE, "a", 1)]
    app.client.close()
