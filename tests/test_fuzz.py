"""Hostile input, property-based: random and extreme field values against the real server.

Only documented status codes come back, the server stays up, and no id reaches keys of
another workflow or app.
"""

from __future__ import annotations

import uuid

import grpc
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pynenc_sidecar.core.positions import escape
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc

DOCUMENTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
              grpc.StatusCode.FAILED_PRECONDITION}
FUZZ_APP_PREFIX = "fz"

# Ids: empty, huge, control characters, key syntax characters, unicode.
ids = st.one_of(
    st.just(""),
    st.text(alphabet=st.sampled_from(list(":{}*%|#?[]\\ \n\t\x00\x7f/é漢") + ["a", "b"]), max_size=12),
    st.text(max_size=40),
    st.just("x" * 1500),
)
sequences = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from([0, 1, 2, 2**53, 2**53 + 1])
)
json_texts = st.one_of(
    st.sampled_from(["", "null", "{", "NaN", "Infinity", "[1,", "\"\\ud800\"", "1e999", "{}", "[]", '"ok"', "0"]),
    st.text(max_size=30),
    st.just('"' + "x" * (1024 * 1024 + 10) + '"'),
)
kinds = st.integers(min_value=-3, max_value=9)


@pytest.fixture(scope="module")
def stub(sidecar):
    channel = grpc.insecure_channel(sidecar.address)
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


def position(app: str, workflow: str, invocation: str, sequence: int) -> de.OperationPosition:
    return de.OperationPosition(
        app_id=FUZZ_APP_PREFIX + app if app else "",
        sequence=sequence,
        invocation_id=invocation,
        workflow=common_pb2.WorkflowIdentity(workflow_id=workflow),
    )


def call(method, request) -> None:
    try:
        reply = method(request, timeout=20)
        if hasattr(reply, "__iter__") and not hasattr(reply, "ListFields"):
            list(reply)
    except grpc.RpcError as error:
        assert error.code() in DOCUMENTED, (error.code(), error.details())


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


@FUZZ
@given(app=ids, workflow=ids, invocation=ids, sequence=sequences, op=st.sampled_from(["Random", "UtcNow", "Uuid"]))
def test_value_rpcs(stub, app, workflow, invocation, sequence, op):
    request_cls = {"Random": de.RandomRequest, "UtcNow": de.UtcNowRequest, "Uuid": de.UuidRequest}[op]
    call(getattr(stub, op), request_cls(position=position(app, workflow, invocation, sequence)))


@FUZZ
@given(app=ids, workflow=ids, name=ids, sequence=sequences, value=json_texts, kind=kinds)
def test_record_and_get_recorded(stub, app, workflow, name, sequence, value, kind):
    pos = position(app, workflow, "", sequence)
    call(stub.Record, de.RecordRequest(position=pos, operation=name, value_json=value))
    call(stub.GetRecorded, de.GetRecordedRequest(position=pos, kind=kind, custom_name=name))
    call(stub.GetOperationCount, de.GetOperationCountRequest(app_id=pos.app_id, workflow_id=workflow, kind=kind,
                                                             custom_name=name))


@FUZZ
@given(app=ids, workflow=ids, task=ids, args=json_texts, sequence=sequences, force=st.booleans(),
       ttl=st.integers(min_value=-10, max_value=10**6))
def test_task_rpcs(stub, app, workflow, task, args, sequence, force, ttl):
    pos = position(app, workflow, "", sequence)
    call(stub.ExecuteTask, de.ExecuteTaskRequest(position=pos, task_id=task, arguments_json=args,
                                                 force_new_workflow=force, lease_ttl={"seconds": ttl}))
    call(stub.StartWorkflow, de.StartWorkflowRequest(app_id=pos.app_id, arguments_json=args,
                                                     workflow=common_pb2.WorkflowIdentity(workflow_id=workflow,
                                                                                         workflow_type=task)))
    call(stub.RenewTaskLease, de.RenewTaskLeaseRequest(app_id=pos.app_id, invocation_id=workflow, lease_id=task))
    call(stub.CompleteTask, de.CompleteTaskRequest(app_id=pos.app_id, invocation_id=workflow, lease_id=task,
                                                   result_json=args))
    call(stub.WaitTask, de.WaitTaskRequest(app_id=pos.app_id, invocation_id=workflow,
                                           timeout={"seconds": max(min(ttl, 1), -1)}))


@FUZZ
@given(app=ids, workflow=ids, invocation=ids, key=ids, value=json_texts)
def test_data_time_and_log_rpcs(stub, app, workflow, invocation, key, value):
    app_id = FUZZ_APP_PREFIX + app if app else ""
    call(stub.SetData, de.SetDataRequest(app_id=app_id, workflow_id=workflow, invocation_id=invocation, key=key,
                                         value_json=value))
    call(stub.GetData, de.GetDataRequest(app_id=app_id, workflow_id=workflow, key=key))
    call(stub.GetBaseTime, de.GetBaseTimeRequest(app_id=app_id, workflow_id=workflow))
    call(stub.GetWorkflowLog, de.GetWorkflowLogRequest(app_id=app_id, workflow_id=workflow))


def test_fuzzing_never_touched_another_apps_keys_and_the_server_is_up(stub, sidecar, redis_server):
    # A sentinel workflow written before and read after a burst of hostile ids.
    sentinel_app = f"sentinel-{uuid.uuid4().hex}"
    stub.SetData(de.SetDataRequest(app_id=sentinel_app, workflow_id="w", key="k", value_json='"safe"'))
    for hostile in ["w}", "{w", "w:*", "*", "w|k", f"}}:{sentinel_app}", "%7D"]:
        call(stub.SetData, de.SetDataRequest(app_id=FUZZ_APP_PREFIX + hostile, workflow_id=hostile, key="k",
                                             value_json='"evil"'))
        call(stub.SetData, de.SetDataRequest(app_id=sentinel_app, workflow_id=hostile, key="k", value_json='"evil"'))
    assert stub.GetData(de.GetDataRequest(app_id=sentinel_app, workflow_id="w", key="k")).value_json == '"safe"'
    # Every key's hash tag starts with an escaped app id: escaping leaves no '{', '}' or ':'
    # inside an id, so a tag can only name the app and workflow it was built from.
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    for key in client.scan_iter(match="psc:{*", count=1000):
        tag = key[key.index("{") + 1:key.index("}")]
        parts = tag.split(":")  # app, app:id, or a dispatch queue's app:q:task_id
        assert (len(parts) <= 2 or (len(parts) == 3 and parts[1] == "q")) and "{" not in tag, key
    assert escape("a:b}") == "a%3Ab%7D"
    assert stub.Random(de.RandomRequest(position=position("alive", "w", "", 1)), timeout=5).value >= 0
