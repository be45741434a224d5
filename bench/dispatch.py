"""Dispatched tasks against inline ones, measured side by side in one run (issue 16).

    .venv/bin/python bench/dispatch.py [--quick] [--store redis|sqlite] [--calls N] [--tasks N]

Starts its own redis-server (for --store redis) and sidecar on free loopback ports, then:
  overhead    one workflow calls `orders.process_payment` N times, inline (the caller runs the
              task) and dispatched (a worker process of concurrency 1 runs it), alternating in
              rounds so both see the same machine; per-call latency p50 / p99 and their ratio.
  throughput  for each language whose worker is available, 4 worker processes (concurrency 1
              each) serve its task; M invocations are queued by 8 callers and
              waited for; dispatched tasks/s from the first call to the last outcome.
Workers: the polyglot example's (docs/client-contract.md, "Dispatch"): Python
examples/polyglot/python_worker.py (both tasks), Go sdk/go/examples/payment_worker
(orders.process_payment), Java sdk/java's org.pynenc.sidecar.examples.PolyglotWorker
(orders.process_payment; the jar is built when missing or stale), TypeScript
sdk/ts/examples/inventory_worker.ts (orders.reserve_inventory; built here with sdk/ts's tsc). A
worker whose toolchain is missing is listed as not measured. Prints markdown tables; stops every
process it started by its PID. --quick: tiny sizes (a smoke test, not a benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples" / "polyglot"))

from pynenc_sidecar_proto.v1 import common_pb2  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc  # noqa: E402
from pynenc_sidecar_sdk import Pynenc  # noqa: E402
from pynenc_sidecar_sdk.runner import duration  # noqa: E402
from support import RedisServer, SidecarServer  # noqa: E402

TASK = "orders.process_payment"
FINAL = {common_pb2.INVOCATION_STATUS_SUCCESS, common_pb2.INVOCATION_STATUS_FAILED}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


PAYMENT, INVENTORY = "orders.process_payment", "orders.reserve_inventory"
ARGUMENTS = {PAYMENT: lambda seq: {"order_id": f"o-{seq}"},
             INVENTORY: lambda seq: {"order_data": {"order_id": f"o-{seq}", "items": [{"sku": "s", "quantity": 1}]}}}


def worker_commands() -> list[tuple[str, str, object]]:
    """(language, task id, a function (address, app id) -> (command serving it with
    concurrency 1, cwd) or the reason it is missing), for the polyglot example's workers."""
    python = str(ROOT / "examples/polyglot/python_worker.py")
    rows: list[tuple[str, str, object]] = [
        ("python", task, lambda address, app_id, task=task: (
            [sys.executable, python, "--concurrency", "1", "--tasks", task], ROOT)) for task in (PAYMENT, INVENTORY)]
    if not (ROOT / "sdk/go/examples/payment_worker").is_dir():
        rows.append(("go", PAYMENT, "sdk/go/examples/payment_worker is not in this tree"))
    elif shutil.which("go") is None:
        rows.append(("go", PAYMENT, "go is not installed"))
    else:
        binary = Path(tempfile.mkdtemp(prefix="psc-bench-go-")) / "payment_worker"
        subprocess.run(["go", "build", "-o", str(binary), "./examples/payment_worker"], cwd=ROOT / "sdk/go",
                       check=True)
        rows.append(("go", PAYMENT, lambda address, app_id: (
            [str(binary), "-address", address, "-app", app_id, "-concurrency", "1"], ROOT / "sdk/go")))
    rows.append(("java", PAYMENT, java_worker_command()))
    ts_dir = ROOT / "sdk/ts"
    tsc = ts_dir / "node_modules/.bin/tsc"
    if shutil.which("node") is None:
        rows.append(("typescript", INVENTORY, "node is not installed"))
    elif not tsc.exists():
        rows.append(("typescript", INVENTORY, "sdk/ts's packages are not installed (cd sdk/ts && npm ci)"))
    else:
        subprocess.run([str(tsc), "-p", "tsconfig.json"], cwd=ts_dir, check=True)
        entry = ts_dir / "dist/examples/inventory_worker.js"
        rows.append(("typescript", INVENTORY, lambda address, app_id: (
            [shutil.which("node") or "node", str(entry), "--address", address, "--app", app_id,
             "--concurrency", "1"], ts_dir)))
    return rows


JAVA_DIR = ROOT / "sdk/java"
JAVA_JAR = JAVA_DIR / "target/pynenc-sidecar-client.jar"


def java_worker_command():
    """The Java worker (sdk/java's PolyglotWorker) as worker_commands() lists it; its jar is
    built (`mvn package`, tests skipped) when missing or older than the SDK's sources."""
    if shutil.which("java") is None:
        return "java is not installed"
    sources = [JAVA_DIR / "pom.xml", *(JAVA_DIR / "src").rglob("*.java"), *(ROOT / "protos").rglob("*.proto")]
    if not JAVA_JAR.is_file() or max(path.stat().st_mtime for path in sources) > JAVA_JAR.stat().st_mtime:
        if shutil.which("mvn") is None:
            return "mvn is not installed and sdk/java/target/pynenc-sidecar-client.jar is missing or stale"
        subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "-DskipTests", "package"], cwd=JAVA_DIR,
                       check=True)
    return lambda address, app_id: (
        ["java", "-cp", str(JAVA_JAR), "org.pynenc.sidecar.examples.PolyglotWorker", "--address", address, "--app",
         app_id, "--concurrency", "1", "--tasks", PAYMENT], JAVA_DIR)


class Workers:
    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def start(self, command: list[str], cwd: Path, env: dict[str, str], count: int) -> None:
        for _ in range(count):
            self.processes.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def overhead(address: str, env: dict[str, str], calls: int, rounds: int) -> dict[str, list[float]]:
    """Per-call latency (ms) of the same task, inline and dispatched, in alternating rounds."""
    app_id = "bench-overhead-" + uuid.uuid4().hex[:6]
    app = Pynenc(app_id=app_id, address=address)

    @app.task(task_id=TASK + ".inline")
    def inline(order_id: str) -> dict:  # the work of examples/polyglot/python_worker.py
        return {"payment_id": inline.wf.uuid(), "processed_at": inline.wf.utc_now().isoformat()}

    dispatched = app.remote_task(TASK, params=["order_id"])
    samples: dict[str, list[float]] = {"inline": [], "dispatched": []}

    def calls_of(kind: str) -> None:
        task = inline if kind == "inline" else dispatched
        for index in range(calls):
            start = time.perf_counter()
            _ = task(f"o-{index}").result
            samples[kind].append((time.perf_counter() - start) * 1000)

    @app.task(task_id="bench.inline_workflow")
    def inline_workflow() -> None:
        calls_of("inline")

    @app.task(task_id="bench.dispatched_workflow")
    def dispatched_workflow() -> None:
        calls_of("dispatched")

    workers = Workers()
    workers.start([sys.executable, str(ROOT / "examples/polyglot/python_worker.py"), "--concurrency", "1",
                   "--tasks", TASK], ROOT, {**env, "PYNENC_APP_ID": app_id}, 1)
    try:
        time.sleep(1.5)  # the worker's first poll
        for _ in range(rounds):
            inline_workflow.run_workflow(uuid.uuid4().hex)
            dispatched_workflow.run_workflow(uuid.uuid4().hex)
    finally:
        workers.stop()
    return samples


def throughput(address: str, env: dict[str, str], task: str, command_for, tasks: int) -> float:
    """Dispatched tasks/s with 4 workers (concurrency 1 each) of one language."""
    app_id = "bench-throughput-" + uuid.uuid4().hex[:6]
    command, cwd = command_for(address, app_id)
    channel = grpc.insecure_channel(address)
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    workers = Workers()
    workers.start(command, cwd, {**env, "PYNENC_APP_ID": app_id}, 4)
    try:
        # Warm-up: one task through, so every worker is polling before the clock starts.
        warm = _call(stub, app_id, task, "warm-" + uuid.uuid4().hex, 1)
        _wait(stub, app_id, warm)
        time.sleep(1.0)
        workflow_id = "tp-" + uuid.uuid4().hex
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda seq: _call(stub, app_id, task, workflow_id, seq), range(1, tasks + 1)))
            list(pool.map(lambda invocation_id: _wait(stub, app_id, invocation_id), ids))
        return tasks / (time.perf_counter() - start)
    finally:
        workers.stop()
        channel.close()


def _call(stub, app_id: str, task: str, workflow_id: str, sequence: int) -> str:
    reply = stub.ExecuteTask(de.ExecuteTaskRequest(
        position=de.OperationPosition(app_id=app_id, workflow=common_pb2.WorkflowIdentity(workflow_id=workflow_id),
                                      sequence=sequence),
        task_id=task, arguments_json=json.dumps(ARGUMENTS[task](sequence)), dispatch=de.TaskDispatch()))
    return reply.invocation.invocation_id


def _wait(stub, app_id: str, invocation_id: str) -> None:
    while True:
        reply = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=invocation_id, timeout=duration(10)))
        if reply.invocation.status in FINAL:
            assert reply.invocation.status == common_pb2.INVOCATION_STATUS_SUCCESS, reply.invocation.error
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store", choices=["redis", "sqlite"], default="redis")
    parser.add_argument("--calls", type=int, default=200, help="task calls per overhead round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000, help="invocations per throughput run")
    parser.add_argument("--languages", default=None,
                        help="the throughput rows to measure, comma-separated (default: every language)")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds, args.tasks = 10, 1, 20
    redis = RedisServer().start() if args.store == "redis" else None
    data_dir = tempfile.mkdtemp(prefix="psc-bench-dispatch-")
    server = SidecarServer(redis.url if redis else None, data_file=None if redis else f"{data_dir}/bench.db").start()
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": server.address}
    load_at_start = os.getloadavg()[0]
    try:
        samples = overhead(server.address, env, args.calls, args.rounds)
        inline, dispatched = samples["inline"], samples["dispatched"]
        print(f"## Dispatched vs inline task ({args.store}, {len(inline)} calls each, {args.rounds} alternating "
              "rounds, one worker of concurrency 1)\n")
        print("| task call | p50 ms | p99 ms |\n|---|---|---|")
        for name, values in (("inline", inline), ("dispatched", dispatched)):
            print(f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} |")
        print(f"| dispatched / inline | {percentile(dispatched, 0.5) / percentile(inline, 0.5):.2f}x | "
              f"{percentile(dispatched, 0.99) / percentile(inline, 0.99):.2f}x |")
        print(f"\nmean inline {statistics.mean(inline):.2f} ms, dispatched {statistics.mean(dispatched):.2f} ms\n")
        print(f"## Dispatched tasks/s, 4 workers of concurrency 1 per language ({args.store}, {args.tasks} "
              "invocations, 8 callers)\n")
        print("| language | task | tasks/s |\n|---|---|---|")
        languages = args.languages.split(",") if args.languages else None
        for language, task, found in worker_commands():
            if languages is not None and language not in languages:
                continue
            if isinstance(found, str):
                print(f"| {language} | {task} | not measured: {found} |")
                continue
            rate = throughput(server.address, env, task, found, args.tasks)
            print(f"| {language} | {task} | {rate:.0f} |", flush=True)
        print(f"\n{os.cpu_count()} CPUs; load average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    finally:
        server.stop()
        if redis:
            redis.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
