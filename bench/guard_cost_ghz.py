"""The finished-scope guard's cost through the whole server: ghz on Random's first-record path,
this tree's sidecar against a baseline tree's (e.g. the commit before the guard), side by side.

    git archive <baseline> | tar -x -C /tmp/baseline
    python bench/guard_cost_ghz.py /tmp/baseline [--seconds 3] [--rounds 5] [--concurrency 16]

Starts one redis-server and two sidecars on it (this tree's, and the baseline's `service/` and
`stubs/python` and `sdk/python` put first on PYTHONPATH), on free loopback ports, and alternates ghz rounds
between them (fresh positions: every request records a new value). Prints each round's RPS and
the median ratio new/old. Stops every process it started by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ghz_protoset import fetch_protoset  # noqa: E402
from run import find_or_install_ghz  # noqa: E402

SERVICE = "pynenc.sidecar.v1.DeterministicExecutorService"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serving(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def start_sidecar(redis_url: str, pythonpath: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYNENC_SIDECAR_", "OTEL_"))}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    process = subprocess.Popen([sys.executable, "-m", "pynenc_sidecar", "serve", "--host", "127.0.0.1", "--port",
                                str(port), "--redis-url", redis_url], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not serving(address):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"sidecar ({pythonpath or 'this tree'}) did not start")
        time.sleep(0.1)
    return process, address


def ghz_rps(ghz: str, protoset: Path, address: str, seconds: float, concurrency: int) -> float:
    # A fresh workflow per round and a position per request: every call is a first record.
    data = {"position": {"app_id": "bench-guard", "workflow": {"workflow_id": uuid.uuid4().hex},
                         "sequence": "{{add .RequestNumber 1}}"}}  # int64 as JSON text, as proto3 JSON allows
    cmd = [ghz, "--insecure", "--protoset", str(protoset), "--call", f"{SERVICE}.Random", "-d", json.dumps(data),
           "-c", str(concurrency), "--connections", "1", "--cpus", "1", "-z", f"{seconds}s",
           "--duration-stop", "wait", "-O", "json", address]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if not result.stdout.strip():
        raise RuntimeError(f"ghz failed ({result.returncode}): {result.stderr.strip()}")
    report = json.loads(result.stdout)
    codes = report.get("statusCodeDistribution") or {}
    assert set(codes) == {"OK"}, codes
    return codes["OK"] / (report["total"] / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path, help="a checkout (or git archive) of the baseline tree")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    ghz = find_or_install_ghz()
    directory = tempfile.mkdtemp(prefix="bench-guard-ghz-")
    redis_port = free_port()
    processes = [subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(0.5)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        baseline_path = os.pathsep.join(str(args.baseline / d) for d in ("service", "stubs/python", "sdk/python"))
        old, old_address = start_sidecar(redis_url, baseline_path)
        processes.append(old)
        new, new_address = start_sidecar(redis_url, None)
        processes.append(new)
        protoset = Path(directory) / "sidecar.protoset"
        protoset.write_bytes(fetch_protoset(new_address))
        for address in (old_address, new_address):  # warm up
            ghz_rps(ghz, protoset, address, 1.0, args.concurrency)
        ratios = []
        print(f"{'round':5} {'old RPS':>9} {'new RPS':>9} {'new/old':>8}")
        for round_ in range(1, args.rounds + 1):
            old_rps = ghz_rps(ghz, protoset, old_address, args.seconds, args.concurrency)
            new_rps = ghz_rps(ghz, protoset, new_address, args.seconds, args.concurrency)
            ratios.append(new_rps / old_rps)
            print(f"{round_:5} {old_rps:9.0f} {new_rps:9.0f} {ratios[-1]:8.3f}")
        print(f"median new/old RPS: {statistics.median(ratios):.3f}")
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(15)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
