"""StateBackendService end to end: a real sidecar process, on a real redis-server and on the
embedded SQLite store (every test taking `channel` or `stub` runs against both)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
import redis
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from pynenc_sidecar.core.positions import escape
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc

S = common_pb2.InvocationStatus
WorkflowIdentity = common_pb2.WorkflowIdentity


@pytest.fixture(scope="module", params=["redis", "sqlite", "cluster"])
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(backend, request):
    """The sidecar of this backend: `sidecar` on Redis, `sqlite_sidecar` with no Redis URL,
    `cluster_sidecar` in front of a real 6-node Redis Cluster."""
    return request.getfixturevalue({"redis": "sidecar", "sqlite": "sqlite_sidecar",
                                    "cluster": "cluster_sidecar"}[backend])


@pytest.fixture(scope="module")
def channel(server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def stub(channel) -> sb_grpc.StateBackendServiceStub:
    return sb_grpc.StateBackendServiceStub(channel)


@pytest.fixture
def app() -> str:
    return f"app-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def rdb(redis_server) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def error_of(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        reply = call(request, timeout=10)
        if hasattr(reply, "__iter__") and not hasattr(reply, "ListFields"):
            list(reply)  # a stream fails on iteration
    return info.value


def details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo | None, error_details_pb2.BadRequest | None]:
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    info = bad = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
    return info, bad


def assert_invalid(call, request, field: str) -> None:
    error = error_of(call, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    _, bad = details(error)
    assert bad is not None and [v.field for v in bad.field_violations] == [field], error.details()


def assert_not_found(call, request, reason: str) -> error_details_pb2.ErrorInfo:
    error = error_of(call, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    info, _ = details(error)
    assert info is not None and info.reason == reason
    return info


def invocation(invocation_id: str, **fields) -> sb.Invocation:
    fields.setdefault("task_id", "orders.process")
    return sb.Invocation(invocation_id=invocation_id, **fields)


# --- registration ------------------------------------------------------------------
def test_service_is_registered_for_health(channel):
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="pynenc.sidecar.v1.StateBackendService"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- invocations -------------------------------------------------------------------
def test_upsert_and_get_invocation_round_trips_every_field(stub, app):
    full = sb.Invocation(
        invocation_id="inv-1", task_id="orders.process", call_id="orders.process#abc",
        serialized_arguments={"order": '{"id": 7}', "note": "plain text, not JSON"},
        workflow=WorkflowIdentity(workflow_id="wf-1", workflow_type="orders.flow", parent_workflow_id="wf-0"),
        parent_invocation_id="inv-0", parent_event_id="ev-9",
    )
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[full, invocation("inv-2")]))
    # serialized_arguments are kept as opaque text; a read fills both forms.
    for name, text in full.serialized_arguments.items():
        full.arguments[name].opaque = text
    assert stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id="inv-1")).invocation == full
    assert stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id="inv-2")).invocation == invocation(
        "inv-2"
    )

    replaced = invocation("inv-1", task_id="orders.other")
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[replaced]))
    assert stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id="inv-1")).invocation == replaced


def test_get_unknown_invocation_is_not_found(stub, app):
    info = assert_not_found(stub.GetInvocation, sb.GetInvocationRequest(app_id=app, invocation_id="nope"),
                            "INVOCATION_NOT_FOUND")
    assert info.metadata["invocation_id"] == "nope"


def test_invalid_upsert_batch_writes_nothing(stub, app):
    batch = [invocation("good"), sb.Invocation(invocation_id="bad")]
    assert_invalid(stub.UpsertInvocations, sb.UpsertInvocationsRequest(app_id=app, invocations=batch),
                   "invocations[1].task_id")
    assert_not_found(stub.GetInvocation, sb.GetInvocationRequest(app_id=app, invocation_id="good"),
                     "INVOCATION_NOT_FOUND")


def test_child_invocations_and_ids_by_workflow(stub, app):
    wf_a = WorkflowIdentity(workflow_id="wf-a", workflow_type="flow")
    wf_b = WorkflowIdentity(workflow_id="wf-b", workflow_type="flow")
    wf_c = WorkflowIdentity(workflow_id="wf-c", workflow_type="other")
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[
        invocation("wf-a", workflow=wf_a),
        invocation("c1", workflow=wf_a, parent_invocation_id="wf-a"),
        invocation("c2", workflow=wf_a, parent_invocation_id="wf-a"),
        invocation("b1", workflow=wf_b, parent_invocation_id="wf-b"),
        invocation("x1", workflow=wf_c, parent_invocation_id="c1"),
    ]))

    def children(parent):
        return list(stub.ListChildInvocations(
            sb.ListChildInvocationsRequest(app_id=app, parent_invocation_id=parent)).invocation_ids)

    def by_workflow(workflow_id="", workflow_type=""):
        return list(stub.ListInvocationIdsByWorkflow(sb.ListInvocationIdsByWorkflowRequest(
            app_id=app, workflow_id=workflow_id, workflow_type=workflow_type)).invocation_ids)

    assert children("wf-a") == ["c1", "c2"]
    assert children("c1") == ["x1"]
    assert children("nobody") == []
    assert by_workflow("wf-a") == ["c1", "c2", "wf-a"]
    assert by_workflow(workflow_type="flow") == ["b1", "c1", "c2", "wf-a"]
    assert by_workflow("wf-a", "flow") == ["c1", "c2", "wf-a"]
    assert by_workflow("wf-a", "other") == []
    assert by_workflow("wf-c", "other") == ["x1"]

    # Replacing an invocation moves it out of the indexes of its former parent/workflow.
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[
        invocation("c2", workflow=wf_b, parent_invocation_id="wf-b")]))
    assert children("wf-a") == ["c1"]
    assert children("wf-b") == ["b1", "c2"]
    assert by_workflow("wf-a") == ["c1", "wf-a"]
    assert by_workflow("wf-b", "flow") == ["b1", "c2"]


# --- history -----------------------------------------------------------------------
def test_history_is_ordered_by_timestamp_and_keeps_identical_entries(stub, app):
    def add(ids, **history):
        stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=ids, history=sb.InvocationHistory(**history)))

    add(["i1", "i2"], timestamp=ts(2000), status=S.Value("INVOCATION_STATUS_RUNNING"), runner_id="r1",
        execution_context_json='{"attempt": 1}')
    add(["i1"], timestamp=ts(1000, 500_000), status=S.Value("INVOCATION_STATUS_REGISTERED"))
    add(["i1"], timestamp=ts(3000), status=S.Value("INVOCATION_STATUS_SUCCESS"))
    add(["i1"], timestamp=ts(3000), status=S.Value("INVOCATION_STATUS_SUCCESS"))

    history = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="i1")).history
    assert [(h.timestamp.seconds, h.timestamp.nanos) for h in history] == [
        (1000, 500_000),
        (2000, 0),
        (3000, 0),
        (3000, 0),
    ]
    assert [h.status for h in history] == [1, 7, 11, 11]
    assert all(h.invocation_id == "i1" for h in history)
    assert history[1].runner_id == "r1" and history[1].execution_context_json == '{"attempt": 1}'
    other = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="i2")).history
    assert [(h.invocation_id, h.timestamp.seconds) for h in other] == [("i2", 2000)]
    assert list(stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="none")).history) == []


def test_history_without_timestamp_gets_the_server_time(stub, app):
    import time

    before = int(time.time())
    stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=["i"], history=sb.InvocationHistory()))
    (entry,) = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="i")).history
    assert before - 1 <= entry.timestamp.seconds <= int(time.time()) + 1
    assert entry.status == S.Value("INVOCATION_STATUS_UNSPECIFIED")


def _seed_timeline(stub, app, count: int) -> None:
    # Entry k at second 1000 + k, invocation "inv-<k // 2>": two entries per invocation.
    for k in range(count):
        stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=[f"inv-{k // 2:02d}"],
                                             history=sb.InvocationHistory(
            timestamp=ts(1000 + k), status=S.Value("INVOCATION_STATUS_RUNNING"))))


def test_stream_history_in_time_range_in_batches(stub, app):
    _seed_timeline(stub, app, 25)
    other_app = app + "-other"
    _seed_timeline(stub, other_app, 3)

    batches = list(stub.StreamHistoryInTimeRange(sb.StreamHistoryInTimeRangeRequest(
        app_id=app, start_time=ts(1002), end_time=ts(1024), batch_size=10)))
    assert [len(b.history) for b in batches] == [10, 10, 3]
    entries = [h for b in batches for h in b.history]
    assert [h.timestamp.seconds for h in entries] == list(range(1002, 1025))  # inclusive bounds, oldest first
    assert entries[0].invocation_id == "inv-01"

    default = list(stub.StreamHistoryInTimeRange(sb.StreamHistoryInTimeRangeRequest(
        app_id=app, start_time=ts(0), end_time=ts(10_000))))
    assert [len(b.history) for b in default] == [25]
    empty = list(stub.StreamHistoryInTimeRange(sb.StreamHistoryInTimeRangeRequest(
        app_id=app, start_time=ts(5000), end_time=ts(5000))))
    assert empty == []


def test_stream_invocations_in_time_range_lists_each_once(stub, app):
    _seed_timeline(stub, app, 25)  # inv-00 .. inv-12
    batches = list(stub.StreamInvocationsInTimeRange(sb.StreamInvocationsInTimeRangeRequest(
        app_id=app, start_time=ts(1003), end_time=ts(1020), batch_size=4)))
    assert [len(b.invocation_ids) for b in batches] == [4, 4, 2]
    ids = [i for b in batches for i in b.invocation_ids]
    assert ids == [f"inv-{n:02d}" for n in range(1, 11)]


# --- results and exceptions --------------------------------------------------------
def test_results(stub, app):
    assert_not_found(stub.GetResult, sb.GetResultRequest(app_id=app, invocation_id="i"), "RESULT_NOT_FOUND")
    stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id="i", result_json="null"))
    assert stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id="i")).result_json == "null"
    stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id="i", result_json='{"total": 3}'))
    assert stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id="i")).result_json == '{"total": 3}'
    assert_invalid(
        stub.SetResult, sb.SetResultRequest(app_id=app, invocation_id="i", result_json="{oops"), "result_json"
    )
    assert_invalid(stub.SetResult, sb.SetResultRequest(app_id=app, invocation_id="i", result_json="NaN"), "result_json")
    assert stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id="i")).result_json == '{"total": 3}'


def test_exceptions(stub, app):
    assert_not_found(stub.GetException, sb.GetExceptionRequest(app_id=app, invocation_id="i"), "EXCEPTION_NOT_FOUND")
    error = common_pb2.TaskError(type="ValueError", message="bad order", detail_json='{"trace": ["a", "b"]}')
    stub.SetException(sb.SetExceptionRequest(app_id=app, invocation_id="i", exception=error))
    assert stub.GetException(sb.GetExceptionRequest(app_id=app, invocation_id="i")).exception == error
    assert_invalid(stub.SetException, sb.SetExceptionRequest(
        app_id=app, invocation_id="i", exception=common_pb2.TaskError(type="E", detail_json="[")),
        "exception.detail_json")


# --- workflow data and deterministic values ----------------------------------------
def test_workflow_data_is_the_deterministic_executors_data(stub, channel, app):
    get = sb.GetWorkflowDataRequest(app_id=app, workflow_id="wf", key="k")
    assert stub.GetWorkflowData(get) == sb.GetWorkflowDataResponse(found=False)
    stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=app, workflow_id="wf", key="k", value_json="null"))
    assert stub.GetWorkflowData(get) == sb.GetWorkflowDataResponse(found=True, value_json="null",
                                                                   value=sb.SerializedValue(json="null"))
    stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=app, workflow_id="wf", key="k", value_json="[1, 2]"))
    assert stub.GetWorkflowData(get).value_json == "[1, 2]"
    executor = de_grpc.DeterministicExecutorServiceStub(channel)
    assert executor.GetData(de.GetDataRequest(app_id=app, workflow_id="wf", key="k")).value_json == "[1, 2]"


def test_deterministic_value_first_writer_wins(stub, app):
    get = sb.GetWorkflowDeterministicValueRequest(app_id=app, workflow_id="wf", key="seed")
    assert stub.GetWorkflowDeterministicValue(get) == sb.GetWorkflowDeterministicValueResponse(found=False)
    first = stub.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
        app_id=app, workflow_id="wf", key="seed", value_json="null"))
    assert (first.value_json, first.replayed) == ("null", False)
    second = stub.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
        app_id=app, workflow_id="wf", key="seed", value_json="42"))
    assert (second.value_json, second.replayed) == ("null", True)
    assert stub.GetWorkflowDeterministicValue(get) == sb.GetWorkflowDeterministicValueResponse(
        found=True, value_json="null", value=sb.SerializedValue(json="null"))
    # Its own space: workflow data under the same key is untouched.
    assert not stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app, workflow_id="wf", key="seed")).found


def test_racing_deterministic_writers_agree(channel, app):
    from concurrent.futures import ThreadPoolExecutor

    stub = sb_grpc.StateBackendServiceStub(channel)

    def write(n):
        return stub.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
            app_id=app, workflow_id="wf", key="race", value_json=str(n)), timeout=10)

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(write, range(64)))
    assert len({r.value_json for r in replies}) == 1
    assert sum(not r.replayed for r in replies) == 1


# --- app info ----------------------------------------------------------------------
def test_app_info_store_get_and_discover(stub, app):
    assert_not_found(stub.GetAppInfo, sb.GetAppInfoRequest(app_id=app), "APP_NOT_FOUND")
    info = sb.AppInfo(app_id=app, module="shop.app", config_values_json='{"runner": "thread"}',
                      config_filepath="/etc/shop.yaml", module_filepath="/src/shop/app.py", app_variable="app")
    other = sb.AppInfo(app_id=app + ":2", module="shop.other")
    stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=info))
    stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=other))
    assert stub.GetAppInfo(sb.GetAppInfoRequest(app_id=app)).app_info == info
    found = stub.DiscoverAppInfos(sb.DiscoverAppInfosRequest()).app_infos
    assert found[app] == info and found[app + ":2"] == other
    assert_invalid(stub.StoreAppInfo, sb.StoreAppInfoRequest(app_info=sb.AppInfo(
        app_id=app, module="m", config_values_json="[1]")), "app_info.config_values_json")


# --- workflow runs -----------------------------------------------------------------
def test_workflow_runs_types_and_pagination(stub, app):
    runs = [WorkflowIdentity(workflow_id=f"run-{n}", workflow_type="flow.a" if n % 2 else "flow.b") for n in range(7)]
    runs.append(WorkflowIdentity(workflow_id="child", workflow_type="flow.a", parent_workflow_id="run-1"))
    for run in runs:
        stub.StoreWorkflowRun(sb.StoreWorkflowRunRequest(app_id=app, workflow=run))
    stub.StoreWorkflowRun(sb.StoreWorkflowRunRequest(app_id=app, workflow=runs[0]))  # stored twice, listed once

    assert list(stub.ListWorkflowTypes(sb.ListWorkflowTypesRequest(app_id=app)).workflow_types) == ["flow.a", "flow.b"]

    def pages(workflow_type="", page_size=3):
        out, token = [], ""
        while True:
            reply = stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(
                app_id=app, workflow_type=workflow_type, page_size=page_size, page_token=token))
            out.append(list(reply.workflows))
            token = reply.next_page_token
            if not token:
                return out

    all_pages = pages()
    assert [len(p) for p in all_pages] == [3, 3, 2]
    assert [w for p in all_pages for w in p] == runs  # oldest first
    of_a = pages("flow.a", 2)
    assert [w for p in of_a for w in p] == [r for r in runs if r.workflow_type == "flow.a"]
    assert [len(p) for p in pages(page_size=8)] == [8]
    assert list(stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app)).workflows) == runs
    assert list(stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app, workflow_type="none")).workflows) == []

    assert_invalid(stub.ListWorkflowRuns, sb.ListWorkflowRunsRequest(app_id=app, page_token="garbage!"), "page_token")
    assert_invalid(stub.ListWorkflowRuns, sb.ListWorkflowRunsRequest(app_id=app, page_size=1001), "page_size")
    assert_invalid(stub.ListWorkflowRuns, sb.ListWorkflowRunsRequest(app_id=app, page_size=-1), "page_size")


def test_run_pages_neither_repeat_nor_skip_when_runs_are_added(stub, app):
    def store(name):
        stub.StoreWorkflowRun(sb.StoreWorkflowRunRequest(app_id=app, workflow=WorkflowIdentity(
            workflow_id=name, workflow_type="flow")))

    for n in range(4):
        store(f"r{n}")
    first = stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app, page_size=2))
    store("late")
    rest = stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app, page_size=10, page_token=first.next_page_token))
    listed = [w.workflow_id for w in [*first.workflows, *rest.workflows]]
    assert listed == ["r0", "r1", "r2", "r3", "late"] and rest.next_page_token == ""


def test_runs_started_by_the_deterministic_executor_are_listed(stub, channel, app):
    executor = de_grpc.DeterministicExecutorServiceStub(channel)
    workflow = WorkflowIdentity(workflow_id="started", workflow_type="flow.started")
    executor.StartWorkflow(de.StartWorkflowRequest(app_id=app, workflow=workflow, arguments_json="{}"))
    assert list(stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app)).workflows) == [workflow]
    assert list(stub.ListWorkflowTypes(sb.ListWorkflowTypesRequest(app_id=app)).workflow_types) == ["flow.started"]


def test_workflow_sub_invocations(stub, app):
    for sub in ("s2", "s1", "s2"):
        stub.StoreWorkflowSubInvocation(sb.StoreWorkflowSubInvocationRequest(
            app_id=app, parent_workflow_id="wf", sub_invocation_id=sub))
    reply = stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(app_id=app, workflow_id="wf"))
    assert list(reply.invocation_ids) == ["s1", "s2"]
    empty = stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(app_id=app, workflow_id="other"))
    assert list(empty.invocation_ids) == []


# --- runner contexts ---------------------------------------------------------------
def test_runner_contexts(stub, app):
    contexts = {rid: sb.RunnerContext(runner_id=rid, runner_cls="ThreadRunner", pid=4242, hostname="h1",
                                      thread_id=2**40, parent_runner_id="root")
                for rid in ("runner-1", "runner-2", "r*x", "r?y", "r[z]", "back\\slash")}
    for ctx in contexts.values():
        stub.StoreRunnerContext(sb.StoreRunnerContextRequest(app_id=app, runner_context=ctx))

    assert stub.GetRunnerContext(sb.GetRunnerContextRequest(app_id=app, runner_id="runner-1")).runner_context \
        == contexts["runner-1"]
    assert_not_found(stub.GetRunnerContext, sb.GetRunnerContextRequest(app_id=app, runner_id="gone"),
                     "RUNNER_CONTEXT_NOT_FOUND")
    batch = stub.BatchGetRunnerContexts(sb.BatchGetRunnerContextsRequest(
        app_id=app, runner_ids=["runner-2", "gone", "r*x"])).runner_contexts
    assert list(batch) == [contexts["runner-2"], contexts["r*x"]]
    assert list(stub.BatchGetRunnerContexts(sb.BatchGetRunnerContextsRequest(app_id=app)).runner_contexts) == []

    def search(partial):
        reply = stub.SearchRunnerContexts(sb.SearchRunnerContextsRequest(app_id=app, partial_id=partial))
        return [c.runner_id for c in reply.runner_contexts]

    assert search("runner") == ["runner-1", "runner-2"]
    assert search("*") == ["r*x"]  # literal, not a glob
    assert search("?") == ["r?y"]
    assert search("[z]") == ["r[z]"]
    assert search("\\") == ["back\\slash"]
    assert search("nothing") == []
    assert search("r") == sorted(c for c in contexts if "r" in c)


# --- isolation and purge -----------------------------------------------------------
TRICKY = ["a", "a:b", "a*", "{a}", "a%3Ab", "a}", "ab", "*", "%", "a[:}]"]


def _fill(stub, executor, app: str) -> None:
    wf = WorkflowIdentity(workflow_id="wf:1", workflow_type="t{1}")
    # The executor's own keys (recorded operations, task state) belong to the app too.
    executor.StartWorkflow(de.StartWorkflowRequest(app_id=app, workflow=wf, arguments_json="{}"))
    executor.Random(de.RandomRequest(position=de.OperationPosition(app_id=app, workflow=wf, sequence=1)))
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[
        invocation("wf:1", workflow=wf), invocation("c*", workflow=wf, parent_invocation_id="wf:1")]))
    stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=["wf:1", "c*"], history=sb.InvocationHistory(
        timestamp=ts(1000))))
    stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id="c*", result_json=f'"{app}"'))
    stub.SetException(sb.SetExceptionRequest(app_id=app, invocation_id="c*", exception=common_pb2.TaskError(type="E")))
    stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=app, workflow_id="wf:1", key="k", value_json=f'"{app}"'))
    stub.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
        app_id=app, workflow_id="wf:1", key="k", value_json=f'"{app}"'))
    stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(app_id=app, module="m")))
    stub.StoreWorkflowRun(sb.StoreWorkflowRunRequest(app_id=app, workflow=wf))
    stub.StoreWorkflowSubInvocation(sb.StoreWorkflowSubInvocationRequest(
        app_id=app, parent_workflow_id="wf:1", sub_invocation_id="c*"))
    stub.StoreRunnerContext(sb.StoreRunnerContextRequest(app_id=app, runner_context=sb.RunnerContext(runner_id="r:1")))


def _state(stub, app: str) -> dict:
    """Everything an app can read back, as plain values (absent things are None)."""
    def maybe(call, request, attribute):
        try:
            return getattr(call(request, timeout=10), attribute)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return None

    wide = dict(start_time=ts(0), end_time=ts(10_000))
    return {
        "inv": maybe(stub.GetInvocation, sb.GetInvocationRequest(app_id=app, invocation_id="c*"), "invocation"),
        "result": maybe(stub.GetResult, sb.GetResultRequest(app_id=app, invocation_id="c*"), "result_json"),
        "exc": maybe(stub.GetException, sb.GetExceptionRequest(app_id=app, invocation_id="c*"), "exception"),
        "app": maybe(stub.GetAppInfo, sb.GetAppInfoRequest(app_id=app), "app_info"),
        "runner": maybe(stub.GetRunnerContext, sb.GetRunnerContextRequest(app_id=app, runner_id="r:1"),
                        "runner_context"),
        "history": len(stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="c*")).history),
        "timeline": sum(len(b.history) for b in stub.StreamHistoryInTimeRange(
            sb.StreamHistoryInTimeRangeRequest(app_id=app, **wide))),
        "timeline_ids": [i for b in stub.StreamInvocationsInTimeRange(
            sb.StreamInvocationsInTimeRangeRequest(app_id=app, **wide)) for i in b.invocation_ids],
        "data": stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app, workflow_id="wf:1", key="k")).value_json,
        "dv": stub.GetWorkflowDeterministicValue(sb.GetWorkflowDeterministicValueRequest(
            app_id=app, workflow_id="wf:1", key="k")).value_json,
        "runs": len(stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app)).workflows),
        "types": list(stub.ListWorkflowTypes(sb.ListWorkflowTypesRequest(app_id=app)).workflow_types),
        "subs": list(stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(
            app_id=app, workflow_id="wf:1")).invocation_ids),
        "children": list(stub.ListChildInvocations(sb.ListChildInvocationsRequest(
            app_id=app, parent_invocation_id="wf:1")).invocation_ids),
        "by_type": list(stub.ListInvocationIdsByWorkflow(sb.ListInvocationIdsByWorkflowRequest(
            app_id=app, workflow_type="t{1}")).invocation_ids),
        "search": len(stub.SearchRunnerContexts(sb.SearchRunnerContextsRequest(app_id=app,
                                                                               partial_id=":")).runner_contexts),
        "discovered": app in stub.DiscoverAppInfos(sb.DiscoverAppInfosRequest()).app_infos,
    }


def _keys_of(rdb: redis.Redis, app: str) -> list[str]:
    tag = escape(app)
    return [k for k in rdb.scan_iter(count=1000) if k.startswith(f"psc:{{{tag}}}") or k.startswith(f"psc:{{{tag}:")]


def _rows_of(path: str, app: str) -> list[str]:
    """"<table>#<row>" of every row of the app in the SQLite file: every table keys its rows
    by an `app` column."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = []
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            assert "app" in columns, f"table {table} has no app column: PurgeApp could not reach it"
            rows += [f"{table}#{r!r}" for r in conn.execute(f'SELECT * FROM "{table}" WHERE app=?', (app,))]
    conn.close()
    return rows


@pytest.fixture
def stored_items(backend, server, request) -> Callable[[str], list[str]]:
    """What the store holds for an app, read around the sidecar: Redis keys, or SQLite rows."""
    if backend == "redis":
        rdb = request.getfixturevalue("rdb")
        return lambda app: _keys_of(rdb, app)
    if backend == "cluster":  # SCAN on every master
        ports = request.getfixturevalue("redis_cluster").ports
        nodes = [redis.cluster.ClusterNode("127.0.0.1", port) for port in ports]
        client = redis.RedisCluster(startup_nodes=nodes, decode_responses=True)
        request.addfinalizer(client.close)
        return lambda app: _keys_of(client, app)
    return lambda app: _rows_of(server.data_file, app)


def _is_recorded_ops(item: str) -> bool:
    return item.endswith(":ops") or item.startswith("ops#")


def test_tricky_app_ids_are_isolated_and_purged_one_by_one(stub, channel, stored_items):
    executor = de_grpc.DeterministicExecutorServiceStub(channel)
    run = uuid.uuid4().hex
    apps = [f"{run}{suffix}" for suffix in TRICKY] + [f"{run}"]
    for app in apps:
        _fill(stub, executor, app)
    full = {app: _state(stub, app) for app in apps}
    for app, state in full.items():
        assert state["result"] == f'"{app}"' and state["data"] == f'"{app}"' and state["dv"] == f'"{app}"'
        assert (
            state["history"] == 1 and state["timeline"] == 2 and state["timeline_ids"] == ["wf:1", "c*"]
        )  # arrival order
        assert state["runs"] == 1 and state["subs"] == ["c*"] and state["children"] == ["c*"]
        assert state["by_type"] == ["c*", "wf:1"] and state["search"] == 1 and state["discovered"]

    for n, app in enumerate(apps):
        key_counts = {other: len(stored_items(other)) for other in apps[n + 1:]}
        assert any(_is_recorded_ops(k) for k in stored_items(app))
        stub.PurgeApp(sb.PurgeAppRequest(app_id=app, delete_app_info=True))
        assert stored_items(app) == []
        gone = _state(stub, app)
        assert gone == {
            "inv": None, "result": None, "exc": None, "app": None, "runner": None, "history": 0, "timeline": 0,
            "timeline_ids": [], "data": "", "dv": "", "runs": 0, "types": [], "subs": [], "children": [],
            "by_type": [], "search": 0, "discovered": False,
        }
        for other in apps[n + 1:]:
            assert _state(stub, other) == full[other], f"purging {app!r} touched {other!r}"
            assert len(stored_items(other)) == key_counts[other]


def test_colliding_concatenations_stay_apart(stub):
    run = uuid.uuid4().hex
    # Naively joined, ("<run>:x", "y") and ("<run>", "x:y") would name the same workflow.
    pairs = [(f"{run}:x", "y"), (run, "x:y"), (run, "x}:{y")]
    for app, wf in pairs:
        stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=app, workflow_id=wf, key="k", value_json=f'"{app}/{wf}"'))
        stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id=wf, result_json=f'"{app}/{wf}"'))
    for app, wf in pairs:
        assert stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app, workflow_id=wf, key="k")).value_json \
            == f'"{app}/{wf}"'
        assert stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id=wf)).result_json == f'"{app}/{wf}"'


# --- bad input ---------------------------------------------------------------------
def _bad_requests():
    """(rpc, request, field named in the BadRequest) for every RPC's required fields and limits."""
    a = "app"
    t0, t1 = ts(100), ts(200)
    wf = WorkflowIdentity(workflow_id="wf", workflow_type="flow")
    return [
        ("PurgeApp", sb.PurgeAppRequest(), "app_id"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(invocations=[invocation("i")]), "app_id"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a), "invocations"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a,
                                                          invocations=[invocation(f"i{n}") for n in range(1001)]),
         "invocations"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a, invocations=[sb.Invocation(task_id="t")]),
         "invocations[0].invocation_id"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a, invocations=[
            invocation("i", workflow=WorkflowIdentity(workflow_type="flow"))]), "invocations[0].workflow.workflow_id"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a, invocations=[
            invocation("i", serialized_arguments={"": "1"})]), "invocations[0].serialized_arguments"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a, invocations=[
            invocation("i", serialized_arguments={"x": "1"}, arguments={"y": sb.SerializedValue(json="1")})]),
         "invocations[0].arguments"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a, invocations=[
            invocation("i", arguments={"y": sb.SerializedValue(json="{")})]), "invocations[0].arguments[y].json"),
        ("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=a, invocations=[
            invocation("i", arguments={"y": sb.SerializedValue()})]), "invocations[0].arguments[y]"),
        ("GetInvocation", sb.GetInvocationRequest(invocation_id="i"), "app_id"),
        ("GetInvocation", sb.GetInvocationRequest(app_id=a), "invocation_id"),
        ("GetInvocation", sb.GetInvocationRequest(app_id=a, invocation_id="x" * 2000), "invocation_id"),
        ("GetInvocation", sb.GetInvocationRequest(app_id=a, invocation_id="bad\nid"), "invocation_id"),
        ("AddHistory", sb.AddHistoryRequest(invocation_ids=["i"], history=sb.InvocationHistory()), "app_id"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, history=sb.InvocationHistory()), "invocation_ids"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i"]), "history"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i", ""], history=sb.InvocationHistory()),
         "invocation_ids[1]"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i"], history=sb.InvocationHistory(status=99)),
         "history.status"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i"], history=sb.InvocationHistory(
            execution_context_json="{")), "history.execution_context_json"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i"], history=sb.InvocationHistory(
            timestamp=ts(10**12))), "history.timestamp"),
        ("GetHistory", sb.GetHistoryRequest(invocation_id="i"), "app_id"),
        ("GetHistory", sb.GetHistoryRequest(app_id=a), "invocation_id"),
        ("GetHistory", sb.GetHistoryRequest(app_id=a, invocation_id="i", page_size=1001), "page_size"),
        ("GetHistory", sb.GetHistoryRequest(app_id=a, invocation_id="i", page_size=-1), "page_size"),
        ("GetHistory", sb.GetHistoryRequest(app_id=a, invocation_id="i", page_token="not a token"), "page_token"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i"], history=sb.InvocationHistory(
            status_timestamp=ts(10**12))), "history.status_timestamp"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i"], history=sb.InvocationHistory(
            status_runner_id="bad\nid")), "history.status_runner_id"),
        ("AddHistory", sb.AddHistoryRequest(app_id=a, invocation_ids=["i"], history=sb.InvocationHistory(
            registered_by_invocation_id="x" * 2000)), "history.registered_by_invocation_id"),
        ("SetResult", sb.SetResultRequest(invocation_id="i", result_json="1"), "app_id"),
        ("SetResult", sb.SetResultRequest(app_id=a, result_json="1"), "invocation_id"),
        ("SetResult", sb.SetResultRequest(app_id=a, invocation_id="i"), "result_json"),
        ("SetResult", sb.SetResultRequest(app_id=a, invocation_id="i", result_json="1",
                                          result=sb.SerializedValue(json="1")), "result"),
        ("SetResult", sb.SetResultRequest(app_id=a, invocation_id="i", result=sb.SerializedValue()), "result"),
        ("SetResult", sb.SetResultRequest(app_id=a, invocation_id="i", result=sb.SerializedValue(json="[")),
         "result.json"),
        ("SetResult", sb.SetResultRequest(app_id=a, invocation_id="i", result=sb.SerializedValue(
            json='{"$opaque": "x"}')), "result.json"),
        ("GetResult", sb.GetResultRequest(invocation_id="i"), "app_id"),
        ("GetResult", sb.GetResultRequest(app_id=a), "invocation_id"),
        ("SetException", sb.SetExceptionRequest(invocation_id="i", exception=common_pb2.TaskError(type="E")), "app_id"),
        ("SetException", sb.SetExceptionRequest(app_id=a, exception=common_pb2.TaskError(type="E")), "invocation_id"),
        ("SetException", sb.SetExceptionRequest(app_id=a, invocation_id="i"), "exception"),
        ("SetException", sb.SetExceptionRequest(app_id=a, invocation_id="i", exception=common_pb2.TaskError()),
         "exception.type"),
        ("SetException", sb.SetExceptionRequest(app_id=a, invocation_id="i", exception=common_pb2.TaskError(
            type="E", detail_json="{}"), detail=sb.SerializedValue(opaque="x")), "detail"),
        ("SetException", sb.SetExceptionRequest(app_id=a, invocation_id="i", exception=common_pb2.TaskError(
            type="E"), detail=sb.SerializedValue(json="nope")), "detail.json"),
        ("GetException", sb.GetExceptionRequest(invocation_id="i"), "app_id"),
        ("GetException", sb.GetExceptionRequest(app_id=a), "invocation_id"),
        ("GetWorkflowData", sb.GetWorkflowDataRequest(workflow_id="w", key="k"), "app_id"),
        ("GetWorkflowData", sb.GetWorkflowDataRequest(app_id=a, key="k"), "workflow_id"),
        ("GetWorkflowData", sb.GetWorkflowDataRequest(app_id=a, workflow_id="w"), "key"),
        ("SetWorkflowData", sb.SetWorkflowDataRequest(workflow_id="w", key="k", value_json="1"), "app_id"),
        ("SetWorkflowData", sb.SetWorkflowDataRequest(app_id=a, key="k", value_json="1"), "workflow_id"),
        ("SetWorkflowData", sb.SetWorkflowDataRequest(app_id=a, workflow_id="w", value_json="1"), "key"),
        ("SetWorkflowData", sb.SetWorkflowDataRequest(app_id=a, workflow_id="w", key="k"), "value_json"),
        ("SetWorkflowData", sb.SetWorkflowDataRequest(app_id=a, workflow_id="w", key="k", value_json="{x}"),
         "value_json"),
        ("SetWorkflowData", sb.SetWorkflowDataRequest(app_id=a, workflow_id="w", key="k",
                                                      value_json='{"$opaque":"pickled"}'), "value_json"),
        ("SetWorkflowData", sb.SetWorkflowDataRequest(app_id=a, workflow_id="w", key="k", value_json="1",
                                                      value=sb.SerializedValue(opaque="1")), "value"),
        ("GetWorkflowDeterministicValue", sb.GetWorkflowDeterministicValueRequest(workflow_id="w", key="k"), "app_id"),
        ("GetWorkflowDeterministicValue", sb.GetWorkflowDeterministicValueRequest(app_id=a, key="k"), "workflow_id"),
        ("GetWorkflowDeterministicValue", sb.GetWorkflowDeterministicValueRequest(app_id=a, workflow_id="w"), "key"),
        ("SetWorkflowDeterministicValue", sb.SetWorkflowDeterministicValueRequest(
            workflow_id="w", key="k", value_json="1"), "app_id"),
        ("SetWorkflowDeterministicValue", sb.SetWorkflowDeterministicValueRequest(
            app_id=a, key="k", value_json="1"), "workflow_id"),
        ("SetWorkflowDeterministicValue", sb.SetWorkflowDeterministicValueRequest(
            app_id=a, workflow_id="w", value_json="1"), "key"),
        ("SetWorkflowDeterministicValue", sb.SetWorkflowDeterministicValueRequest(
            app_id=a, workflow_id="w", key="k", value_json="undefined"), "value_json"),
        ("SetWorkflowDeterministicValue", sb.SetWorkflowDeterministicValueRequest(
            app_id=a, workflow_id="w", key="k", value=sb.SerializedValue(json="undefined")), "value.json"),
        ("StoreAppInfo", sb.StoreAppInfoRequest(), "app_info"),
        ("StoreAppInfo", sb.StoreAppInfoRequest(app_info=sb.AppInfo(module="m")), "app_info.app_id"),
        ("StoreAppInfo", sb.StoreAppInfoRequest(app_info=sb.AppInfo(app_id=a)), "app_info.module"),
        ("GetAppInfo", sb.GetAppInfoRequest(), "app_id"),
        ("StoreWorkflowRun", sb.StoreWorkflowRunRequest(workflow=wf), "app_id"),
        ("StoreWorkflowRun", sb.StoreWorkflowRunRequest(app_id=a), "workflow"),
        ("StoreWorkflowRun", sb.StoreWorkflowRunRequest(app_id=a, workflow=WorkflowIdentity(workflow_type="t")),
         "workflow.workflow_id"),
        ("StoreWorkflowRun", sb.StoreWorkflowRunRequest(app_id=a, workflow=WorkflowIdentity(workflow_id="w")),
         "workflow.workflow_type"),
        ("ListWorkflowTypes", sb.ListWorkflowTypesRequest(), "app_id"),
        ("ListWorkflowTypes", sb.ListWorkflowTypesRequest(app_id=a, page_size=5000), "page_size"),
        ("ListWorkflowTypes", sb.ListWorkflowTypesRequest(app_id=a, page_token="%%%"), "page_token"),
        ("ListWorkflowRuns", sb.ListWorkflowRunsRequest(), "app_id"),
        ("ListWorkflowRuns", sb.ListWorkflowRunsRequest(app_id=a, page_token="e30"), "page_token"),
        ("StoreWorkflowSubInvocation", sb.StoreWorkflowSubInvocationRequest(
            parent_workflow_id="w", sub_invocation_id="s"), "app_id"),
        ("StoreWorkflowSubInvocation", sb.StoreWorkflowSubInvocationRequest(
            app_id=a, sub_invocation_id="s"), "parent_workflow_id"),
        ("StoreWorkflowSubInvocation", sb.StoreWorkflowSubInvocationRequest(
            app_id=a, parent_workflow_id="w"), "sub_invocation_id"),
        ("ListWorkflowSubInvocations", sb.ListWorkflowSubInvocationsRequest(workflow_id="w"), "app_id"),
        ("ListWorkflowSubInvocations", sb.ListWorkflowSubInvocationsRequest(app_id=a), "workflow_id"),
        ("ListWorkflowSubInvocations", sb.ListWorkflowSubInvocationsRequest(app_id=a, workflow_id="w",
                                                                            page_size=1001), "page_size"),
        ("StreamInvocationsInTimeRange", sb.StreamInvocationsInTimeRangeRequest(start_time=t0, end_time=t1), "app_id"),
        ("StreamInvocationsInTimeRange", sb.StreamInvocationsInTimeRangeRequest(app_id=a, end_time=t1), "start_time"),
        ("StreamInvocationsInTimeRange", sb.StreamInvocationsInTimeRangeRequest(app_id=a, start_time=t0), "end_time"),
        ("StreamInvocationsInTimeRange", sb.StreamInvocationsInTimeRangeRequest(
            app_id=a, start_time=t1, end_time=t0), "end_time"),
        ("StreamInvocationsInTimeRange", sb.StreamInvocationsInTimeRangeRequest(
            app_id=a, start_time=t0, end_time=t1, batch_size=10_001), "batch_size"),
        ("StreamHistoryInTimeRange", sb.StreamHistoryInTimeRangeRequest(start_time=t0, end_time=t1), "app_id"),
        ("StreamHistoryInTimeRange", sb.StreamHistoryInTimeRangeRequest(app_id=a, end_time=t1), "start_time"),
        ("StreamHistoryInTimeRange", sb.StreamHistoryInTimeRangeRequest(app_id=a, start_time=t0), "end_time"),
        ("StreamHistoryInTimeRange", sb.StreamHistoryInTimeRangeRequest(app_id=a, start_time=t1, end_time=t0),
         "end_time"),
        ("StreamHistoryInTimeRange", sb.StreamHistoryInTimeRangeRequest(
            app_id=a, start_time=t0, end_time=t1, batch_size=-5), "batch_size"),
        ("StoreRunnerContext", sb.StoreRunnerContextRequest(runner_context=sb.RunnerContext(runner_id="r")), "app_id"),
        ("StoreRunnerContext", sb.StoreRunnerContextRequest(app_id=a), "runner_context"),
        ("StoreRunnerContext", sb.StoreRunnerContextRequest(app_id=a, runner_context=sb.RunnerContext()),
         "runner_context.runner_id"),
        ("GetRunnerContext", sb.GetRunnerContextRequest(runner_id="r"), "app_id"),
        ("GetRunnerContext", sb.GetRunnerContextRequest(app_id=a), "runner_id"),
        ("BatchGetRunnerContexts", sb.BatchGetRunnerContextsRequest(runner_ids=["r"]), "app_id"),
        ("BatchGetRunnerContexts", sb.BatchGetRunnerContextsRequest(app_id=a, runner_ids=["r", ""]), "runner_ids[1]"),
        ("BatchGetRunnerContexts", sb.BatchGetRunnerContextsRequest(
            app_id=a, runner_ids=[f"r{n}" for n in range(1001)]), "runner_ids"),
        ("SearchRunnerContexts", sb.SearchRunnerContextsRequest(partial_id="r"), "app_id"),
        ("SearchRunnerContexts", sb.SearchRunnerContextsRequest(app_id=a), "partial_id"),
        ("SearchRunnerContexts", sb.SearchRunnerContextsRequest(app_id=a, partial_id="r", page_token="x"),
         "page_token"),
        ("ListChildInvocations", sb.ListChildInvocationsRequest(parent_invocation_id="p"), "app_id"),
        ("ListChildInvocations", sb.ListChildInvocationsRequest(app_id=a), "parent_invocation_id"),
        ("ListChildInvocations", sb.ListChildInvocationsRequest(app_id=a, parent_invocation_id="p", page_size=-3),
         "page_size"),
        ("ListInvocationsByParentEvent", sb.ListInvocationsByParentEventRequest(parent_event_id="e"), "app_id"),
        ("ListInvocationsByParentEvent", sb.ListInvocationsByParentEventRequest(app_id=a), "parent_event_id"),
        ("ListInvocationsByParentEvent", sb.ListInvocationsByParentEventRequest(
            app_id=a, parent_event_id="e", page_size=1001), "page_size"),
        ("ListInvocationIdsByWorkflow", sb.ListInvocationIdsByWorkflowRequest(workflow_id="w"), "app_id"),
        ("ListInvocationIdsByWorkflow", sb.ListInvocationIdsByWorkflowRequest(app_id=a), "workflow_id"),
        ("ListInvocationIdsByWorkflow", sb.ListInvocationIdsByWorkflowRequest(app_id=a, workflow_id="w",
                                                                              page_token="AAAA"), "page_token"),
        ("DiscoverAppInfos", sb.DiscoverAppInfosRequest(page_size=-1), "page_size"),
        ("DiscoverAppInfos", sb.DiscoverAppInfosRequest(page_token="AAAA"), "page_token"),
    ]


@pytest.mark.parametrize("rpc,request_message,field", _bad_requests(),
                         ids=[f"{rpc}-{field}-{n}" for n, (rpc, _, field) in enumerate(_bad_requests())])
def test_bad_input_is_invalid_argument_naming_the_field(stub, rpc, request_message, field):
    assert_invalid(getattr(stub, rpc), request_message, field)


def test_every_rpc_has_a_bad_input_case():
    rpcs = set(sb.DESCRIPTOR.services_by_name["StateBackendService"].methods_by_name)
    covered = {rpc for rpc, _, _ in _bad_requests()}
    assert rpcs == covered


def test_rejected_writes_leave_nothing(stub, app):
    assert_invalid(stub.AddHistory, sb.AddHistoryRequest(app_id=app, invocation_ids=["ok", ""],
                                                        history=sb.InvocationHistory()), "invocation_ids[1]")
    assert list(stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="ok")).history) == []
    assert_invalid(stub.SetWorkflowDeterministicValue, sb.SetWorkflowDeterministicValueRequest(
        app_id=app, workflow_id="w", key="k", value_json="{"), "value_json")
    assert not stub.GetWorkflowDeterministicValue(sb.GetWorkflowDeterministicValueRequest(
        app_id=app, workflow_id="w", key="k")).found


# --- store outage ------------------------------------------------------------------
def test_redis_outage_is_unavailable_and_the_server_recovers():
    from support import RedisServer, SidecarServer, wait_until

    store = RedisServer().start()
    server = SidecarServer(store.url).start()
    try:
        with grpc.insecure_channel(server.address) as ch:
            stub = sb_grpc.StateBackendServiceStub(ch)
            request = sb.SetResultRequest(app_id="a", invocation_id="i", result_json="1")
            stub.SetResult(request, timeout=10)
            store.stop()
            for call, message in [
                (stub.GetResult, sb.GetResultRequest(app_id="a", invocation_id="i")),
                (stub.UpsertInvocations, sb.UpsertInvocationsRequest(app_id="a", invocations=[invocation("i")])),
                (stub.StreamHistoryInTimeRange, sb.StreamHistoryInTimeRangeRequest(
                    app_id="a", start_time=ts(0), end_time=ts(1))),
                (stub.SearchRunnerContexts, sb.SearchRunnerContextsRequest(app_id="a", partial_id="r")),
                (stub.PurgeApp, sb.PurgeAppRequest(app_id="a")),
            ]:
                error = error_of(call, message)
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
                assert details(error)[0].reason == "STORE_UNAVAILABLE"
            store.start()

            def works():
                try:
                    stub.SetResult(request, timeout=5)
                    return True
                except grpc.RpcError:
                    return False

            wait_until(works, 15, "the sidecar to reach redis again")
            assert stub.GetResult(sb.GetResultRequest(app_id="a", invocation_id="i"), timeout=5).result_json == "1"
    finally:
        server.stop()
        store.cleanup()
