"""The Pynenc side of the comparisons: Pynenc 0.4.0's own DeterministicExecutor on pynenc-redis.

Run by bench/run.py with the Python 3.12 venv bench/.venv-pynenc (pynenc==0.4.0,
pynenc-redis==0.3.0); prints one JSON object on stdout. The app is built as Pynenc's docs
show, `PynencBuilder().app_id(...).redis(url=...).build()`, so its state backend is
pynenc-redis's RedisStateBackend (default serializer: JsonPickle) on the same Redis as the
sidecar. The executor is driven directly for a workflow identity, which is what a Pynenc
workflow task does under `task.wf` (pynenc/workflow/workflow_deterministic.py) minus the
runner: the comparison leaves out Pynenc's task machinery, in Pynenc's favour.

Modes and output match bench/sdk_driver.py:
    record --ops N --workflows W    (latency of each operation; Redis memory before/after)
    replay --ops N --repeats R      (record once, then R replays with a fresh executor)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from pynenc.builder import PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.workflow.workflow_deterministic import DeterministicExecutor
from pynenc.workflow.workflow_identity import WorkflowIdentity

KINDS = ("random", "uuid", "utc_now", "custom")


def operation(executor: DeterministicExecutor, i: int):
    kind = i % 4
    if kind == 0:
        return executor.random()
    if kind == 1:
        return executor.uuid()
    if kind == 2:
        return executor.utc_now()
    return executor._deterministic_operation("bench", lambda: {"i": i})


def build_app(redis_url: str, app_id: str):
    return PynencBuilder().app_id(app_id).redis(url=redis_url).build()


def executor_for(app, workflow_id: str) -> DeterministicExecutor:
    identity = WorkflowIdentity(workflow_id=InvocationId(workflow_id), workflow_type=TaskId("bench_driver", "ops"))
    return DeterministicExecutor(identity, app)


def redis_memory(app) -> dict:
    client = app.state_backend.client
    return {"used_memory": int(client.info("memory")["used_memory"]), "keys": int(client.dbsize())}


def mode_record(app, args: argparse.Namespace) -> dict:
    stamp = uuid.uuid4().hex[:8]
    warm = executor_for(app, f"warm-{stamp}")
    for i in range(8):
        operation(warm, i)
    before = redis_memory(app)
    per_kind: dict[str, list[int]] = {k: [] for k in KINDS}
    latencies: list[int] = []
    started = time.perf_counter()
    for w in range(args.workflows):
        executor = executor_for(app, f"rec-{stamp}-{w}")
        for i in range(args.ops):
            t0 = time.perf_counter_ns()
            operation(executor, i)
            elapsed = time.perf_counter_ns() - t0
            latencies.append(elapsed)
            per_kind[KINDS[i % 4]].append(elapsed)
    wall = time.perf_counter() - started
    after = redis_memory(app)
    return {"ops": args.ops * args.workflows, "workflows": args.workflows, "wall_s": wall,
            "latencies_ns": latencies, "per_kind_ns": per_kind, "memory_before": before, "memory_after": after}


def mode_replay(app, args: argparse.Namespace) -> dict:
    workflow_id = f"replay-{uuid.uuid4().hex[:8]}"
    warm = executor_for(app, f"warm-{workflow_id}")
    for i in range(8):
        operation(warm, i)
    executor = executor_for(app, workflow_id)
    t0 = time.perf_counter()
    recorded = [operation(executor, i) for i in range(args.ops)]
    record_s = time.perf_counter() - t0
    replays = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        executor = executor_for(app, workflow_id)
        values = [operation(executor, i) for i in range(args.ops)]
        replays.append(time.perf_counter() - t0)
        assert values == recorded, "Pynenc replay diverged"
    return {"ops": args.ops, "record_s": record_s, "replay_direct_s": replays}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--app-id", default="benchpynenc")
    sub = parser.add_subparsers(dest="mode", required=True)
    record = sub.add_parser("record")
    record.add_argument("--ops", type=int, required=True)
    record.add_argument("--workflows", type=int, default=1)
    replay = sub.add_parser("replay")
    replay.add_argument("--ops", type=int, required=True)
    replay.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    app = build_app(args.redis_url, args.app_id)
    result = {"record": mode_record, "replay": mode_replay}[args.mode](app, args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
