"""Cost per deterministic operation: the plugin's executor (sidecar positions) vs Pynenc
0.4.0's own executor on its in-memory and SQLite backends and on the plugin's backend, side
by side in one run. Run with .venv-pynenc's python, a sidecar at $PYNENC_SIDECAR_ADDRESS:

    .venv-pynenc/bin/python scripts/measure_pynenc_executor.py [--ops 300]

Each row: the median over 3 rounds of the mean time per call, first record (a new workflow)
and replay (a second executor on the same workflow). Loopback, one process, one thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

from pynenc import PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.workflow import WorkflowIdentity

from pynenc_sidecar_plugin import deterministic

OPERATIONS = {
    "random": lambda ex: ex.random(),
    "uuid": lambda ex: ex.uuid(),
    "utc_now": lambda ex: ex.utc_now(),
    "custom": lambda ex: ex._deterministic_operation("custom", lambda: {"n": 1}),
}


def _per_call_us(executor_cls, app, op, count: int) -> tuple[float, float]:
    workflow = WorkflowIdentity(workflow_id=InvocationId(f"wf-{uuid.uuid4().hex}"), workflow_type=TaskId("m", "wf"))
    timings = []
    for _ in range(2):  # first record, then replay
        executor = executor_cls(workflow, app)
        if executor_cls is deterministic.PYNENC_EXECUTOR:
            executor = object.__new__(deterministic.PYNENC_EXECUTOR)
            executor.__init__(workflow, app)
        started = time.perf_counter()
        for _ in range(count):
            OPERATIONS[op](executor)
        timings.append((time.perf_counter() - started) / count * 1e6)
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=300)
    count = parser.parse_args().ops
    sqlite_path = tempfile.mktemp(suffix=".db")
    rows = [
        ("Pynenc's executor, MemStateBackend", deterministic.PYNENC_EXECUTOR, PynencBuilder().memory()),
        ("Pynenc's executor, SQLiteStateBackend", deterministic.PYNENC_EXECUTOR, PynencBuilder().sqlite(sqlite_path)),
        ("Pynenc's executor, SidecarStateBackend", deterministic.PYNENC_EXECUTOR, PynencBuilder().memory().sidecar()),
        ("plugin's executor (positions)", deterministic.SidecarDeterministicExecutor,
         PynencBuilder().memory().sidecar()),
    ]
    print(f"us per call, median of 3 rounds of {count} calls (first record / replay)")
    print(f"{'executor, state backend':42}" + "".join(f"{op:>20}" for op in OPERATIONS))
    for label, executor_cls, builder in rows:
        app = builder.app_id(f"measure.{uuid.uuid4().hex[:8]}").build()
        cells = []
        for op in OPERATIONS:
            rounds = [_per_call_us(executor_cls, app, op, count) for _ in range(3)]
            first = statistics.median(r[0] for r in rounds)
            replay = statistics.median(r[1] for r in rounds)
            cells.append(f"{first:9.0f} / {replay:6.0f}")
        print(f"{label:42}" + "".join(f"{c:>20}" for c in cells), flush=True)
        app.purge()


if __name__ == "__main__":
    main()
