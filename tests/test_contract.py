"""The wire contract: buf lint clean, and the committed stubs match the protos."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchains import require

ROOT = Path(__file__).resolve().parent.parent


def test_generated_python_stubs_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_is_clean():
    buf = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    if not Path(buf).exists():
        pytest.fail("buf not installed: pip install buf-bin (it is in the dev extra)")
    result = subprocess.run([buf, "lint"], cwd=ROOT / "protos", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_languages_generated_stubs_are_up_to_date():
    """The one regeneration command's check: Python, Go and TypeScript (Java's are not committed)."""
    require("go", "npm")
    result = subprocess.run([str(ROOT / "scripts" / "gen_stubs"), "--check"], cwd=ROOT,
                            env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "generated stubs are up to date" in result.stdout and "generated clients are up to date" in result.stderr
