"""Redis Cluster: a sidecar in front of a real 3-master, 3-replica cluster survives a master
killed under writes, and follows the promoted replica without a restart."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from cluster_failover import kill_a_master_under_writes
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from redis_cluster import RedisCluster
from support import SidecarServer


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own: it kills one of its masters."""
    cluster = RedisCluster().start()
    yield cluster
    cluster.cleanup()


def test_a_master_killed_under_writes_costs_only_unavailable_and_no_acknowledged_value(own_cluster) -> None:
    # WAIT 1: a value is acknowledged once a replica has it, so the promotion keeps it.
    sidecar = SidecarServer(f"redis://{own_cluster.seeds}", extra_args=[
        "--redis-cluster", "on", "--redis-wait-replicas", "1", "--readiness-interval", "0.2s"]).start()
    try:
        result = kill_a_master_under_writes(own_cluster, sidecar, rejoin=True)
        assert set(result.codes) <= {"OK", "UNAVAILABLE"}, result.codes
        assert result.codes["OK"] > 100 and result.codes["UNAVAILABLE"] > 0, result.codes
        assert (result.lost, result.changed) == (0, 0), result
        assert result.writes_resumed_s is not None, "the dead master's slots never took a write again"
        # Health said so while the cluster had no master for some slots, and recovered alone.
        assert "NOT_SERVING" in result.health_seen and result.health_seen[-1] == "SERVING", result.health_seen

        # The old master rejoined as a replica of its successor: every call succeeds (no
        # INTERNAL from a sidecar still talking to it as a master).
        assert not own_cluster.node_is_master(result.victim)
        with grpc.insecure_channel(sidecar.address) as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            for n in range(50):
                stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id="rejoined", workflow_id=f"w{n}", key="k",
                                                               value_json=str(n)), timeout=10)
                assert stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id="rejoined", workflow_id=f"w{n}",
                                                                      key="k"), timeout=10).value_json == str(n)
    finally:
        sidecar.stop()
