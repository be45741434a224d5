"""Replay of an N-operation workflow by the Go, TypeScript and Java SDKs, through their drivers'
`bench-replay --ops N` command (it prints {"record_ms": .., "replay_ms": ..}), and the calls of
the seed order workflow's twin through a driver's `order-rpcs` (Go).

Each driver is built as the test suite builds it (go build, tsc, mvn package); a toolchain
that is missing, a build that fails or a driver without the command is reported as the reason
for a skipped row, never as a number."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GO_DIR, TS_DIR, JAVA_DIR = ROOT / "sdk" / "go", ROOT / "sdk" / "ts", ROOT / "sdk" / "java"
JAR = JAVA_DIR / "target" / "pynenc-sidecar-client.jar"


def _run(cmd: list[str], cwd: Path, timeout: float) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")


def build(lang: str, scratch: Path) -> list[str]:
    """The command that runs the language's driver, built now; RuntimeError says why not."""
    if lang == "go":
        if not shutil.which("go"):
            raise RuntimeError("go is not installed")
        _run(["go", "build", "-o", str(scratch / "xlang"), "./internal/xlang"], GO_DIR, 900)
        return [str(scratch / "xlang")]
    if lang == "ts":
        if not (shutil.which("node") and shutil.which("npm")):
            raise RuntimeError("node/npm are not installed")
        if not (TS_DIR / "node_modules" / ".bin" / "tsc").exists():
            _run(["npm", "ci", "--no-audit", "--no-fund"], TS_DIR, 900)
        _run([str(TS_DIR / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], TS_DIR, 900)
        return ["node", str(TS_DIR / "dist" / "tools" / "xlang.js")]
    if not (shutil.which("java") and shutil.which("mvn")):
        raise RuntimeError("java/mvn are not installed")
    _run(["mvn", "-q", "-B", "-DskipTests", "-f", str(JAVA_DIR / "pom.xml"), "package"], JAVA_DIR, 1800)
    return ["java", "-jar", str(JAR)]


def measure(lang: str, address: str, ops: int, repeats: int, scratch: Path) -> dict:
    """{"replay_ms": [...], "record_ms": [...]} over `repeats` runs of the driver, or {"skipped": reason}."""
    try:
        cmd = build(lang, scratch)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return {"skipped": str(exc)}
    replay, record = [], []
    for _ in range(repeats):
        proc = subprocess.run([*cmd, "bench-replay", "--ops", str(ops), "--address", address],
                              cwd={"go": GO_DIR, "ts": TS_DIR, "java": JAVA_DIR}[lang], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "PYNENC_SIDECAR_ADDRESS": address})
        if proc.returncode != 0:
            lines = (proc.stderr + "\n" + proc.stdout).strip().splitlines() or [f"exit {proc.returncode}"]
            said = next((line for line in lines if "nknown" in line or "not defined" in line), lines[0])
            return {"skipped": f"its driver has no working bench-replay command yet ({said.strip()[:200]})"}
        out = json.loads(proc.stdout)
        replay.append(float(out["replay_ms"]))
        record.append(float(out["record_ms"]))
    return {"replay_ms": replay, "record_ms": record, "median_replay_ms": statistics.median(replay)}


def order_rpcs(lang: str, address: str) -> dict:
    """{"first_run": {rpc: n}, "replay": {rpc: n}} of one seed order workflow run by the driver,
    or {"skipped": reason}."""
    scratch = Path(tempfile.mkdtemp(prefix="psc-bench-rpcs-"))
    try:
        cmd = build(lang, scratch)
        proc = subprocess.run([*cmd, "order-rpcs", "--address", address], cwd={"go": GO_DIR}[lang],
                              capture_output=True, text=True, timeout=120)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return {"skipped": str(exc)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        return {"skipped": f"order-rpcs failed: {(proc.stderr or proc.stdout).strip()[-300:]}"}
    return json.loads(proc.stdout)
