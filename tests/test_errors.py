"""SPEC.md's error table, row by row: the right status, reason and field; nothing written."""

from __future__ import annotations

import uuid

import grpc
import pytest

from executor_client import error_details, position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc


@pytest.fixture(scope="module")
def stub(sidecar):
    channel = grpc.insecure_channel(sidecar.address)
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


APP = "errors-app"
P = position(APP, "w")


def _no_position_field(request_cls):
    return request_cls()


BAD_REQUESTS = [
    ("Random", de.RandomRequest(), "position"),
    ("Random", de.RandomRequest(position=de.OperationPosition(workflow=P.workflow, sequence=1)), "position.app_id"),
    ("Random", de.RandomRequest(position=de.OperationPosition(app_id=APP, sequence=1)), "position.workflow"),
    ("Random", de.RandomRequest(position=position(APP, "", 1)), "position.workflow.workflow_id"),
    ("Random", de.RandomRequest(position=position(APP, "w", 0)), "position.sequence"),
    ("Random", de.RandomRequest(position=position(APP, "w", -5)), "position.sequence"),
    ("Random", de.RandomRequest(position=position(APP, "w", 2**60)), "position.sequence"),
    ("UtcNow", de.UtcNowRequest(position=position(APP, "w\n", 1)), "position.workflow.workflow_id"),
    ("Uuid", de.UuidRequest(position=position("x" * 2000, "w", 1)), "position.app_id"),
    ("Record", de.RecordRequest(position=P, value_json="1"), "operation"),
    ("Record", de.RecordRequest(position=P, operation="op"), "value_json"),
    ("Record", de.RecordRequest(position=P, operation="op", value_json="{bad json"), "value_json"),
    ("Record", de.RecordRequest(position=P, operation="op", value_json="NaN"), "value_json"),
    ("Record", de.RecordRequest(position=P, operation="op", value_json='"' + "x" * (1024 * 1024 + 1) + '"'),
     "value_json"),
    ("Record", de.RecordRequest(position=P, operation="o" * 300, value_json="1"), "operation"),
    ("GetRecorded", de.GetRecordedRequest(position=P), "kind"),
    ("GetRecorded", de.GetRecordedRequest(position=P, kind=de.OPERATION_KIND_CUSTOM), "custom_name"),
    ("GetRecorded", de.GetRecordedRequest(position=P, kind=de.OPERATION_KIND_RANDOM, custom_name="x"), "custom_name"),
    ("ExecuteTask", de.ExecuteTaskRequest(position=P, arguments_json="{}"), "task_id"),
    ("ExecuteTask", de.ExecuteTaskRequest(position=P, task_id="t"), "arguments_json"),
    ("ExecuteTask", de.ExecuteTaskRequest(position=P, task_id="t", arguments_json="[1]"), "arguments_json"),
    ("ExecuteTask", de.ExecuteTaskRequest(position=P, task_id="t", arguments_json="{}",
                                          lease_ttl={"seconds": 0}), "lease_ttl"),
    ("StartWorkflow", de.StartWorkflowRequest(app_id=APP, arguments_json="{}"), "workflow"),
    ("StartWorkflow", de.StartWorkflowRequest(app_id=APP, workflow=common_pb2.WorkflowIdentity(workflow_id="w"),
                                              arguments_json="{}"), "workflow.workflow_type"),
    ("StartWorkflow", de.StartWorkflowRequest(workflow=common_pb2.WorkflowIdentity(workflow_id="w", workflow_type="t"),
                                              arguments_json="{}"), "app_id"),
    ("RenewTaskLease", de.RenewTaskLeaseRequest(app_id=APP, invocation_id="i"), "lease_id"),
    ("CompleteTask", de.CompleteTaskRequest(app_id=APP, invocation_id="i", lease_id="l"), "outcome"),
    # A result that is not JSON is the task's recorded failure, not a bad request (test_outcomes_retry.py);
    # an error's detail_json is the SDK's to get right.
    ("CompleteTask", de.CompleteTaskRequest(app_id=APP, invocation_id="i", lease_id="l",
                                            error=common_pb2.TaskError(type="E", detail_json="{")),
                                            "error.detail_json"),
    ("CompleteTask", de.CompleteTaskRequest(app_id=APP, invocation_id="i", lease_id="l",
                                            error=common_pb2.TaskError()), "error.type"),
    ("WaitTask", de.WaitTaskRequest(app_id=APP), "invocation_id"),
    ("WaitTask", de.WaitTaskRequest(app_id=APP, invocation_id="i", timeout={"seconds": 3600}), "timeout"),
    ("GetData", de.GetDataRequest(app_id=APP, workflow_id="w"), "key"),
    ("SetData", de.SetDataRequest(app_id=APP, workflow_id="w", key="k"), "value_json"),
    ("SetData", de.SetDataRequest(app_id=APP, key="k", value_json="1"), "workflow_id"),
    ("GetBaseTime", de.GetBaseTimeRequest(app_id=APP), "workflow_id"),
    ("GetOperationCount", de.GetOperationCountRequest(app_id=APP, workflow_id="w"), "kind"),
    ("GetWorkflowLog", de.GetWorkflowLogRequest(workflow_id="w"), "app_id"),
    ("RetryWorkflow", de.RetryWorkflowRequest(app_id=APP), "workflow_id"),
    ("RetryWorkflow", de.RetryWorkflowRequest(workflow_id="w"), "app_id"),
    ("CommitOperations", de.CommitOperationsRequest(app_id=APP, workflow_id="w"), "commit"),
    ("CommitOperations", de.CommitOperationsRequest(app_id=APP, commit=de.OperationCommit()), "workflow_id"),
    ("CommitOperations", de.CommitOperationsRequest(
        app_id=APP, workflow_id="w", commit=de.OperationCommit(operations=[de.BufferedOperation(
            kind=de.OPERATION_KIND_RANDOM, sequence=1)])), "commit.lease_id"),
    ("PollTasks", de.PollTasksRequest(task_ids=["t"]), "app_id"),
    ("PollTasks", de.PollTasksRequest(app_id=APP), "task_ids"),
    ("PollTasks", de.PollTasksRequest(app_id=APP, task_ids=["t"], lease_ttl={"seconds": 0}), "lease_ttl"),
    ("ReleaseTask", de.ReleaseTaskRequest(app_id=APP, invocation_id="i"), "lease_id"),
    ("ReleaseTask", de.ReleaseTaskRequest(app_id=APP, lease_id="l"), "invocation_id"),
    ("CancelTask", de.CancelTaskRequest(app_id=APP), "invocation_id"),
    ("CancelTask", de.CancelTaskRequest(invocation_id="i"), "app_id"),
    ("ExecuteTask", de.ExecuteTaskRequest(position=P, task_id="t", arguments_json="{}", dispatch=de.TaskDispatch(
        retry_policy=de.RetryPolicy(max_attempts=-1))), "dispatch.retry_policy.max_attempts"),
]


@pytest.mark.parametrize(("method", "request_message", "field"), BAD_REQUESTS,
                         ids=[f"{m}-{f}-{i}" for i, (m, _, f) in enumerate(BAD_REQUESTS)])
def test_bad_input_is_invalid_argument_naming_the_field(stub, method, request_message, field):
    call = getattr(stub, method)
    with pytest.raises(grpc.RpcError) as info:
        reply = call(request_message, timeout=10)
        if method == "GetWorkflowLog":
            list(reply)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    reason, bad_field, _ = error_details(info.value)
    assert bad_field == field and field in info.value.details()
    assert reason == "INVALID_ARGUMENT"


def test_every_rpc_has_a_bad_input_case():
    service = de.DESCRIPTOR.services_by_name["DeterministicExecutorService"]
    assert {m.name for m in service.methods} == {m for m, _, _ in BAD_REQUESTS}


def test_rejected_writes_leave_nothing(stub):
    workflow = f"w-{uuid.uuid4().hex}"
    with pytest.raises(grpc.RpcError):
        stub.Record(de.RecordRequest(position=position(APP, workflow, 1), operation="op", value_json="{bad"))
    with pytest.raises(grpc.RpcError):
        stub.SetData(de.SetDataRequest(app_id=APP, workflow_id=workflow, key="k", value_json="{bad"))
    assert not stub.GetRecorded(de.GetRecordedRequest(position=position(APP, workflow, 1),
                                                      kind=de.OPERATION_KIND_CUSTOM, custom_name="op")).found
    assert not stub.GetData(de.GetDataRequest(app_id=APP, workflow_id=workflow, key="k")).found
    assert not list(stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=APP, workflow_id=workflow)))[0].operations


@pytest.mark.parametrize("method", ["RenewTaskLease", "CompleteTask", "WaitTask"])
def test_unknown_invocation_is_not_found(stub, method):
    requests = {
        "RenewTaskLease": de.RenewTaskLeaseRequest(app_id=APP, invocation_id="nope", lease_id="l"),
        "CompleteTask": de.CompleteTaskRequest(app_id=APP, invocation_id="nope", lease_id="l", result_json="1"),
        "WaitTask": de.WaitTaskRequest(app_id=APP, invocation_id="nope"),
    }
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(requests[method], timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(info.value)[0] == "INVOCATION_NOT_FOUND"


def test_non_owner_writing_workflow_data_is_permission_denied(stub):
    workflow = f"w-{uuid.uuid4().hex}"
    with pytest.raises(grpc.RpcError) as info:
        stub.SetData(
            de.SetDataRequest(app_id=APP, workflow_id=workflow, invocation_id="child", key="k", value_json="1")
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(info.value)[0] == "WORKFLOW_ACCESS_DENIED"
    assert not stub.GetData(de.GetDataRequest(app_id=APP, workflow_id=workflow, key="k")).found
    stub.SetData(de.SetDataRequest(app_id=APP, workflow_id=workflow, invocation_id=workflow, key="k", value_json="1"))


def test_diverging_replay_is_failed_precondition_naming_both_calls(stub):
    workflow = f"w-{uuid.uuid4().hex}"
    stub.ExecuteTask(de.ExecuteTaskRequest(position=position(APP, workflow, 1), task_id="m.charge",
                                           arguments_json='{"amount": 5}'))
    with pytest.raises(grpc.RpcError) as info:
        stub.ExecuteTask(de.ExecuteTaskRequest(position=position(APP, workflow, 1), task_id="m.refund",
                                               arguments_json='{"amount": 5}'))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    reason, _, metadata = error_details(info.value)
    assert reason == "NONDETERMINISTIC_REPLAY"
    assert metadata["recorded_task_id"] == "m.charge" and metadata["requested_task_id"] == "m.refund"
    assert "m.charge" in info.value.details() and "m.refund" in info.value.details()
    # Same task, other arguments: also divergent.
    with pytest.raises(grpc.RpcError) as info:
        stub.ExecuteTask(de.ExecuteTaskRequest(position=position(APP, workflow, 1), task_id="m.charge",
                                               arguments_json='{"amount": 6}'))
    assert error_details(info.value)[0] == "NONDETERMINISTIC_REPLAY"
    # Starting an existing workflow id with other arguments, too.
    start = de.StartWorkflowRequest(app_id=APP, workflow=common_pb2.WorkflowIdentity(
        workflow_id=workflow + "-root", workflow_type="m.order"), arguments_json='{"n": 1}')
    stub.StartWorkflow(start)
    start.arguments_json = '{"n": 2}'
    with pytest.raises(grpc.RpcError) as info:
        stub.StartWorkflow(start)
    assert error_details(info.value)[0] == "NONDETERMINISTIC_REPLAY"


def test_redis_unreachable_is_unavailable_fast_and_the_server_recovers(tmp_path):
    import time

    from support import RedisServer, SidecarServer

    redis = RedisServer().start()
    server = SidecarServer(redis.url).start()
    try:
        channel = grpc.insecure_channel(server.address)
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        stub.Random(de.RandomRequest(position=position(APP, "w", 1)), timeout=5)
        redis.stop()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Random(de.RandomRequest(position=position(APP, "w", 2)), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(info.value)[0] == "STORE_UNAVAILABLE"
        assert time.monotonic() - started < 5
        redis.start()
        reply = stub.Random(de.RandomRequest(position=position(APP, "w", 2)), timeout=10)
        assert 0 <= reply.value < 1
        channel.close()
    finally:
        server.stop()
        redis.cleanup()
