"""projection.py's rules, without a server process: what an executor TaskState projects to,
byte for byte what StateBackendService itself stores for the equivalent requests (the real
servicer, on a real SQLite store)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pynenc_sidecar.clock import wall_clock_us
from pynenc_sidecar.core.tasks import FAILED, REGISTERED, RUNNING, SUCCESS, TaskState, WorkflowRef
from pynenc_sidecar.projection import RUNNER_CLS, args_id, project, serialized_arguments
from pynenc_sidecar.service.state_backend import StateBackendServicer
from pynenc_sidecar.service.validation import Limits
from pynenc_sidecar.state_backend_engine import StateBackendEngine
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore
from pynenc_sidecar.storage.sqlite.state_backend_store import SqliteStateBackendStore
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb

WF = WorkflowRef("wf-1", "mod.flow")
NOW = 1_764_580_000_123_456
APP = "app"
S = common_pb2.InvocationStatus


class Servicer:
    """StateBackendService's servicer on a real store, called in-process: what it stores for a
    request is read back from the store, as the projection's payloads are."""

    def __init__(self, path: Path, clock=wall_clock_us) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = SqliteStateBackendStore(SqliteStore(path))
        self.servicer = StateBackendServicer(StateBackendEngine(self.store, clock), Limits())

    def call(self, rpc: str, request):
        reply = self.loop.run_until_complete(getattr(self.servicer, rpc)(request, None))
        assert reply is not None, f"{rpc} failed"  # an error would have gone to the (absent) context
        return reply

    def read(self, method: str, *args):
        return self.loop.run_until_complete(getattr(self.store, method)(APP, *args))

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


@pytest.fixture
def servicer(tmp_path: Path) -> Iterator[Servicer]:
    subject = Servicer(tmp_path / "state.db")
    yield subject
    subject.close()


def state(**fields) -> TaskState:
    base = dict(invocation_id="inv-1", task_id="mod.step", arguments_json='{"name":"wörld"}',
                workflow=WF, parent_invocation_id="wf-1", status=RUNNING, lease_id="L1", runner_id="r-1")
    return TaskState(**{**base, **fields})


def stored_history(servicer: Servicer, entry: sb.InvocationHistory) -> str:
    servicer.call("AddHistory", sb.AddHistoryRequest(app_id=APP, invocation_ids=["h"], history=entry))
    *_, last = servicer.read("get_history", "h")
    return last.payload


def test_the_record_is_what_the_servicer_stores_for_the_invocation(servicer: Servicer) -> None:
    record = project(state(), NOW).record
    arguments = {"name": json.dumps("wörld")}
    servicer.call("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=APP, invocations=[sb.Invocation(
        invocation_id="inv-1", task_id="mod.step", call_id=f"mod.step:{args_id(arguments)}",
        arguments={"name": sb.SerializedValue(json=arguments["name"])}, parent_invocation_id="wf-1",
        workflow=common_pb2.WorkflowIdentity(workflow_id="wf-1", workflow_type="mod.flow"))]))
    assert record == servicer.read("get_invocation", "inv-1")  # payload and index columns, byte for byte
    # Read back, the arguments are JSON values, and their text is also Pynenc's serialized form.
    servicer.loop.run_until_complete(servicer.store.project_invocation(APP, project(state(invocation_id="p"), NOW)))
    read = servicer.call("GetInvocation", sb.GetInvocationRequest(app_id=APP, invocation_id="p")).invocation
    assert dict(read.serialized_arguments) == arguments
    assert read.arguments["name"].WhichOneof("kind") == "json"


def test_several_arguments_are_the_servicers_map_in_key_order(servicer: Servicer) -> None:
    # MessageToJson writes map entries in an order that changes between processes, so the
    # servicer's bytes for several arguments are not fixed; the projection writes key order.
    record = project(state(arguments_json='{"z":1,"name":"wörld","n":[1,2.5,null]}'), NOW).record
    arguments = {"z": "1", "name": json.dumps("wörld"), "n": json.dumps([1, 2.5, None])}
    servicer.call("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=APP, invocations=[sb.Invocation(
        invocation_id="inv-1", task_id="mod.step", call_id=f"mod.step:{args_id(arguments)}",
        arguments={k: sb.SerializedValue(json=v) for k, v in arguments.items()}, parent_invocation_id="wf-1",
        workflow=common_pb2.WorkflowIdentity(workflow_id="wf-1", workflow_type="mod.flow"))]))
    assert json.loads(record.payload) == json.loads(servicer.read("get_invocation", "inv-1").payload)
    assert list(json.loads(record.payload)["arguments"]) == ["n", "name", "z"]


def test_a_main_task_has_no_parent_and_a_child_workflow_names_its_parent_workflow() -> None:
    main = project(state(invocation_id="wf-1", parent_invocation_id="", arguments_json="{}"), NOW)
    assert main.sub_invocation_of == ""
    message = json.loads(main.record.payload)
    assert "parentInvocationId" not in message and message["callId"] == "mod.step:no_args"
    assert "arguments" not in message
    assert "registeredByInvocationId" not in json.loads(main.events[0].payload)
    child_wf = WorkflowRef("inv-9", "mod.child", "wf-1")
    child = project(state(invocation_id="inv-9", workflow=child_wf), NOW)
    assert child.sub_invocation_of == "wf-1"
    assert json.loads(child.record.payload)["workflow"] == {
        "workflowId": "inv-9", "workflowType": "mod.child", "parentWorkflowId": "wf-1"}
    assert json.loads(child.events[0].payload)["registeredByInvocationId"] == "wf-1"
    assert project(state(), NOW).sub_invocation_of == "wf-1"  # a task in its caller's workflow


def test_a_running_task_projects_registered_then_running_as_the_servicer_stores_them(servicer: Servicer) -> None:
    projected = project(state(), NOW)
    assert [e.event_id for e in projected.events] == ["registered", "running:L1"]
    assert {e.timestamp_us for e in projected.events} == {NOW}
    # REGISTERED names the invocation that registered it and has no status owner (Pynenc's
    # REGISTERED releases ownership); RUNNING is owned by the lease holder.
    registered = sb.InvocationHistory(status=S.INVOCATION_STATUS_REGISTERED, runner_id="r-1",
                                      registered_by_invocation_id="wf-1")
    running = sb.InvocationHistory(status=S.INVOCATION_STATUS_RUNNING, runner_id="r-1", status_runner_id="r-1")
    for event, entry in zip(projected.events, (registered, running)):
        entry.timestamp.FromMicroseconds(NOW)  # status_timestamp left unset: the servicer fills it in
        assert event.payload == stored_history(servicer, entry)
    assert projected.result_json is None and projected.exception is None
    servicer.call("StoreRunnerContext", sb.StoreRunnerContextRequest(
        app_id=APP, runner_context=sb.RunnerContext(runner_id="r-1", runner_cls=RUNNER_CLS)))
    assert projected.runner == ("r-1", *servicer.read("get_runner_contexts", ["r-1"]))


def test_the_history_fields_read_back_through_get_history(servicer: Servicer) -> None:
    servicer.loop.run_until_complete(servicer.store.project_invocation(APP, project(state(), NOW)))
    registered, running = servicer.call("GetHistory", sb.GetHistoryRequest(app_id=APP, invocation_id="inv-1")).history
    assert (registered.registered_by_invocation_id, registered.status_runner_id) == ("wf-1", "")
    assert (running.registered_by_invocation_id, running.status_runner_id) == ("", "r-1")
    for entry in (registered, running):
        assert entry.status_timestamp == entry.timestamp and entry.timestamp.ToMicroseconds() == NOW
        assert entry.runner_id == "r-1" and entry.invocation_id == "inv-1"


def test_a_registered_task_without_a_lease_projects_registration_only() -> None:
    projected = project(state(status=REGISTERED, lease_id="", runner_id=""), NOW)
    assert [e.event_id for e in projected.events] == ["registered"]
    assert projected.runner is None
    assert json.loads(projected.events[0].payload) == {
        "timestamp": "2025-12-01T09:06:40.123456Z", "status": "INVOCATION_STATUS_REGISTERED",
        "statusTimestamp": "2025-12-01T09:06:40.123456Z", "registeredByInvocationId": "wf-1"}


@pytest.mark.parametrize("status", [SUCCESS, FAILED])
def test_a_finished_task_projects_every_status_at_its_outcome_and_the_outcome(servicer: Servicer,
                                                                              status: int) -> None:
    error = {"type": "ValueError", "message": "card declined", "detail_json": '{"code":7}'}
    finished = state(status=status, finished_us=NOW - 5, result_json='{"ok":true}' if status == SUCCESS else None,
                     error_json=json.dumps(error) if status == FAILED else None)
    projected = project(finished, NOW)
    assert [e.event_id for e in projected.events] == ["registered", "running:L1", "final:L1"]
    assert {e.timestamp_us for e in projected.events} == {NOW - 5}
    final = sb.InvocationHistory(status=status, runner_id="r-1")  # a final status has no owner
    final.timestamp.FromMicroseconds(NOW - 5)
    assert projected.events[-1].payload == stored_history(servicer, final)
    if status == SUCCESS:
        servicer.call("SetResult", sb.SetResultRequest(app_id=APP, invocation_id="inv-1",
                                                       result=sb.SerializedValue(json='{"ok":true}')))
        assert projected.result_json == servicer.read("get_result", "inv-1") and projected.exception is None
    else:
        assert projected.result_json is None
        declined = common_pb2.TaskError(type="ValueError", message="card declined")
        servicer.call("SetException", sb.SetExceptionRequest(app_id=APP, invocation_id="inv-1", exception=declined,
                                                             detail=sb.SerializedValue(json='{"code":7}')))
        assert projected.exception == servicer.read("get_exception", "inv-1")


def test_a_json_outcome_in_the_opaque_envelopes_form_is_kept_as_the_servicer_keeps_opaque_text(
        servicer: Servicer) -> None:
    # The servicer refuses such JSON (it would read back as the envelope's content); the
    # executor accepts it, so the projection keeps its text as opaque: it reads back as written.
    text = '{"$opaque":"x"}'
    projected = project(state(status=SUCCESS, finished_us=NOW, result_json=text), NOW)
    servicer.call("SetResult", sb.SetResultRequest(app_id=APP, invocation_id="inv-1",
                                                   result=sb.SerializedValue(opaque=text)))
    assert projected.result_json == servicer.read("get_result", "inv-1")
    error = {"type": "E", "message": "m", "detail_json": text}
    failed = project(state(status=FAILED, finished_us=NOW, error_json=json.dumps(error)), NOW)
    servicer.call("SetException", sb.SetExceptionRequest(app_id=APP, invocation_id="inv-1",
                                                         exception=common_pb2.TaskError(type="E", message="m"),
                                                         detail=sb.SerializedValue(opaque=text)))
    assert failed.exception == servicer.read("get_exception", "inv-1")
    servicer.loop.run_until_complete(servicer.store.project_invocation(APP, projected))
    reply = servicer.call("GetResult", sb.GetResultRequest(app_id=APP, invocation_id="inv-1"))
    assert reply.result == sb.SerializedValue(opaque=text) and reply.result_json == ""


def test_arguments_are_json_serializer_text_and_args_id_is_pynencs() -> None:
    # Pynenc 0.4.0's JsonSerializer.serialize writes json.dumps text for JSON values
    # (checked against its source: same bytes for these, and it reads them back).
    assert serialized_arguments('{"a":"x","b":{"c":1},"u":"wörld"}') == {"a": '"x"', "b": '{"c": 1}',
                                                                         "u": '"w\\u00f6rld"'}
    # Pynenc 0.4.0's call.compute_args_id of the same serialized arguments, run once on its
    # source (pynenc-0.4.0 wheel, pynenc/call.py).
    assert args_id({"order_id": '"A-1"'}) == "4588b77cfaafdbe531690d52aa5508aa7c23bf9619a9af5244f4e2e6d1e7f2ab"
    assert args_id({"name": json.dumps("wörld"), "n": json.dumps([1, 2.5, None])}) == \
        "b8a51d9c30a74c207ddcf5f482a19e493347e2c03c11e76496395b85edc5cbb8"
    assert args_id({}) == "no_args"


def test_history_timestamps_are_written_as_protobuf_writes_them() -> None:
    from google.protobuf import timestamp_pb2

    from pynenc_sidecar.projection import _timestamp_json

    rng = random.Random(7)
    samples = [0, 1, 999, 1000, 999_999, 1_000_000, NOW, NOW - 456, NOW - 123_456, 253_402_300_799_999_999]
    for us in samples + [rng.randrange(0, 253_402_300_800_000_000) for _ in range(2000)]:
        timestamp = timestamp_pb2.Timestamp()
        timestamp.FromMicroseconds(us)
        assert _timestamp_json(us) == timestamp.ToJsonString(), us


def test_a_retried_invocation_projects_its_retry_and_its_second_outcome() -> None:
    from pynenc_sidecar.core.tasks import RETRY

    failed = state(status=FAILED, finished_us=NOW - 5, error_json=json.dumps({"type": "ValueError", "message": "x"}))
    reset = state(status=RETRY, lease_id="", finished_us=0)
    done_again = state(status=SUCCESS, lease_id="L2", finished_us=NOW + 5, result_json="1")
    first, retried, second = (project(s, NOW).events for s in (failed, reset, done_again))
    assert [e.event_id for e in first] == ["registered", "running:L1", "final:L1"]
    assert [e.event_id for e in retried] == ["registered", f"retry:{NOW}"]
    assert [e.event_id for e in second] == ["registered", "running:L2", "final:L2"]
    # Every entry is written once (by event id): the history is REGISTERED, RUNNING, FAILED,
    # RETRY, RUNNING, SUCCESS.
    ids = list(dict.fromkeys(e.event_id for e in (*first, *retried, *second)))
    assert ids == ["registered", "running:L1", "final:L1", f"retry:{NOW}", "running:L2", "final:L2"]
