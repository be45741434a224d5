"""grpc sync (thread pool + redis-py) vs grpc.aio (asyncio + redis.asyncio) on the Random RPC path.

    .venv/bin/python bench/transport_choice.py [--seconds N] [--concurrency 1,16,64] [--rounds R]

Starts its own redis-server on a free loopback port, then three servers on free loopback ports:

    sync      grpc.server + ThreadPoolExecutor(--workers) + sync redis-py (connection pool)
    aio       grpc.aio.server + redis.asyncio
    product   the real `python -m pynenc_sidecar serve` (grpc.aio)

The two minimal servers implement the same path as the product's Random RPC: the generated
servicer base, the product's request validation (`DeterministicExecutorServicer._position`),
derivation (`derivations.random_value`), key layout (`workflow_tag`) and the real
`storage/redis/record.lua` via `register_script`, with the same error mapping. Only the transport
and the Redis client differ.

ghz (installed with `go install` if missing) drives each server for --seconds per run with
a request whose sequence is `{{.RequestNumber}}+1` in a workflow id unique to the run, so
every call records a new value. Runs are interleaved: every round runs every concurrency on
every variant, alternating variant order between rounds. The table shows medians over the
rounds; the ratios are medians of per-round ratios (same round, same concurrency). After
every run the script checks that Redis recorded exactly as many values as ghz got OK replies.
Results are written to bench/results/transport_choice.json. Every process started is stopped
by its PID at the end.

Internal: `transport_choice.py _serve {sync,aio} --port P --redis-url URL [--workers N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PROTO = "protos/pynenc/sidecar/v1/deterministic_executor.proto"
CALL = "pynenc.sidecar.v1.DeterministicExecutorService.Random"
GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz@v0.121.0"
VARIANTS = ["sync", "aio", "product"]
APP_ID = "bench"


# --------------------------------------------------------------------------------------------
# The minimal servers (run in a child process)
# --------------------------------------------------------------------------------------------
def _common():
    from pynenc_sidecar.core import derivations
    from pynenc_sidecar.core.errors import SidecarError, Unavailable
    from pynenc_sidecar.core.positions import Kind
    from pynenc_sidecar.service.deterministic_executor import DeterministicExecutorServicer
    from pynenc_sidecar.service.errors import to_status
    from pynenc_sidecar.service.validation import Limits
    from pynenc_sidecar.storage.redis.keys import workflow_tag
    from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
    from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc

    return (derivations, SidecarError, Unavailable, Kind, DeterministicExecutorServicer, to_status, Limits,
            workflow_tag, de, de_grpc)


SERVER_OPTIONS = [("grpc.so_reuseport", 0)]
REDIS_OPTIONS = dict(decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=0)


def serve_sync(port: int, redis_url: str, workers: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    import redis
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from redis import exceptions as redis_errors

    derivations, SidecarError, Unavailable, Kind, Product, to_status, Limits, workflow_tag, de, de_grpc = _common()
    from pynenc_sidecar.storage.redis.connection import load_script

    class SyncRandom(de_grpc.DeterministicExecutorServiceServicer):
        _position = Product._position  # the product's validation, unchanged

        def __init__(self) -> None:
            self.limits = Limits()
            self.client = redis.Redis.from_url(redis_url, max_connections=max(64, 2 * workers), **REDIS_OPTIONS)
            self._record = self.client.register_script(load_script("record.lua"))

        def Random(self, request, context):
            try:
                app_id, _, pos = self._position(request.position, request.HasField("position"), Kind.RANDOM)
                value = repr(derivations.random_value(pos.scope, pos.sequence))
                try:
                    stored, replayed = self._record(keys=[workflow_tag(app_id, pos.workflow_id) + ":ops"],
                                                    args=[pos.field, pos.count_field, value])
                except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                    raise Unavailable(f"redis unavailable: {exc.__class__.__name__}") from exc
            except SidecarError as error:
                context.abort_with_status(to_status(error))
            return de.RandomResponse(value=float(stored), replayed=bool(replayed))

    server = grpc.server(ThreadPoolExecutor(max_workers=workers), options=SERVER_OPTIONS)
    de_grpc.add_DeterministicExecutorServiceServicer_to_server(SyncRandom(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise OSError(f"cannot bind 127.0.0.1:{port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(1))
    server.wait_for_termination()


def serve_aio(port: int, redis_url: str) -> None:
    import asyncio

    import grpc
    import redis.asyncio as aioredis
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from redis import exceptions as redis_errors

    derivations, SidecarError, Unavailable, Kind, Product, to_status, Limits, workflow_tag, de, de_grpc = _common()
    from pynenc_sidecar.storage.redis.connection import load_script

    class AioRandom(de_grpc.DeterministicExecutorServiceServicer):
        _position = Product._position

        def __init__(self) -> None:
            self.limits = Limits()
            # the product's RedisStore settings
            self.client = aioredis.Redis.from_url(redis_url, max_connections=256, **REDIS_OPTIONS)
            self._record = self.client.register_script(load_script("record.lua"))

        async def Random(self, request, context):
            try:
                app_id, _, pos = self._position(request.position, request.HasField("position"), Kind.RANDOM)
                value = repr(derivations.random_value(pos.scope, pos.sequence))
                try:
                    stored, replayed = await self._record(keys=[workflow_tag(app_id, pos.workflow_id) + ":ops"],
                                                          args=[pos.field, pos.count_field, value])
                except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                    raise Unavailable(f"redis unavailable: {exc.__class__.__name__}") from exc
            except SidecarError as error:
                await context.abort_with_status(to_status(error))
            return de.RandomResponse(value=float(stored), replayed=bool(replayed))

    async def main() -> None:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        de_grpc.add_DeterministicExecutorServiceServicer_to_server(AioRandom(), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
            raise OSError(f"cannot bind 127.0.0.1:{port}")
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(1)

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------
class MinimalServer:
    """A minimal server child process, shaped like tests/support.SidecarServer."""

    def __init__(self, mode: str, redis_url: str, workers: int) -> None:
        from support import free_port

        self.mode, self.redis_url, self.workers = mode, redis_url, workers
        self.port = free_port()
        self.log_path = tempfile.mktemp(prefix=f"psc-bench-{mode}-", suffix=".log")
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> MinimalServer:
        from support import wait_until

        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "_serve", self.mode, "--port", str(self.port),
             "--redis-url", self.redis_url, "--workers", str(self.workers)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        wait_until(self.serving, 20, f"{self.mode} server on {self.address} (log: {self.log_path})")
        return self

    def serving(self) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        if self.process and self.process.poll() is not None:
            raise RuntimeError(
                f"{self.mode} server exited with {self.process.returncode}: {Path(self.log_path).read_text()}"
            )
        try:
            with grpc.insecure_channel(self.address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def find_or_install_ghz() -> str:
    gopath = (
        subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True).stdout.strip()
        if shutil.which("go")
        else ""
    )
    candidates = [shutil.which("ghz"), os.path.join(gopath, "bin", "ghz") if gopath else None,
                  os.path.expanduser("~/go/bin/ghz")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if not shutil.which("go"):
        raise SystemExit("ghz not found and Go is not installed: install ghz (https://ghz.sh) or Go")
    print(f"ghz not found: installing {GHZ_MODULE} with `go install` (about a minute) ...", flush=True)
    subprocess.run(["go", "install", "-v", GHZ_MODULE], check=True)  # go prints its progress to stderr
    path = os.path.join(gopath or os.path.expanduser("~/go"), "bin", "ghz")
    print(f"installed {path}", flush=True)
    return path


def proto_include() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).resolve().parent / "_proto")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ghz(ghz: str, address: str, workflow_id: str, concurrency: int, seconds: float, cpus: int) -> dict:
    data = json.dumps({"position": {"app_id": APP_ID, "workflow": {"workflow_id": workflow_id},
                                    "sequence": "{{add .RequestNumber 1}}"}})
    cmd = [ghz, "--insecure", "--proto", PROTO, "--import-paths", f"protos,{proto_include()}", "--call", CALL,
           "-d", data, "-c", str(concurrency), "--connections", "1", "-z", f"{seconds}s", "--duration-stop", "wait",
           "-t", "10s", "--cpus", str(cpus), "-O", "json", address]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"ghz failed ({result.returncode}): {result.stderr.strip()}")
    return json.loads(result.stdout)


def summarize_ghz(report: dict) -> dict:
    codes = report.get("statusCodeDistribution") or {}
    ok = codes.get("OK", 0)
    lat = {int(p["percentage"]): p["latency"] / 1e6 for p in (report.get("latencyDistribution") or [])}
    return {
        "count": report["count"], "ok": ok, "errors": report["count"] - ok,
        "rps": ok / (report["total"] / 1e9) if report["total"] else 0.0,
        "p50_ms": lat.get(50, float("nan")), "p99_ms": lat.get(99, float("nan")),
        "error_distribution": report.get("errorDistribution") or {},
    }


def machine_info() -> dict:
    import grpc
    import redis

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "grpcio": grpc.__version__, "redis_py": redis.__version__, "loadavg_at_start": os.getloadavg()}


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def bench(args: argparse.Namespace) -> int:
    import redis

    from pynenc_sidecar.core.positions import Kind, Position
    from pynenc_sidecar.storage.redis.keys import workflow_tag
    from support import RedisServer, SidecarServer

    concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    ghz = find_or_install_ghz()
    started: list = []
    runs: list[dict] = []
    info = machine_info()
    clean = False
    try:
        redis_server = RedisServer().start()
        started.append(redis_server)
        print(f"redis-server pid {redis_server.process.pid} on port {redis_server.port}", flush=True)
        servers = {
            "sync": MinimalServer("sync", redis_server.url, args.workers),
            "aio": MinimalServer("aio", redis_server.url, args.workers),
            "product": SidecarServer(redis_server.url),
        }
        for name, server in servers.items():
            started.append(server)
            server.start()
            print(f"{name:8s} pid {server.process.pid} on {server.address}", flush=True)
        check = redis.Redis.from_url(redis_server.url, decode_responses=True)
        stamp = time.strftime("%H%M%S")

        def one(variant: str, c: int, label: str, seconds: float) -> dict:
            server = servers[variant]
            workflow_id = f"{label}-{variant}-c{c}-{stamp}"
            cpu0 = cpu_seconds(server.process.pid)
            report = run_ghz(ghz, server.address, workflow_id, c, seconds, args.ghz_cpus)
            cpu = cpu_seconds(server.process.pid) - cpu0
            row = summarize_ghz(report)
            pos = Position(workflow_id, workflow_id, Kind.RANDOM, "", 1)
            recorded = int(check.hget(workflow_tag(APP_ID, workflow_id) + ":ops", pos.count_field) or 0)
            row.update(variant=variant, concurrency=c, label=label, recorded=recorded,
                       server_cpu_us_per_call=(cpu * 1e6 / row["ok"]) if row["ok"] else float("nan"))
            if recorded != row["ok"]:
                print(
                    f"  WARNING {variant} c={c}: redis recorded {recorded} values, ghz got {row['ok']} OK", flush=True
                )
            return row

        print(f"warm-up: {args.warmup}s per variant at c=16", flush=True)
        for variant in VARIANTS:
            one(variant, 16, "warmup", args.warmup)

        total = args.rounds * len(concurrency) * len(VARIANTS)
        print(f"{total} runs of {args.seconds}s ({args.rounds} rounds x {len(concurrency)} concurrencies x "
              f"{len(VARIANTS)} variants), interleaved", flush=True)
        for r in range(args.rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            for c in concurrency:
                for variant in order:
                    row = one(variant, c, f"r{r}", args.seconds)
                    row["round"] = r
                    runs.append(row)
                    print(
                        f"  round {r} c={c:<3d} {variant:8s} {row['rps']:8.0f} rps  p50 {row['p50_ms']:6.2f} ms  "
                        f"p99 {row['p99_ms']:6.2f} ms  errors {row['errors']}  "
                        f"cpu {row['server_cpu_us_per_call']:.0f} us/call",
                        flush=True,
                    )
        clean = True
    finally:
        for process in reversed(started):
            process.stop()
        for process in started:
            if isinstance(process, RedisServer):
                process.cleanup()
            elif clean:  # server logs are kept only when the run failed
                Path(process.log_path).unlink(missing_ok=True)

    summary = []
    for c in concurrency:
        for variant in VARIANTS:
            rows = [row for row in runs if row["variant"] == variant and row["concurrency"] == c]
            summary.append({
                "variant": variant, "concurrency": c, "rounds": len(rows),
                "rps": median([row["rps"] for row in rows]),
                "p50_ms": median([row["p50_ms"] for row in rows]),
                "p99_ms": median([row["p99_ms"] for row in rows]),
                "errors": sum(row["errors"] for row in rows),
                "server_cpu_us_per_call": median([row["server_cpu_us_per_call"] for row in rows]),
            })
    ratios = []
    for c in concurrency:
        for variant in ("sync", "product"):
            per_round = []
            for r in range(args.rounds):
                a = next(
                    row for row in runs if row["round"] == r and row["concurrency"] == c and row["variant"] == variant
                )
                b = next(
                    row for row in runs if row["round"] == r and row["concurrency"] == c and row["variant"] == "aio"
                )
                per_round.append((a["rps"] / b["rps"], a["p99_ms"] / b["p99_ms"],
                                  a["server_cpu_us_per_call"] / b["server_cpu_us_per_call"]))
            ratios.append({"variant": variant, "vs": "aio", "concurrency": c,
                           "rps_ratio": median([x[0] for x in per_round]),
                           "p99_ratio": median([x[1] for x in per_round]),
                           "cpu_per_call_ratio": median([x[2] for x in per_round]),
                           "rps_ratio_per_round": [x[0] for x in per_round]})

    print()
    print(
        f"Random RPC, loopback, {info['cpus']} cpus ({info['cpu_model']}), "
        f"{args.seconds}s x {args.rounds} rounds, medians"
    )
    header = (
        f"{'variant':8s} {'conc':>4s} {'RPS':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s} {'srv cpu us/call':>16s}"
    )
    print(header)
    print("-" * len(header))
    for row in summary:
        print(
            f"{row['variant']:8s} {row['concurrency']:4d} {row['rps']:8.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{row['errors']:6d} {row['server_cpu_us_per_call']:16.0f}"
        )
    print()
    print("ratios vs aio (median of per-round ratios):")
    for row in ratios:
        print(
            f"  {row['variant']:8s} c={row['concurrency']:<3d} RPS x{row['rps_ratio']:.2f}  "
            f"p99 x{row['p99_ratio']:.2f}  "
            f"cpu/call x{row['cpu_per_call_ratio']:.2f}"
        )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info["loadavg_at_end"] = os.getloadavg()
    out.write_text(json.dumps({
        "machine": info,
        "params": {"seconds": args.seconds, "rounds": args.rounds, "concurrency": concurrency, "workers": args.workers,
                   "ghz": ghz, "ghz_cpus": args.ghz_cpus, "connections": 1, "call": CALL},
        "summary": summary, "ratios": ratios, "runs": runs,
    }, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        parser = argparse.ArgumentParser(prog="transport_choice.py _serve")
        parser.add_argument("mode", choices=["sync", "aio"])
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--redis-url", required=True)
        parser.add_argument("--workers", type=int, default=32)
        a = parser.parse_args(argv[1:])
        if a.mode == "sync":
            serve_sync(a.port, a.redis_url, a.workers)
        else:
            serve_aio(a.port, a.redis_url)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each ghz run")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated ghz concurrency levels")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are over these)")
    parser.add_argument("--workers", type=int, default=32, help="thread pool size of the sync server")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per variant")
    parser.add_argument("--ghz-cpus", type=int, default=1, help="cores ghz may use (GOMAXPROCS)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/transport_choice.json"))
    args = parser.parse_args(argv)
    return bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
