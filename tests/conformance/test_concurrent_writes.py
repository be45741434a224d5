"""Concurrent writes, on every store: many calls in flight at once all succeed and all land.

The SQLite store runs every call on one worker thread; a cursor handed back to the event
loop's thread used to reset a cached statement while the worker ran it for the next call,
and about 1 call in 1,000 failed with "bad parameter or other API misuse" (issue 12, case 3).
"""

from __future__ import annotations

import asyncio
import json

from pynenc_sidecar.server import Stores

ROUNDS, IN_FLIGHT = 40, 100  # 4,000 calls of each kind


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
