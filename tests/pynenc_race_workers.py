"""Two Pynenc worker processes racing one workflow's deterministic steps; run with the
.venv-pynenc interpreter by tests/test_pynenc_plugin.py and scripts/measure_pynenc_executor.py.

    python tests/pynenc_race_workers.py sidecar APP_ID WORKFLOW_ID        (the plugin, at $PYNENC_SIDECAR_ADDRESS)
    python tests/pynenc_race_workers.py pynenc-sqlite APP_ID WORKFLOW_ID DB_PATH   (Pynenc's own SQLite backend)

Each process builds the app and the executor by the name Pynenc's DistributedInvocation looks
up (pynenc.workflow.workflow_deterministic.DeterministicExecutor), then draws random, uuid,
utc_now and a custom operation "draw". The custom generator waits at a barrier of both
processes: each has looked for a recorded value before either records one, the interleaving
under which get-then-set diverges. Prints one JSON list, one object per process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sys

BARRIER_TIMEOUT_SEC = 60


def build_app(mode: str, app_id: str, db_path: str | None):
    from pynenc import PynencBuilder

    if mode == "sidecar":
        return PynencBuilder().memory().app_id(app_id).sidecar().build()
    return PynencBuilder().sqlite(db_path).app_id(app_id).build()


def worker(mode: str, app_id: str, workflow_id: str, db_path: str | None, barrier, queue) -> None:
    from pynenc.identifiers.invocation_id import InvocationId
    from pynenc.identifiers.task_id import TaskId
    from pynenc.workflow import WorkflowIdentity

    app = build_app(mode, app_id, db_path)
    app.state_backend  # noqa: B018  (the app's start loads Pynenc's plugins, which install the executor)
    # Looked up after the app started, as DistributedInvocation does at its first deterministic step.
    from pynenc.workflow.workflow_deterministic import DeterministicExecutor

    workflow = WorkflowIdentity(workflow_id=InvocationId(workflow_id), workflow_type=TaskId("race", "raced_workflow"))
    executor = DeterministicExecutor(workflow, app)

    def draw() -> str:
        barrier.wait(BARRIER_TIMEOUT_SEC)
        return f"{os.getpid()}:{random.random()}"

    barrier.wait(BARRIER_TIMEOUT_SEC)  # start together
    queue.put({"executor": type(executor).__name__, "backend": type(app.state_backend).__name__,
               "random": executor.random(), "uuid": executor.uuid(), "time": executor.utc_now().isoformat(),
               "draw": executor._deterministic_operation("draw", draw)})


def main() -> None:
    mode, app_id, workflow_id = sys.argv[1:4]
    db_path = sys.argv[4] if len(sys.argv) > 4 else None
    if mode == "pynenc-sqlite":  # a fresh app on the shared file
        build_app(mode, app_id, db_path).purge()
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [context.Process(target=worker, args=(mode, app_id, workflow_id, db_path, barrier, queue))
               for _ in range(2)]
    for process in workers:
        process.start()
    results = [queue.get(timeout=3 * BARRIER_TIMEOUT_SEC) for _ in workers]
    for process in workers:
        process.join(BARRIER_TIMEOUT_SEC)
        if process.exitcode != 0:
            sys.exit(f"a worker exited with {process.exitcode}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
