"""projection.py's rules, without a server: what an executor TaskState projects to, byte for
byte the payloads StateBackendService itself would store for the equivalent messages."""

from __future__ import annotations

import json
import random

import pytest
from google.protobuf import json_format

from pynenc_sidecar.core.tasks import FAILED, REGISTERED, RUNNING, SUCCESS, TaskState, WorkflowRef
from pynenc_sidecar.projection import RUNNER_CLS, args_id, project, serialized_arguments
from pynenc_sidecar_proto.v1 import common_pb2, state_backend_pb2 as sb

WF = WorkflowRef("wf-1", "mod.flow")
NOW = 1_764_580_000_123_456


def dump(message) -> str:
    # service/state_backend.py's encoding of what it stores
    return json_format.MessageToJson(message, indent=None)


def state(**fields) -> TaskState:
    base = dict(invocation_id="inv-1", task_id="mod.step", arguments_json='{"name":"wörld","n":[1,2.5,null]}',
                workflow=WF, parent_invocation_id="wf-1", status=RUNNING, lease_id="L1", runner_id="r-1")
    return TaskState(**{**base, **fields})


def test_the_record_is_the_invocation_message_the_state_backend_stores() -> None:
    record = project(state(), NOW).record
    arguments = {"name": json.dumps("wörld"), "n": json.dumps([1, 2.5, None])}
    expected = sb.Invocation(invocation_id="inv-1", task_id="mod.step", call_id=f"mod.step:{args_id(arguments)}",
                             serialized_arguments=arguments, parent_invocation_id="wf-1",
                             workflow=common_pb2.WorkflowIdentity(workflow_id="wf-1", workflow_type="mod.flow"))
    assert record.payload == dump(expected)
    assert (record.workflow_id, record.workflow_type, record.parent_invocation_id) == ("wf-1", "mod.flow", "wf-1")


def test_a_main_task_has_no_parent_and_a_child_workflow_names_its_parent_workflow() -> None:
    main = project(state(invocation_id="wf-1", parent_invocation_id="", arguments_json="{}"), NOW)
    assert main.sub_invocation_of == ""
    message = json_format.Parse(main.record.payload, sb.Invocation())
    assert message.parent_invocation_id == "" and message.call_id == "mod.step:no_args"
    assert dict(message.serialized_arguments) == {}
    child_wf = WorkflowRef("inv-9", "mod.child", "wf-1")
    child = project(state(invocation_id="inv-9", workflow=child_wf), NOW)
    assert child.sub_invocation_of == "wf-1"
    assert json_format.Parse(child.record.payload, sb.Invocation()).workflow == common_pb2.WorkflowIdentity(
        workflow_id="inv-9", workflow_type="mod.child", parent_workflow_id="wf-1")
    assert project(state(), NOW).sub_invocation_of == "wf-1"  # a task in its caller's workflow


def test_a_running_task_projects_registered_then_running_now() -> None:
    projected = project(state(), NOW)
    assert [e.event_id for e in projected.events] == ["registered", "running:L1"]
    for event, status in zip(projected.events, (REGISTERED, RUNNING)):
        entry = sb.InvocationHistory(status=status, runner_id="r-1")
        entry.timestamp.FromMicroseconds(NOW)
        assert event.payload == dump(entry) and event.timestamp_us == NOW
    assert projected.result_json is None and projected.exception is None
    assert projected.runner == ("r-1", dump(sb.RunnerContext(runner_id="r-1", runner_cls=RUNNER_CLS)))


def test_a_registered_task_without_a_lease_projects_registration_only() -> None:
    projected = project(state(status=REGISTERED, lease_id="", runner_id=""), NOW)
    assert [e.event_id for e in projected.events] == ["registered"]
    assert projected.runner is None
    assert json.loads(projected.events[0].payload) == {"timestamp": "2025-12-01T09:06:40.123456Z",
                                                       "status": "INVOCATION_STATUS_REGISTERED"}


@pytest.mark.parametrize("status", [SUCCESS, FAILED])
def test_a_finished_task_projects_every_status_at_its_outcome_and_the_outcome(status: int) -> None:
    error = {"type": "ValueError", "message": "card declined", "detail_json": '{"code":7}'}
    finished = state(status=status, finished_us=NOW - 5, result_json='{"ok":true}' if status == SUCCESS else None,
                     error_json=json.dumps(error) if status == FAILED else None)
    projected = project(finished, NOW)
    assert [e.event_id for e in projected.events] == ["registered", "running:L1", "final"]
    assert {e.timestamp_us for e in projected.events} == {NOW - 5}
    assert json.loads(projected.events[-1].payload)["status"] == common_pb2.InvocationStatus.Name(status)
    if status == SUCCESS:
        assert projected.result_json == '{"ok":true}' and projected.exception is None
    else:
        assert projected.result_json is None
        assert projected.exception == dump(common_pb2.TaskError(**error))


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
