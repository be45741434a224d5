"""Conformance of trace origins: every store keeps the span context of a value's first record.

A record made with an `origin` (what the server passes while tracing) stores it beside the
value at `#s:<field>`; a replay asked with an origin gets the stored one back; a record made
without one (tracing off) stores and reads nothing. The log scan delivers an origin in the
same batch as its value, however the store pages it. Runs against every store, with the
fixtures of test_store_conformance.
"""

from __future__ import annotations

import asyncio

from conformance.test_store_conformance import Run, whole_log
from pynenc_sidecar.core.positions import origin_field
from pynenc_sidecar.storage.interface import Recorded, Store

ORIGIN_A = "0af7651916cd43dd8448eb211c80319c" + "b7ad6b7169203331"
ORIGIN_B = "4bf92f3577b34da6a3ce929d0e0e4736" + "00f067aa0ba902b7"


def test_record_keeps_the_first_origin_and_returns_it_on_replay(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        first = await store.record(app, "wf", "r:1", "#n:r", "0.5", ORIGIN_A)
        assert isinstance(first, Recorded)
        assert first == ("0.5", False) and (first.value, first.replayed, first.origin) == ("0.5", False, "")
        again = await store.record(app, "wf", "r:1", "#n:r", "0.9", ORIGIN_B)
        assert again == ("0.5", True) and again.origin == ORIGIN_A
        # Without an origin a replay neither reads nor changes it.
        untraced = await store.record(app, "wf", "r:1", "#n:r", "0.9")
        assert untraced == ("0.5", True) and untraced.origin == ""
        assert await store.get_origins(app, "wf", ["r:1"]) == [ORIGIN_A]
        assert await store.get_count(app, "wf", "#n:r") == 1

    run(body())


def test_record_time_keeps_the_first_origin(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        first = await store.record_time(app, "wf", "t:1", "#n:t", 1_000, ORIGIN_A)
        assert first == (1_000, False)
        again = await store.record_time(app, "wf", "t:1", "#n:t", 2_000, ORIGIN_B)
        assert again == (1_000, True) and again.origin == ORIGIN_A
        assert (await store.record_time(app, "wf", "t:2", "#n:t", 500)) == (1_001, False)
        assert await store.get_origins(app, "wf", ["t:1", "t:2"]) == [ORIGIN_A, None]

    run(body())


def test_untraced_records_store_no_origin(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await store.record(app, "wf", "u:1", "#n:u", '"x"')
        await store.record_time(app, "wf", "t:1", "#n:t", 7)
        replay = await store.record(app, "wf", "u:1", "#n:u", '"y"', ORIGIN_B)  # a traced replay of an untraced value
        assert replay == ('"x"', True) and replay.origin == ""
        merged, _ = await whole_log(store, app, "wf")
        assert not [field for field in merged if field.startswith("#s:")]
        assert await store.get_origins(app, "wf", ["u:1", "t:1", "never"]) == [None, None, None]
        assert await store.get_origins(app, "wf", []) == []

    run(body())


def test_racing_traced_records_keep_the_winners_origin(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        origins = [f"{i:032x}{i + 1:016x}" for i in range(1, 17)]
        results = await asyncio.gather(*(store.record(app, "wf", "c.race:1", "#n:c.race", str(i), origin)
                                         for i, origin in enumerate(origins)))
        winner = next(i for i, result in enumerate(results) if not result.replayed)
        assert all(result.origin == origins[winner] for result in results if result.replayed)
        assert await store.get_origins(app, "wf", ["c.race:1"]) == [origins[winner]]

    run(body())


def test_scan_log_brings_each_origin_with_its_value(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        total = 1500  # several batches of 200 on either store (Redis: HSCAN, not one HGETALL)
        for start in range(1, total + 1, 250):
            await asyncio.gather(*(store.record(app, "wf", f"u:{i}", "#n:u", f'"{i}"', f"{i:032x}{i:016x}")
                                   for i in range(start, min(start + 250, total + 1))))
        await store.record(app, "wf", "u:untraced", "#n:u", '"plain"')
        batches = 0
        seen: dict[str, str] = {}
        async for chunk in store.scan_log(app, "wf", 200):
            batches += 1
            for field, value in chunk.items():
                if not field.startswith("#"):
                    seen[field] = value
                    if field != "u:untraced":
                        i = int(field.split(":")[1])
                        assert chunk.get(origin_field(field)) == f"{i:032x}{i:016x}", (
                            f"{field}'s origin not in its batch"
                        )
        assert batches >= 2
        assert len(seen) == total + 1
        merged, _ = await whole_log(store, app, "wf", 200)
        assert origin_field("u:untraced") not in merged
        assert sum(1 for field in merged if field.startswith("#s:")) == total

    run(body())
