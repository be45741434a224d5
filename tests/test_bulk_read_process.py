"""A read's later history pages come from the bulk read process (bulk_reader.py, issue 12, case 1).

Real servers on Redis and on SQLite: the pages a read gets after its first, and history streams,
are built by the server's child process and are what a server without one sends; a stopped
child is what holds them up (so they do come from it), while first pages and small calls go on;
a killed child costs no page read and is replaced, and a stream it was sending ends with a clear
UNAVAILABLE; a store error met in the child reaches the caller
with its details; the child exits with its server, even a server killed with SIGKILL. What it
buys in latency is measured by scripts/measure_history_read.py (docs/reliability.md).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from executor_client import error_details
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import RedisServer, SidecarServer, children, seed_history, wait_until

ENTRIES = 120  # ~8 KB each: four pages of the 256 KiB budget
APP, INVOCATION = f"bulkproc-{uuid.uuid4().hex[:8]}", "huge"


def seed(server: SidecarServer) -> None:
    with server.channel() as channel:
        seed_history(channel, APP, INVOCATION, ENTRIES, 8000)


def read_pages(stub, timeout: float = 60) -> list[bytes]:
    request, pages = sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION), []
    while True:
        reply = stub.GetHistory(request, timeout=timeout)
        pages.append(b"".join(entry.SerializeToString(deterministic=True) for entry in reply.history))
        if not reply.next_page_token:
            return pages
        request.page_token = reply.next_page_token


def stream_request() -> sb.StreamHistoryInTimeRangeRequest:
    request = sb.StreamHistoryInTimeRangeRequest(app_id=APP, batch_size=50)
    request.start_time.FromMicroseconds(1_700_000_000_000_000)
    request.end_time.FromMicroseconds(1_700_000_000_000_000 + ENTRIES)
    return request


def streamed(stub, timeout: float = 60) -> list[bytes]:
    return [entry.SerializeToString(deterministic=True)
            for reply in stub.StreamHistoryInTimeRange(stream_request(), timeout=timeout) for entry in reply.history]


def second_page_request(stub) -> sb.GetHistoryRequest:
    first = stub.GetHistory(sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION), timeout=30)
    assert first.next_page_token, "the seeded history fits one page: it must span several"
    return sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION, page_token=first.next_page_token)


def bulk_processes(server: SidecarServer) -> list[int]:
    return [pid for pid in children(server.process.pid)
            if b"pynenc_sidecar.bulk_reader" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def running(pid: int) -> bool:
    """Whether pid is a live process (not gone, not a zombie nobody reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def started_bulk_process(server: SidecarServer, stub) -> int:
    """Reads until the server's bulk read process is serving (it starts at a read's second page)."""
    found: list[int] = []

    def serving() -> bool:
        read_pages(stub)
        found[:] = [pid for pid in bulk_processes(server) if f"bulk read process {pid} serves" in server.log()]
        return bool(found)

    wait_until(serving, 40, "the bulk read process to serve")
    return found[0]


@pytest.fixture(scope="module", params=["redis", "sqlite"])
def servers(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[tuple[SidecarServer, SidecarServer]]:
    """A server with its bulk read process and one without, on the same store."""
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    data_file = None if redis_url else str(tmp_path_factory.mktemp("bulkproc") / "state.db")
    with_process = SidecarServer(redis_url, data_file=data_file).start()
    without = SidecarServer(redis_url, data_file=data_file, extra_args=["--bulk-read-process", "off"]).start()
    seed(with_process)
    yield with_process, without
    without.stop()
    with_process.stop()


def test_pages_after_the_first_come_from_the_bulk_process_and_match_the_servers_own(servers) -> None:
    server, without = servers
    with server.channel() as channel, without.channel() as plain_channel:
        stub, plain = sb_grpc.StateBackendServiceStub(channel), sb_grpc.StateBackendServiceStub(plain_channel)
        child = started_bulk_process(server, stub)
        expected = read_pages(plain)
        assert len(expected) >= 3 and sum(map(len, expected)) > ENTRIES * 8000
        assert read_pages(stub) == expected
        assert bulk_processes(without) == []  # --bulk-read-process off: none, after all those reads

        # With the child stopped, a second page waits for it; a first page and small calls do not.
        later_page = second_page_request(stub)
        os.kill(child, signal.SIGSTOP)
        try:
            with pytest.raises(grpc.RpcError) as held:
                stub.GetHistory(later_page, timeout=1)
            assert held.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            first = stub.GetHistory(sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION), timeout=5)
            assert len(first.history) > 0
            stub.GetInvocation(sb.GetInvocationRequest(app_id=APP, invocation_id="small"), timeout=5)
        finally:
            os.kill(child, signal.SIGCONT)
        assert read_pages(stub) == expected
        assert bulk_processes(server) == [child]


def test_history_streams_come_from_the_bulk_process_and_end_clearly_if_it_dies(servers) -> None:
    server, without = servers
    with server.channel() as channel, without.channel() as plain_channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        expected = streamed(sb_grpc.StateBackendServiceStub(plain_channel))
        assert len(expected) == ENTRIES
        child = started_bulk_process(server, stub)
        assert streamed(stub) == expected
        os.kill(child, signal.SIGSTOP)
        try:
            with pytest.raises(grpc.RpcError) as held:
                streamed(stub, timeout=1)
            assert held.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            stream = stub.StreamHistoryInTimeRange(stream_request(), timeout=30)
        finally:
            os.kill(child, signal.SIGKILL)  # a stream in flight loses its process
        with pytest.raises(grpc.RpcError) as cut:
            list(stream)
        assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(cut.value)[0] == "BULK_READ_INTERRUPTED" and "call again" in cut.value.details()
        assert streamed(stub) == expected  # served by the server itself until the next process answers


def test_a_killed_bulk_process_costs_no_read_and_is_replaced(servers) -> None:
    server, without = servers
    with server.channel() as channel, without.channel() as plain_channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        expected = read_pages(sb_grpc.StateBackendServiceStub(plain_channel))
        child = started_bulk_process(server, stub)
        os.kill(child, signal.SIGKILL)
        for _ in range(5):  # served by the server itself meanwhile, whole
            assert read_pages(stub) == expected

        def replaced() -> bool:
            assert read_pages(stub) == expected
            return any(pid != child for pid in bulk_processes(server))

        wait_until(replaced, 60, "a new bulk read process")
    assert f"the bulk read process (pid {child}) is gone" in server.log()


def test_a_store_error_in_the_bulk_process_reaches_the_caller_with_its_details() -> None:
    redis = RedisServer().start()
    server = SidecarServer(redis.url).start()
    try:
        seed(server)
        with server.channel() as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            child = started_bulk_process(server, stub)
            later_page = second_page_request(stub)
            redis.stop()
            with pytest.raises(grpc.RpcError) as in_server:  # a first page: built by the server itself
                stub.GetHistory(sb.GetHistoryRequest(app_id=APP, invocation_id=INVOCATION), timeout=30)
            with pytest.raises(grpc.RpcError) as in_child:
                stub.GetHistory(later_page, timeout=30)
        assert in_server.value.code() == in_child.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(in_child.value)[0] == error_details(in_server.value)[0] != ""
        assert "redis" in in_child.value.details().lower()
        assert running(child), "a store error is an answer: the bulk read process stays"
    finally:
        server.stop()
        redis.cleanup()


def test_the_bulk_process_exits_with_its_server_even_one_killed(tmp_path) -> None:
    for stop_signal in (signal.SIGTERM, signal.SIGKILL):
        server = SidecarServer(None, data_file=str(tmp_path / f"{stop_signal.name}.db")).start()
        try:
            seed(server)
            with server.channel() as channel:
                stub = sb_grpc.StateBackendServiceStub(channel)
                child = started_bulk_process(server, stub)
                expected = read_pages(stub)
                os.kill(child, stop_signal if stop_signal == signal.SIGTERM else signal.SIGINT)
                time.sleep(0.5)  # a signal to the whole group (systemd, Ctrl-C) leaves the stop to the server
                assert running(child) and read_pages(stub) == expected
        finally:
            server.stop(stop_signal)
        gone = lambda pid=child: not running(pid)  # noqa: E731
        wait_until(gone, 15, f"the bulk read process to exit after its server's {stop_signal.name}")


def test_a_traced_server_forwards_pages_and_its_span_reports_the_childs_answer(redis_server) -> None:
    from test_tracing import STATUS_ERROR, Caller, OtlpReceiver, otel_env, server_span

    receiver = OtlpReceiver().start()
    server = SidecarServer(redis_server.url, env=otel_env(receiver)).start()
    try:
        seed(server)
        with server.channel() as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            started_bulk_process(server, stub)
            later_page = second_page_request(stub)
            served, refused = Caller(), Caller()
            reply = stub.GetHistory(later_page, timeout=30, metadata=served.metadata)
            assert len(reply.history) > 0
            wrong = sb.GetHistoryRequest(app_id=APP, invocation_id="small", page_token=later_page.page_token)
            with pytest.raises(grpc.RpcError) as error:  # a token of another invocation: refused before forwarding
                stub.GetHistory(wrong, timeout=30, metadata=refused.metadata)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        span, _ = server_span(receiver, served, "GetHistory", at_least=1)
        assert span["attributes"]["rpc.grpc.status_code"] == 0 and span["status"] != STATUS_ERROR
        span, _ = server_span(receiver, refused, "GetHistory", at_least=1)
        assert span["attributes"]["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        receiver.stop()


def test_a_bulk_process_that_cannot_start_costs_no_read_and_is_retried_with_backoff(tmp_path) -> None:
    # A temporary directory whose path leaves no room for a Unix socket name (107 bytes at most).
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    server = SidecarServer(None, data_file=str(tmp_path / "state.db"), env={"TMPDIR": str(deep)}).start()
    try:
        seed(server)
        with server.channel() as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            expected = read_pages(stub)

            def refused_once() -> bool:
                assert read_pages(stub) == expected
                return "cannot start the bulk read process" in server.log()

            wait_until(refused_once, 30, "the failed start to be logged")
            for _ in range(20):  # within the next 5 s nothing is tried again: one line, no process
                assert read_pages(stub) == expected
        assert server.log().count("cannot start the bulk read process") == 1
        assert "TMPDIR" in server.log() and "--bulk-read-process off" in server.log()
        assert bulk_processes(server) == [] and "Traceback" not in server.log()
    finally:
        server.stop()
