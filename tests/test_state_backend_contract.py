"""StateBackendService's contract for Pynenc 0.4.0, end to end on a real sidecar process, on
Redis and on the embedded SQLite store: AIP-158 paging with bounded replies on every list,
ListInvocationsByParentEvent, the history's status fields, PurgeApp keeping the app info, and
payloads that are JSON or opaque text."""

from __future__ import annotations

import json

import grpc
import pytest

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from test_state_backend import (  # noqa: F401  (fixtures)
    S,
    WorkflowIdentity,
    app,
    assert_invalid,
    assert_not_found,
    backend,
    channel,
    server,
    stub,
    ts,
)

V = sb.SerializedValue


def every_page(call, request, items: str) -> tuple[list, int]:
    """All items of a list RPC, page by page, and how many pages it took."""
    out, pages = [], 0
    while True:
        reply = call(request, timeout=30)
        pages += 1
        out += list(getattr(reply, items))
        if not reply.next_page_token:
            return out, pages
        request.page_token = reply.next_page_token


def seed_lists(stub, app) -> list[str]:
    ids = [f"inv-{n:02d}" for n in range(5)]
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[
        sb.Invocation(invocation_id=i, task_id="t", parent_invocation_id="p", parent_event_id="ev-1",
                      workflow=WorkflowIdentity(workflow_id="wf", workflow_type="flow")) for i in reversed(ids)]))
    for i in ids:
        stub.StoreWorkflowSubInvocation(sb.StoreWorkflowSubInvocationRequest(
            app_id=app, parent_workflow_id="wf", sub_invocation_id=i))
        stub.StoreRunnerContext(sb.StoreRunnerContextRequest(app_id=app, runner_context=sb.RunnerContext(
            runner_id=f"runner-{i}")))
        stub.StoreWorkflowRun(sb.StoreWorkflowRunRequest(app_id=app, workflow=WorkflowIdentity(
            workflow_id=f"run-{i}", workflow_type=f"type-{i}")))
    return ids


def list_calls(stub, app):
    """(name, call, request, items field, item -> comparable) of every paged id list."""
    return [
        ("children", stub.ListChildInvocations, sb.ListChildInvocationsRequest(app_id=app, parent_invocation_id="p"),
         "invocation_ids", str),
        ("by_event", stub.ListInvocationsByParentEvent,
         sb.ListInvocationsByParentEventRequest(app_id=app, parent_event_id="ev-1"), "invocation_ids", str),
        ("by_workflow", stub.ListInvocationIdsByWorkflow,
         sb.ListInvocationIdsByWorkflowRequest(app_id=app, workflow_id="wf", workflow_type="flow"), "invocation_ids",
         str),
        ("subs", stub.ListWorkflowSubInvocations, sb.ListWorkflowSubInvocationsRequest(app_id=app, workflow_id="wf"),
         "invocation_ids", str),
        ("types", stub.ListWorkflowTypes, sb.ListWorkflowTypesRequest(app_id=app), "workflow_types",
         lambda t: t.removeprefix("type-")),
        ("runners", stub.SearchRunnerContexts, sb.SearchRunnerContextsRequest(app_id=app, partial_id="runner-"),
         "runner_contexts", lambda r: r.runner_id.removeprefix("runner-")),
    ]


# --- paging ------------------------------------------------------------------------------
def test_every_list_pages_and_an_old_client_still_gets_a_short_list_whole(stub, app):
    ids = seed_lists(stub, app)
    for name, call, request, items, key in list_calls(stub, app):
        whole = call(request, timeout=10)  # no page_size: the default, 1000
        assert [key(i) for i in getattr(whole, items)] == ids and whole.next_page_token == "", name
        paged = type(request)()
        paged.CopyFrom(request)
        paged.page_size = 2
        got, pages = every_page(call, paged, items)
        assert [key(i) for i in got] == ids and pages == 3, name


def test_a_page_token_only_works_for_the_request_that_got_it(stub, app):
    seed_lists(stub, app)
    first = stub.ListChildInvocations(sb.ListChildInvocationsRequest(app_id=app, parent_invocation_id="p",
                                                                     page_size=1))
    token = first.next_page_token
    assert token
    # Another parent, another app, another RPC: refused, naming page_token.
    assert_invalid(stub.ListChildInvocations, sb.ListChildInvocationsRequest(
        app_id=app, parent_invocation_id="q", page_token=token), "page_token")
    assert_invalid(stub.ListChildInvocations, sb.ListChildInvocationsRequest(
        app_id=app + "x", parent_invocation_id="p", page_token=token), "page_token")
    assert_invalid(stub.ListInvocationsByParentEvent, sb.ListInvocationsByParentEventRequest(
        app_id=app, parent_event_id="p", page_token=token), "page_token")
    with pytest.raises(grpc.RpcError) as info:
        stub.ListWorkflowSubInvocations(sb.ListWorkflowSubInvocationsRequest(app_id=app, workflow_id="p",
                                                                             page_token=token), timeout=10)
    assert "issued for another request" in info.value.details()
    # The page size may change between pages (AIP-158); the token still works.
    rest = stub.ListChildInvocations(sb.ListChildInvocationsRequest(app_id=app, parent_invocation_id="p",
                                                                    page_token=token, page_size=10))
    assert list(first.invocation_ids) + list(rest.invocation_ids) == [f"inv-{n:02d}" for n in range(5)]


def test_history_pages_and_a_reply_stays_near_256_kib(stub, app):
    def request(n, context=""):
        return sb.AddHistoryRequest(app_id=app, invocation_ids=["h"], history=sb.InvocationHistory(
            timestamp=ts(1000 + n), status=S.Value("INVOCATION_STATUS_RUNNING"), execution_context_json=context))
    for n in range(1003):
        stub.AddHistory(request(n))
    first = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="h"))
    assert len(first.history) == 1000 and first.next_page_token  # the default page
    got, pages = every_page(stub.GetHistory, sb.GetHistoryRequest(app_id=app, invocation_id="h", page_size=400),
                            "history")
    assert [h.timestamp.seconds for h in got] == [1000 + n for n in range(1003)] and pages == 3
    # Entries of 100 KiB: a page holds what fits in about 256 KiB, not page_size entries.
    big = json.dumps("x" * 100 * 1024)
    for n in range(6):
        stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=["big"], history=sb.InvocationHistory(
            timestamp=ts(1000 + n), execution_context_json=big)))
    page = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="big"))
    assert len(page.history) == 2 and page.ByteSize() < 256 * 1024 and page.next_page_token
    got, pages = every_page(stub.GetHistory, sb.GetHistoryRequest(app_id=app, invocation_id="big"), "history")
    assert len(got) == 6 and pages == 3


def test_runs_page_with_the_new_tokens(stub, app):
    seed_lists(stub, app)
    got, pages = every_page(stub.ListWorkflowRuns, sb.ListWorkflowRunsRequest(app_id=app, page_size=2), "workflows")
    assert [w.workflow_id for w in got] == [f"run-inv-{n:02d}" for n in range(5)] and pages == 3
    token = stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app, page_size=2)).next_page_token
    assert_invalid(stub.ListWorkflowRuns, sb.ListWorkflowRunsRequest(app_id=app, workflow_type="type-inv-00",
                                                                     page_token=token), "page_token")


# --- ListInvocationsByParentEvent --------------------------------------------------------
def test_invocations_by_parent_event(stub, app):
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[
        sb.Invocation(invocation_id="b", task_id="t", parent_event_id="ev-1"),
        sb.Invocation(invocation_id="a", task_id="t", parent_event_id="ev-1"),
        sb.Invocation(invocation_id="c", task_id="t", parent_event_id="ev-2"),
        sb.Invocation(invocation_id="d", task_id="t")]))
    def by_event(event):
        return list(stub.ListInvocationsByParentEvent(sb.ListInvocationsByParentEventRequest(
            app_id=app, parent_event_id=event)).invocation_ids)
    assert by_event("ev-1") == ["a", "b"] and by_event("ev-2") == ["c"] and by_event("ev-3") == []
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[
        sb.Invocation(invocation_id="a", task_id="t", parent_event_id="ev-2")]))
    assert by_event("ev-1") == ["b"] and by_event("ev-2") == ["a", "c"]


# --- history fields ----------------------------------------------------------------------
def test_history_keeps_the_status_owner_its_time_and_the_registering_invocation(stub, app):
    stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=["child"], history=sb.InvocationHistory(
        timestamp=ts(2000), status=S.Value("INVOCATION_STATUS_REGISTERED"), runner_id="ctx-1",
        status_runner_id="owner-7", status_timestamp=ts(1999, 250_000), registered_by_invocation_id="parent-3")))
    stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=["child"], history=sb.InvocationHistory(
        timestamp=ts(2001), status=S.Value("INVOCATION_STATUS_RUNNING"))))
    first, second = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="child")).history
    assert (first.runner_id, first.status_runner_id, first.registered_by_invocation_id) == ("ctx-1", "owner-7",
                                                                                           "parent-3")
    assert (first.status_timestamp.seconds, first.status_timestamp.nanos) == (1999, 250_000)
    assert first.execution_context_json == ""  # nothing hidden there
    # Unset on write: the status time is the entry's time; no owner, no registering invocation.
    assert second.status_timestamp == second.timestamp and not second.status_runner_id
    assert not second.registered_by_invocation_id
    streamed = [h for batch in stub.StreamHistoryInTimeRange(sb.StreamHistoryInTimeRangeRequest(
        app_id=app, start_time=ts(0), end_time=ts(3000))) for h in batch.history]
    assert streamed[0] == first


# --- PurgeApp ------------------------------------------------------------------------------
def test_purge_app_keeps_the_app_info_unless_asked(stub, app):
    stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(app_id=app, module="m")))
    stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id="i", result_json="1"))
    stub.PurgeApp(sb.PurgeAppRequest(app_id=app))
    assert_not_found(stub.GetResult, sb.GetResultRequest(app_id=app, invocation_id="i"), "RESULT_NOT_FOUND")
    assert stub.GetAppInfo(sb.GetAppInfoRequest(app_id=app)).app_info.module == "m"
    assert app in stub.DiscoverAppInfos(sb.DiscoverAppInfosRequest()).app_infos
    stub.PurgeApp(sb.PurgeAppRequest(app_id=app, delete_app_info=True))
    assert_not_found(stub.GetAppInfo, sb.GetAppInfoRequest(app_id=app), "APP_NOT_FOUND")
    assert app not in stub.DiscoverAppInfos(sb.DiscoverAppInfosRequest()).app_infos


def test_discover_app_infos_pages_by_size_and_lists_every_app_once(stub, app):
    mine = {f"{app}-{n}" for n in range(5)}
    big = json.dumps({"pad": "x" * 100_000})  # ~100 KB of config: two or three fit a 256 KiB page
    for app_id in mine:
        stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(app_id=app_id, module="m",
                                                                     config_values_json=big)))
    seen, pages, request = [], 0, sb.DiscoverAppInfosRequest()
    while True:
        reply = stub.DiscoverAppInfos(request)
        pages += 1
        seen += list(reply.app_infos)
        if not reply.next_page_token:
            break
        request.page_token = reply.next_page_token
    assert mine <= set(seen) and len(seen) == len(set(seen))
    assert pages >= 2  # 500 KB of app info never comes in one reply
    small = stub.DiscoverAppInfos(sb.DiscoverAppInfosRequest(page_size=1))
    assert len(small.app_infos) == 1 and small.next_page_token
    for bad, field in ((sb.DiscoverAppInfosRequest(page_size=1001), "page_size"),
                       (sb.DiscoverAppInfosRequest(page_token="nonsense"), "page_token")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.DiscoverAppInfos(bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in caught.value.details()
    for app_id in mine:
        stub.PurgeApp(sb.PurgeAppRequest(app_id=app_id, delete_app_info=True))


# --- payloads: JSON or opaque --------------------------------------------------------------
PICKLED = "gASVCwAAAAAAAACMB3BpY2tsZWSULg=="  # serializer text: not JSON
TRICKY_OPAQUE = ['{"$opaque": "x"}', "", "null", '"quoted"', "é漢\n\x00"]


def test_results_exceptions_data_and_values_keep_json_and_opaque_apart(stub, channel, app):
    executor = de_grpc.DeterministicExecutorServiceStub(channel)
    for n, opaque in enumerate([PICKLED, *TRICKY_OPAQUE]):
        inv, key = f"inv-{n}", f"k{n}"
        stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id=inv, result=V(opaque=opaque)))
        reply = stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id=inv))
        assert reply.result == V(opaque=opaque) and reply.result_json == ""
        stub.SetException(sb.SetExceptionRequest(app_id=app, invocation_id=inv, exception=common_pb2.TaskError(
            type="ValueError", message="bad"), detail=V(opaque=opaque)))
        error = stub.GetException(sb.GetExceptionRequest(app_id=app, invocation_id=inv))
        assert error.detail == V(opaque=opaque) and error.exception.detail_json == ""
        assert error.exception.type == "ValueError"
        stub.SetWorkflowData(sb.SetWorkflowDataRequest(app_id=app, workflow_id="wf", key=key, value=V(opaque=opaque)))
        data = stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app, workflow_id="wf", key=key))
        assert data.value == V(opaque=opaque) and data.value_json == ""
        # The executor's JSON-only GetData sees the envelope, valid JSON in every language.
        seen = executor.GetData(de.GetDataRequest(app_id=app, workflow_id="wf", key=key)).value_json
        assert json.loads(seen) == {"$opaque": opaque}
        first = stub.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
            app_id=app, workflow_id="wf", key=key, value=V(opaque=opaque)))
        assert first.value == V(opaque=opaque) and not first.replayed
        again = stub.SetWorkflowDeterministicValue(sb.SetWorkflowDeterministicValueRequest(
            app_id=app, workflow_id="wf", key=key, value_json="1"))
        assert again.value == V(opaque=opaque) and again.replayed and again.value_json == ""
    # JSON stays JSON, through the older fields and the new ones alike.
    stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id="j", result=V(json='{"a": [1]}')))
    reply = stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id="j"))
    assert reply.result == V(json='{"a": [1]}') and reply.result_json == '{"a": [1]}'
    stub.SetException(sb.SetExceptionRequest(app_id=app, invocation_id="j", exception=common_pb2.TaskError(
        type="E", detail_json='{"code": 3}')))
    error = stub.GetException(sb.GetExceptionRequest(app_id=app, invocation_id="j"))
    assert error.detail == V(json='{"code": 3}') and error.exception.detail_json == '{"code": 3}'
    stub.SetException(
        sb.SetExceptionRequest(app_id=app, invocation_id="none", exception=common_pb2.TaskError(type="E"))
    )
    assert not stub.GetException(sb.GetExceptionRequest(app_id=app, invocation_id="none")).HasField("detail")
    executor_written = '{"n": 1}'
    executor.SetData(de.SetDataRequest(app_id=app, workflow_id=app, invocation_id=app, key="x",
                                       value_json=executor_written))
    data = stub.GetWorkflowData(sb.GetWorkflowDataRequest(app_id=app, workflow_id=app, key="x"))
    assert data.value == V(json=executor_written) and data.value_json == executor_written


def test_arguments_say_whether_they_are_json(stub, app):
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(app_id=app, invocations=[
        sb.Invocation(invocation_id="new", task_id="t", arguments={"order": V(json='{"id": 7}'),
                                                                   "blob": V(opaque=PICKLED)}),
        sb.Invocation(invocation_id="old", task_id="t", serialized_arguments={"x": PICKLED})]))
    new = stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id="new")).invocation
    assert dict(new.arguments) == {"order": V(json='{"id": 7}'), "blob": V(opaque=PICKLED)}
    assert dict(new.serialized_arguments) == {"order": '{"id": 7}', "blob": PICKLED}
    old = stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id="old")).invocation
    assert dict(old.arguments) == {"x": V(opaque=PICKLED)} and dict(old.serialized_arguments) == {"x": PICKLED}


def test_a_json_value_in_the_envelopes_form_is_refused_so_nothing_reads_back_changed(stub, app):
    for text in ['{"$opaque":"x"}', ' {"$opaque" : "y"} ']:
        assert_invalid(stub.SetResult, sb.SetResultRequest(app_id=app, invocation_id="i", result_json=text),
                       "result_json")
    # Not the envelope's exact form: plain JSON.
    for text in ['{"$opaque": 1}', '{"$opaque": "x", "more": 1}', '["$opaque"]']:
        stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id="i", result_json=text))
        assert stub.GetResult(sb.GetResultRequest(app_id=app, invocation_id="i")).result == V(json=text)


def test_a_payload_of_several_mebibytes_is_accepted(stub, app):
    big = "p" * (5 * 1024 * 1024)  # over the former 1 MiB limit, under the default 16 MiB
    stub.SetResult(sb.SetResultRequest(app_id=app, invocation_id="big", result=V(opaque=big)), timeout=60)
    options = [("grpc.max_receive_message_length", 32 * 1024 * 1024)]
    with grpc.insecure_channel(stub_address(stub), options=options) as wide:
        from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
        reply = sb_grpc.StateBackendServiceStub(wide).GetResult(
            sb.GetResultRequest(app_id=app, invocation_id="big"), timeout=60)
    assert reply.result.opaque == big


def stub_address(stub) -> str:
    return stub._address  # set by the fixture below


@pytest.fixture(autouse=True)
def _remember_address(stub, server):
    stub._address = server.address


def test_a_streamed_history_batch_is_cut_near_256_kib(stub, app):
    big = json.dumps("x" * 100 * 1024)
    for n in range(5):
        stub.AddHistory(sb.AddHistoryRequest(app_id=app, invocation_ids=[f"i{n}"], history=sb.InvocationHistory(
            timestamp=ts(1000 + n), execution_context_json=big)))
    batches = list(stub.StreamHistoryInTimeRange(sb.StreamHistoryInTimeRangeRequest(
        app_id=app, start_time=ts(0), end_time=ts(2000), batch_size=100), timeout=30))
    assert [len(b.history) for b in batches] == [2, 2, 1]
    assert all(b.ByteSize() < 256 * 1024 for b in batches)
