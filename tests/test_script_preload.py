"""No error spans in normal operation (issue 12, case 9), with a real OTLP receiver.

redis-py runs a Lua script by EVALSHA and reloads it on NOSCRIPT: on a fresh or restarted
Redis that left an EVALSHA error span, a SCRIPT LOAD and a retry in the first traces. The
Redis store now loads its scripts on every new connection, so neither a start nor a
restart of Redis shows an error span.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from executor_client import position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import RedisServer, SidecarServer, wait_until
from test_tracing import STATUS_ERROR, Caller, OtlpReceiver, otel_env


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def traced_calls(server: SidecarServer, app_id: str, tag: str) -> list[Caller]:
    """One traced call of each script-running kind (and a StateBackend write): their callers."""
    callers = [Caller() for _ in range(4)]
    with server.channel() as channel:
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        stub.Random(de.RandomRequest(position=position(app_id, f"w-{tag}", 1)), metadata=callers[0].metadata)
        stub.UtcNow(de.UtcNowRequest(position=position(app_id, f"w-{tag}", 1)), metadata=callers[1].metadata)
        stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, f"w-{tag}", 1), task_id="t.x",
                                               arguments_json="{}"), metadata=callers[2].metadata)
        sb_grpc.StateBackendServiceStub(channel).AddHistory(
            sb.AddHistoryRequest(app_id=app_id, invocation_ids=[f"i-{tag}"], history=sb.InvocationHistory(
                status=common_pb2.InvocationStatus.Value("INVOCATION_STATUS_RUNNING"), execution_context_json="{}")),
            metadata=callers[3].metadata)
    return callers


def reads_succeed(server: SidecarServer, app_id: str, times: int = 3) -> bool:
    """Plain reads (no script) succeed `times` in a row: the pool's stale connections, each
    failing once after the restart, are gone. A script's first run is left to the test."""
    try:
        with server.channel() as channel:
            stub = de_grpc.DeterministicExecutorServiceStub(channel)
            for _ in range(times):
                stub.GetRecorded(de.GetRecordedRequest(position=position(app_id, "w-probe", 1),
                                                       kind=de.OPERATION_KIND_RANDOM), timeout=5)
        return True
    except grpc.RpcError:
        return False


def error_spans(receiver: OtlpReceiver, callers: list[Caller], per_trace: int = 2) -> list[str]:
    """Error spans of the callers' traces (each: the server span, and Redis' on Redis)."""
    spans = [s for c in callers for s in receiver.trace(c.trace_id, at_least=per_trace)]
    return [f"{s['name']} ({s['attributes'].get('db.statement', '')})" for s in spans if s["status"] == STATUS_ERROR]


def test_no_error_spans_on_a_fresh_redis_nor_after_it_restarts(receiver: OtlpReceiver) -> None:
    redis_server = RedisServer().start()
    server = SidecarServer(redis_server.url, env=otel_env(receiver)).start()
    app_id = f"preload-{uuid.uuid4().hex[:8]}"
    try:
        assert error_spans(receiver, traced_calls(server, app_id, "fresh")) == []
        redis_server.stop()  # a restart empties Redis' script cache
        redis_server = RedisServer(port=redis_server.port, directory=redis_server.directory).start()
        wait_until(lambda: reads_succeed(server, app_id), 20, "reads succeeding again")
        assert error_spans(receiver, traced_calls(server, app_id, "restarted")) == []
    finally:
        server.stop()
        redis_server.cleanup()


def test_no_error_spans_on_the_embedded_store(receiver: OtlpReceiver, tmp_path) -> None:
    server = SidecarServer(None, data_file=str(tmp_path / "state.db"), env=otel_env(receiver)).start()
    try:
        assert error_spans(receiver, traced_calls(server, f"preload-{uuid.uuid4().hex[:8]}", "sqlite"), 1) == []
    finally:
        server.stop()
