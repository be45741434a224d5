"""Buffered operations committed with a blocking call (OperationCommit, CommitOperations),
through the real server on both stores: one atomic step, fenced by the lease, refusals
named (LEASE_NOT_HELD, COMMIT_CONFLICT, bad operations), nothing half-written."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2

from executor_client import error_details, position
from pynenc_sidecar.core import derivations
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import SIDECAR_FIXTURES

RANDOM, TIME, UUID, CUSTOM = de.OPERATION_KIND_RANDOM, de.OPERATION_KIND_TIME, de.OPERATION_KIND_UUID, \
    de.OPERATION_KIND_CUSTOM
DATA_WRITE, TASK = de.OPERATION_KIND_DATA_WRITE, de.OPERATION_KIND_TASK


@pytest.fixture(params=["redis", "sqlite", "cluster"])
def stub(request):
    server = request.getfixturevalue(SIDECAR_FIXTURES[request.param])
    channel = server.channel()
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


def started(stub) -> tuple[str, str, str]:
    """A new workflow whose main task this caller leases: (app, workflow id, lease id)."""
    app, wf = f"commit-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
    reply = stub.StartWorkflow(de.StartWorkflowRequest(
        app_id=app, workflow=common_pb2.WorkflowIdentity(workflow_id=wf, workflow_type="m.flow"),
        arguments_json="{}"))
    return app, wf, reply.lease.lease_id


def stamp(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)


def ops(custom: str = '{"n":1}') -> list[de.BufferedOperation]:
    return [de.BufferedOperation(kind=RANDOM, sequence=1),
            de.BufferedOperation(kind=UUID, sequence=1),
            de.BufferedOperation(kind=TIME, sequence=1, time_value=stamp(1_700_000_000_123_456)),
            de.BufferedOperation(kind=CUSTOM, custom_name="pick", sequence=1, json_value=custom),
            de.BufferedOperation(kind=DATA_WRITE, custom_name="k", sequence=1, json_value='"v"')]


def recorded(stub, app: str, wf: str, kind: int, name: str = "", sequence: int = 1):
    reply = stub.GetRecorded(de.GetRecordedRequest(position=position(app, wf, sequence), kind=kind,
                                                   custom_name=name))
    return reply.operation if reply.found else None


def test_execute_task_commits_the_buffer_before_taking_the_task_position(stub) -> None:
    app, wf, lease_id = started(stub)
    reply = stub.ExecuteTask(de.ExecuteTaskRequest(
        position=position(app, wf), task_id="m.child", arguments_json="{}",
        commit=de.OperationCommit(lease_id=lease_id, operations=ops())))
    assert reply.HasField("lease") and not reply.replayed
    assert recorded(stub, app, wf, RANDOM).random_value == derivations.random_value(wf, 1)
    assert recorded(stub, app, wf, UUID).uuid_value == derivations.uuid_value(wf, 1)
    assert recorded(stub, app, wf, TIME).time_value == stamp(1_700_000_000_123_456)
    assert recorded(stub, app, wf, CUSTOM, "pick").json_value == '{"n":1}'
    assert stub.GetData(de.GetDataRequest(app_id=app, workflow_id=wf, key="k")).value_json == '"v"'
    assert stub.GetBaseTime(de.GetBaseTimeRequest(app_id=app, workflow_id=wf)).base_time == \
        stamp(1_700_000_000_123_456)
    # the task the same call took sees the data its caller wrote before it
    assert recorded(stub, app, wf, TASK).task_value.task_id == "m.child"


def test_a_read_sees_the_buffered_write_committed_with_it(stub) -> None:
    app, wf, lease_id = started(stub)
    write = de.BufferedOperation(kind=DATA_WRITE, custom_name="k", sequence=1, json_value="[1,2]")
    reply = stub.GetData(de.GetDataRequest(key="k", position=position(app, wf),
                                           commit=de.OperationCommit(lease_id=lease_id, operations=[write])))
    assert (reply.found, reply.value_json, reply.replayed) == (True, "[1,2]", False)


def test_complete_task_commits_then_records_the_outcome(stub) -> None:
    app, wf, lease_id = started(stub)
    reply = stub.CompleteTask(de.CompleteTaskRequest(
        app_id=app, invocation_id=wf, lease_id=lease_id, result_json="7",
        commit=de.OperationCommit(workflow_id=wf, operations=ops())))
    assert reply.accepted and reply.invocation.status == common_pb2.INVOCATION_STATUS_SUCCESS
    assert recorded(stub, app, wf, CUSTOM, "pick").json_value == '{"n":1}'
    # a repeat after a lost reply finds what the first did
    again = stub.CompleteTask(de.CompleteTaskRequest(
        app_id=app, invocation_id=wf, lease_id=lease_id, result_json="7",
        commit=de.OperationCommit(workflow_id=wf, operations=ops())))
    assert not again.accepted and again.invocation.result_json == "7"


def test_a_commit_of_a_lost_lease_is_refused_and_writes_nothing(stub) -> None:
    app, wf, _ = started(stub)
    with pytest.raises(grpc.RpcError) as info:
        stub.CommitOperations(de.CommitOperationsRequest(
            app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id="not-the-lease", operations=ops())))
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(info.value)[0] == "LEASE_NOT_HELD"
    for kind, name in [(RANDOM, ""), (TIME, ""), (CUSTOM, "pick")]:
        assert recorded(stub, app, wf, kind, name) is None
    assert not stub.GetData(de.GetDataRequest(app_id=app, workflow_id=wf, key="k")).found


def test_a_conflicting_commit_is_aborted_whole_and_names_the_position(stub) -> None:
    app, wf, lease_id = started(stub)
    first = stub.CommitOperations(de.CommitOperationsRequest(
        app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, operations=ops()[3:4])))
    assert first.recorded_count == 1
    with pytest.raises(grpc.RpcError) as info:
        stub.CommitOperations(de.CommitOperationsRequest(
            app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, operations=ops('{"n":2}'))))
    assert info.value.code() is grpc.StatusCode.ABORTED
    reason, _, metadata = error_details(info.value)
    assert reason == "COMMIT_CONFLICT"
    assert (metadata["operation"], metadata["name"], metadata["sequence"]) == ("custom", "pick", "1")
    assert metadata["recorded_value"] == '{"n":1}'
    assert recorded(stub, app, wf, RANDOM) is None  # all or nothing
    # the same value in another JSON spelling is the same value
    same = stub.CommitOperations(de.CommitOperationsRequest(
        app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, operations=ops('{ "n" : 1.0 }'))))
    assert same.recorded_count == 4
    assert recorded(stub, app, wf, CUSTOM, "pick").json_value == '{"n":1}'


BAD_COMMITS = [
    ([de.BufferedOperation(kind=TASK, sequence=1)], "commit.operations[0].kind"),
    ([de.BufferedOperation(kind=RANDOM, sequence=0)], "commit.operations[0].sequence"),
    ([de.BufferedOperation(kind=RANDOM, sequence=1, random_value=0.5)], "commit.operations[0].random_value"),
    ([de.BufferedOperation(kind=UUID, sequence=1, uuid_value="x")], "commit.operations[0].uuid_value"),
    ([de.BufferedOperation(kind=TIME, sequence=1)], "commit.operations[0].time_value"),
    ([de.BufferedOperation(kind=TIME, sequence=1, time_value=timestamp_pb2.Timestamp(seconds=1, nanos=1))],
     "commit.operations[0].time_value"),
    ([de.BufferedOperation(kind=CUSTOM, sequence=1, json_value="1")], "commit.operations[0].custom_name"),
    ([de.BufferedOperation(kind=CUSTOM, custom_name="c", sequence=1, json_value="{nope")],
     "commit.operations[0].json_value"),
    ([de.BufferedOperation(kind=RANDOM, custom_name="c", sequence=1)], "commit.operations[0].custom_name"),
    ([de.BufferedOperation(kind=RANDOM, sequence=1, json_value="1")], "commit.operations[0].json_value"),
    ([de.BufferedOperation(kind=RANDOM, sequence=2), de.BufferedOperation(kind=RANDOM, sequence=2)],
     "commit.operations[1]"),
]


@pytest.mark.parametrize(("operations", "field"), BAD_COMMITS)
def test_a_bad_operation_is_invalid_argument_naming_it_and_writes_nothing(stub, operations, field) -> None:
    app, wf, lease_id = started(stub)
    good = de.BufferedOperation(kind=CUSTOM, custom_name="ok", sequence=1, json_value="1")
    with pytest.raises(grpc.RpcError) as info:
        stub.CommitOperations(de.CommitOperationsRequest(
            app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, operations=operations)))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value)[1] == field
    with pytest.raises(grpc.RpcError):  # with a good one before it: nothing of it written either
        stub.CommitOperations(de.CommitOperationsRequest(
            app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, operations=[good, *operations])))
    assert recorded(stub, app, wf, CUSTOM, "ok") is None


def test_requests_that_misplace_a_commit_are_invalid_argument(stub) -> None:
    app, wf, lease_id = started(stub)
    commit = de.OperationCommit(lease_id=lease_id, operations=ops()[:1])
    cases = [
        (stub.GetData, de.GetDataRequest(app_id=app, workflow_id=wf, key="k", commit=commit), "commit"),
        (stub.ExecuteTask, de.ExecuteTaskRequest(position=position(app, wf), task_id="t", arguments_json="{}",
                                                 commit=de.OperationCommit(operations=ops()[:1])), "commit.lease_id"),
        (stub.CompleteTask, de.CompleteTaskRequest(app_id=app, invocation_id=wf, lease_id=lease_id, result_json="1",
                                                   commit=de.OperationCommit(operations=ops()[:1])),
         "commit.workflow_id"),
        (stub.CommitOperations, de.CommitOperationsRequest(
            app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, workflow_id="other",
                                                                  operations=ops()[:1])), "commit.workflow_id"),
    ]
    for call, request, field in cases:
        with pytest.raises(grpc.RpcError) as info:
            call(request)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, field
        assert error_details(info.value)[1] == field
    assert recorded(stub, app, wf, RANDOM) is None
    assert recorded(stub, app, wf, TASK) is None


def test_a_task_inside_the_workflow_may_not_commit_data_writes(stub) -> None:
    app, wf, lease_id = started(stub)
    child = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app, wf), task_id="m.child",
                                                   arguments_json="{}"))
    write = de.BufferedOperation(kind=DATA_WRITE, custom_name="k", sequence=1, json_value="1")
    with pytest.raises(grpc.RpcError) as info:
        stub.CommitOperations(de.CommitOperationsRequest(
            app_id=app, workflow_id=wf, invocation_id=child.invocation.invocation_id,
            commit=de.OperationCommit(lease_id=child.lease.lease_id, operations=[write])))
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_details(info.value)[0] == "WORKFLOW_ACCESS_DENIED"
    assert not stub.GetData(de.GetDataRequest(app_id=app, workflow_id=wf, key="k")).found


def test_a_commit_past_its_size_limit_is_refused_whole(stub) -> None:
    app, wf, lease_id = started(stub)
    too_many = [de.BufferedOperation(kind=RANDOM, sequence=i) for i in range(1, 10_002)]
    with pytest.raises(grpc.RpcError) as info:
        stub.CommitOperations(de.CommitOperationsRequest(
            app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, operations=too_many)))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value)[1] == "commit.operations"
    assert recorded(stub, app, wf, RANDOM) is None
    accepted = stub.CommitOperations(de.CommitOperationsRequest(
        app_id=app, workflow_id=wf, commit=de.OperationCommit(lease_id=lease_id, operations=too_many[:10_000])))
    assert accepted.recorded_count == 10_000
