"""Hostile bytes and impatient clients (issue 12, case 4), over real channels to real servers.

Bytes that are not the method's request message are INVALID_ARGUMENT (reason
MALFORMED_REQUEST), never UNKNOWN, and leave no traceback in the server's log; a client that
cancels a stream or lets its deadline pass leaves no traceback either (with tracing on, where
the tracing context of an abandoned stream used to be closed in the wrong task).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from executor_client import position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import RedisServer, SidecarServer
from test_tracing import OtlpReceiver, otel_env

GARBAGE = [b"\xff\xff\xff\xff", b"\x0a\x05\xff\xfe\xfd\xfc\xfb", b"\x08", b"\x12\x7f" + b"x" * 3]
METHODS = {  # method -> is it server-streaming
    "/pynenc.sidecar.v1.DeterministicExecutorService/Random": False,
    "/pynenc.sidecar.v1.DeterministicExecutorService/ExecuteTask": False,
    "/pynenc.sidecar.v1.DeterministicExecutorService/GetWorkflowLog": True,
    "/pynenc.sidecar.v1.StateBackendService/AddHistory": False,
    "/pynenc.sidecar.v1.StateBackendService/StreamHistoryInTimeRange": True,
    "/grpc.health.v1.Health/Check": False,
}


@pytest.fixture(params=["redis", "sqlite"])
def server(request: pytest.FixtureRequest) -> SidecarServer:
    return request.getfixturevalue("sidecar" if request.param == "redis" else "sqlite_sidecar")


def problems(log: str) -> list[str]:
    return [line[:300] for line in log.splitlines() if "Traceback" in line or '"ERROR"' in line or " ERROR " in line]


def test_garbage_request_bytes_are_invalid_argument_without_a_traceback(server: SidecarServer) -> None:
    before = len(server.log())
    with server.channel() as channel:
        for method, streaming in METHODS.items():
            call = channel.unary_stream(method) if streaming else channel.unary_unary(method)
            for payload in GARBAGE:
                with pytest.raises(grpc.RpcError) as caught:
                    reply = call(payload, timeout=10)
                    list(reply) if streaming else None
                error = caught.value
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, payload, error.details())
                assert method in error.details() and "do not parse" in error.details()
                status = rpc_status.from_call(error)
                info = error_details_pb2.ErrorInfo()
                assert status is not None and status.details[0].Unpack(info)
                assert (info.reason, info.metadata["method"]) == ("MALFORMED_REQUEST", method)
        # The server still serves well-formed calls.
        reply = de_grpc.DeterministicExecutorServiceStub(channel).Random(
            de.RandomRequest(position=position(f"wire-{uuid.uuid4().hex[:8]}", "w", 1)), timeout=10)
        assert 0 <= reply.value < 1
    assert problems(server.log()[before:]) == []


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "sqlite"])
def traced(request: pytest.FixtureRequest, receiver: OtlpReceiver, tmp_path) -> Iterator[SidecarServer]:
    redis_server = RedisServer().start() if request.param == "redis" else None
    server = SidecarServer(redis_server.url if redis_server else None, data_file=str(tmp_path / "state.db"),
                           env=otel_env(receiver)).start()
    yield server
    server.stop()
    if redis_server:
        redis_server.cleanup()


def test_cancelled_streams_and_passed_deadlines_leave_no_traceback(traced: SidecarServer) -> None:
    app_id = f"cancel-{uuid.uuid4().hex[:8]}"
    running = common_pb2.InvocationStatus.Value("INVOCATION_STATUS_RUNNING")
    with traced.channel() as channel:
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        backend = sb_grpc.StateBackendServiceStub(channel)
        for start in range(0, 3000, 250):  # a log of three batches
            for future in [stub.Random.future(de.RandomRequest(position=position(app_id, "big", n + 1)))
                           for n in range(start, start + 250)]:
                future.result(timeout=30)
        for n in range(10):
            backend.AddHistory(sb.AddHistoryRequest(app_id=app_id, invocation_ids=[f"i{n}-{k}" for k in range(100)],
                                                    history=sb.InvocationHistory(status=running)), timeout=30)
        history = sb.StreamHistoryInTimeRangeRequest(app_id=app_id, start_time=timestamp_pb2.Timestamp(seconds=1),
                                                     end_time=timestamp_pb2.Timestamp(seconds=2**33), batch_size=10)
        for _ in range(5):
            for stream in (stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="big")),
                           backend.StreamHistoryInTimeRange(history)):
                next(stream)  # one response, then the client walks away
                stream.cancel()
            for call in (lambda: list(stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="big"),
                                                          timeout=0.01)),
                         lambda: list(backend.StreamHistoryInTimeRange(history, timeout=0.01))):
                try:
                    call()
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        for n in range(20):  # unary calls cancelled in flight
            stub.Random.future(de.RandomRequest(position=position(app_id, "cancelled", n + 1))).cancel()
        assert stub.Random(de.RandomRequest(position=position(app_id, "after", 1)), timeout=10).value >= 0
    traced.stop()
    assert problems(traced.log()) == []
