"""What projecting executor tasks into the StateBackend costs (projection.py) on the hot path:
N sequential (ExecuteTask first run + CompleteTask) pairs against this tree's server and the
server at git REF (before the projection), on Redis and on the embedded SQLite store, in
interleaved rounds.

    .venv/bin/python scripts/measure_projection_cost.py --baseline 9bfe82e --rounds 5 --pairs 1000

Every pair registers a new task at a fresh position of one workflow, takes its lease, and
completes it with a small JSON result. Prints one JSON object: per store and server, the
wall-clock microseconds per pair (what a worker waits) and the server process's CPU
microseconds per pair, medians and every round, and the median over rounds of each round's
current/baseline ratio (paired, so load changing between rounds cancels out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

from measure_tracing_overhead import baseline_tree, cpu_seconds  # noqa: E402
from pynenc_sidecar_proto.v1 import common_pb2  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc  # noqa: E402
from support import RedisServer, SidecarServer  # noqa: E402


def run_pairs(address: str, pairs: int, app_id: str) -> float:
    """Seconds for `pairs` sequential ExecuteTask (first run) + CompleteTask pairs."""
    with grpc.insecure_channel(address) as channel:
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        workflow = common_pb2.WorkflowIdentity(workflow_id=uuid.uuid4().hex, workflow_type="bench.flow")
        stub.StartWorkflow(de.StartWorkflowRequest(app_id=app_id, workflow=workflow, arguments_json="{}",
                                                   runner_id="bench"))
        requests = [de.ExecuteTaskRequest(position=de.OperationPosition(app_id=app_id, workflow=workflow, sequence=i),
                                          task_id="bench.step", arguments_json=json.dumps({"n": i, "order": "A-1"}),
                                          runner_id="bench") for i in range(1, pairs + 1)]
        start = time.perf_counter()
        for request in requests:
            reply = stub.ExecuteTask(request)
            stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=reply.invocation.invocation_id,
                                                     lease_id=reply.lease.lease_id, result_json='{"ok":true}'))
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="REF", required=True, help="the server at this git ref")
    options = parser.parse_args()

    redis_server = RedisServer().start()
    data_dir = tempfile.mkdtemp(prefix="psc-projection-bench-")
    tree = baseline_tree(options.baseline)
    baseline_env = {"PYTHONPATH": f"{tree}/service:{tree}/stubs/python:{tree}/sdk/python"}
    servers = {
        ("redis", "baseline"): SidecarServer(redis_server.url, env=baseline_env),
        ("redis", "current"): SidecarServer(redis_server.url),
        ("sqlite", "baseline"): SidecarServer(None, env=baseline_env, data_file=f"{data_dir}/baseline.db"),
        ("sqlite", "current"): SidecarServer(None, data_file=f"{data_dir}/current.db"),
    }
    try:
        for server in servers.values():
            server.start()
        modes = list(servers)
        for mode in modes:  # warm-up: connections, scripts loaded, tables created
            run_pairs(servers[mode].address, 200, f"warm-{mode[1]}")
        wall: dict = {mode: [] for mode in modes}
        cpu: dict = {mode: [] for mode in modes}
        for round_ in range(options.rounds):
            order = modes[round_ % len(modes):] + modes[:round_ % len(modes)]
            for mode in order:
                pid = servers[mode].process.pid
                before = cpu_seconds(pid)
                seconds = run_pairs(servers[mode].address, options.pairs, f"bench-{mode[1]}")
                wall[mode].append(round(seconds / options.pairs * 1e6, 1))
                cpu[mode].append(round((cpu_seconds(pid) - before) / options.pairs * 1e6, 1))

        report: dict = {"pairs_per_round": options.pairs, "rounds": options.rounds, "baseline_ref": options.baseline}
        for store in ("redis", "sqlite"):
            entry: dict = {}
            for label, series in (("wall_us_per_pair", wall), ("server_cpu_us_per_pair", cpu)):
                base, current = series[(store, "baseline")], series[(store, "current")]
                entry[label] = {
                    "median": {"baseline": statistics.median(base), "current": statistics.median(current)},
                    "by_round": {"baseline": base, "current": current},
                    "current_vs_baseline": round(statistics.median(c / b for c, b in zip(current, base)), 3),
                }
            report[store] = entry
        print(json.dumps(report, indent=2))
    finally:
        for server in servers.values():
            server.stop()
        redis_server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
