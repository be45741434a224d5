"""Small calls before bulk pages (issue 12, case 1): at most --max-concurrent-bulk-reads pages
that can be large are read and decoded at once, the rest wait in arrival order, and past
--max-queued-bulk-reads waiting ones a new bulk read is RESOURCE_EXHAUSTED (service/bulk.py).

The gate's rules are checked in-process, step by step; the real servers (Redis, SQLite, Redis
Cluster) show that queued reads and streams are all served whole while small calls go on, that
a full queue refuses with a clear message, and that reads whose deadline passed while queued
leave no slot or queue place behind. The latency it buys is measured by scripts/measure_history_read.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from executor_client import error_details
from pynenc_sidecar.core.errors import BULK_READ_QUEUE_FULL, ResourceExhausted
from pynenc_sidecar.service.bulk import BulkReads
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import SidecarServer, seed_history, wait_until

QUEUED = 3
ENTRIES = 1500  # ~650 B each: four pages of the 256 KiB budget
APP, INVOCATION = f"bulk-{uuid.uuid4().hex[:8]}", "huge"


# --- the gate's rules, in-process ---------------------------------------------------------
def test_a_queued_read_runs_after_the_running_one_in_arrival_order() -> None:
    async def main() -> list[str]:
        gate, order = BulkReads(concurrent=1, queued=5), []
        release = asyncio.Event()

        async def read(name: str, hold: bool = False) -> None:
            async with gate.slot():
                order.append(f"{name} starts")
                if hold:
                    await release.wait()
                order.append(f"{name} ends")

        first = asyncio.create_task(read("first", hold=True))
        await asyncio.sleep(0)
        later = [asyncio.create_task(read(name)) for name in ("second", "third")]
        await asyncio.sleep(0)
        assert gate.waiting == 2 and order == ["first starts"]
        release.set()
        await asyncio.gather(first, *later)
        return order

    assert asyncio.run(main()) == ["first starts", "first ends", "second starts", "second ends",
                                   "third starts", "third ends"]


def test_past_the_queue_a_new_read_is_refused_but_an_admitted_stream_waits() -> None:
    async def main() -> None:
        gate = BulkReads(concurrent=1, queued=1)
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        async def read(admitted: bool = False) -> str:
            async with gate.slot(admitted):
                return "served"

        running = asyncio.create_task(hold())
        await asyncio.sleep(0)
        queued = asyncio.create_task(read())
        await asyncio.sleep(0)
        with pytest.raises(ResourceExhausted) as refused:
            await read()
        assert refused.value.reason == BULK_READ_QUEUE_FULL
        assert "--max-queued-bulk-reads" in refused.value.message and "retry later" in refused.value.message
        stream_page = asyncio.create_task(read(admitted=True))  # a stream already let in is not cut off
        await asyncio.sleep(0)
        assert gate.waiting == 2
        release.set()
        assert await asyncio.gather(queued, stream_page) == ["served", "served"]
        await running
        assert await read() == "served"  # the queue is empty again

    asyncio.run(main())


def test_a_read_cancelled_while_queued_leaves_its_place_and_takes_no_slot() -> None:
    async def main() -> None:
        gate = BulkReads(concurrent=1, queued=1)
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        async def read() -> str:
            async with gate.slot():
                return "served"

        running = asyncio.create_task(hold())
        await asyncio.sleep(0)
        for _ in range(3):  # what grpc does when a queued call's deadline passes or it is cancelled
            waiting = asyncio.create_task(read())
            await asyncio.sleep(0)
            assert gate.waiting == 1
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert gate.waiting == 0
        release.set()
        await running
        assert await asyncio.gather(read(), read()) == ["served", "served"]

    asyncio.run(main())


def test_a_read_cancelled_just_as_its_turn_came_passes_the_slot_on() -> None:
    async def main() -> list[str]:
        gate, order = BulkReads(concurrent=1, queued=5), []
        release = asyncio.Event()

        async def read(name: str, hold: bool = False) -> None:
            async with gate.slot():
                order.append(name)
                if hold:
                    await release.wait()

        first = asyncio.create_task(read("first", hold=True))
        await asyncio.sleep(0)
        unlucky, next_one = asyncio.create_task(read("unlucky")), asyncio.create_task(read("next"))
        await asyncio.sleep(0)
        release.set()
        await asyncio.sleep(0)  # "first" runs and gives its slot to "unlucky", which has not run yet
        assert first.done() and order == ["first"]
        unlucky.cancel()
        await asyncio.gather(unlucky, next_one, return_exceptions=True)
        assert gate.waiting == 0
        await read("later")  # no slot was lost
        return order

    assert asyncio.run(main()) == ["first", "next", "later"]


def test_a_stream_holds_a_slot_for_each_store_read_not_between_them() -> None:
    async def main() -> list[str]:
        gate, order = BulkReads(concurrent=1, queued=5), []

        async def batches():
            for n in range(3):
                order.append(f"stream reads {n}")
                await asyncio.sleep(0)
                yield n

        async def other_read() -> None:
            async with gate.slot():
                order.append("other read")

        async def stream() -> None:
            async for n in gate.batches(batches()):
                order.append(f"stream sends {n}")
                await asyncio.sleep(0)  # the client takes its message: no slot held meanwhile
                await asyncio.sleep(0)

        streaming = asyncio.create_task(stream())
        await asyncio.sleep(0)
        other = asyncio.create_task(other_read())
        await asyncio.gather(streaming, other)
        return order

    order = asyncio.run(main())
    # The other read got in after the stream's first store read, not after the whole stream.
    assert order.index("other read") < order.index("stream reads 1")
    assert [o for o in order if o.startswith("stream sends")] == [f"stream sends {n}" for n in range(3)]


# --- real servers -------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["redis", "sqlite", "cluster"])
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SidecarServer]:
    turns = ["--max-concurrent-bulk-reads", "1", "--max-queued-bulk-reads", str(QUEUED)]
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        subject = SidecarServer(f"redis://{cluster.seeds}", extra_args=["--redis-cluster", "on", *turns]).start()
    else:
        redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
        directory = tmp_path_factory.mktemp("bulk")
        subject = SidecarServer(redis_url, data_file=None if redis_url else str(directory / "state.db"),
                                extra_args=turns).start()
    with subject.channel() as channel:
        seed_history(channel, APP, INVOCATION, ENTRIES, 560)
    yield subject
    subject.stop()


def read_history(stub) -> list[int]:
    request, seen = sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION), []
    while True:
        reply = stub.GetHistory(request, timeout=60)
        seen += [json.loads(entry.execution_context_json)["n"] for entry in reply.history]
        if not reply.next_page_token:
            return seen
        request.page_token = reply.next_page_token


def stream_history(stub) -> list[int]:
    start, end = sb.InvocationHistory().timestamp, sb.InvocationHistory().timestamp
    start.FromMicroseconds(1_700_000_000_000_000)
    end.FromMicroseconds(1_700_000_000_000_000 + ENTRIES)
    replies = stub.StreamHistoryInTimeRange(sb.StreamHistoryInTimeRangeRequest(
        app_id=APP, start_time=start, end_time=end, batch_size=1000), timeout=60)
    return [json.loads(entry.execution_context_json)["n"] for reply in replies for entry in reply.history]


def test_queued_reads_and_streams_are_served_whole_while_small_calls_go_on(server: SidecarServer) -> None:
    everything = list(range(ENTRIES))
    stop, small_calls = threading.Event(), []
    with server.channel() as channel:
        stub = sb_grpc.StateBackendServiceStub(channel)

        def small() -> None:
            while not stop.is_set():
                reply = stub.GetInvocation(sb.GetInvocationRequest(app_id=APP, invocation_id="small"), timeout=30)
                small_calls.append(reply.invocation.task_id)

        prober = threading.Thread(target=small)
        prober.start()
        try:
            # One running and QUEUED waiting at most: none is refused, each gets every entry in order.
            with ThreadPoolExecutor(QUEUED + 1) as pool:
                readers = [pool.submit(read_history, stub) for _ in range(2)]
                readers += [pool.submit(stream_history, stub) for _ in range(QUEUED + 1 - 2)]
                results = [reader.result() for reader in readers]
        finally:
            stop.set()
            prober.join()
    assert results == [everything] * (QUEUED + 1)
    assert small_calls and set(small_calls) == {"t"}


def test_a_full_queue_refuses_a_bulk_read_with_resource_exhausted(server: SidecarServer) -> None:
    with server.channel() as channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        request = sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION)
        first_page = stub.GetHistory(request, timeout=60)
        calls = [stub.GetHistory.future(request, timeout=60) for _ in range(24)]
        served, refused = 0, []
        for call in calls:
            try:
                assert call.result() == first_page
                served += 1
            except grpc.RpcError as error:
                refused.append(error)
        assert served >= QUEUED + 1 and refused, (served, len(refused))
        for error in refused:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            assert "--max-queued-bulk-reads" in error.details() and "retry later" in error.details()
            reason, _, metadata = error_details(error)
            assert reason == BULK_READ_QUEUE_FULL and metadata == {"waiting": str(QUEUED), "running": "1"}
        # A small call is never refused: only bulk reads queue.
        assert stub.GetInvocation(sb.GetInvocationRequest(app_id=APP, invocation_id="small"), timeout=30)
    log = Path(server.log_path).read_text()
    assert "bulk read(s) with RESOURCE_EXHAUSTED" in log and "Traceback" not in log


def test_reads_whose_deadline_passes_while_queued_leave_no_place_behind(server: SidecarServer) -> None:
    with server.channel() as channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        request = sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION)
        codes = set()
        for _ in range(5):
            calls = [stub.GetHistory.future(request, timeout=0.005) for _ in range(QUEUED + 3)]
            for call in calls:
                try:
                    call.result()
                    codes.add(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.add(error.code())
        assert grpc.StatusCode.DEADLINE_EXCEEDED in codes
        assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
        # Had a cancelled read kept its slot or its queue place, these would hang or be refused
        # for good. (Refused for a moment is fine: a call the client gave up on stays queued
        # until the server learns of it.)
        def all_served() -> bool:
            with ThreadPoolExecutor(QUEUED + 1) as pool:
                try:
                    results = list(pool.map(lambda _: read_history(stub), range(QUEUED + 1)))
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        return False
                    raise
            assert results == [list(range(ENTRIES))] * (QUEUED + 1)
            return True

        wait_until(all_served, 30, "every queue place given back")
    assert "Traceback" not in Path(server.log_path).read_text()  # deadlines while queued are quiet
