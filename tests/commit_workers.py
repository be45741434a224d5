"""A worker process for tests/test_batched_commits.py: one workflow whose main task buffers
operations, passes one blocking point, buffers more, and then (by PSC_COMMIT_MODE) crashes
before its completion, or stops until told to go on (the test SIGSTOPs it meanwhile, so its
lease lapses and another worker takes the workflow over).

    python commit_workers.py WORKFLOW_ID OUT_JSON
    env: PYNENC_SIDECAR_ADDRESS, PSC_COMMIT_APP, PSC_COMMIT_DIR (journal, ready and go files),
         PSC_COMMIT_MODE ("crash" | "stall" | "" to run through), PSC_COMMIT_ROLE (a name)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pynenc_sidecar_sdk import Pynenc

app = Pynenc(app_id=os.environ.get("PSC_COMMIT_APP", "commit"), lease_ttl=1.0)
DIR = Path(os.environ.get("PSC_COMMIT_DIR", "."))


def journal(entry: str) -> None:
    with open(DIR / "journal", "a") as handle:
        handle.write(f"{entry} {os.environ.get('PSC_COMMIT_ROLE', '?')}\n")


def generated(name: str) -> dict:
    journal(f"generate:{name}")
    return {"name": name, "by": os.environ.get("PSC_COMMIT_ROLE", "?"), "pid": os.getpid()}


@app.task
def commit_flow() -> dict:
    wf = commit_flow.wf
    before = {"random": wf.random(), "uuid": wf.uuid(), "time": wf.utc_now().isoformat(),
              "custom": wf.deterministic._deterministic_operation("first", lambda: generated("first"))}
    wf.set_data("by", before["custom"]["by"])
    wf.get_data("by")  # the blocking point: everything above is committed with this read
    after = {"time": wf.utc_now().isoformat(),
             "custom": wf.deterministic._deterministic_operation("second", lambda: generated("second"))}
    values = {"before": before, "after": after}
    (DIR / f"seen-{os.environ.get('PSC_COMMIT_ROLE', '?')}.json").write_text(json.dumps(values))
    mode = os.environ.get("PSC_COMMIT_MODE", "")
    if mode == "crash":
        os._exit(3)  # no outcome, nothing buffered since the read is committed
    if mode == "stall":
        (DIR / "ready").touch()
        while not (DIR / "go").exists():
            time.sleep(0.02)
    return values


if __name__ == "__main__":
    result = commit_flow.run_workflow(sys.argv[1]).result
    Path(sys.argv[2]).write_text(json.dumps(result))
