"""The Go SDK is gofmt-formatted, and `go vet` and staticcheck (pinned; every check but the
generated packages' comment, sdk/go/staticcheck.conf) find nothing in it.

scripts/test installs staticcheck when it is missing; without it (or without Go) this fails,
naming what to install, rather than skipping."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from toolchains import require

GO_DIR = Path(__file__).resolve().parent.parent / "sdk" / "go"
STATICCHECK_VERSION = "v0.8.2"  # keep in step with scripts/test


def _go(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["go", *args], cwd=GO_DIR, capture_output=True, text=True, timeout=900)


def _staticcheck() -> str:
    found = shutil.which("staticcheck")
    if found:
        return found
    gopath = _go("env", "GOPATH").stdout.strip()
    candidate = Path(gopath) / "bin" / "staticcheck"
    assert candidate.exists(), (f"staticcheck is not installed: go install honnef.co/go/tools/cmd/staticcheck@"
                                f"{STATICCHECK_VERSION} (scripts/test does)")
    return str(candidate)


def test_go_sdk_is_gofmt_formatted():
    require("go")
    proc = _go("fmt", "-n", "./...")  # prints the gofmt command go fmt would run, without running it
    gofmt = proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout else "gofmt"
    listed = subprocess.run([gofmt, "-l", "."], cwd=GO_DIR, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and listed.stdout == "", f"run gofmt -w on:\n{listed.stdout}{listed.stderr}"


def test_go_vet_finds_nothing():
    require("go")
    proc = _go("vet", "./...")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_staticcheck_finds_nothing():
    require("go")
    proc = subprocess.run([_staticcheck(), "./..."], cwd=GO_DIR, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
