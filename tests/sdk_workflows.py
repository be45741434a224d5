"""Workflows the SDK tests run: each task body appends its name to a journal file, so a
test can tell which bodies ran in a given run, and can pause between steps to be killed."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import grpc

from pynenc_sidecar_sdk import Pynenc
from pynenc_sidecar_sdk.errors import SidecarError

app = Pynenc(app_id=os.environ.get("PSC_TEST_APP", "sdk-tests"), lease_ttl=float(os.environ.get("PSC_TEST_LEASE", "2")))


def journal(entry: str) -> None:
    path = os.environ.get("PSC_TEST_JOURNAL")
    if path:
        with open(path, "a") as handle:
            handle.write(entry + "\n")
            handle.flush()
    pause = float(os.environ.get("PSC_TEST_PAUSE", "0"))
    if pause:
        time.sleep(pause)


def crash_point(name: str) -> None:
    """Stop the run here, with no outcome recorded, when PSC_TEST_CRASH names this point:
    what a worker killed here leaves (the task stays RUNNING until its lease lapses)."""
    if os.environ.get("PSC_TEST_CRASH") == name:
        raise SidecarError(f"simulated crash at {name}", grpc.StatusCode.UNAVAILABLE)


@app.task
def charge(order_id: str, amount: float) -> dict:
    journal(f"charge:{order_id}")
    return {"charge_id": charge.wf.uuid(), "amount": amount, "at": charge.wf.utc_now().isoformat()}


@app.task
def ship(order_id: str) -> dict:
    journal(f"ship:{order_id}")
    return {"label": ship.wf.uuid(), "lucky": ship.wf.random()}


@app.task
def fail_always(reason: str) -> None:
    journal("fail_always")
    raise ValueError(reason)


@app.task
def child_writes_data() -> None:
    child_writes_data.wf.set_data("not-mine", 1)


@app.task(force_new_workflow=True)
def order_flow(order_id: str, steps: int = 3) -> dict:
    journal("order_flow")
    values = {"random": [order_flow.wf.random() for _ in range(steps)],
              "uuid": [order_flow.wf.uuid() for _ in range(steps)],
              "time": [order_flow.wf.utc_now().isoformat() for _ in range(steps)],
              "custom": order_flow.wf.deterministic._deterministic_operation("dice", lambda: random.randint(1, 10**9))}
    values["charge"] = order_flow.wf.execute_task(charge, order_id, 9.5).result
    values["ship"] = order_flow.wf.execute_task(ship, order_id).result
    order_flow.wf.set_data("status", "done")
    values["status"] = order_flow.wf.get_data("status")
    crash_point("order_flow")
    return values


@app.task
def visits_flow() -> int:
    """Issue 11, case 2: a read-modify-write of workflow data in the main task."""
    n = (visits_flow.wf.get_data("visits") or 0) + 1
    visits_flow.wf.set_data("visits", n)
    crash_point("visits_flow")
    return n


@app.task
def counter_flow() -> str:
    # Writes a value that depends on the environment: a replay with another is divergent.
    counter_flow.wf.set_data("counter", int(os.environ.get("PSC_TEST_COUNTER", "1")))
    counter_flow.wf.get_data("counter")  # a blocking read: the buffered write is committed with it
    crash_point("counter_flow")
    return "written"


@app.task
def failing_flow() -> dict:
    try:
        failing_flow.wf.execute_task(fail_always, "card declined").result
    except Exception as exc:  # noqa: BLE001 - the test checks what is raised
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}


@app.task
def access_flow() -> str:
    try:
        access_flow.wf.execute_task(child_writes_data).result
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return "no error"


@app.task
def branching_flow(branch: str) -> str:
    # Asks for a different task at position 1 depending on its input: replaying a workflow
    # id with the other branch is non-deterministic.
    task = charge if os.environ.get("PSC_TEST_BRANCH", branch) == "charge" else ship
    args = ("o-1", 1.0) if task is charge else ("o-1",)
    invocation_id = order_flow.wf.execute_task(task, *args).invocation_id
    crash_point("branching_flow")
    return invocation_id


if __name__ == "__main__":
    import json

    result = order_flow.run_workflow(sys.argv[1], sys.argv[2]).result
    Path(sys.argv[3]).write_text(json.dumps(result, sort_keys=True))
