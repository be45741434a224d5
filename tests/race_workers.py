"""A worker process for tests/test_reliability.py's races: many of these replay one workflow
at once. Every task body journals `start`/`end` lines with its pid and a wall-clock time, so
a test can tell who ran what, when, and whether two runs of one task ever overlapped.

    python race_workers.py WORKFLOW_ID OUT_JSON
    env: PYNENC_SIDECAR_ADDRESS, PSC_RACE_APP, PSC_RACE_JOURNAL, PSC_RACE_GO (a file to wait
         for, so that every process starts at once), PSC_RACE_LEASE (s), PSC_RACE_STEP (s)
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from pynenc_sidecar_sdk import Pynenc

app = Pynenc(app_id=os.environ.get("PSC_RACE_APP", "race"), lease_ttl=float(os.environ.get("PSC_RACE_LEASE", "1")))
STEP_SECONDS = float(os.environ.get("PSC_RACE_STEP", "1"))
STEPS = 3


def journal(entry: str) -> None:
    with open(os.environ["PSC_RACE_JOURNAL"], "a") as handle:
        handle.write(f"{entry} {os.getpid()} {time.time():.6f}\n")
        handle.flush()


@app.task
def slow_step(n: int) -> dict:
    journal(f"start:{n}")
    time.sleep(STEP_SECONDS)  # longer than the lease: only its renewals keep it
    result = {"n": n, "by": os.getpid(), "uuid": slow_step.wf.uuid(), "random": slow_step.wf.random()}
    journal(f"end:{n}")
    return result


@app.task(force_new_workflow=True)
def race_flow(order: str) -> dict:
    journal("flow")
    values = {
        "order": order,
        "random": [race_flow.wf.random() for _ in range(3)],
        "uuid": [race_flow.wf.uuid() for _ in range(3)],
        "time": [race_flow.wf.utc_now().isoformat() for _ in range(3)],
        # a different value in every process: only the first recorded one may come back
        "custom": race_flow.wf.deterministic._deterministic_operation("pick", lambda: random.getrandbits(60)),
    }
    values["steps"] = [race_flow.wf.execute_task(slow_step, n).result for n in range(STEPS)]
    return values


if __name__ == "__main__":
    go = Path(os.environ["PSC_RACE_GO"])
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    outcome = race_flow.run_workflow(sys.argv[1], "o-race").result
    Path(sys.argv[2]).write_text(json.dumps(outcome, sort_keys=True))
