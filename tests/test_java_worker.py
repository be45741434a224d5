"""The Java worker loop (sdk/java's Worker, run by the polyglot example's PolyglotWorker) on
both stores: it runs at most --concurrency invocations at once, and on SIGTERM it stops
polling, lets what runs finish within its grace and exits 0, or hands back (ReleaseTask) what
it cannot finish, which another worker then takes at once: long before the lease would lapse,
and as the same attempt. Kill -9, the Java workflow and the worker reading no workflow log are
in tests/test_polyglot_dispatch.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import wait_until
from test_java_client import java_jar  # noqa: F401  (fixture: the one `mvn package` of the session)
from test_polyglot_dispatch import PAYMENT, java_worker

RUNNING, QUEUED = common_pb2.INVOCATION_STATUS_RUNNING, common_pb2.INVOCATION_STATUS_REGISTERED
SUCCESS = common_pb2.INVOCATION_STATUS_SUCCESS


@pytest.fixture(params=["redis", "sqlite"])
def any_sidecar(request):
    return request.getfixturevalue("sidecar" if request.param == "redis" else "sqlite_sidecar")


class Queue:
    """Payments dispatched straight through the stub, one workflow position each."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = de_grpc.DeterministicExecutorServiceStub(self.channel)
        self.app_id, self.workflow_id = "jw-" + uuid.uuid4().hex[:8], "wf-" + uuid.uuid4().hex[:8]

    def dispatch(self, count: int) -> list[str]:
        return [self.stub.ExecuteTask(de.ExecuteTaskRequest(
            position=de.OperationPosition(app_id=self.app_id, sequence=seq,
                                          workflow=common_pb2.WorkflowIdentity(workflow_id=self.workflow_id)),
            task_id=PAYMENT, arguments_json=json.dumps({"order_id": f"o-{seq}"}), dispatch=de.TaskDispatch(),
        )).invocation.invocation_id for seq in range(1, count + 1)]

    def state(self, invocation_id: str) -> de.TaskInvocation:
        return self.stub.WaitTask(de.WaitTaskRequest(app_id=self.app_id, invocation_id=invocation_id,
                                                     timeout=duration_pb2.Duration())).invocation

    def statuses(self, ids: list[str]) -> list[int]:
        return [self.state(invocation_id).status for invocation_id in ids]


def start(jar: Path, address: str, app_id: str, log: Path, **flags: object) -> subprocess.Popen:
    args = [*java_worker(jar, PAYMENT), "--address", address, "--app", app_id]
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def running(log: Path, count: int) -> bool:
    """Whether the worker's code runs `count` invocations: a poll's claim is visible before its
    reply reaches the worker, and a poll cut short by shutdown strands what it claimed until the
    lease lapses, so RUNNING alone does not say the worker holds the invocation."""
    return log.read_text(errors="replace").count("java worker: running invocation") >= count


def stopped(process: subprocess.Popen, log: Path, within: float) -> int:
    try:
        return process.wait(within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the worker did not stop within {within} s:\n{log.read_text()[-3000:]}") from None


def test_java_worker_hands_back_what_it_cannot_finish_within_its_grace(java_jar, any_sidecar, tmp_path):
    queue = Queue(any_sidecar.address)
    [invocation_id] = queue.dispatch(1)
    log = tmp_path / "stopping.log"
    worker = start(java_jar, any_sidecar.address, queue.app_id, log, lease_ttl=30, delay_ms=60_000, grace=0.5)
    try:
        wait_until(lambda: running(log, 1), 60, "the worker to run the payment")
        assert queue.statuses([invocation_id]) == [RUNNING]
        worker.send_signal(signal.SIGTERM)
        assert stopped(worker, log, 20) == 0, log.read_text()
        # Handed back: queued again now, not when the 30 s lease would have lapsed.
        assert queue.state(invocation_id).status == QUEUED
        started = time.monotonic()
        worker = start(java_jar, any_sidecar.address, queue.app_id, tmp_path / "taking.log", lease_ttl=30)
        wait_until(lambda: queue.statuses([invocation_id]) == [SUCCESS], 25, "another worker to complete it")
        assert time.monotonic() - started < 25
        state = queue.state(invocation_id)
        assert state.attempt == 1  # a hand-back is not a failed attempt
        assert json.loads(state.result_json)["order_id"] == "o-1"
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            stopped(worker, log, 30)
        queue.channel.close()


def test_java_worker_runs_at_most_its_concurrency_and_finishes_within_its_grace(java_jar, any_sidecar, tmp_path):
    queue = Queue(any_sidecar.address)
    ids = queue.dispatch(3)
    log = tmp_path / "worker.log"
    worker = start(java_jar, any_sidecar.address, queue.app_id, log, concurrency=2, delay_ms=3000, grace=30)
    try:
        wait_until(lambda: running(log, 2), 60, "the worker to run two payments")
        statuses = queue.statuses(ids)
        assert statuses.count(RUNNING) == 2 and statuses.count(QUEUED) == 1, statuses  # no third slot
        worker.send_signal(signal.SIGTERM)
        assert stopped(worker, log, 30) == 0, log.read_text()
        statuses = queue.statuses(ids)
        # The two it ran finished within the grace; the third was never taken: still queued.
        assert sorted(statuses) == sorted([SUCCESS, SUCCESS, QUEUED]), statuses
        for invocation_id, status in zip(ids, statuses, strict=True):
            if status == SUCCESS:
                assert queue.state(invocation_id).attempt == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        queue.channel.close()

