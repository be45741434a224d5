"""The benchmark (bench/run.py) in --quick mode, so that it cannot rot.

No timing is asserted: quick-mode numbers are not benchmarks. What is asserted: the run
succeeds, writes latest.json and latest.md, and both have the row of every scenario. Only the
Pynenc comparisons may be missing a baseline, and only when the Pynenc 0.4.0 venv could not
be installed (no Python >= 3.12, no package index); the row then says why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchains import require

ROOT = Path(__file__).resolve().parent.parent

ROWS = [
    "a.Random", "a.UtcNow", "a.Record", "a.GetData", "a.SetData", "a.ExecuteTask fresh", "a.ExecuteTask replayed",
    "b.replay", "b.replay.go", "b.replay.ts", "b.replay.java",
    "c.record", "d.one_workflow", "d.small_workflows", "e.order", "f.length", "f.workflows",
]
PYNENC_ROWS = {"b.replay", "c.record", "d.one_workflow", "d.small_workflows"}
LANG_ROWS = {"b.replay.go", "b.replay.ts", "b.replay.java"}  # through each SDK's driver (bench-replay)


@pytest.mark.slow
def test_bench_quick_writes_every_scenario(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/test installs it)")
    # Go (ghz and the Go driver), Node (the TypeScript driver) and Java: missing, the test fails.
    require("go", "node", "npm", "java", "mvn")
    run = subprocess.run([sys.executable, str(ROOT / "bench/run.py"), "--quick", "--results-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"bench failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"

    report = json.loads((tmp_path / "latest.json").read_text())
    markdown = (tmp_path / "latest.md").read_text()
    assert report["mode"] == "quick"
    assert report["results"]["skipped"] == {}, report["results"]["skipped"]
    rows = {row["id"]: row for row in report["summary"]}
    assert sorted(rows) == sorted(ROWS)
    for row_id, row in rows.items():
        assert f"| {row_id} |" in markdown, f"{row_id} missing from latest.md"
        assert row["sidecar"] not in (None, ""), f"{row_id} has no measurement: {row['note']}"
        if row_id in PYNENC_ROWS | LANG_ROWS:
            if report["pynenc_skip"]:
                assert row["note"] == f"Pynenc skipped: {report['pynenc_skip']}"
            else:
                assert row["baseline"] and isinstance(row["ratio"], float), f"{row_id} has no Pynenc baseline"
    # The seed order workflow's calls, in the Python SDK and in the Go SDK's twin (buffered: one
    # start, one task call, two completions; a replay only the start).
    for key in ("rpcs", "rpcs_go"):
        rpcs = report["results"]["e"][key]
        assert rpcs["first_run"] and rpcs["replay"], (key, rpcs)
    assert "| Go | first run |" in markdown
    for heading in ("## (a)", "## (b)", "## (c)", "## (d)", "## (e)", "## (f)"):
        assert heading in markdown
