"""Every repeated field of both services has a documented limit (docs/limits.md), and each
request past its count limit is INVALID_ARGUMENT naming the field, with nothing written, on
both stores (issue 12: "size limits for every repeated field, documented")."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from executor_client import position
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc

ROOT = Path(__file__).resolve().parent.parent
LIMITS_DOC = ROOT / "docs" / "limits.md"


def repeated_fields(descriptor, path: str, seen: frozenset[str]) -> Iterator[str]:
    for field in descriptor.fields:
        here = f"{path}.{field.name}"
        if field.is_repeated:
            yield here
        message = field.message_type
        if message is not None and message.file.package.startswith("pynenc") and message.full_name not in seen \
                and not message.GetOptions().map_entry:
            yield from repeated_fields(message, here, seen | {message.full_name})


def every_repeated_field() -> set[str]:
    found = set()
    for module in (de, sb):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                for message in (method.input_type, method.output_type):
                    found |= set(repeated_fields(message, message.name, frozenset({message.full_name})))
    return found


def documented_fields() -> set[str]:
    return set(re.findall(r"^\| `([A-Za-z]+\.[a-z_.]+)` \|", LIMITS_DOC.read_text(), flags=re.MULTILINE))


def test_every_repeated_field_has_a_documented_limit() -> None:
    fields, documented = every_repeated_field(), documented_fields()
    assert fields - documented == set(), "repeated fields with no limit in docs/limits.md"
    assert documented - fields == set(), "docs/limits.md lists fields the protos do not have"


@pytest.fixture(params=["sidecar", "sqlite_sidecar", "cluster_sidecar"])
def stub(request) -> Iterator[sb_grpc.StateBackendServiceStub]:
    channel = grpc.insecure_channel(request.getfixturevalue(request.param).address,
                                    options=[("grpc.max_send_message_length", 64 << 20)])
    yield sb_grpc.StateBackendServiceStub(channel)
    channel.close()


@pytest.fixture
def app_id() -> str:
    return f"limits-{uuid.uuid4().hex[:8]}"


def invocation(n: int, arguments: int = 0, serialized: int = 0) -> sb.Invocation:
    inv = sb.Invocation(invocation_id=f"i{n}", task_id="m.t")
    for a in range(arguments):
        inv.arguments[f"a{a}"].json = "1"
    for a in range(serialized):
        inv.serialized_arguments[f"a{a}"] = "x"
    return inv


# (rpc, request with `count` items, the field an error must name, the limit)
CASES: list[tuple[str, Callable[[str, int], object], str, int]] = [
    ("UpsertInvocations", lambda app, n: sb.UpsertInvocationsRequest(
        app_id=app, invocations=[invocation(i) for i in range(n)]), "invocations", 1000),
    ("UpsertInvocations", lambda app, n: sb.UpsertInvocationsRequest(
        app_id=app, invocations=[invocation(0, arguments=n)]), "invocations[0].arguments", 1000),
    ("UpsertInvocations", lambda app, n: sb.UpsertInvocationsRequest(
        app_id=app, invocations=[invocation(0, serialized=n)]), "invocations[0].serialized_arguments", 1000),
    ("AddHistory", lambda app, n: sb.AddHistoryRequest(
        app_id=app, invocation_ids=[f"i{i}" for i in range(n)], history=sb.InvocationHistory()),
     "invocation_ids", 1000),
    ("BatchGetRunnerContexts", lambda app, n: sb.BatchGetRunnerContextsRequest(
        app_id=app, runner_ids=[f"r{i}" for i in range(n)]), "runner_ids", 1000),
]


@pytest.mark.parametrize("rpc, build, field, limit", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_one_item_past_a_limit_is_refused_naming_the_field_and_nothing_is_written(
        stub, app_id: str, rpc: str, build, field: str, limit: int) -> None:
    call = getattr(stub, rpc)
    with pytest.raises(grpc.RpcError) as caught:
        call(build(app_id, limit + 1), timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details() and str(limit) in caught.value.details()
    with pytest.raises(grpc.RpcError) as missing:  # nothing of the refused request was stored
        stub.GetInvocation(sb.GetInvocationRequest(app_id=app_id, invocation_id="i0"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert not list(stub.GetHistory(sb.GetHistoryRequest(app_id=app_id, invocation_id="i0"), timeout=10).history)
    call(build(app_id, limit), timeout=60)  # the limit itself is accepted


EXECUTOR_CASES = [
    ("PollTasks", lambda app, n: de.PollTasksRequest(app_id=app, task_ids=[f"t{i}" for i in range(n)]),
     "task_ids", 100),
    ("ExecuteTask", lambda app, n: de.ExecuteTaskRequest(
        position=position(app, "w", 1), task_id="m.t", arguments_json="{}",
        dispatch=de.TaskDispatch(retry_policy=de.RetryPolicy(retryable_error_types=[f"E{i}" for i in range(n)]))),
     "dispatch.retry_policy.retryable_error_types", 100),
    ("ExecuteTask", lambda app, n: de.ExecuteTaskRequest(
        position=position(app, "w", 1), task_id="m.t", arguments_json="{}",
        dispatch=de.TaskDispatch(retry_policy=de.RetryPolicy(non_retryable_error_types=[f"E{i}" for i in range(n)]))),
     "dispatch.retry_policy.non_retryable_error_types", 100),
]


@pytest.mark.parametrize("server", ["sidecar", "sqlite_sidecar", "cluster_sidecar"])
@pytest.mark.parametrize("rpc, build, field, limit", EXECUTOR_CASES, ids=[f"{c[0]}-{c[2]}" for c in EXECUTOR_CASES])
def test_executor_requests_past_a_limit_are_refused_and_record_nothing(request, server, app_id: str, rpc: str,
                                                                      build, field: str, limit: int) -> None:
    channel = grpc.insecure_channel(request.getfixturevalue(server).address)
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, rpc)(build(app_id, limit + 1), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in caught.value.details() and str(limit) in caught.value.details()
        assert stub.GetOperationCount(de.GetOperationCountRequest(
            app_id=app_id, workflow_id="w", kind=de.OPERATION_KIND_TASK), timeout=10).count == 0
    finally:
        channel.close()
