"""One workflow state: an executor invocation as StateBackendService shows it, the way Pynenc
0.4.0 records its own.

DeterministicExecutorService keeps a task's state in the executor's task store (TaskState);
Pynenc's tools read invocations, status histories, results, exceptions, workflow runs and
sub-invocations through StateBackendService. The engine calls `StateProjection.task_changed`
after every executor step that changes a task (registered, leased, finished), and this module
writes what that state means in Pynenc's terms, in the encoding StateBackendService stores
(protobuf JSON of its messages; results and error details in core.payloads' form), so
StateBackendService reads it back as if a Pynenc runner had written it through its RPCs.

The projection of an invocation is a function of its TaskState, written by one atomic,
idempotent store step (`StateBackendStore.project_invocation`): the record, result,
exception and index entries are overwritten with the same values, and each history entry
carries an event id ("registered", "running:<lease id>", "final") so it is appended once
however often the state is projected. A step that comes after a lost projection (the
server died between the executor's write and this one) therefore writes what was lost.
What maps to what: docs/pynenc-state.md.
"""

from __future__ import annotations

import hashlib
import json
import time

from pynenc_sidecar.core import payloads
from pynenc_sidecar.core.tasks import FAILED, REGISTERED, RETRY, RUNNING, SUCCESS, TaskState
from pynenc_sidecar.storage.interface import HistoryEvent, InvocationRecord, ProjectedInvocation, StateBackendStore
from pynenc_sidecar_proto.v1 import common_pb2

# The runner_cls of the runner contexts stored for the executor's runner ids.
RUNNER_CLS = "DeterministicExecutorService"
_STATUS_NAMES = {number: common_pb2.InvocationStatus.Name(number) for number in common_pb2.InvocationStatus.values()}

# StateBackendService stores its messages as protobuf JSON (MessageToJson, indent=None). The
# payloads below are built as that JSON directly, field for field (lowerCamelCase names, in
# field-number order, empty fields left out): the same bytes at a fraction of the cost
# (tests/test_projection.py compares them with what the servicer stores). Map entries are
# written in key order; MessageToJson writes them in an order that changes from process to
# process, which no reader depends on.


def _message_json(fields: dict) -> str:
    return json.dumps({name: value for name, value in fields.items() if value})


def _timestamp_json(us: int) -> str:
    """google.protobuf.Timestamp's JSON (RFC 3339, UTC, 0, 3 or 6 fraction digits), as
    Timestamp.ToJsonString writes it for whole microseconds, without its cost (~100 us)."""
    seconds, micros = divmod(us, 1_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def serialized_arguments(arguments_json: str) -> dict[str, str]:
    """Argument name -> the value's JSON text: what Pynenc's JsonSerializer writes for a JSON
    value (json.dumps with its default separators), so Pynenc reads the arguments with it."""
    return {name: json.dumps(value) for name, value in json.loads(arguments_json).items()}


def args_id(arguments: dict[str, str]) -> str:
    """Pynenc 0.4.0's `compute_args_id`: SHA-256 over JSON(key) "=" JSON(value) ";" by key."""
    if not arguments:
        return "no_args"
    hasher = hashlib.sha256()
    for key in sorted(arguments):
        hasher.update(f"{json.dumps(key, ensure_ascii=False)}={json.dumps(arguments[key], ensure_ascii=False)};"
                      .encode())
    return hasher.hexdigest()


def stored_json(text: str) -> str:
    """A JSON payload of the executor (a result, an error detail) in core.payloads' stored form:
    as is, unless it has the opaque envelope's exact form; then it is kept as opaque text (its
    JSON text), so that it does not read back as the envelope's content."""
    return payloads.encode("opaque", text) if payloads.decode(text)[0] == "opaque" else text


def invocation_record(state: TaskState) -> InvocationRecord:
    """The sb.Invocation of the task: its call as Pynenc's CallDTO has it, its workflow, its parent.

    The arguments are stored as `arguments`, each a SerializedValue of kind json (the text is
    the value's JSON, and also what Pynenc's JsonSerializer writes for it); the servicer keeps
    them that way and fills `serialized_arguments` from them on read."""
    arguments = serialized_arguments(state.arguments_json)
    workflow = state.workflow
    payload = _message_json({
        "invocationId": state.invocation_id,
        "taskId": state.task_id,
        "callId": f"{state.task_id}:{args_id(arguments)}",
        "workflow": {name: value for name, value in (
            ("workflowId", workflow.workflow_id), ("workflowType", workflow.workflow_type),
            ("parentWorkflowId", workflow.parent_workflow_id)) if value},
        "parentInvocationId": state.parent_invocation_id,
        "arguments": {name: {"json": arguments[name]} for name in sorted(arguments)},
    })
    return InvocationRecord(state.invocation_id, payload, workflow.workflow_id, workflow.workflow_type,
                            state.parent_invocation_id)


def _history(event_id: str, timestamp_us: int, timestamp_json: str, status: int, runner_id: str,
             status_runner_id: str = "", registered_by: str = "") -> HistoryEvent:
    """An sb.InvocationHistory entry (its invocation_id is the store's, not the payload's). The
    status was set when the entry was written: status_timestamp is the entry's timestamp, as
    the servicer fills it in when a client leaves it unset."""
    payload = _message_json({"timestamp": timestamp_json, "status": _STATUS_NAMES[status], "runnerId": runner_id,
                             "statusRunnerId": status_runner_id, "statusTimestamp": timestamp_json,
                             "registeredByInvocationId": registered_by})
    return HistoryEvent(event_id, timestamp_us, payload)


def history_events(state: TaskState, now_us: int) -> tuple[HistoryEvent, ...]:
    """Every status the state implies, oldest first: REGISTERED, by the invocation that ran it;
    RUNNING for its (latest) lease, owned by the runner that took it; SUCCESS or FAILED once
    finished. Only RUNNING has a status owner: in Pynenc, REGISTERED and the final statuses
    release ownership (its status_record has no runner then).

    Entries are timed now, except in a finished state, where all are timed at the outcome:
    those written then (only after a lost projection) still sort before the final one."""
    at = (state.finished_us or now_us) if state.finished else now_us
    stamp = _timestamp_json(at)
    runner = state.runner_id
    events = [_history("registered", at, stamp, REGISTERED, runner, registered_by=state.parent_invocation_id)]
    if state.lease_id and (state.status == RUNNING or state.finished):
        events.append(_history(f"running:{state.lease_id}", at, stamp, RUNNING, runner, status_runner_id=runner))
    if state.status == RETRY:  # reset by RetryWorkflow; one entry per reset (its time names it)
        events.append(_history(f"retry:{at}", at, stamp, RETRY, runner))
    if state.finished:  # one outcome per lease: a retried invocation gets its new outcome too
        events.append(_history(f"final:{state.lease_id}" if state.lease_id else "final", at, stamp, state.status,
                               runner))
    return tuple(events)


def sub_invocation_of(state: TaskState) -> str:
    """The workflow whose sub-invocations Pynenc lists it in: a task in a workflow it does
    not head is in that workflow's; a child workflow is in its parent workflow's."""
    workflow = state.workflow
    if workflow.workflow_id and workflow.workflow_id != state.invocation_id:
        return workflow.workflow_id
    return workflow.parent_workflow_id


def project(state: TaskState, now_us: int) -> ProjectedInvocation:
    exception = None
    if state.status == FAILED and state.error_json is not None:
        error = json.loads(state.error_json)  # a common_pb2.TaskError's fields
        detail = error.get("detail_json")
        exception = _message_json({"type": error.get("type"), "message": error.get("message"),
                                   "detailJson": stored_json(detail) if detail else "",
                                   "traceback": error.get("traceback") or ""})
    runner = None
    if state.runner_id:
        runner = (state.runner_id, _message_json({"runnerId": state.runner_id, "runnerCls": RUNNER_CLS}))
    return ProjectedInvocation(
        record=invocation_record(state),
        events=history_events(state, now_us),
        result_json=stored_json(state.result_json) if state.status == SUCCESS and state.result_json is not None
        else None,
        exception=exception,
        sub_invocation_of=sub_invocation_of(state),
        runner=runner,
    )


class StateProjection:
    """Writes the projection of executor task states to the StateBackend store."""

    def __init__(self, store: StateBackendStore) -> None:
        self.store = store

    def of(self, state: TaskState, now_us: int) -> ProjectedInvocation:
        return project(state, now_us)

    async def task_changed(self, app_id: str, state: TaskState, now_us: int) -> None:
        await self.store.project_invocation(app_id, project(state, now_us))
