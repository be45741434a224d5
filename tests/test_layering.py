"""The code's layering, checked: the engines know nothing of gRPC (observability is injected);
servicers, the CLI and the retention sweeper reach the stores only through an engine, and no
servicer waits on a clock; the storage interface and the SQLite stores know nothing of Redis;
the Redis record scripts share one guard prelude."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from pynenc_sidecar.storage.redis.connection import INCLUDE, load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "service" / "pynenc_sidecar" / "storage" / "redis"

ENGINE_MODULES = ["pynenc_sidecar.engine", "pynenc_sidecar.state_backend_engine", "pynenc_sidecar.maintenance_engine",
                  "pynenc_sidecar.projection", "pynenc_sidecar.clock", "pynenc_sidecar.core.task_rules",
                  "pynenc_sidecar.core.retention", "pynenc_sidecar.storage.interface"]
REDIS_FREE_MODULES = ["pynenc_sidecar.storage.interface", "pynenc_sidecar.storage.history",
                      "pynenc_sidecar.storage.sqlite.executor_store",
                      "pynenc_sidecar.storage.sqlite.state_backend_store",
                      "pynenc_sidecar.state_backend_engine", "pynenc_sidecar.engine",
                      "pynenc_sidecar.maintenance_engine"]


PACKAGE = ROOT / "service" / "pynenc_sidecar"
# The callers of the use cases: they validate, call an engine and show (or map) what it returns.
# (server.py is where the stores are opened and handed to the engines.)
ENGINE_CALLERS = sorted([*(PACKAGE / "service").glob("*.py"), PACKAGE / "cli.py", PACKAGE / "inspector.py",
                         PACKAGE / "retention.py"])
STORE_HANDLES = {"store", "state_backend"}
UPKEEP = {"ping", "close"}  # opening and closing a store is not a use case


def _source(path: Path) -> tuple[str, str]:
    return str(path.relative_to(ROOT)), path.read_text()


def store_calls(where: str, source: str) -> list[str]:
    """Uses of a store handle (`<x>.store`, `<x>.state_backend`) other than handing it to an
    engine (`...Engine(...)`, `..._engine(...)`) or UPKEEP: a use case written outside the engines."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in STORE_HANDLES):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.attr in UPKEEP:
            continue
        if isinstance(parent, ast.Call) and node in parent.args and ast.unparse(parent.func).lower().endswith("engine"):
            continue
        found.append((node.lineno, ast.unparse(parent if isinstance(parent, ast.Attribute) else node)))
    return [f"{where}:{line}: {use}" for line, use in sorted(found)]


CLOCKS = {"time.monotonic", "time.time", "time.time_ns", "wall_clock_us", "loop.time"}


def clock_waits(where: str, source: str) -> list[str]:
    """Timed sleeps, and clocks read inside a loop, in the source: a waiting loop written outside
    the engines. (A clock read once, e.g. to rate-limit a log line, is not a wait.)"""
    found = set()
    tree = ast.parse(source)
    looped = {id(node) for loop in ast.walk(tree) if isinstance(loop, ast.While) for node in ast.walk(loop)}
    for node in ast.walk(tree):
        name = ast.unparse(node.func) if isinstance(node, ast.Call) else ""
        sleeps = name == "asyncio.sleep" and not (node.args and ast.unparse(node.args[0]) == "0")
        if sleeps or (name in CLOCKS and id(node) in looped):
            found.add((node.lineno, name))
    return [f"{where}:{line}: {name}" for line, name in sorted(found)]


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


def test_servicers_the_cli_and_the_sweeper_reach_the_stores_only_through_an_engine() -> None:
    assert [call for path in ENGINE_CALLERS for call in store_calls(*_source(path))] == []


def test_no_servicer_waits_on_a_clock() -> None:
    servicers = sorted((PACKAGE / "service").glob("*.py"))
    assert [wait for path in servicers for wait in clock_waits(*_source(path))] == []


def test_the_store_and_clock_checks_find_what_they_look_for() -> None:
    source = ("async def f(self, stores):\n    await stores.state_backend.purge_app('a')\n"
              "    await stores.store.ping()\n    time.monotonic()\n    await asyncio.sleep(0.25)\n"
              "    await asyncio.sleep(0)\n    backend = stores.state_backend\n"
              "    while time.monotonic() < 9:\n        pass\n"
              "    return MaintenanceEngine(stores.store, stores.state_backend)\n")
    assert store_calls("x.py", source) == ["x.py:2: stores.state_backend.purge_app", "x.py:7: stores.state_backend"]
    assert clock_waits("x.py", source) == ["x.py:5: asyncio.sleep", "x.py:8: time.monotonic"]
