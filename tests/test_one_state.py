"""One workflow state: a workflow run through DeterministicExecutorService (by the Python SDK)
reads through StateBackendService the way Pynenc records its own runs, on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from toolchains import require

ROOT = Path(__file__).resolve().parent.parent
TS_DIR = ROOT / "sdk" / "ts"
RUN_SEED = ROOT / "examples" / "run_seed.py"
SEED_APP = "pynenc"  # examples/seed_workflows.py's app id
S = common_pb2.InvocationStatus


@pytest.fixture(params=["sidecar", "sqlite_sidecar"])
def server(request):
    return request.getfixturevalue(request.param)


@pytest.fixture()
def stubs(server):
    with server.channel() as channel:
        yield sb_grpc.StateBackendServiceStub(channel), de_grpc.DeterministicExecutorServiceStub(channel)


@pytest.fixture()
def flows(server, tmp_path, monkeypatch):
    """tests/sdk_workflows.py bound to the server, in an app of its own."""
    monkeypatch.setenv("PYNENC_SIDECAR_ADDRESS", server.address)
    monkeypatch.setenv("PSC_TEST_APP", f"one-state-{uuid.uuid4().hex}")
    sys.modules.pop("sdk_workflows", None)
    import sdk_workflows

    yield sdk_workflows
    sys.modules.pop("sdk_workflows", None)


def run_seed(server, workflow: str, workflow_id: str) -> dict:
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": server.address}
    out = subprocess.run([sys.executable, str(RUN_SEED), workflow, workflow_id], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def history(sb_stub, app_id: str, invocation_id: str) -> list[tuple[int, str]]:
    entries = sb_stub.GetHistory(sb.GetHistoryRequest(app_id=app_id, invocation_id=invocation_id)).history
    assert all(e.invocation_id == invocation_id and e.HasField("timestamp") for e in entries)
    assert [e.timestamp.ToMicroseconds() for e in entries] == sorted(e.timestamp.ToMicroseconds() for e in entries)
    return [(e.status, e.runner_id) for e in entries]


def invocation(sb_stub, app_id: str, invocation_id: str) -> sb.Invocation:
    return sb_stub.GetInvocation(sb.GetInvocationRequest(app_id=app_id, invocation_id=invocation_id)).invocation


def task_positions(de_stub, app_id: str, workflow_id: str) -> dict[tuple[str, int], str]:
    """(scope, sequence) -> invocation id of every task position of the workflow's log."""
    found = {}
    for batch in de_stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id=workflow_id)):
        for op in batch.operations:
            if op.kind == de.OPERATION_KIND_TASK:
                found[(op.scope, op.sequence)] = op.task_value.invocation_id
    return found


def test_a_seed_workflow_reads_through_the_state_backend_as_pynenc_records_it(server, stubs):
    sb_stub, de_stub = stubs
    workflow_id = f"order-{uuid.uuid4().hex}"
    result = run_seed(server, "process_order_workflow", workflow_id)["result"]
    (payment_id,) = task_positions(de_stub, SEED_APP, workflow_id).values()
    wf = common_pb2.WorkflowIdentity(workflow_id=workflow_id, workflow_type="seed_workflows.process_order_workflow")

    main = invocation(sb_stub, SEED_APP, workflow_id)
    assert main.task_id == "seed_workflows.process_order_workflow" and main.workflow == wf
    assert main.parent_invocation_id == ""
    # The arguments as Pynenc's JsonSerializer writes them, and Pynenc's call id over them.
    assert dict(main.serialized_arguments) == {"order_id": '"A-1"'}
    assert main.arguments["order_id"] == sb.SerializedValue(json='"A-1"')  # a JSON value, for any reader
    # (the args id Pynenc 0.4.0's compute_args_id gives for them: tests/test_projection.py)
    assert main.call_id == f"{main.task_id}:4588b77cfaafdbe531690d52aa5508aa7c23bf9619a9af5244f4e2e6d1e7f2ab"
    child = invocation(sb_stub, SEED_APP, payment_id)
    assert child.task_id == "seed_workflows.process_payment" and child.workflow == wf
    assert child.parent_invocation_id == workflow_id

    # Each status once, in order, with the runner that held the task (the SDK's runner id).
    for inv_id in (workflow_id, payment_id):
        statuses = history(sb_stub, SEED_APP, inv_id)
        assert [s for s, _ in statuses] == [S.INVOCATION_STATUS_REGISTERED, S.INVOCATION_STATUS_RUNNING,
                                            S.INVOCATION_STATUS_SUCCESS]
        (runner,) = {r for _, r in statuses}
        assert runner.startswith("py-")
        context = sb_stub.GetRunnerContext(sb.GetRunnerContextRequest(app_id=SEED_APP, runner_id=runner))
        assert context.runner_context.runner_cls == "DeterministicExecutorService"
        # Pynenc's status record: only RUNNING has an owner (the lease holder); REGISTERED names
        # the invocation that registered it (none for the main task); the status time is the entry's.
        entries = sb_stub.GetHistory(sb.GetHistoryRequest(app_id=SEED_APP, invocation_id=inv_id)).history
        assert [e.status_runner_id for e in entries] == ["", runner, ""]
        assert [e.registered_by_invocation_id for e in entries] == [
            "" if inv_id == workflow_id else workflow_id, "", ""]
        assert all(e.status_timestamp == e.timestamp for e in entries)

    def result_of(inv_id: str):
        reply = sb_stub.GetResult(sb.GetResultRequest(app_id=SEED_APP, invocation_id=inv_id))
        assert reply.result == sb.SerializedValue(json=reply.result_json)
        return json.loads(reply.result_json)

    assert result_of(workflow_id) == result
    assert result_of(payment_id) == result["payment_status"]

    runs = sb_stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=SEED_APP, workflow_type=wf.workflow_type,
                                                               page_size=1000))
    assert wf in runs.workflows
    types = sb_stub.ListWorkflowTypes(sb.ListWorkflowTypesRequest(app_id=SEED_APP)).workflow_types
    assert wf.workflow_type in types
    subs = sb_stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(app_id=SEED_APP,
                                                                                   workflow_id=workflow_id))
    assert list(subs.invocation_ids) == [payment_id]
    by_workflow = sb_stub.ListInvocationIdsByWorkflow(sb.ListInvocationIdsByWorkflowRequest(
        app_id=SEED_APP, workflow_id=workflow_id, workflow_type=wf.workflow_type))
    assert sorted(by_workflow.invocation_ids) == sorted([workflow_id, payment_id])
    children = sb_stub.ListChildInvocations(sb.ListChildInvocationsRequest(app_id=SEED_APP,
                                                                           parent_invocation_id=workflow_id))
    assert list(children.invocation_ids) == [payment_id]
    # Data the workflow set, read through the StateBackend.
    data = sb_stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=SEED_APP, workflow_id=workflow_id,
                                                             key="tracking_number"))
    assert data.found and json.loads(data.value_json) == result["tracking_number"]


def test_a_replay_adds_no_history(server, stubs):
    sb_stub, de_stub = stubs
    workflow_id = f"order-{uuid.uuid4().hex}"
    run_seed(server, "process_order_workflow", workflow_id)
    (payment_id,) = task_positions(de_stub, SEED_APP, workflow_id).values()
    before = {i: history(sb_stub, SEED_APP, i) for i in (workflow_id, payment_id)}
    assert all(len(entries) == 3 for entries in before.values())
    assert run_seed(server, "process_order_workflow", workflow_id)["replayed"]
    assert {i: history(sb_stub, SEED_APP, i) for i in (workflow_id, payment_id)} == before


def test_a_failing_task_has_its_exception_and_a_failed_history(flows, stubs):
    sb_stub, de_stub = stubs
    app_id = flows.app.app_id
    assert flows.failing_flow.run_workflow("wf-fail").result["error"] == "TaskFailedError"
    (failed_id,) = task_positions(de_stub, app_id, "wf-fail").values()
    assert [s for s, _ in history(sb_stub, app_id, failed_id)] == [
        S.INVOCATION_STATUS_REGISTERED, S.INVOCATION_STATUS_RUNNING, S.INVOCATION_STATUS_FAILED]
    exception = sb_stub.GetException(sb.GetExceptionRequest(app_id=app_id, invocation_id=failed_id)).exception
    assert exception.type == "ValueError" and exception.message == "card declined"
    with pytest.raises(grpc.RpcError) as info:
        sb_stub.GetResult(sb.GetResultRequest(app_id=app_id, invocation_id=failed_id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # The main task caught the failure and succeeded.
    assert history(sb_stub, app_id, "wf-fail")[-1][0] == S.INVOCATION_STATUS_SUCCESS


def test_a_child_workflow_is_a_run_and_a_sub_invocation_of_its_parent(server, stubs):
    sb_stub, de_stub = stubs
    workflow_id = f"indep-{uuid.uuid4().hex}"
    result = run_seed(server, "call_independent_workflow", workflow_id)["result"]
    child_id = result["child_workflow_id"]
    assert set(task_positions(de_stub, SEED_APP, workflow_id).values()) == {child_id}
    child = invocation(sb_stub, SEED_APP, child_id)
    assert child.workflow == common_pb2.WorkflowIdentity(
        workflow_id=child_id, workflow_type="seed_workflows.independent_workflow", parent_workflow_id=workflow_id)
    assert child.parent_invocation_id == workflow_id
    runs = sb_stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(
        app_id=SEED_APP, workflow_type="seed_workflows.independent_workflow", page_size=1000)).workflows
    assert child.workflow in runs
    subs = sb_stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(app_id=SEED_APP,
                                                                                   workflow_id=workflow_id))
    assert list(subs.invocation_ids) == [child_id]
    # Pynenc lists a child workflow's invocations under the child workflow, not the parent's.
    by_parent = sb_stub.ListInvocationIdsByWorkflow(sb.ListInvocationIdsByWorkflowRequest(
        app_id=SEED_APP, workflow_id=workflow_id)).invocation_ids
    assert list(by_parent) == [workflow_id]
    assert [s for s, _ in history(sb_stub, SEED_APP, child_id)][-1] == S.INVOCATION_STATUS_SUCCESS


def test_workflow_data_is_one_key_space_for_both_services(flows, stubs):
    sb_stub, de_stub = stubs
    app_id = flows.app.app_id
    result = flows.order_flow.run_workflow("wf-data", "o-1", 1).result
    read = sb_stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app_id, workflow_id="wf-data", key="status"))
    assert read.found and json.loads(read.value_json) == result["status"] == "done"
    # The other way: written through the StateBackend (no ownership rule there), read by the executor.
    value = json.dumps({"from": "state-backend", "n": [1, 2.5, None]})
    sb_stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=app_id, workflow_id="wf-data", key="sb-key",
                                                      value_json=value))
    got = de_stub.GetData(de.GetDataRequest(app_id=app_id, workflow_id="wf-data", key="sb-key"))
    assert got.found and json.loads(got.value_json) == json.loads(value)
    # A value the executor's SetData writes reads the same through the StateBackend.
    de_stub.SetData(de.SetDataRequest(app_id=app_id, workflow_id="wf-data", invocation_id="wf-data",
                                      key="status", value_json='"archived"'))
    read = sb_stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app_id, workflow_id="wf-data", key="status"))
    assert read.value_json == '"archived"'


def test_a_task_taken_over_shows_a_second_running_entry_by_its_new_runner(stubs):
    sb_stub, de_stub = stubs
    app_id, workflow_id = f"takeover-{uuid.uuid4().hex}", "wf-t"
    wf = common_pb2.WorkflowIdentity(workflow_id=workflow_id, workflow_type="tests.takeover")
    de_stub.StartWorkflow(de.StartWorkflowRequest(app_id=app_id, workflow=wf, arguments_json="{}", runner_id="main"))
    position = de.OperationPosition(app_id=app_id, workflow=wf, sequence=1)
    first = de_stub.ExecuteTask(de.ExecuteTaskRequest(
        position=position, task_id="tests.step", arguments_json='{"n": 1}', runner_id="runner-a",
        lease_ttl={"seconds": 1}))
    child_id = first.invocation.invocation_id
    # runner-a's 1 s lease (the shortest) lapses; runner-b takes the task over and finishes it.
    waited = None
    while waited is None or not waited.HasField("lease"):
        waited = de_stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=child_id, runner_id="runner-b",
                                                     timeout={"seconds": 5}))
    de_stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=child_id,
                                                lease_id=waited.lease.lease_id, result_json="7"))
    assert history(sb_stub, app_id, child_id) == [
        (S.INVOCATION_STATUS_REGISTERED, "runner-a"), (S.INVOCATION_STATUS_RUNNING, "runner-a"),
        (S.INVOCATION_STATUS_RUNNING, "runner-b"), (S.INVOCATION_STATUS_SUCCESS, "runner-b")]
    # runner-a's late completion is refused and adds nothing.
    late = de_stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=child_id,
                                                       lease_id=first.lease.lease_id, result_json="8"))
    assert not late.accepted
    assert len(history(sb_stub, app_id, child_id)) == 4
    assert sb_stub.GetResult(sb.GetResultRequest(app_id=app_id, invocation_id=child_id)).result_json == "7"


@pytest.fixture(scope="session")
def ts_xlang() -> Path:
    require("node", "npm")
    if not (TS_DIR / "node_modules" / ".bin" / "tsc").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, check=True, capture_output=True,
                       timeout=600)
    subprocess.run([str(TS_DIR / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=TS_DIR, check=True,
                   capture_output=True, timeout=600)
    return TS_DIR / "dist" / "tools" / "xlang.js"


def test_a_typescript_client_reads_a_python_sdk_workflow_through_the_state_backend(server, stubs, ts_xlang):
    _, de_stub = stubs
    workflow_id = f"order-{uuid.uuid4().hex}"
    result = run_seed(server, "process_order_workflow", workflow_id)["result"]
    (payment_id,) = task_positions(de_stub, SEED_APP, workflow_id).values()
    out = subprocess.run(["node", str(ts_xlang), "state", "--address", server.address, "--app", SEED_APP,
                          "--workflow", workflow_id], cwd=TS_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert state["workflow_type"] == "seed_workflows.process_order_workflow" and state["listed_as_run"]
    assert state["sub_invocations"] == [payment_id]
    main, payment = state["invocations"][workflow_id], state["invocations"][payment_id]
    assert set(state["invocations"]) == {workflow_id, payment_id}
    assert main["arguments"] == {"order_id": "A-1"} and main["outcome"] == result
    assert payment["task_id"] == "seed_workflows.process_payment" and payment["parent_invocation_id"] == workflow_id
    assert payment["outcome"] == result["payment_status"]
    for inv in (main, payment):
        assert [status for status, _ in inv["history"]] == [
            "INVOCATION_STATUS_REGISTERED", "INVOCATION_STATUS_RUNNING", "INVOCATION_STATUS_SUCCESS"]
        assert all(runner.startswith("py-") for _, runner in inv["history"])


def test_purging_a_workflow_deletes_what_was_projected_of_it(server, stubs, flows):
    sb_stub, de_stub = stubs
    app_id = flows.app.app_id
    flows.order_flow.run_workflow("wf-purge", "o-1", 1)
    task_ids = sorted(task_positions(de_stub, app_id, "wf-purge").values())
    assert len(task_ids) == 2
    for inv_id in ["wf-purge", *task_ids]:  # projected, before the purge
        assert invocation(sb_stub, app_id, inv_id).invocation_id == inv_id
        assert len(history(sb_stub, app_id, inv_id)) == 3
    store_args = ["--redis-url", server.redis_url] if server.redis_url else ["--data-file", server.data_file]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    purged = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "purge", "--workflow-id", "wf-purge",
                             "--app-id", app_id, *store_args], capture_output=True, text=True, env=env, timeout=60)
    assert purged.returncode == 0, purged.stderr
    for inv_id in ["wf-purge", *task_ids]:
        with pytest.raises(grpc.RpcError) as info:
            invocation(sb_stub, app_id, inv_id)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert history(sb_stub, app_id, inv_id) == []
    assert list(sb_stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(
        app_id=app_id, workflow_id="wf-purge")).invocation_ids) == []
    assert list(sb_stub.ListInvocationIdsByWorkflow(sb.ListInvocationIdsByWorkflowRequest(
        app_id=app_id, workflow_type="sdk_workflows.order_flow")).invocation_ids) == []
    assert list(sb_stub.ListChildInvocations(sb.ListChildInvocationsRequest(
        app_id=app_id, parent_invocation_id="wf-purge")).invocation_ids) == []
    # What the StateBackend keeps app-wide stays: the runner contexts of the app's runners.
    runner = flows.app.runner_id
    assert sb_stub.GetRunnerContext(sb.GetRunnerContextRequest(app_id=app_id, runner_id=runner)).runner_context
