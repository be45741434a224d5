"""What the finished-scope guard costs on the Random first-record path, side by side.

    python bench/guard_cost.py [--records 2000] [--rounds 7]

Records `--records` fresh random values per round through the store's `record` (what the
Random RPC calls), without the guard (the code before issue 11) and with it (the scope's
main task registered and RUNNING, so the guard reads its status and lets the record through),
alternating A/B rounds so a noisy machine hurts both alike. Both stores: a redis-server it
starts on a free loopback port (stopped by PID) and an SQLite file in a temp directory.
Prints the median microseconds per record of each, and the ratio; for Redis also the
script's own execution time per call (INFO commandstats, evalsha usec_per_call), which a busy
machine disturbs far less than the round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from pynenc_sidecar.core import derivations
from pynenc_sidecar.core.positions import Kind, Position
from pynenc_sidecar.core.tasks import TaskState, WorkflowRef
from pynenc_sidecar.storage.interface import LeaseRequest
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def script_usec(store) -> float | None:
    """Redis only: microseconds of script execution per EVALSHA since the last reset."""
    client = getattr(store, "client", None)
    if client is None:
        return None
    stats = await client.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", "nan"))


async def one_round(store, guarded: bool, records: int) -> tuple[float, float | None]:
    """Microseconds per first record (one workflow of `records` random values), and per
    script run (Redis)."""
    app, workflow_id = "bench-guard", uuid.uuid4().hex
    guard = None
    if guarded:
        main = TaskState(workflow_id, "bench.flow", "{}", WorkflowRef(workflow_id, "bench.flow"))
        await store.ensure_task(app, main, LeaseRequest("lease", 60_000_000, "bench"), time.time_ns() // 1000)
        guard = workflow_id
    if getattr(store, "client", None) is not None:
        await store.client.config_resetstat()
    start = time.perf_counter()
    for seq in range(1, records + 1):
        pos = Position(workflow_id, workflow_id, Kind.RANDOM, "", seq)
        _, replayed = await store.record(app, workflow_id, pos.field, pos.count_field,
                                         repr(derivations.random_value(workflow_id, seq)), guard=guard)
        assert not replayed
    return (time.perf_counter() - start) / records * 1e6, await script_usec(store)


async def measure(store, records: int, rounds: int) -> list[tuple[float, float]]:
    """(median without the guard, median with it): per record, and per script run (Redis)."""
    await one_round(store, False, records // 10)  # warm up: scripts loaded, connections open
    await one_round(store, True, records // 10)
    plain, guarded = [], []
    for _ in range(rounds):
        plain.append(await one_round(store, False, records))
        guarded.append(await one_round(store, True, records))
    medians = [(statistics.median(p[0] for p in plain), statistics.median(g[0] for g in guarded))]
    if plain[0][1] is not None:
        medians.append((statistics.median(p[1] for p in plain), statistics.median(g[1] for g in guarded)))
    return medians


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="bench-guard-")
    port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        print(f"{'what':22} {'no guard us':>12} {'guard us':>9} {'new/old':>8}")
        for name, store in [("redis", RedisStore(f"redis://127.0.0.1:{port}/0")),
                            ("sqlite", SqliteStore(Path(directory) / "bench.db"))]:
            labels = [f"{name} record (client)", f"{name} script (server)"]
            for label, (plain, guarded) in zip(labels, await measure(store, args.records, args.rounds)):
                print(f"{label:22} {plain:12.2f} {guarded:9.2f} {guarded / plain:8.3f}")
            await store.close()
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
