"""Redis Cluster: a sidecar in front of a real 3-master, 3-replica cluster survives a master
killed under writes, and follows the promoted replica without a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cluster_failover import kill_a_master_under_writes
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from redis_cluster import RedisCluster
from support import ROOT, SidecarServer
from test_newcomer_path import newcomer_blocks
from test_seed_examples import WORKFLOWS, run_seed


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own: it kills one of its masters. Every write is on disk
    before its reply (appendfsync always): with WAIT 1 on top, an acknowledged value is on the
    promoted replica and on the restarted master's disk, whichever of them wins the slots."""
    cluster = RedisCluster(appendfsync="always").start()
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

        # The old master rejoined: as a replica of its successor, or master again after a second
        # failover (seen 1 run in 4 here: under load its successor missed the 2 s node timeout,
        # and health went NOT_SERVING twice). Either way every call succeeds: no INTERNAL from a
        # sidecar still talking to a node in its old role.
        assert own_cluster.state_ok(result.victim)
        if own_cluster.node_is_master(result.victim):
            assert result.health_seen.count("NOT_SERVING") >= 2, result.health_seen
        with grpc.insecure_channel(sidecar.address) as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            for n in range(50):
                stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id="rejoined", workflow_id=f"w{n}", key="k",
                                                               value_json=str(n)), timeout=10)
                assert stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id="rejoined", workflow_id=f"w{n}",
                                                                      key="k"), timeout=10).value_json == str(n)
    finally:
        sidecar.stop()


# --- the tour and the seed examples, through the SDK, on the session's cluster -------------
def _run(args: list[str], sidecar: SidecarServer, cwd: Path) -> str:
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": sidecar.address}
    done = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_tour_runs_and_replays_on_a_cluster(cluster_sidecar, tmp_path) -> None:
    tour = next(block.text for block in newcomer_blocks((ROOT / "README.md").read_text())
                if block.text.startswith("# tour.py"))
    (tmp_path / "tour.py").write_text(tour)
    # Ten workflows of the tour (the README's own id and nine more), each run then replayed.
    (tmp_path / "ten.py").write_text(
        "import sys\nfrom tour import order\n"
        "for i in range(10):\n"
        "    print(order.run_workflow(f'{sys.argv[1]}-{i}', f'A-{i}').result)\n")
    first = _run(["tour.py"], cluster_sidecar, tmp_path)
    replay = _run(["tour.py"], cluster_sidecar, tmp_path)
    assert "charging A-1" in first and "charging" not in replay
    assert first.splitlines()[-1] == replay.splitlines()[-1]
    run_id = f"cluster-tour-{uuid.uuid4().hex[:8]}"
    ten = _run(["ten.py", run_id], cluster_sidecar, tmp_path)
    assert ten.count("charging") == 10 and len(ten.splitlines()) == 20
    again = _run(["ten.py", run_id], cluster_sidecar, tmp_path)
    assert "charging" not in again and again.splitlines() == [line for line in ten.splitlines()
                                                             if not line.startswith("charging")]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_seed_examples_run_and_replay_on_a_cluster(cluster_sidecar, workflow) -> None:
    workflow_id = f"{workflow}-{uuid.uuid4().hex}"
    first = run_seed(cluster_sidecar, workflow, workflow_id)
    second = run_seed(cluster_sidecar, workflow, workflow_id)
    assert not first["replayed"] and second["replayed"]
    assert second["result"] == first["result"]


# --- several sidecars in front of one cluster ----------------------------------------------
def test_24_workers_across_3_sidecars_replaying_one_workflow_agree_and_run_each_task_once(
        redis_cluster, cluster_sidecar, tmp_path) -> None:
    replicas = [cluster_sidecar] + [SidecarServer(f"redis://{redis_cluster.seeds}",
                                                  extra_args=["--redis-cluster", "on"]).start() for _ in range(2)]
    app, workflow_id = f"race-{uuid.uuid4().hex[:8]}", f"wf-race-{uuid.uuid4().hex}"
    journal, go = tmp_path / "journal", tmp_path / "go"
    outs = [tmp_path / f"out-{i}.json" for i in range(24)]
    procs = []
    try:
        for i, out in enumerate(outs):  # 8 workers per sidecar
            env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": replicas[i % 3].address, "PSC_RACE_APP": app,
                   "PSC_RACE_JOURNAL": str(journal), "PSC_RACE_GO": str(go), "PSC_RACE_LEASE": "1.5",
                   "PSC_RACE_STEP": "1.0"}
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "tests" / "race_workers.py"), workflow_id,
                                           str(out)], env=env, stderr=subprocess.PIPE))
        time.sleep(3.0)  # every process imported and waits for the go file
        go.touch()
        for proc in procs:
            assert proc.wait(120) == 0, proc.stderr.read().decode()[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for replica in replicas[1:]:
            replica.stop()
    results = {out.read_text() for out in outs}
    assert len(results) == 1, "every worker must see the same recorded values"
    result = json.loads(results.pop())
    events = [line.split() for line in journal.read_text().splitlines()]
    for n in range(3):  # each task ran once: at most one lease holder per task
        assert [e[0] for e in events].count(f"start:{n}") == 1, events
        assert [e[0] for e in events].count(f"end:{n}") == 1, events
    with grpc.insecure_channel(cluster_sidecar.address) as channel:
        batches = list(de_grpc.DeterministicExecutorServiceStub(channel).GetWorkflowLog(
            de.GetWorkflowLogRequest(app_id=app, workflow_id=workflow_id), timeout=10))
    operations = [op for batch in batches for op in batch.operations]
    positions = [(op.scope, op.kind, op.custom_name, op.sequence) for op in operations]
    assert len(positions) == len(set(positions)), "one value per position"
    randoms = sorted((op for op in operations if op.kind == de.OPERATION_KIND_RANDOM and op.scope == workflow_id),
                     key=lambda op: op.sequence)
    assert [op.random_value for op in randoms] == result["random"]
    tasks = [task for batch in batches for task in batch.tasks]
    assert len({t.invocation_id for t in tasks}) == 3
    assert all(t.status == common_pb2.INVOCATION_STATUS_SUCCESS for t in tasks)
