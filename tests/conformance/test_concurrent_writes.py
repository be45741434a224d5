"""Concurrent writes, on every store: many calls in flight at once all succeed and all land.

The SQLite store runs every call on one worker thread; a cursor handed back to the event
loop's thread used to reset a cached statement while the worker ran it for the next call,
and about 1 call in 1,000 failed with "bad parameter or other API misuse" (issue 12, case 3).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pynenc_sidecar.server import Stores
from pynenc_sidecar.storage.redis_store import RedisStore
from pynenc_sidecar.storage.sqlite_state_backend_store import SqliteStateBackendStore
from pynenc_sidecar.storage.sqlite_store import SqliteStore
from pynenc_sidecar.storage.state_backend_store import RedisStateBackendStore

ROUNDS, IN_FLIGHT = 40, 100  # 4,000 calls of each kind


@pytest.fixture(params=["redis", "sqlite"])
def stores(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "redis":
        store: Any = RedisStore(request.getfixturevalue("redis_server").url)
        subject = Stores(store, RedisStateBackendStore(store.client), "redis")
    else:
        store = SqliteStore(tmp_path / "state.db")
        subject = Stores(store, SqliteStateBackendStore(store), "sqlite")
    yield subject
    loop.run_until_complete(subject.close())


def test_concurrent_add_history_and_set_data_all_succeed(stores: Stores, run, app: str) -> None:
    failures: list[BaseException] = []

    async def one(n: int) -> None:
        try:
            await stores.state_backend.add_history(app, [f"inv-{n % 50}", f"inv-{n % 50}-b"], n,
                                                   json.dumps({"n": n}))
            await stores.store.set_data(app, f"wf-{n % 50}", f"key-{n}", str(n))
        except Exception as exc:  # every failure is collected: the count is the point
            failures.append(exc)

    async def scenario() -> tuple[int, int]:
        for start in range(0, ROUNDS * IN_FLIGHT, IN_FLIGHT):
            await asyncio.gather(*(one(n) for n in range(start, start + IN_FLIGHT)))
        histories = [await stores.state_backend.get_history(app, f"inv-{i}") for i in range(50)]
        data = [await stores.store.workflow_data(app, f"wf-{i}") for i in range(50)]
        return sum(map(len, histories)), sum(map(len, data))

    entries, keys = run(scenario())
    assert [f"{type(e).__name__}: {e}" for e in failures[:3]] == [] and len(failures) == 0
    assert (entries, keys) == (ROUNDS * IN_FLIGHT, ROUNDS * IN_FLIGHT)
