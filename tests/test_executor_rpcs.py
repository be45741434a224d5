"""Every DeterministicExecutorService RPC over a real channel, and every row of the error table."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import duration_pb2

from executor_client import error_details, position
from pynenc_sidecar.core import derivations
from pynenc_sidecar.core.positions import Kind, Position
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc


@pytest.fixture(scope="module", params=["sidecar", "cluster_sidecar"])
def stub(request):
    """The executor's RPCs on one Redis, and on a real 6-node Redis Cluster."""
    channel = grpc.insecure_channel(request.getfixturevalue(request.param).address)
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


@pytest.fixture()
def app_id() -> str:
    return f"rpc-{uuid.uuid4().hex}"


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(value * 1e9))
    return message


def test_random_is_the_documented_derivation_and_replays(stub, app_id):
    first = stub.Random(de.RandomRequest(position=position(app_id, "w", 3)))
    again = stub.Random(de.RandomRequest(position=position(app_id, "w", 3)))
    assert first.value == derivations.random_value("w", 3) and not first.replayed
    assert again.value == first.value and again.replayed
    child = stub.Random(de.RandomRequest(position=position(app_id, "w", 3, invocation_id="child")))
    assert child.value == derivations.random_value("child", 3) and not child.replayed


def test_uuid_is_uuid5_of_scope_and_sequence(stub, app_id):
    reply = stub.Uuid(de.UuidRequest(position=position(app_id, "w", 2)))
    assert reply.uuid == derivations.uuid_value("w", 2)
    assert stub.Uuid(de.UuidRequest(position=position(app_id, "w", 2))).replayed


def test_utc_now_is_strictly_increasing_and_base_time_precedes_it(stub, app_id):
    times = [stub.UtcNow(de.UtcNowRequest(position=position(app_id, "w", s))).time.ToMicroseconds() for s in (1, 2, 3)]
    assert times == sorted(times) and len(set(times)) == 3
    replay = stub.UtcNow(de.UtcNowRequest(position=position(app_id, "w", 2)))
    assert replay.replayed and replay.time.ToMicroseconds() == times[1]
    base = stub.GetBaseTime(de.GetBaseTimeRequest(app_id=app_id, workflow_id="w"))
    assert base.replayed and base.base_time.ToMicroseconds() == times[0]


def test_record_get_recorded_and_operation_count(stub, app_id):
    request = de.RecordRequest(position=position(app_id, "w", 1), operation="dice", value_json="null")
    assert stub.Record(request).value_json == "null"
    clash = stub.Record(de.RecordRequest(position=position(app_id, "w", 1), operation="dice", value_json="7"))
    assert clash.replayed and clash.value_json == "null"  # a recorded null is a value
    found = stub.GetRecorded(de.GetRecordedRequest(position=position(app_id, "w", 1),
                                                   kind=de.OPERATION_KIND_CUSTOM, custom_name="dice"))
    assert found.found and found.operation.json_value == "null"
    missing = stub.GetRecorded(de.GetRecordedRequest(position=position(app_id, "w", 2),
                                                     kind=de.OPERATION_KIND_CUSTOM, custom_name="dice"))
    assert not missing.found
    # A custom op named like a built-in kind lives apart from it.
    stub.Record(de.RecordRequest(position=position(app_id, "w", 1), operation="random", value_json='"x"'))
    assert stub.Random(de.RandomRequest(position=position(app_id, "w", 1))).value == derivations.random_value("w", 1)
    count = stub.GetOperationCount(de.GetOperationCountRequest(app_id=app_id, workflow_id="w",
                                                               kind=de.OPERATION_KIND_CUSTOM, custom_name="dice"))
    assert count.count == 1


def test_data_is_apart_from_recorded_operations_and_null_is_a_value(stub, app_id):
    stub.Record(de.RecordRequest(position=position(app_id, "w", 1), operation="k", value_json="1"))
    stub.SetData(de.SetDataRequest(app_id=app_id, workflow_id="w", key="c.k:1", value_json="null"))
    reply = stub.GetData(de.GetDataRequest(app_id=app_id, workflow_id="w", key="c.k:1"))
    assert reply.found and reply.value_json == "null"
    assert not stub.GetData(de.GetDataRequest(app_id=app_id, workflow_id="w", key="other")).found
    recorded = stub.GetRecorded(de.GetRecordedRequest(position=position(app_id, "w", 1),
                                                      kind=de.OPERATION_KIND_CUSTOM, custom_name="k"))
    assert recorded.operation.json_value == "1"


def test_task_lifecycle_execute_lease_renew_complete_replay(stub, app_id):
    request = de.ExecuteTaskRequest(position=position(app_id, "w", 1), task_id="m.pay",
                                    arguments_json='{"amount": 1.0, "id": "a"}', runner_id="r1", lease_ttl=seconds(5))
    first = stub.ExecuteTask(request)
    assert not first.replayed and first.lease.lease_id
    assert first.invocation.status == common_pb2.INVOCATION_STATUS_RUNNING
    assert first.invocation.arguments_json == '{"amount":1,"id":"a"}'  # canonical
    assert first.invocation.parent_invocation_id == "w"
    second = stub.ExecuteTask(request)
    assert second.replayed and not second.HasField("lease")
    assert second.invocation.invocation_id == first.invocation.invocation_id
    renewed = stub.RenewTaskLease(de.RenewTaskLeaseRequest(app_id=app_id, invocation_id=first.invocation.invocation_id,
                                                           lease_id=first.lease.lease_id, lease_ttl=seconds(10)))
    assert renewed.lease.expire_time.ToMicroseconds() > first.lease.expire_time.ToMicroseconds()
    done = stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=first.invocation.invocation_id,
                                                    lease_id=first.lease.lease_id, result_json='{"ok": true}'))
    assert done.accepted and done.invocation.status == common_pb2.INVOCATION_STATUS_SUCCESS
    late = stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=first.invocation.invocation_id,
                                                    lease_id=first.lease.lease_id, result_json='"other"'))
    assert not late.accepted and late.invocation.result_json == '{"ok": true}'
    replay = stub.ExecuteTask(request)
    assert replay.replayed and replay.invocation.result_json == '{"ok": true}'
    waited = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=first.invocation.invocation_id))
    assert waited.invocation.status == common_pb2.INVOCATION_STATUS_SUCCESS


def test_two_identical_calls_in_one_run_are_two_invocations(stub, app_id):
    ids = {stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "w", s), task_id="m.t",
                                                  arguments_json="{}")).invocation.invocation_id for s in (1, 2)}
    assert len(ids) == 2


def test_force_new_workflow_child_and_start_workflow(stub, app_id):
    child = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "w", 1), task_id="m.sub",
                                                   arguments_json="{}", force_new_workflow=True))
    identity = child.invocation.workflow
    assert identity.workflow_id == child.invocation.invocation_id and identity.parent_workflow_id == "w"
    start = de.StartWorkflowRequest(app_id=app_id, workflow=common_pb2.WorkflowIdentity(
        workflow_id="order-1", workflow_type="m.order"), arguments_json='{"n": 1}')
    first = stub.StartWorkflow(start)
    assert not first.replayed and first.lease.lease_id and first.invocation.invocation_id == "order-1"
    again = stub.StartWorkflow(start)
    assert again.replayed and not again.HasField("lease")


def test_wait_task_takes_over_an_expired_lease(stub, app_id):
    first = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "w", 1), task_id="m.slow",
                                                   arguments_json="{}", lease_ttl=seconds(1)))
    waited = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=first.invocation.invocation_id,
                                              runner_id="r2", timeout=seconds(5)))
    assert waited.lease.lease_id and waited.lease.lease_id != first.lease.lease_id
    with pytest.raises(grpc.RpcError) as info:
        stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=first.invocation.invocation_id,
                                                 lease_id=first.lease.lease_id, result_json="1"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(info.value)[0] == "LEASE_NOT_HELD"


def test_wait_task_times_out_with_the_current_state(stub, app_id):
    first = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "w", 1), task_id="m.slow",
                                                   arguments_json="{}", lease_ttl=seconds(30)))
    waited = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=first.invocation.invocation_id,
                                              timeout=seconds(0.2)))
    assert not waited.HasField("lease") and waited.invocation.status == common_pb2.INVOCATION_STATUS_RUNNING


def test_workflow_log_returns_everything_in_one_call(stub, app_id):
    for seq in range(1, 2501):
        stub.Random(de.RandomRequest(position=position(app_id, "big", seq)))
    stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "big", 1), task_id="m.t", arguments_json="{}"))
    batches = list(stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="big")))
    operations = [op for batch in batches for op in batch.operations]
    assert len(batches) >= 3 and all(len(b.operations) <= 1000 for b in batches)
    randoms = {op.sequence: op.random_value for op in operations if op.kind == de.OPERATION_KIND_RANDOM}
    assert len(randoms) == 2500 and randoms[1234] == derivations.random_value("big", 1234)
    assert sum(len(b.tasks) for b in batches) == 1
    empty = list(stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="nothing")))
    assert len(empty) == 1 and not empty[0].operations


@pytest.mark.parametrize("server", ["sidecar", "sqlite_sidecar"])
def test_a_log_of_large_values_streams_in_messages_of_about_a_mebibyte(request, server, app_id):
    channel = grpc.insecure_channel(request.getfixturevalue(server).address)
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    value = json.dumps("v" * 300_000)  # 300 KB each: 8 of them never in one message
    for seq in range(1, 9):
        stub.Record(de.RecordRequest(position=position(app_id, "large", seq), operation="blob", value_json=value))
    batches = list(stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="large")))
    assert sorted(op.sequence for b in batches for op in b.operations) == list(range(1, 9))
    assert len(batches) >= 2
    assert all(b.ByteSize() < 1024 * 1024 + 400_000 for b in batches)  # the budget plus one value at most
    channel.close()


def _log_content(batches) -> tuple[list[bytes], list[bytes], list[int]]:
    """A log's operations and tasks (serialized, sorted: the log has no order) and base times."""
    return (sorted(op.SerializeToString(deterministic=True) for b in batches for op in b.operations),
            sorted(t.SerializeToString(deterministic=True) for b in batches for t in b.tasks),
            [b.base_time.ToMicroseconds() for b in batches if b.HasField("base_time")])


@pytest.mark.parametrize("server", ["sidecar", "sqlite_sidecar", "cluster_sidecar"])
def test_start_workflow_brings_a_replayed_workflows_log_when_asked(request, server, app_id):
    channel = grpc.insecure_channel(request.getfixturevalue(server).address)
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    start = de.StartWorkflowRequest(app_id=app_id, workflow=common_pb2.WorkflowIdentity(
        workflow_id="wl", workflow_type="m.flow"), arguments_json="{}", include_log=True)
    first = stub.StartWorkflow(start)
    assert not first.replayed and not first.HasField("log")  # a new workflow: nothing to replay
    for seq in (1, 2, 3):
        stub.Random(de.RandomRequest(position=position(app_id, "wl", seq)))
        stub.UtcNow(de.UtcNowRequest(position=position(app_id, "wl", seq)))
        stub.Uuid(de.UuidRequest(position=position(app_id, "wl", seq, invocation_id="child:1")))
        stub.Record(de.RecordRequest(position=position(app_id, "wl", seq), operation="op name", value_json=f"[{seq}]"))
    stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "wl", 1), task_id="m.t", arguments_json="{}"))
    again = stub.StartWorkflow(start)
    assert again.replayed and again.HasField("log")
    streamed = list(stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="wl")))
    assert _log_content(again.log.batches) == _log_content(streamed)
    operations, tasks, base_times = _log_content(again.log.batches)
    assert len(operations) == 13 and len(tasks) == 1 and len(base_times) == 1
    start.include_log = False  # not asked (or an older caller): the reply is as it always was
    assert not stub.StartWorkflow(start).HasField("log")
    channel.close()


def test_start_workflow_leaves_a_large_log_to_get_workflow_log(sidecar, app_id, redis_server):
    from pynenc_sidecar.service.deterministic_executor import INLINE_LOG_BYTES, INLINE_LOG_FIELDS

    stub = de_grpc.DeterministicExecutorServiceStub(grpc.insecure_channel(sidecar.address))  # the store below

    def start(workflow_id: str) -> de.StartWorkflowResponse:
        request = de.StartWorkflowRequest(app_id=app_id, workflow=common_pb2.WorkflowIdentity(
            workflow_id=workflow_id, workflow_type="m.flow"), arguments_json="{}", include_log=True)
        stub.StartWorkflow(request)
        return stub.StartWorkflow(request)

    # Larger than INLINE_LOG_BYTES, in a few fields.
    value = json.dumps("x" * (64 * 1024))
    for seq in range(1, INLINE_LOG_BYTES // (64 * 1024) + 2):
        stub.Record(de.RecordRequest(position=position(app_id, "bytes", seq), operation="big", value_json=value))
    reply = start("bytes")
    assert reply.replayed and not reply.HasField("log")

    # More than INLINE_LOG_FIELDS fields (written straight to the store: quicker than RPCs).
    total = (INLINE_LOG_FIELDS // 200 + 1) * 200

    async def fill() -> None:
        store = RedisStore(redis_server.url)
        try:
            for first in range(1, total + 1, 200):  # 200 at a time: the pool holds 256
                positions = [Position("fields", "fields", Kind.UUID, "", s) for s in range(first, first + 200)]
                await asyncio.gather(*(store.record(app_id, "fields", p.field, p.count_field,
                                                    derivations.uuid_value("fields", p.sequence)) for p in positions))
        finally:
            await store.close()

    asyncio.run(fill())
    reply = start("fields")
    assert reply.replayed and not reply.HasField("log")
    streamed = list(stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="fields")))
    assert sorted(op.sequence for b in streamed for op in b.operations) == list(range(1, total + 1))


def test_32_clients_recording_one_operation_of_a_fresh_workflow_get_one_value(stub, app_id):
    barrier = threading.Barrier(32)

    def record(i: int):
        barrier.wait()
        return stub.Record(de.RecordRequest(position=position(app_id, "fresh", 1), operation="pick",
                                            value_json=str(i)))

    with ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(record, range(32)))
    assert len({r.value_json for r in replies}) == 1
    assert sum(not r.replayed for r in replies) == 1


def test_32_clients_executing_one_task_position_get_one_invocation_and_one_lease(stub, app_id):
    barrier = threading.Barrier(32)

    def execute(i: int):
        barrier.wait()
        return stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "fresh", 1), task_id="m.t",
                                                      arguments_json="{}", runner_id=f"r{i}"))

    with ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(execute, range(32)))
    assert len({r.invocation.invocation_id for r in replies}) == 1
    assert sum(r.HasField("lease") for r in replies) == 1


def test_apps_are_isolated(stub, app_id):
    stub.Record(de.RecordRequest(position=position(app_id, "w", 1), operation="x", value_json="1"))
    other = stub.Record(de.RecordRequest(position=position(app_id + "-other", "w", 1), operation="x", value_json="2"))
    assert not other.replayed and other.value_json == "2"
