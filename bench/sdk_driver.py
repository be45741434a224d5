"""The sidecar side of the comparisons: the Python SDK, driven one worker at a time.

Run by bench/run.py in the project venv with PYNENC_SIDECAR_ADDRESS set; prints one JSON
object on stdout. Modes (the Pynenc side, bench/pynenc_driver.py, has the same ones):

    record  --ops N --workflows W --redis-url URL
        Records N operations in each of W fresh workflows with `run_workflow` (one worker, in
        sequence: StartWorkflow, the operations buffered and committed every 1,000 and with
        the CompleteTask), timing every operation and every whole workflow; reports Redis
        `used_memory` and key count before and after (run.py empties the Redis first).
    replay  --ops N --repeats R
        Records one N-operation workflow with `run_workflow`, then replays it R times: with
        `run_workflow` (StartWorkflow of the finished workflow: its outcome, none of its code runs) and
        with the DeterministicExecutor on the workflow's log, running the code (Pynenc's driver does that).
    order-rpcs
        Calls to the sidecar, by RPC, of one fresh process_order_workflow and of its replay.
    order-worker --barrier DIR --name I --duration D
        One of the concurrent workers of scenario (e): warms up, then (all together, see
        run.py) runs the seed's process_order_workflow under fresh ids for D seconds; reports
        each workflow's latency.

The operation mix is the same on both sides: random, uuid, utc_now, custom, in turn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from pynenc_sidecar_sdk import Pynenc  # noqa: E402
from pynenc_sidecar_sdk.context import RunContext, WorkflowIdentity, WorkflowLog  # noqa: E402
from pynenc_sidecar_sdk.workflow import DeterministicExecutor  # noqa: E402

KINDS = ("random", "uuid", "utc_now", "custom")
app = Pynenc(app_id=os.environ.get("PSC_BENCH_APP_ID", "bench"))


def operation(executor, i: int):
    kind = i % 4
    if kind == 0:
        return executor.random()
    if kind == 1:
        return executor.uuid()
    if kind == 2:
        return executor.utc_now()
    return executor._deterministic_operation("bench", lambda: {"i": i})


@app.task
def ops_workflow(n: int) -> int:
    """A workflow of n deterministic operations (the mix above), through `task.wf`."""
    executor = ops_workflow.wf.deterministic
    for i in range(n):
        operation(executor, i)
    return n


def redis_memory(url: str | None) -> dict:
    if not url:
        return {}
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {"used_memory": int(client.info("memory")["used_memory"]), "keys": int(client.dbsize())}
    finally:
        client.close()


TIMES: list[int] = []  # the per-operation times of timed_workflow's current run


@app.task
def timed_workflow(n: int) -> int:
    """ops_workflow, timing each operation (a buffered one, or one that commits the buffer)."""
    executor = timed_workflow.wf.deterministic
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        operation(executor, i)
        TIMES.append(clock() - t0)
    return n


def direct_executor(workflow_id: str, log: WorkflowLog | None = None) -> DeterministicExecutor:
    identity = WorkflowIdentity(workflow_id, "bench_driver.ops")
    return DeterministicExecutor(RunContext(app, identity, workflow_id, log or WorkflowLog()))


def mode_record(args: argparse.Namespace) -> dict:
    stamp = uuid.uuid4().hex[:8]
    timed_workflow.run_workflow(f"warm-{stamp}", 8)  # connections up, scripts loaded, before the first snapshot
    before = redis_memory(args.redis_url)
    per_kind: dict[str, list[int]] = {k: [] for k in KINDS}
    latencies: list[int] = []
    walls: list[float] = []
    started = time.perf_counter()
    for w in range(args.workflows):
        TIMES.clear()
        t0 = time.perf_counter()
        timed_workflow.run_workflow(f"rec-{stamp}-{w}", args.ops)
        walls.append(time.perf_counter() - t0)
        latencies += TIMES
        for i, elapsed in enumerate(TIMES):
            per_kind[KINDS[i % 4]].append(elapsed)
    wall = time.perf_counter() - started
    after = redis_memory(args.redis_url)
    return {"ops": args.ops * args.workflows, "workflows": args.workflows, "wall_s": wall, "workflow_walls_s": walls,
            "latencies_ns": latencies, "per_kind_ns": per_kind, "memory_before": before, "memory_after": after}


def mode_replay(args: argparse.Namespace) -> dict:
    workflow_id = f"replay-{uuid.uuid4().hex[:8]}"
    warm = direct_executor(f"warm-{workflow_id}")
    for i in range(8):
        operation(warm, i)
    t0 = time.perf_counter()
    first = ops_workflow.run_workflow(workflow_id, args.ops)
    record_s = time.perf_counter() - t0
    assert not first.replayed and first.result == args.ops
    full, direct = [], []
    identity = WorkflowIdentity(workflow_id, ops_workflow.task_id)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        again = ops_workflow.run_workflow(workflow_id, args.ops)
        full.append(time.perf_counter() - t0)
        assert again.replayed and again.result == args.ops
        t0 = time.perf_counter()
        executor = direct_executor(workflow_id, app.read_log(identity))
        for i in range(args.ops):
            operation(executor, i)
        direct.append(time.perf_counter() - t0)
    return {"ops": args.ops, "record_s": record_s, "replay_full_s": full, "replay_direct_s": direct}


def mode_order_rpcs(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT / "examples"))
    import seed_workflows

    workflow = seed_workflows.process_order_workflow
    client = workflow.app.client
    calls: dict[str, int] = {}
    call, stream = client.call, client.stream

    def counted_call(method, request, timeout=None):
        name = type(request).__name__.removesuffix("Request")
        calls[name] = calls.get(name, 0) + 1
        return call(method, request, timeout)

    def counted_stream(method, request):
        name = type(request).__name__.removesuffix("Request")
        calls[name] = calls.get(name, 0) + 1
        return stream(method, request)

    client.call, client.stream = counted_call, counted_stream
    workflow_id = f"order-rpcs-{uuid.uuid4().hex[:8]}"
    workflow.run_workflow(workflow_id, "R-1")
    first = dict(calls)
    calls.clear()
    workflow.run_workflow(workflow_id, "R-1")
    return {"first_run": first, "replay": dict(calls)}


def mode_order_worker(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT / "examples"))
    import seed_workflows  # its app reads PYNENC_SIDECAR_ADDRESS

    workflow = seed_workflows.process_order_workflow
    prefix = f"order-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    for i in range(args.warmup):
        workflow.run_workflow(f"{prefix}-warm-{i}", f"W-{i}")
    # Start together: say ready, wait for run.py's "go" file (it holds the common start time).
    barrier = Path(args.barrier)
    (barrier / f"ready-{args.name}").touch()
    go = barrier / "go"
    while not go.exists():
        time.sleep(0.002)
    start_at = float(go.read_text())
    time.sleep(max(0.0, start_at - time.time()))
    late = time.time() - start_at
    cpu0 = time.process_time()
    end = start_at + args.duration
    latencies: list[float] = []
    errors = 0
    n = 0
    while time.time() < end:
        n += 1
        t0 = time.perf_counter()
        try:
            result = workflow.run_workflow(f"{prefix}-{n}", f"A-{n}").result
            assert result["payment_status"]["status"] == "completed", result
        except Exception as exc:  # counted and reported; the run goes on
            errors += 1
            print(f"order-worker: {exc!r}", file=sys.stderr)
            continue
        latencies.append(time.perf_counter() - t0)
    return {"completed": len(latencies), "errors": errors, "latencies_s": latencies,
            "window_s": time.time() - start_at, "late_s": late, "cpu_s": time.process_time() - cpu0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    record = sub.add_parser("record")
    record.add_argument("--ops", type=int, required=True)
    record.add_argument("--workflows", type=int, default=1)
    record.add_argument("--redis-url")
    replay = sub.add_parser("replay")
    replay.add_argument("--ops", type=int, required=True)
    replay.add_argument("--repeats", type=int, default=5)
    sub.add_parser("order-rpcs")
    worker = sub.add_parser("order-worker")
    worker.add_argument("--barrier", required=True, help="directory shared with run.py to start together")
    worker.add_argument("--name", required=True)
    worker.add_argument("--duration", type=float, required=True)
    worker.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    result = {"record": mode_record, "replay": mode_replay, "order-worker": mode_order_worker,
              "order-rpcs": mode_order_rpcs}[args.mode](args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
