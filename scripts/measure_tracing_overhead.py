"""What tracing costs: N sequential Random RPCs against sidecars with tracing off and on (and,
with --baseline REF, the code at git REF, before tracing existed), in interleaved rounds.

    .venv/bin/python scripts/measure_tracing_overhead.py --baseline 589107c --rounds 7 --calls 5000

Every server runs on one real redis-server started here. Each round runs every mode once, in a
rotating order, each on fresh positions (every call records a value: the path that also stores
an origin when tracing is on). "on" exports every span (always_on sampling, Redis spans
included) over OTLP/gRPC to tests/otlp_receiver.py. Prints one JSON object with two measures,
wall-clock microseconds per call (what a worker waits) and the server process's CPU
microseconds per call (what the sidecar spends, span export included; far less disturbed by
other load on the machine): per mode the median and every round, and the median over rounds
of each round's ratio between modes (paired, so that load changing between rounds cancels out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from io import BytesIO
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pynenc_sidecar_proto.v1 import common_pb2  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc  # noqa: E402
from support import RedisServer, SidecarServer, free_port  # noqa: E402


def baseline_tree(ref: str) -> str:
    """The repository at ref, unpacked into a temporary directory (git archive: no checkout)."""
    directory = tempfile.mkdtemp(prefix="psc-baseline-")
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_calls(address: str, calls: int, app_id: str) -> float:
    """Seconds for `calls` sequential Random RPCs, each at a new position."""
    with grpc.insecure_channel(address) as channel:
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        workflow = common_pb2.WorkflowIdentity(workflow_id=uuid.uuid4().hex, workflow_type="bench.flow")
        requests = [de.RandomRequest(position=de.OperationPosition(app_id=app_id, workflow=workflow, sequence=i))
                    for i in range(1, calls + 1)]
        stub.Random(
            de.RandomRequest(position=de.OperationPosition(app_id=app_id, workflow=workflow, sequence=calls + 1))
        )
        start = time.perf_counter()
        for request in requests:
            stub.Random(request)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", metavar="REF", help="also measure the server at this git ref")
    parser.add_argument("--ratio", type=float, metavar="R",
                        help="also measure tracing on with OTEL_TRACES_SAMPLER=traceidratio at ratio R (mode on_ratio)")
    options = parser.parse_args()

    redis_server = RedisServer().start()
    spans_file = tempfile.mktemp(prefix="psc-bench-spans-")
    receiver_port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "otlp_receiver.py"), str(receiver_port), spans_file],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    servers: dict[str, SidecarServer] = {}
    tree = None
    try:
        os.environ.clear()
        os.environ.update(clean_env)  # SidecarServer copies os.environ: no OTEL_* leaks into "off"
        if options.baseline:
            tree = baseline_tree(options.baseline)
            path = os.pathsep.join([f"{tree}/service", f"{tree}/stubs/python", f"{tree}/sdk/python"])
            servers["baseline"] = SidecarServer(redis_server.url, env={"PYTHONPATH": path})
        servers["off"] = SidecarServer(redis_server.url)
        servers["on"] = SidecarServer(redis_server.url, env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}", "OTEL_TRACES_SAMPLER": "always_on"})
        if options.ratio is not None:
            servers["on_ratio"] = SidecarServer(redis_server.url, env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
                "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(options.ratio)})
        for server in servers.values():
            server.start()
        modes = list(servers)
        for mode in modes:  # warm-up: connections, Lua scripts loaded, code paths hot
            run_calls(servers[mode].address, 500, f"warm-{mode}")
        per_call_us: dict[str, list[float]] = {mode: [] for mode in modes}
        server_cpu_us: dict[str, list[float]] = {mode: [] for mode in modes}
        for round_ in range(options.rounds):
            order = modes[round_ % len(modes):] + modes[:round_ % len(modes)]
            for mode in order:
                pid = servers[mode].process.pid
                cpu_before = cpu_seconds(pid)
                seconds = run_calls(servers[mode].address, options.calls, f"bench-{mode}")
                time.sleep(0.3)  # let "on" export this round's spans: their cost is counted too
                cpu = cpu_seconds(pid) - cpu_before
                per_call_us[mode].append(round(seconds / options.calls * 1e6, 1))
                server_cpu_us[mode].append(round(cpu / (options.calls + 1) * 1e6, 1))

        def paired(series: dict[str, list[float]], a: str, b: str) -> float:
            """Median over rounds of a/b within each round: drift between rounds cancels out."""
            return round(statistics.median(x / y for x, y in zip(series[a], series[b])), 3)

        report: dict = {"calls_per_round": options.calls, "rounds": options.rounds, "baseline_ref": options.baseline}
        for label, series in (("wall_us_per_call", per_call_us), ("server_cpu_us_per_call", server_cpu_us)):
            report[label] = {
                "median": {mode: statistics.median(values) for mode, values in series.items()},
                "by_round": series,
                "on_vs_off": paired(series, "on", "off"),
            }
            if "baseline" in series:
                report[label]["off_vs_baseline"] = paired(series, "off", "baseline")
                report[label]["on_vs_baseline"] = paired(series, "on", "baseline")
            if "on_ratio" in series:
                report[label]["on_ratio_vs_off"] = paired(series, "on_ratio", "off")
        print(json.dumps(report, indent=2))
    finally:
        for server in servers.values():
            server.stop()
        receiver.terminate()
        receiver.wait()
        redis_server.cleanup()
        Path(spans_file).unlink(missing_ok=True)
        if tree:
            shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
