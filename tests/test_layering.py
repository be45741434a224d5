"""The code's layering, checked: the engines know nothing of gRPC (observability is injected),
the storage interface and the SQLite stores know nothing of Redis, and the Redis record scripts
share one guard prelude."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pynenc_sidecar.storage.redis.connection import INCLUDE, load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "service" / "pynenc_sidecar" / "storage" / "redis"

ENGINE_MODULES = ["pynenc_sidecar.engine", "pynenc_sidecar.state_backend_engine", "pynenc_sidecar.projection",
                  "pynenc_sidecar.clock", "pynenc_sidecar.core.task_rules", "pynenc_sidecar.storage.interface"]
REDIS_FREE_MODULES = ["pynenc_sidecar.storage.interface", "pynenc_sidecar.storage.history",
                      "pynenc_sidecar.storage.sqlite.executor_store",
                      "pynenc_sidecar.storage.sqlite.state_backend_store",
                      "pynenc_sidecar.state_backend_engine", "pynenc_sidecar.engine"]


def imported_with(modules: list[str], forbidden: str) -> list[str]:
    """The modules under `forbidden` that importing `modules` in a fresh interpreter loads."""
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            f"print(' '.join(m for m in sys.modules if m.partition('.')[0] == {forbidden!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.split()


def test_the_engines_import_no_grpc() -> None:
    assert imported_with(ENGINE_MODULES, "grpc") == []


def test_the_storage_interface_and_the_sqlite_stores_import_no_redis() -> None:
    assert imported_with(REDIS_FREE_MODULES, "redis") == []


def test_the_servicers_do_import_grpc_so_the_check_can_fail() -> None:
    assert "grpc" in imported_with(["pynenc_sidecar.service.state_backend"], "grpc")


def test_the_record_scripts_share_the_guard_prelude_written_once() -> None:
    guard = "HGET', guard, status_field)"
    holders = sorted(p.name for p in SCRIPTS.glob("*.lua") if guard in p.read_text())
    assert holders == ["record_guard.lua"]
    for name in ("record.lua", "record_time.lua", "record_data.lua"):
        raw, composed = (SCRIPTS / name).read_text(), load_script(name)
        assert INCLUDE + "record_guard.lua" in raw
        assert not any(line.startswith(INCLUDE) for line in composed.splitlines())
        assert composed.count("local function replay_or_refuse(") == 1
        assert composed.index("local function replay_or_refuse(") < composed.index("replay_or_refuse(KEYS")
