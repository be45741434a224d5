"""The Go SDK's dispatch worker and caller (sdk/go/wf/dispatch_test.go, build tag
sidecar_dispatch) against the real sidecar on both stores: a task this process does not serve
runs in a wf.Worker within its concurrency limit and replays without dispatching again; a
worker stopping past its grace hands its task back and the next worker completes it."""

from __future__ import annotations

import os
import subprocess

import pytest

from test_cross_language import GO_DIR
from toolchains import require


@pytest.mark.parametrize("store", ["redis", "sqlite"])
def test_go_dispatch_worker_against_the_sidecar(request, store):
    require("go")
    server = request.getfixturevalue("sidecar" if store == "redis" else "sqlite_sidecar")
    proc = subprocess.run(["go", "test", "-count=1", "-v", "-tags", "sidecar_dispatch",
                           "-run", "TestDispatchedTaskRunsInAWorkerAndReplays|TestStoppingWorkerHandsBackWhatItHolds",
                           "./wf/"], cwd=GO_DIR, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYNENC_SIDECAR_ADDRESS": server.address})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("TestDispatchedTaskRunsInAWorkerAndReplays", "TestStoppingWorkerHandsBackWhatItHolds"):
        assert f"--- PASS: {name}" in proc.stdout, proc.stdout
