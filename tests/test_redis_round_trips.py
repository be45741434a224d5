"""Redis round trips per call on one Redis: a task transition and the steps that follow it (the
scope's mirror, the run index, the StateBackend projection) run as one script
(storage/redis/task_fused.lua), and the stored results are those of the separate steps.

Round trips are counted on the server: `INFO stats` total_reads_processed, one read per request
a client sends (the sidecar's requests are small and each is one write), on a Redis and a
sidecar of this module's own whose readiness probe is slowed to once an hour, so nothing else
reads in between."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
import redis

from executor_client import start_workflows_cut_short
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.storage.redis.keys import invocation_key, runs_key, task_key
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import RedisServer, SidecarServer

S = common_pb2.InvocationStatus
QUIET = ["--readiness-interval", "1h"]


@pytest.fixture(scope="module")
def quiet_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def replicas(quiet_redis: RedisServer) -> Iterator[tuple[SidecarServer, SidecarServer]]:
    """Two sidecars on the one Redis: the second completes what the first granted."""
    first = SidecarServer(quiet_redis.url, extra_args=QUIET).start()
    second = SidecarServer(quiet_redis.url, extra_args=QUIET).start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture()
def counter(quiet_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(quiet_redis.url)
    client.ping()
    yield client
    client.close()


def round_trips(counter: redis.Redis, call) -> int:
    before = int(counter.info("stats")["total_reads_processed"])
    call()
    return int(counter.info("stats")["total_reads_processed"]) - before - 1  # less this INFO's own read


class Order:
    """The seed order workflow's calls (StartWorkflow, ExecuteTask of the payment, the payment's
    CompleteTask, the workflow's CompleteTask), each sent to the replica asked for."""

    def __init__(self, app: str, workflow_id: str) -> None:
        self.app, self.workflow_id = app, workflow_id
        self.workflow = common_pb2.WorkflowIdentity(workflow_id=workflow_id, workflow_type="shop.order")

    def start(self, stub) -> de.StartWorkflowResponse:
        self.started = stub.StartWorkflow(de.StartWorkflowRequest(
            app_id=self.app, workflow=self.workflow, arguments_json='{"order_id": "o-1"}', runner_id="runner-a"))
        assert self.started.HasField("lease")
        return self.started

    def execute_payment(self, stub) -> de.ExecuteTaskResponse:
        self.payment = stub.ExecuteTask(de.ExecuteTaskRequest(
            position=de.OperationPosition(app_id=self.app, workflow=self.workflow, invocation_id=self.workflow_id,
                                          sequence=1),
            task_id="shop.process_payment", arguments_json='{"order_id": "o-1"}', runner_id="runner-a"))
        assert self.payment.HasField("lease")
        return self.payment

    def complete_payment(self, stub) -> None:
        assert stub.CompleteTask(de.CompleteTaskRequest(
            app_id=self.app, invocation_id=self.payment.invocation.invocation_id,
            lease_id=self.payment.lease.lease_id, result_json='{"paid": true}')).accepted

    def complete_workflow(self, stub) -> None:
        assert stub.CompleteTask(de.CompleteTaskRequest(
            app_id=self.app, invocation_id=self.workflow_id, lease_id=self.started.lease.lease_id,
            result_json='{"status": "done"}')).accepted

    def shown(self, channel: grpc.Channel) -> dict:
        """What StateBackendService shows of the run: both invocations' statuses and runners,
        results, the workflow's invocations and sub-invocations, and the run."""
        stub = sb_grpc.StateBackendServiceStub(channel)
        payment_id = self.payment.invocation.invocation_id
        shown: dict = {}
        for name, invocation_id in (("workflow", self.workflow_id), ("payment", payment_id)):
            history = stub.GetHistory(sb.GetHistoryRequest(app_id=self.app, invocation_id=invocation_id)).history
            record = stub.GetInvocation(sb.GetInvocationRequest(app_id=self.app, invocation_id=invocation_id))
            result = stub.GetResult(sb.GetResultRequest(app_id=self.app, invocation_id=invocation_id))
            shown[name] = ([(entry.status, entry.runner_id) for entry in history],
                           record.invocation.parent_invocation_id, result.result.json)
        shown["invocations"] = sorted(stub.ListInvocationIdsByWorkflow(sb.ListInvocationIdsByWorkflowRequest(
            app_id=self.app, workflow_id=self.workflow_id)).invocation_ids)
        shown["subs"] = list(stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(
            app_id=self.app, workflow_id=self.workflow_id)).invocation_ids)
        shown["payment_id"] = payment_id
        return shown


def expected_shown(order: Order) -> dict:
    payment_id = order.payment.invocation.invocation_id
    ran = [(S.INVOCATION_STATUS_REGISTERED, "runner-a"), (S.INVOCATION_STATUS_RUNNING, "runner-a"),
           (S.INVOCATION_STATUS_SUCCESS, "runner-a")]
    return {"workflow": (ran, "", '{"status": "done"}'), "payment": (ran, order.workflow_id, '{"paid": true}'),
            "invocations": sorted([order.workflow_id, payment_id]), "subs": [payment_id], "payment_id": payment_id}


def test_each_task_call_of_the_order_workflow_makes_one_round_trip_for_its_task_and_what_follows(
        replicas, counter: redis.Redis) -> None:
    first, _ = replicas
    app = f"rtt-{uuid.uuid4().hex[:8]}"
    with first.channel() as channel:
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        warm = Order(app, "warm-up")  # the pool's connection opened, every script loaded
        for step in (warm.start, warm.execute_payment, warm.complete_payment, warm.complete_workflow):
            step(stub)
        order = Order(app, f"order-{uuid.uuid4().hex[:8]}")
        counted = {name: round_trips(counter, lambda step=step: step(stub)) for name, step in (
            ("StartWorkflow", order.start), ("ExecuteTask", order.execute_payment),
            ("CompleteTask (child)", order.complete_payment), ("CompleteTask (main)", order.complete_workflow))}
        # Before: SADD app, task, MULTI run index, projection; record, task, mirror, projection;
        # task, mirror, projection; task, projection (4, 4, 3, 2).
        assert counted == {"StartWorkflow": 1, "ExecuteTask": 2, "CompleteTask (child)": 1,
                           "CompleteTask (main)": 1}
        assert order.shown(channel) == expected_shown(order)
        # The child's outcome is mirrored in the workflow's record: a record in its finished scope is refused.
        with pytest.raises(grpc.RpcError) as refused:
            stub.Uuid(de.UuidRequest(position=de.OperationPosition(
                app_id=app, workflow=order.workflow, invocation_id=order.payment.invocation.invocation_id,
                sequence=1)))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_an_outcome_reported_to_a_replica_that_did_not_grant_its_lease_takes_the_separate_steps_to_the_same_state(
        replicas, counter: redis.Redis) -> None:
    first, second = replicas
    app = f"rtt-{uuid.uuid4().hex[:8]}"
    with first.channel() as granting, second.channel() as completing:
        grant = de_grpc.DeterministicExecutorServiceStub(granting)
        complete = de_grpc.DeterministicExecutorServiceStub(completing)
        warm = Order(app, "warm-up")
        for step, stub in ((warm.start, grant), (warm.execute_payment, grant), (warm.complete_payment, complete),
                           (warm.complete_workflow, complete)):
            step(stub)
        order = Order(app, f"order-{uuid.uuid4().hex[:8]}")
        order.start(grant)
        order.execute_payment(grant)
        # Its definition and runner are unknown there: task, mirror, projection.
        assert round_trips(counter, lambda: order.complete_payment(complete)) == 3
        assert round_trips(counter, lambda: order.complete_workflow(complete)) == 2
        assert order.shown(completing) == expected_shown(order)
        assert order.shown(granting) == expected_shown(order)


def test_a_start_cut_short_by_a_client_deadline_never_leaves_a_task_without_its_projection_or_run(
        replicas, counter: redis.Redis) -> None:
    # The separate steps (shielded task + run index, then the projection) could be split by a
    # deadline between the run index and the projection; one script cannot be split.
    first, _ = replicas
    app = f"rtt-deadline-{uuid.uuid4().hex[:8]}"
    with first.channel() as channel:
        start_workflows_cut_short(channel, app)
    registered = [f"wf-{n}" for n in range(400) if counter.exists(task_key(app, f"wf-{n}"))]
    assert registered  # and some got through
    runs = {member.decode() for member in counter.zrange(runs_key(app), 0, -1)}
    lacking = [(workflow_id, what) for workflow_id in registered for what, there in (
        ("projection", counter.exists(invocation_key(app, workflow_id, "inv"))),
        ("history", counter.zcard(invocation_key(app, workflow_id, "hist")) == 2),
        ("run", WorkflowRef(workflow_id, "mod.flow").encode() in runs)) if not there]
    assert lacking == []
