"""Leases on the store's clock, fenced (issue 12, case 7), with a replica whose clock is wrong.

Two real servers share one store (one Redis; one SQLite file); the second runs under
`faketime` 2 s fast. A worker holds a task's 3 s lease through the first; 1.5 s later a
second worker asks the fast replica, which sees the lease as lapsed by its own clock: it
must not take it over. Once the lease really lapses the second worker takes it over, and the
first is fenced off for good: it can neither renew nor complete, through either replica,
even after the new holder's lease lapsed too.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2

from executor_client import error_details, position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import SidecarServer

SKEW = "+2s"
RUNNING = common_pb2.InvocationStatus.Value("INVOCATION_STATUS_RUNNING")

pytestmark = pytest.mark.skipif(shutil.which("faketime") is None,
                                reason="faketime is not installed (scripts/test installs it: apt-get install faketime)")


def seconds(value: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(value), nanos=int(round((value % 1) * 1e9)))


@pytest.fixture(params=["redis", "sqlite"])
def replicas(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[SidecarServer, SidecarServer]]:
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    data_file = None if redis_url else str(tmp_path / "shared.db")
    honest = SidecarServer(redis_url, data_file=data_file).start()
    fast = SidecarServer(redis_url, data_file=data_file, launcher=["faketime", "-f", SKEW]).start()
    yield honest, fast
    fast.stop()
    honest.stop()


def lease_not_held(call) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value.details()
    assert error_details(caught.value)[0] == "LEASE_NOT_HELD"


def test_a_fast_replica_neither_takes_over_a_live_lease_nor_lets_a_fenced_holder_finish(replicas) -> None:
    honest, fast = replicas
    app_id = f"skew-{uuid.uuid4().hex[:8]}"
    with honest.channel() as honest_channel, fast.channel() as fast_channel:
        via_honest = de_grpc.DeterministicExecutorServiceStub(honest_channel)
        via_fast = de_grpc.DeterministicExecutorServiceStub(fast_channel)
        for attempt in range(3):  # a retry only when the machine was too slow to judge
            started = via_honest.ExecuteTask(de.ExecuteTaskRequest(
                position=position(app_id, f"wf-{attempt}", 1), task_id="t.slow", arguments_json="{}",
                runner_id="worker-1", lease_ttl=seconds(3)), timeout=10)
            granted_at = time.monotonic()
            assert started.HasField("lease")
            invocation_id, first_lease = started.invocation.invocation_id, started.lease.lease_id
            time.sleep(1.5)  # about 1.5 s left; the fast replica thinks -0.5 s
            poll = via_fast.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=invocation_id,
                                                        runner_id="worker-2", timeout=seconds(0),
                                                        lease_ttl=seconds(1)), timeout=10)
            if time.monotonic() - granted_at < 2.7:
                break
        else:
            pytest.skip("the machine was too slow to ask within the lease's life three times")
        assert not poll.HasField("lease"), "the fast replica took over a live lease"
        assert poll.invocation.status == RUNNING

        # The lease lapses for real: the second worker takes it over (through the fast replica).
        taken = via_fast.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=invocation_id,
                                                     runner_id="worker-2", timeout=seconds(10),
                                                     lease_ttl=seconds(1)), timeout=20)
        assert taken.HasField("lease") and taken.lease.lease_id != first_lease
        # Fenced: the first worker can neither renew nor complete, on either replica...
        lease_not_held(lambda: via_fast.RenewTaskLease(de.RenewTaskLeaseRequest(
            app_id=app_id, invocation_id=invocation_id, lease_id=first_lease, lease_ttl=seconds(3)), timeout=10))
        # ... even once the new holder's 1 s lease has lapsed too (it may still be running).
        time.sleep(max(0.0, taken.lease.expire_time.ToMicroseconds() / 1e6 - time.time()) + 1.2)
        for stub in (via_honest, via_fast):
            lease_not_held(lambda: stub.CompleteTask(de.CompleteTaskRequest(  # noqa: B023 - called at once
                app_id=app_id, invocation_id=invocation_id, lease_id=first_lease, result_json='"stale"'), timeout=10))
            lease_not_held(lambda: stub.RenewTaskLease(de.RenewTaskLeaseRequest(  # noqa: B023 - called at once
                app_id=app_id, invocation_id=invocation_id, lease_id=first_lease, lease_ttl=seconds(3)), timeout=10))
        done = via_honest.CompleteTask(de.CompleteTaskRequest(
            app_id=app_id, invocation_id=invocation_id, lease_id=taken.lease.lease_id, result_json='"fresh"'),
            timeout=10)
        assert done.accepted and done.invocation.result_json == '"fresh"'
