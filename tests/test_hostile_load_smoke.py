"""scripts/hostile_load.py keeps working: its two quickest cases, on this tree."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT


def test_the_hostile_load_script_measures_garbage_bytes_and_app_tokens(tmp_path) -> None:
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "hostile_load.py"), "--only", "4,8", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(out.read_text())["figures"]
    assert (
        figures["4"]["codes"] == {"INVALID_ARGUMENT": figures["4"]["requests"]} and figures["4"]["traceback_lines"] == 0
    )
    assert figures["8"]["codes"] == {"PERMISSION_DENIED": 20} and figures["8"]["apps_listed_to_shop_token"] == ["shop"]
    assert figures["8"]["password_readable"] is False
