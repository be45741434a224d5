"""A master killed (kill -9) under a stream of writes through a sidecar in front of a cluster.

Shared by tests/test_redis_cluster.py (the failover test) and
scripts/measure_cluster_failover.py (acknowledged values lost with and without WAIT).
Writers store one value per workflow (SetWorkflowData, a new workflow each call, so the
writes spread over every master); a value is acknowledged when the call returned OK. After
the failover every acknowledged value is read back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from redis_cluster import RedisCluster
from support import SidecarServer


@dataclass
class FailoverResult:
    acknowledged: int = 0
    lost: int = 0  # acknowledged, then missing
    changed: int = 0  # acknowledged, then read back with another value
    codes: Counter = field(default_factory=Counter)  # status of every write, by name
    details: Counter = field(default_factory=Counter)
    lost_workflows: list[str] = field(default_factory=list)
    health_seen: list[str] = field(default_factory=list)  # health statuses, each change once
    writes_resumed_s: float | None = None  # from the kill to the first OK write of the dead master's slots
    promoted_s: float | None = None


class _Writers:
    def __init__(self, address: str, app: str, threads: int) -> None:
        self.address, self.app = address, app
        self.acknowledged: dict[str, str] = {}
        self.codes: Counter = Counter()
        self.details: Counter = Counter()  # failure messages, for a report
        self.ok_times: list[tuple[float, str]] = []
        self.failed_times: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(i,), daemon=True) for i in range(threads)]

    def _write(self, index: int) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            n = 0
            while not self.stop.is_set():
                n += 1
                workflow, value = f"w{index}-{n}", str(n)
                try:
                    stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=self.app, workflow_id=workflow, key="k",
                                                                   value_json=value), timeout=5)
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                    with self.lock:
                        self.details[error.details()[:120]] += 1
                with self.lock:
                    self.codes[code] += 1
                    if code == "OK":
                        self.acknowledged[workflow] = value
                        self.ok_times.append((time.monotonic(), workflow))
                    else:
                        self.failed_times.append((time.monotonic(), workflow))
                if code != "OK":
                    time.sleep(0.02)

    def __enter__(self) -> _Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


class _HealthWatch:
    def __init__(self, address: str) -> None:
        self.address = address
        self.seen: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self.stop.is_set():
                try:
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(
                        stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status)
                except grpc.RpcError as error:
                    status = "RPC_" + error.code().name
                if not self.seen or self.seen[-1] != status:
                    self.seen.append(status)
                time.sleep(0.05)

    def __enter__(self) -> _HealthWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def kill_a_master_under_writes(cluster: RedisCluster, sidecar: SidecarServer, *, rejoin: bool, threads: int = 4,
                               before_s: float = 1.5, after_s: float = 1.5, timeout_s: float = 40) -> FailoverResult:
    """Write, kill -9 one master, keep writing until the cluster promoted its replica (and,
    with rejoin, the old master came back as its replica: with WAIT, the promoted master takes
    no write before it has a replica again) and the dead master's slots take writes again;
    then read every acknowledged value back."""
    app = f"failover-{uuid.uuid4().hex[:8]}"
    result = FailoverResult()
    victim = next(node for node in cluster.running() if cluster.node_is_master(node))
    victim_slots = cluster.slots_of(victim)
    with _HealthWatch(sidecar.address) as health, _Writers(sidecar.address, app, threads) as writers:
        time.sleep(before_s)
        cluster.kill(victim)
        killed_at = time.monotonic()
        cluster.wait_promoted(victim, timeout=timeout_s)
        result.promoted_s = time.monotonic() - killed_at
        if rejoin:
            cluster.restart(victim)
            cluster.wait_ok(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while result.writes_resumed_s is None and time.monotonic() < deadline:
            with writers.lock:
                failed = [t for t, workflow in writers.failed_times
                          if t > killed_at and cluster.slot_of_workflow(app, workflow) in victim_slots]
                resumed = [t for t, workflow in writers.ok_times if failed and t > failed[0]
                           and cluster.slot_of_workflow(app, workflow) in victim_slots]
            if resumed:
                result.writes_resumed_s = resumed[0] - killed_at
            time.sleep(0.1)
        time.sleep(after_s)
    result.health_seen = health.seen
    result.codes = writers.codes
    result.details = writers.details
    result.acknowledged = len(writers.acknowledged)
    with grpc.insecure_channel(sidecar.address) as channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        for workflow, value in writers.acknowledged.items():
            reply = stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app, workflow_id=workflow, key="k"),
                                         timeout=10)
            if not reply.found:
                result.lost += 1
                result.lost_workflows.append(workflow)
            elif reply.value_json != value:
                result.changed += 1
    result.victim = victim  # type: ignore[attr-defined]
    result.timeline = {w: t - killed_at for t, w in writers.ok_times}  # type: ignore[attr-defined]
    return result
