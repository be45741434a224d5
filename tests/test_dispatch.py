"""Dispatch over the wire (docs/client-contract.md, "Dispatch"): a task call queued for a
worker that serves its task id, on the real server and both stores, with the raw stubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import grpc
import pytest
from google.protobuf import duration_pb2

from executor_client import error_details, position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import SIDECAR_FIXTURES, SidecarServer

SUCCESS, FAILED, RETRY, RUNNING = (common_pb2.INVOCATION_STATUS_SUCCESS, common_pb2.INVOCATION_STATUS_FAILED,
                                   common_pb2.INVOCATION_STATUS_RETRY, common_pb2.INVOCATION_STATUS_RUNNING)


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(value * 1e9))
    return message


@pytest.fixture(params=["redis", "sqlite", "cluster"])
def any_sidecar(request):
    return request.getfixturevalue(SIDECAR_FIXTURES[request.param])


@pytest.fixture
def stub(any_sidecar):
    with any_sidecar.channel() as channel:
        yield de_grpc.DeterministicExecutorServiceStub(channel)


@pytest.fixture
def app() -> str:
    return "dispatch-" + uuid.uuid4().hex[:8]


def task_id() -> str:
    """A task id of the test's own, so that no other test's queue is in the way."""
    return "payments.charge_" + uuid.uuid4().hex[:8]


def dispatch_call(stub, app: str, task: str, workflow_id: str = "", sequence: int = 1, arguments: dict | None = None,
                  **policy) -> de.ExecuteTaskResponse:
    workflow_id = workflow_id or "wf-" + uuid.uuid4().hex[:8]
    return stub.ExecuteTask(de.ExecuteTaskRequest(
        position=position(app, workflow_id, sequence), task_id=task, arguments_json=json.dumps(arguments or {}),
        dispatch=de.TaskDispatch(**policy)))


def poll(stub, app: str, task: str, timeout: float = 5, lease_ttl: float = 30, max_tasks: int = 1,
         worker: str = "w1") -> list[de.DispatchedTask]:
    return list(stub.PollTasks(de.PollTasksRequest(app_id=app, task_ids=[task], worker_id=worker, max_tasks=max_tasks,
                                                   lease_ttl=seconds(lease_ttl), timeout=seconds(timeout))).tasks)


def complete(stub, app: str, task: de.DispatchedTask, result=None, error_type: str = "") -> de.CompleteTaskResponse:
    request = de.CompleteTaskRequest(app_id=app, invocation_id=task.invocation.invocation_id,
                                     lease_id=task.lease.lease_id)
    if error_type:
        request.error.CopyFrom(common_pb2.TaskError(type=error_type, message="declined"))
    else:
        request.result_json = json.dumps(result)
    return stub.CompleteTask(request)


def wait(stub, app: str, invocation_id: str, timeout: float = 10) -> de.WaitTaskResponse:
    return stub.WaitTask(de.WaitTaskRequest(app_id=app, invocation_id=invocation_id, timeout=seconds(timeout)))


def test_a_dispatched_call_goes_to_the_worker_and_its_replay_is_not_queued_again(stub, app):
    task = task_id()
    first = dispatch_call(stub, app, task, "wf-order", arguments={"amount": 12})
    assert not first.HasField("lease") and first.invocation.dispatched and not first.replayed
    assert first.invocation.attempt == 0 and first.invocation.HasField("queue_time")

    [work] = poll(stub, app, task)
    assert work.invocation.invocation_id == first.invocation.invocation_id
    assert work.invocation.status == RUNNING and work.invocation.attempt == 1
    assert json.loads(work.invocation.arguments_json) == {"amount": 12}
    assert work.invocation.workflow.workflow_id == "wf-order"
    # The caller waits; it is never handed the lease, even with nobody else waiting.
    waiting = wait(stub, app, first.invocation.invocation_id, timeout=0.2)
    assert waiting.invocation.status == RUNNING and not waiting.HasField("lease")

    assert complete(stub, app, work, {"charged": 12}).accepted
    done = wait(stub, app, first.invocation.invocation_id)
    assert done.invocation.status == SUCCESS and json.loads(done.invocation.result_json) == {"charged": 12}

    replay = dispatch_call(stub, app, task, "wf-order", arguments={"amount": 12})
    assert replay.replayed and replay.invocation.status == SUCCESS and not replay.HasField("lease")
    assert poll(stub, app, task, timeout=0.3) == []  # nothing dispatched again


def test_a_replay_without_dispatch_keeps_the_recorded_dispatch(stub, app):
    task = task_id()
    first = dispatch_call(stub, app, task, "wf-keep")
    inline = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app, "wf-keep", 1), task_id=task,
                                                    arguments_json="{}"))
    assert inline.replayed and inline.invocation.dispatched and not inline.HasField("lease")
    [work] = poll(stub, app, task)
    assert work.invocation.invocation_id == first.invocation.invocation_id


def test_retry_policy_retries_listed_errors_with_backoff_and_fails_on_the_last(stub, app):
    task = task_id()
    call = dispatch_call(stub, app, task, retry_policy=de.RetryPolicy(
        max_attempts=3, initial_backoff=seconds(0.2), retryable_error_types=["Declined"]))
    [first] = poll(stub, app, task)
    retried = complete(stub, app, first, error_type="Declined")
    assert retried.accepted and retried.invocation.status == RETRY
    assert poll(stub, app, task, timeout=0) == []  # its backoff first
    [second] = poll(stub, app, task)
    assert second.invocation.attempt == 2 and second.invocation.last_error.type == "Declined"
    complete(stub, app, second, error_type="Declined")
    [third] = poll(stub, app, task)
    assert third.invocation.attempt == 3
    final = complete(stub, app, third, error_type="Declined")
    assert final.invocation.status == FAILED and final.invocation.error.type == "Declined"
    assert wait(stub, app, call.invocation.invocation_id).invocation.status == FAILED


def test_an_error_type_not_listed_is_not_retried(stub, app):
    task = task_id()
    dispatch_call(stub, app, task, retry_policy=de.RetryPolicy(max_attempts=5, initial_backoff=seconds(0),
                                                              non_retryable_error_types=["Fraud"]))
    [work] = poll(stub, app, task)
    assert complete(stub, app, work, error_type="Fraud").invocation.status == FAILED


def test_schedule_to_start_timeout_fails_an_invocation_no_worker_takes(stub, app):
    task = task_id()
    call = dispatch_call(stub, app, task, schedule_to_start_timeout=seconds(1))
    done = wait(stub, app, call.invocation.invocation_id, timeout=10)
    assert done.invocation.status == FAILED
    error = done.invocation.error
    assert error.type == "ScheduleToStartTimeout" and task in error.message and "Start a worker" in error.message
    assert poll(stub, app, task, timeout=0) == []


def test_a_dead_workers_invocation_goes_to_the_next_worker_after_its_lease_and_completes_once(stub, app):
    task = task_id()
    call = dispatch_call(stub, app, task)
    [lost] = poll(stub, app, task, lease_ttl=1, worker="dies")
    assert poll(stub, app, task, timeout=0.2) == []  # leased: nobody else gets it meanwhile
    [again] = poll(stub, app, task, timeout=5, worker="survives")
    assert again.invocation.invocation_id == call.invocation.invocation_id
    assert again.invocation.attempt == 1  # a lost worker is not a failed attempt
    with pytest.raises(grpc.RpcError) as refused:
        complete(stub, app, lost, "late")
    assert error_details(refused.value)[0] == "LEASE_NOT_HELD"
    assert complete(stub, app, again, "once").accepted
    assert json.loads(wait(stub, app, call.invocation.invocation_id).invocation.result_json) == "once"


def test_release_hands_the_invocation_back_at_once_without_counting_the_attempt(stub, app):
    task = task_id()
    dispatch_call(stub, app, task)
    [held] = poll(stub, app, task, worker="stopping")
    released = stub.ReleaseTask(de.ReleaseTaskRequest(app_id=app, invocation_id=held.invocation.invocation_id,
                                                      lease_id=held.lease.lease_id))
    assert released.invocation.status == common_pb2.INVOCATION_STATUS_REGISTERED
    [next_worker] = poll(stub, app, task, timeout=1, worker="next")
    assert next_worker.invocation.attempt == 1
    with pytest.raises(grpc.RpcError) as refused:
        stub.ReleaseTask(de.ReleaseTaskRequest(app_id=app, invocation_id=held.invocation.invocation_id,
                                               lease_id=held.lease.lease_id))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(refused.value)[0] == "LEASE_NOT_HELD"


def test_cancel_a_queued_and_a_running_invocation(stub, app):
    task = task_id()
    queued = dispatch_call(stub, app, task)
    reply = stub.CancelTask(de.CancelTaskRequest(app_id=app, invocation_id=queued.invocation.invocation_id,
                                                 reason="order withdrawn"))
    assert reply.cancelled and reply.invocation.error.type == "TaskCancelled"
    assert "order withdrawn" in reply.invocation.error.message
    assert poll(stub, app, task, timeout=0.3) == []
    assert wait(stub, app, queued.invocation.invocation_id).invocation.error.type == "TaskCancelled"

    dispatch_call(stub, app, task)
    [running] = poll(stub, app, task)
    assert stub.CancelTask(de.CancelTaskRequest(app_id=app, invocation_id=running.invocation.invocation_id)).cancelled
    with pytest.raises(grpc.RpcError) as renewal:
        stub.RenewTaskLease(de.RenewTaskLeaseRequest(app_id=app, invocation_id=running.invocation.invocation_id,
                                                     lease_id=running.lease.lease_id))
    assert error_details(renewal.value)[0] == "LEASE_NOT_HELD"
    late = complete(stub, app, running, "too late")
    assert not late.accepted and late.invocation.error.type == "TaskCancelled"
    again = stub.CancelTask(de.CancelTaskRequest(app_id=app, invocation_id=running.invocation.invocation_id))
    assert not again.cancelled


def test_start_to_close_timeout_takes_the_lease_back_and_retries(stub, app):
    task = task_id()
    dispatch_call(stub, app, task, start_to_close_timeout=seconds(1),
                  retry_policy=de.RetryPolicy(max_attempts=2, initial_backoff=seconds(0)))
    [slow] = poll(stub, app, task)
    assert slow.HasField("deadline")
    time.sleep(1.2)
    with pytest.raises(grpc.RpcError) as renewal:
        stub.RenewTaskLease(de.RenewTaskLeaseRequest(app_id=app, invocation_id=slow.invocation.invocation_id,
                                                     lease_id=slow.lease.lease_id))
    assert error_details(renewal.value)[0] == "LEASE_NOT_HELD" and "start-to-close" in renewal.value.details()
    [second] = poll(stub, app, task)
    assert second.invocation.attempt == 2 and second.invocation.last_error.type == "StartToCloseTimeout"


def test_polls_take_as_many_as_asked_across_task_ids(stub, app):
    tasks = [task_id(), task_id()]
    for index in range(3):
        dispatch_call(stub, app, tasks[index % 2])
    reply = stub.PollTasks(de.PollTasksRequest(app_id=app, task_ids=tasks, max_tasks=2, timeout=seconds(2)))
    assert len(reply.tasks) == 2
    rest = stub.PollTasks(de.PollTasksRequest(app_id=app, task_ids=tasks, max_tasks=5, timeout=seconds(0)))
    assert len(rest.tasks) == 1
    ids = {t.invocation.invocation_id for t in [*reply.tasks, *rest.tasks]}
    assert len(ids) == 3


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"task_ids": []}, "task_ids"),
    ({"task_ids": ["a"], "max_tasks": 500}, "max_tasks"),
    ({"task_ids": ["a"], "timeout": seconds(120)}, "timeout"),
    ({"task_ids": [""]}, "task_ids[0]"),
])
def test_bad_polls_name_the_field(stub, app, request_fields, field):
    with pytest.raises(grpc.RpcError) as bad:
        stub.PollTasks(de.PollTasksRequest(app_id=app, **request_fields))
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(bad.value)[1] == field


@pytest.mark.parametrize(("policy", "field"), [
    ({"retry_policy": de.RetryPolicy(max_attempts=1000)}, "dispatch.retry_policy.max_attempts"),
    ({"retry_policy": de.RetryPolicy(backoff_multiplier=0.5)}, "dispatch.retry_policy.backoff_multiplier"),
    ({"schedule_to_start_timeout": seconds(0.1)}, "dispatch.schedule_to_start_timeout"),
])
def test_bad_policies_are_refused_before_anything_is_recorded(stub, app, policy, field):
    task = task_id()
    with pytest.raises(grpc.RpcError) as bad:
        dispatch_call(stub, app, task, "wf-bad", **policy)
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT and error_details(bad.value)[1] == field
    assert not stub.GetRecorded(de.GetRecordedRequest(position=position(app, "wf-bad", 1),
                                                      kind=de.OPERATION_KIND_TASK)).found


def test_cancel_and_release_of_unknown_invocations_are_not_found(stub, app):
    for call in (lambda: stub.CancelTask(de.CancelTaskRequest(app_id=app, invocation_id="nope")),
                 lambda: stub.ReleaseTask(de.ReleaseTaskRequest(app_id=app, invocation_id="nope", lease_id="x"))):
        with pytest.raises(grpc.RpcError) as missing:
            call()
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND


def test_inspect_shows_a_queued_invocation_with_its_age(any_sidecar, stub, app):
    task = task_id()
    dispatch_call(stub, app, task, "wf-inspect")
    time.sleep(0.3)
    store = [*any_sidecar.store_args(), *any_sidecar.extra_args]  # --redis-cluster on for the cluster's
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    report = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "inspect", "wf-inspect", "--app-id", app,
                             "--json", *store], capture_output=True, text=True, env=env, timeout=60)
    assert report.returncode == 0, report.stderr
    [queued] = json.loads(report.stdout)["dispatched_tasks"]
    assert queued["task_id"] == task and queued["status"] == "REGISTERED" and queued["attempt"] == 0
    assert queued["age_seconds"] >= 0.3 and queued["queued_since"] and queued["schedule_to_start_deadline"]
    text = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "inspect", "wf-inspect", "--app-id", app, *store],
                          capture_output=True, text=True, env=env, timeout=60).stdout
    assert "Dispatched tasks (1)" in text and task in text


@pytest.fixture(params=["redis", "sqlite", "cluster"])
def store_args(request, tmp_path) -> list[str]:
    if request.param == "redis":
        return ["redis", request.getfixturevalue("redis_server").url]
    if request.param == "cluster":
        return ["cluster", f"redis://{request.getfixturevalue('redis_cluster').seeds}"]
    return ["sqlite", str(tmp_path / "replicas.db")]


def replica(store_args: list[str]) -> SidecarServer:
    kind, where = store_args
    if kind == "sqlite":
        return SidecarServer(None, data_file=where).start()
    return SidecarServer(where, extra_args=["--redis-cluster", "on"] if kind == "cluster" else []).start()


def test_a_restart_and_a_second_replica_lose_no_queued_invocation(store_args, app):
    task = task_id()
    first = replica(store_args)
    try:
        with first.channel() as channel:
            queued = dispatch_call(de_grpc.DeterministicExecutorServiceStub(channel), app, task, "wf-restart")
    finally:
        first.stop()
    second, third = replica(store_args), replica(store_args)  # a restart, then two replicas
    try:
        with second.channel() as a, third.channel() as b:
            caller, worker = de_grpc.DeterministicExecutorServiceStub(a), de_grpc.DeterministicExecutorServiceStub(b)
            [work] = poll(worker, app, task)
            assert work.invocation.invocation_id == queued.invocation.invocation_id
            assert complete(worker, app, work, "survived").accepted
            done = wait(caller, app, queued.invocation.invocation_id)
            assert json.loads(done.invocation.result_json) == "survived"
            # Queued through one replica, polled through the other.
            later = dispatch_call(caller, app, task, "wf-replicas")
            [other] = poll(worker, app, task)
            assert other.invocation.invocation_id == later.invocation.invocation_id
    finally:
        second.stop()
        third.stop()
