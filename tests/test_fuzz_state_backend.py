"""Hostile input against StateBackendService, property-based, on both stores; and the size
limits (--max-value-bytes, --max-message-bytes) on both services.

Every RPC gets requests built field by field from its proto descriptor: empty, huge, control
and key-syntax ids, extreme numbers, unknown enum values, out-of-range timestamps, bad JSON,
big batches. Only documented status codes come back, the server stays up, and nothing a
fuzzed app does reaches a sentinel app's state (the Redis keys' hash tags are checked too).
"""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
import redis
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor_client import error_details, position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import SIDECAR_FIXTURES, SidecarServer

DOCUMENTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
              grpc.StatusCode.FAILED_PRECONDITION}
SERVICE = sb.DESCRIPTOR.services_by_name["StateBackendService"]
METHODS = [m.name for m in SERVICE.methods]
FUZZ_PREFIX = "fzsb"  # every fuzzed app id starts with it: the sentinel app is out of its reach
HOSTILE = ["", "*", "?", "[a-z]", "\\", "%", "%25", "%3A", "_", "a:b", "a}", "{a", "}{", ":", "|", "#", "\x00", "\n",
           "é漢", "x" * 1100, " ", "a*", "psc:{x}"]

# Valid-looking ids (key syntax included) as often as invalid ones, so that calls get past
# validation into the stores.
valid_ids = st.text(alphabet=st.sampled_from(list(":{}*%|#?[]\\/_-. é漢") + list("abcxyz0129")), min_size=1,
                    max_size=16)
ids = st.one_of(st.sampled_from(HOSTILE),
                st.text(alphabet=st.sampled_from(list(":{}*%|#?[]\\ \n\t\x00\x7f/é漢_") + ["a", "b"]), max_size=12),
                st.text(max_size=30), valid_ids, valid_ids, valid_ids)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10) |
                           st.floats(allow_nan=False, allow_infinity=False),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3), max_leaves=8)
json_texts = st.one_of(st.sampled_from(["", "null", "{", "NaN", "Infinity", "[1,", '"\\ud800"', "1e999", "{}", "[]",
                                        '"ok"', "0", '{"a": 1}', "-0", "[" * 2000 + "]" * 2000]),
                       st.text(max_size=30), json_values.map(json.dumps), json_values.map(json.dumps))
INT_RANGES = {FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
              FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1)}


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, -1, 0, 1, 2, 1000, 1001, 10_000, 10_001, 2**31 - 1, 253_402_300_800,
                         -62_135_596_801, 999_999_999, 1_000_000_000) if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(max(low, 0), min(high, 2_000_000_000)))


def _string(field: FieldDescriptor) -> st.SearchStrategy[str]:
    if field.name.endswith("_json") or field.name == "json":
        return json_texts
    if field.name == "app_id":  # confined to the fuzz's own apps, hostile in the rest
        return st.one_of(st.just(""), ids.map(lambda v: FUZZ_PREFIX + v))
    if field.name == "page_token":
        return st.one_of(ids, st.sampled_from(["WzEuMCwgImEiXQ==", "WyJ4IiwgMV0=", "bm90IGpzb24=", "!!!"]))
    return ids


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message(field.message_type, depth + 1)
    if field.type == FieldDescriptor.TYPE_STRING:
        return _string(field)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 20)  # unknown values too (proto3 enums are open)
    if field.type in INT_RANGES:
        return _ints(*INT_RANGES[field.type])
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    raise NotImplementedError(field.type)


def message(descriptor, depth: int = 0) -> st.SearchStrategy:
    """A message of this type with a random subset of its fields set to hostile values."""
    parts = {}
    for field in descriptor.fields:
        if depth > 2 and field.type == FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            parts[field.name] = st.dictionaries(_scalar(key, depth), _scalar(value, depth), max_size=3)
        elif field.is_repeated:
            element = _scalar(field, depth)
            many = (
                st.just([f"id-{i}" for i in range(1001)]) if field.type == FieldDescriptor.TYPE_STRING else st.nothing()
            )
            parts[field.name] = st.one_of(st.lists(element, max_size=3), many)
        else:
            parts[field.name] = _scalar(field, depth)
    chosen = st.one_of(st.fixed_dictionaries(parts), st.fixed_dictionaries({}, optional=parts))
    cls = _message_class(descriptor)

    def build(values: dict) -> object:
        msg = cls()
        for name, value in values.items():
            field = descriptor.fields_by_name[name]
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                target = getattr(msg, name)
                for key, item in value.items():
                    if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                        target[key].CopyFrom(item)
                    else:
                        target[key] = item
            elif field.is_repeated:
                getattr(msg, name).extend(value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return chosen.map(build)


def _message_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


@pytest.fixture(scope="module", params=["redis", "sqlite", "cluster"])
def target(request):
    """(server, StateBackend stub, executor stub) on each store."""
    server = request.getfixturevalue(SIDECAR_FIXTURES[request.param])
    channel = grpc.insecure_channel(server.address)
    yield (
        request.param,
        server,
        sb_grpc.StateBackendServiceStub(channel),
        de_grpc.DeterministicExecutorServiceStub(channel),
    )
    channel.close()


def call(method, request) -> None:
    try:
        reply = method(request, timeout=30)
        if hasattr(reply, "__iter__") and not hasattr(reply, "ListFields"):
            list(reply)
    except grpc.RpcError as error:
        assert error.code() in DOCUMENTED, (error.code(), error.details())
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            reason, field, _ = error_details(error)
            assert reason == "INVALID_ARGUMENT" and field, error.details()  # names the field


# --- a sentinel app, written before the fuzz and read after it -------------------------------------
SENTINEL = f"sentinel-{uuid.uuid4().hex}"
SENTINEL_WF, SENTINEL_INV, SENTINEL_RUNNER = "wf:1", "inv}1", "runner*1"


def _write_sentinel(stub) -> None:
    stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(app_id=SENTINEL, module="m")))
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=SENTINEL, invocations=[sb.Invocation(
        invocation_id=SENTINEL_INV, task_id="m.t", workflow=common_pb2.WorkflowIdentity(workflow_id=SENTINEL_WF,
                                                                                      workflow_type="m.flow"))]))
    stub.AddHistory(sb.AddHistoryRequest(app_id=SENTINEL, invocation_ids=[SENTINEL_INV], history=sb.InvocationHistory(
        status=common_pb2.INVOCATION_STATUS_RUNNING, runner_id=SENTINEL_RUNNER)))
    stub.SetResult(sb.SetResultRequest(app_id=SENTINEL, invocation_id=SENTINEL_INV, result_json='"safe"'))
    stub.SetWorkflowData(
        sb.SetWorkflowDataRequest(app_id=SENTINEL, workflow_id=SENTINEL_WF, key="k", value_json='"safe"')
    )
    stub.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
        app_id=SENTINEL, workflow_id=SENTINEL_WF, key="k", value_json='"safe"'))
    stub.StoreWorkflowRun(sb.StoreWorkflowRunRequest(app_id=SENTINEL, workflow=common_pb2.WorkflowIdentity(
        workflow_id=SENTINEL_WF, workflow_type="m.flow")))
    stub.StoreRunnerContext(sb.StoreRunnerContextRequest(app_id=SENTINEL, runner_context=sb.RunnerContext(
        runner_id=SENTINEL_RUNNER, hostname="h")))


def _read_sentinel(stub) -> dict:
    return {
        "app": stub.GetAppInfo(sb.GetAppInfoRequest(app_id=SENTINEL)).app_info.module,
        "invocation": stub.GetInvocation(sb.GetInvocationRequest(app_id=SENTINEL, invocation_id=SENTINEL_INV))
        .invocation.task_id,
        "history": len(stub.GetHistory(sb.GetHistoryRequest(app_id=SENTINEL, invocation_id=SENTINEL_INV)).history),
        "result": stub.GetResult(sb.GetResultRequest(app_id=SENTINEL, invocation_id=SENTINEL_INV)).result_json,
        "data": stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=SENTINEL, workflow_id=SENTINEL_WF, key="k"))
        .value_json,
        "dv": stub.GetWorkflowDeterministicValue(sb.GetWorkflowDeterministicValueRequest(
            app_id=SENTINEL, workflow_id=SENTINEL_WF, key="k")).value_json,
        "runs": len(stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=SENTINEL)).workflows),
        "runners": [c.runner_id for c in stub.SearchRunnerContexts(sb.SearchRunnerContextsRequest(
            app_id=SENTINEL, partial_id="runner")).runner_contexts],
    }


SENTINEL_STATE = {"app": "m", "invocation": "m.t", "history": 1, "result": '"safe"', "data": '"safe"', "dv": '"safe"',
                  "runs": 1, "runners": [SENTINEL_RUNNER]}


def test_sentinel_app_is_written(target):
    _, _, stub, _ = target
    _write_sentinel(stub)
    assert _read_sentinel(stub) == SENTINEL_STATE


# --- the fuzz ----------------------------------------------------------------------------------
FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])
REQUESTS = {m.name: message(m.input_type) for m in SERVICE.methods}


def test_the_fuzz_covers_every_rpc():
    assert len(METHODS) == 30 and set(REQUESTS) == set(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_hostile_requests_get_only_documented_codes(target, method):
    _, _, stub, _ = target

    @FUZZ
    @given(request=REQUESTS[method])
    def run(request) -> None:
        call(getattr(stub, method), request)

    run()


@FUZZ
@given(app=ids, workflow=ids, key=ids, partial=ids)
def test_hostile_ids_never_reach_a_neighbours_state(target, app, workflow, key, partial):
    """Two apps / workflows whose ids would collide if concatenated unescaped stay apart, and a
    runner search is a literal substring search inside one app (no glob or LIKE wildcards)."""
    _, _, stub, _ = target
    app = FUZZ_PREFIX + "iso" + app
    pairs = [(app + ":" + workflow, key), (app, workflow + ":" + key), (app + "}", workflow), (app, "{" + workflow)]
    written = {}
    for n, (a, w) in enumerate(pairs):
        try:
            stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=a, workflow_id=w, key="k", value_json=str(n)))
            written[(a, w)] = str(n)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for (a, w), value in written.items():
        assert stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=a, workflow_id=w, key="k")).value_json == value
    try:
        runners = stub.SearchRunnerContexts(sb.SearchRunnerContextsRequest(app_id=SENTINEL, partial_id=partial))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert all(partial in c.runner_id for c in runners.runner_contexts)
        assert [c.runner_id for c in runners.runner_contexts] == (
            [SENTINEL_RUNNER] if partial in SENTINEL_RUNNER else []
        )


def test_purging_hostile_app_ids_purges_only_them(target):
    _, _, stub, _ = target
    for hostile in ["*", "?", "[a-z]*", "%", "_", "\\", "}", ":", SENTINEL[:9], SENTINEL + "*"]:
        call(stub.PurgeApp, sb.PurgeAppRequest(app_id=hostile))
    assert _read_sentinel(stub) == SENTINEL_STATE


def test_after_the_fuzz_the_sentinel_is_intact_and_the_server_is_up(target, redis_server):
    store, server, stub, executor = target
    assert _read_sentinel(stub) == SENTINEL_STATE
    assert server.process.poll() is None
    assert 0 <= executor.Random(de.RandomRequest(position=position("alive", "w", 1)), timeout=5).value < 1
    if store == "redis":  # every hash tag names one escaped app (and one escaped id): no '{' or extra ':'
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        for key in client.scan_iter(match="psc:{*", count=1000):
            tag = key[key.index("{") + 1:key.index("}")]
            parts = tag.split(":")  # app, app:id, or a dispatch queue's app:q:task_id
            assert (len(parts) <= 2 or (len(parts) == 3 and parts[1] == "q")) and "{" not in tag, key


# --- size limits ---------------------------------------------------------------------------------
def test_a_payload_over_max_payload_bytes_names_the_field_the_invocation_and_the_setting(small_limits):
    _, _, backend = small_limits
    big = '"' + "x" * 250 + '"'  # 252 bytes: over --max-payload-bytes 200, though under the message limit
    cases = [
        (lambda v: backend.SetResult(sb.SetResultRequest(app_id="lim", invocation_id="inv-9", result_json=v)),
         "result_json", "invocation 'inv-9'"),
        (lambda v: backend.SetResult(sb.SetResultRequest(app_id="lim", invocation_id="inv-9",
                                                         result=sb.SerializedValue(opaque=v))),
         "result.opaque", "invocation 'inv-9'"),
        (lambda v: backend.SetException(sb.SetExceptionRequest(
            app_id="lim", invocation_id="inv-9", exception=common_pb2.TaskError(type="E"),
            detail=sb.SerializedValue(opaque=v))), "detail.opaque", "invocation 'inv-9'"),
        (lambda v: backend.UpsertInvocations(sb.UpsertInvocationsRequest(app_id="lim", invocations=[
            sb.Invocation(invocation_id="inv-9", task_id="t", serialized_arguments={"a": v})])),
         "invocations[0].serialized_arguments[a]", "invocation 'inv-9'"),
        (lambda v: backend.SetWorkflowData(sb.SetWorkflowDataRequest(app_id="lim", workflow_id="w", key="k",
                                                                     value_json=v)), "value_json",
         "workflow 'w' key 'k'"),
        (lambda v: backend.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
            app_id="lim", workflow_id="w", key="k", value=sb.SerializedValue(json=v))), "value.json",
         "workflow 'w' key 'k'"),
    ]
    for send, field, subject in cases:
        send('"small"')  # under the limit: fine
        with pytest.raises(grpc.RpcError) as info:
            send(big)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(info.value)[1] == field
        assert f"is 252 bytes for {subject}; at most 200 are allowed" in info.value.details(), info.value.details()
        assert (
            "--max-payload-bytes" in info.value.details() and "PYNENC_SIDECAR_MAX_PAYLOAD_BYTES" in info.value.details()
        )


@pytest.fixture(scope="module")
def small_limits(redis_server):
    server = SidecarServer(redis_server.url, extra_args=["--max-value-bytes", "100", "--max-payload-bytes", "200",
                                                         "--max-message-bytes", "4096"]).start()
    channel = grpc.insecure_channel(server.address)
    yield server, de_grpc.DeterministicExecutorServiceStub(channel), sb_grpc.StateBackendServiceStub(channel)
    channel.close()
    server.stop()


def test_a_value_over_max_value_bytes_is_invalid_argument_naming_field_and_limit(small_limits):
    _, executor, backend = small_limits
    big = '"' + "x" * 150 + '"'
    cases = [
        (lambda v: executor.Record(de.RecordRequest(position=position("lim", "w", 1), operation="op", value_json=v)),
         "value_json"),
        (lambda v: executor.SetData(de.SetDataRequest(app_id="lim", workflow_id="w", key="k", value_json=v)),
         "value_json"),
    ]
    for send, field in cases:
        send('"small"')  # under the limit: fine
        with pytest.raises(grpc.RpcError) as info:
            send(big)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(info.value)[1] == field
        assert "152 bytes; at most 100 are allowed" in info.value.details()


def test_a_request_over_max_message_bytes_is_resource_exhausted_with_a_clear_message(small_limits):
    server, executor, backend = small_limits
    huge = "x" * 5000  # the message is larger than 4096 bytes, whatever the field
    attempts = [
        lambda: executor.Record(de.RecordRequest(position=position("lim", "w", 1), operation="op",
                                                 value_json=f'"{huge}"'), timeout=10),
        lambda: backend.UpsertInvocations(sb.UpsertInvocationsRequest(app_id="lim", invocations=[
            sb.Invocation(invocation_id="i", task_id="t", serialized_arguments={"a": huge})]), timeout=10),
        lambda: list(executor.GetWorkflowLog(de.GetWorkflowLogRequest(app_id="lim", workflow_id=huge), timeout=10)),
    ]
    for attempt in attempts:
        with pytest.raises(grpc.RpcError) as info:
            attempt()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
        assert "larger than max" in info.value.details() and "4096" in info.value.details(), info.value.details()
    assert server.process.poll() is None
    assert executor.Random(de.RandomRequest(position=position("lim", "w", 1)), timeout=5).value >= 0
