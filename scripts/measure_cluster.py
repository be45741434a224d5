"""Redis Cluster figures for docs/reliability.md and docs/deployment.md, measured side by side
in one run on real 3-master, 3-replica clusters on loopback.

1. Failover: a master killed (kill -9) under a stream of writes through one sidecar, without
   and with --redis-wait-replicas 1: acknowledged values, how many were lost or changed, what
   callers saw, and how long the dead master's slots took no writes.
2. Cost per call of an executor load (Record at fresh positions, one workflow per client)
   through 1 sidecar on one Redis, 1 sidecar on the cluster and 2 sidecars on the cluster:
   CPU seconds of the sidecar processes and of the Redis masters per call, so the calls/s a
   sidecar core and a master core carry follow on any machine (this one is shared: its own
   calls/s are bound by the client threads).

    .venv/bin/python scripts/measure_cluster.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cluster_failover import kill_a_master_under_writes  # noqa: E402
from executor_client import position  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc  # noqa: E402
from redis_cluster import RedisCluster, redis_cli  # noqa: E402
from support import RedisServer, SidecarServer  # noqa: E402


def failover(wait: bool) -> dict:
    cluster = RedisCluster().start()
    args = ["--redis-cluster", "on", "--readiness-interval", "0.2s"] + (["--redis-wait-replicas", "1"] if wait else [])
    sidecar = SidecarServer(f"redis://{cluster.seeds}", extra_args=args).start()
    try:
        result = kill_a_master_under_writes(cluster, sidecar, rejoin=wait)
    finally:
        sidecar.stop()
        cluster.cleanup()
    return {"acknowledged": result.acknowledged, "lost": result.lost, "changed": result.changed,
            "codes": dict(result.codes), "resumed_s": result.writes_resumed_s, "promoted_s": result.promoted_s}


def load(addresses: list[str], seconds: float, clients: int) -> float:
    """Calls/s of `clients` threads recording fresh positions, spread over the addresses."""
    count = [0] * clients
    stop = threading.Event()
    app = f"load-{uuid.uuid4().hex[:6]}"

    def client(index: int) -> None:
        with grpc.insecure_channel(addresses[index % len(addresses)]) as channel:
            stub = de_grpc.DeterministicExecutorServiceStub(channel)
            workflow, seq = f"wf-{index}", 0
            while not stop.is_set():
                seq += 1
                stub.Record(de.RecordRequest(position=position(app, workflow, seq), operation="load",
                                             value_json=str(seq)), timeout=10)
                count[index] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # warm-up: connections made, scripts loaded
    start = sum(count)
    time.sleep(seconds)
    done = sum(count) - start
    stop.set()
    for thread in threads:
        thread.join(10)
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    options = parser.parse_args()

    print("## Failover: kill -9 of a master under writes (4 writers, SetWorkflowData)\n")
    print("| round | WAIT | acknowledged | lost | changed | callers saw | the dead master's slots took writes again |")
    print("|---|---|---|---|---|---|---|")
    for n in range(options.rounds):
        for wait in (False, True):
            row = failover(wait)
            codes = ", ".join(f"{k} {v}" for k, v in sorted(row["codes"].items()))
            resumed = f"{row['resumed_s']:.1f} s after the kill" if row["resumed_s"] is not None else "never"
            print(f"| {n + 1} | {'1 replica' if wait else 'off'} | {row['acknowledged']} | {row['lost']} | "
                  f"{row['changed']} | {codes} | {resumed} (promoted {row['promoted_s']:.1f} s) |", flush=True)

    print(f"\n## Cost per call: Record at fresh positions, {options.clients} client threads, "
          f"{options.seconds:.0f} s\n")
    print("| setup | calls/s here | sidecar CPU per call | Redis CPU per call (all masters) | busiest master's "
          "share | calls/s per sidecar core | calls/s per master core |")
    print("|---|---|---|---|---|---|---|")
    single = RedisServer().start()
    cluster = RedisCluster().start()
    one = SidecarServer(single.url).start()
    first = SidecarServer(f"redis://{cluster.seeds}", extra_args=["--redis-cluster", "on"]).start()
    second = SidecarServer(f"redis://{cluster.seeds}", extra_args=["--redis-cluster", "on"]).start()
    setups = [("1 sidecar, one Redis", [one], [single]), ("1 sidecar, 3-master cluster", [first], None),
              ("2 sidecars, 3-master cluster", [first, second], None)]
    try:
        for _ in range(options.rounds):
            for name, sidecars, redis_nodes in setups:
                masters = redis_nodes or [n for n in cluster.running() if cluster.node_is_master(n)]
                before_sidecar = sum(process_cpu(s.process.pid) for s in sidecars)
                before_redis = {n.port: redis_cpu(n.port) for n in masters}
                rate = load([s.address for s in sidecars], options.seconds, options.clients)
                calls = rate * options.seconds
                sidecar_s = (sum(process_cpu(s.process.pid) for s in sidecars) - before_sidecar) / calls
                used = {n.port: redis_cpu(n.port) - before_redis[n.port] for n in masters}
                redis_s = sum(used.values()) / calls
                share = max(used.values()) / max(sum(used.values()), 1e-9)
                print(f"| {name} | {rate:.0f} | {sidecar_s * 1e6:.0f} us | {redis_s * 1e6:.0f} us | {share:.0%} | "
                      f"{1 / sidecar_s:.0f} | {1 / (redis_s * share * len(masters)):.0f} |", flush=True)
    finally:
        for server in (one, first, second):
            server.stop()
        cluster.cleanup()
        single.cleanup()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(port: int) -> float:
    info = dict(line.split(":", 1) for line in redis_cli(port, "info", "cpu").splitlines() if ":" in line)
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


if __name__ == "__main__":
    main()
