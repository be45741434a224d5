"""bench/dispatch.py in --quick mode, so that it cannot rot. No timing is asserted (quick
numbers are not benchmarks): the run succeeds and prints both tables, with Python rows, a
measured TypeScript row and a measured Java row (the session's one `mvn package`, the java_jar
fixture, builds the jar it runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from test_java_client import java_jar  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_dispatch_bench_quick_prints_both_tables(java_jar) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench/dispatch.py"), "--quick", "--store", "sqlite"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "## Dispatched vs inline task" in out and "| dispatched / inline |" in out
    assert "## Dispatched tasks/s" in out
    python_rows = [line for line in out.splitlines() if line.startswith("| python |")]
    assert len(python_rows) == 2 and all(float(row.split("|")[3]) > 0 for row in python_rows)
    typescript_rows = [line for line in out.splitlines() if line.startswith("| typescript |")]
    assert len(typescript_rows) == 1 and float(typescript_rows[0].split("|")[3]) > 0, out
    java_rows = [line for line in out.splitlines() if line.startswith("| java |")]
    assert len(java_rows) == 1 and float(java_rows[0].split("|")[3]) > 0, out
