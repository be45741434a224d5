"""The TypeScript SDK's dispatch worker and caller (sdk/ts/test/worker.test.ts) against the
real sidecar on both stores: a dispatched task runs in a Worker and replays without
dispatching again, retries per the caller's policy, the concurrency limit, a graceful stop
that lets a task finish, and one past its grace that hands the task back to the next worker."""

from __future__ import annotations

import os
import subprocess

import pytest

from test_cross_language import TS_DIR, ts_dist  # noqa: F401  (fixture)

TESTS = ("a dispatched task runs in a worker; the replay dispatches nothing",
         "a failed attempt is retried per the caller's policy and its failure reaches the caller",
         "the worker runs at most `concurrency` invocations at once",
         "stopping lets a running task finish within the grace",
         "past the grace, a stopping worker hands its task back and another worker completes it once",
         "stop() before a task arrives ends the long poll at once")


@pytest.mark.parametrize("store", ["redis", "sqlite"])
def test_ts_dispatch_worker_against_the_sidecar(request, store, ts_dist):
    server = request.getfixturevalue("sidecar" if store == "redis" else "sqlite_sidecar")
    proc = subprocess.run(["node", "--test", str(ts_dist / "test" / "worker.test.js")], cwd=TS_DIR,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYNENC_SIDECAR_ADDRESS": server.address})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# fail 0" in proc.stdout and "# skipped 0" in proc.stdout, proc.stdout
    for name in TESTS:
        assert f"- {name}\n" in proc.stdout and "not ok" not in proc.stdout, f"{name!r} did not run:\n{proc.stdout}"
