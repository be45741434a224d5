"""One workflow state: an executor invocation as StateBackendService shows it, the way Pynenc
0.4.0 records its own.

DeterministicExecutorService keeps a task's state in the executor's task store (TaskState);
Pynenc's tools read invocations, status histories, results, exceptions, workflow runs and
sub-invocations through StateBackendService. The engine calls `StateProjection.task_changed`
after every executor step that changes a task (registered, leased, finished), and this module
writes what that state means in Pynenc's terms, in the encoding StateBackendService stores
(protobuf JSON of its messages, results as JSON text), so StateBackendService reads it back
as if a Pynenc runner had written it through its RPCs.

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

from google.protobuf import json_format

from pynenc_sidecar.core.tasks import FAILED, REGISTERED, RUNNING, SUCCESS, TaskState
from pynenc_sidecar.storage.state_backend_store import (
    HistoryEvent,
    InvocationRecord,
    ProjectedInvocation,
    StateBackendStore,
)
from pynenc_sidecar_proto.v1 import common_pb2, state_backend_pb2 as sb

# The runner_cls of the runner contexts stored for the executor's runner ids.
RUNNER_CLS = "DeterministicExecutorService"


def _dump(message) -> str:
    # What StateBackendService stores for a message (service/state_backend.py `_dump`).
    return json_format.MessageToJson(message, indent=None)


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
                      .encode("utf-8"))
    return hasher.hexdigest()


def invocation_record(state: TaskState) -> InvocationRecord:
    arguments = serialized_arguments(state.arguments_json)
    workflow = state.workflow
    message = sb.Invocation(
        invocation_id=state.invocation_id,
        task_id=state.task_id,
        call_id=f"{state.task_id}:{args_id(arguments)}",
        serialized_arguments=arguments,
        workflow=common_pb2.WorkflowIdentity(workflow_id=workflow.workflow_id, workflow_type=workflow.workflow_type,
                                             parent_workflow_id=workflow.parent_workflow_id),
        parent_invocation_id=state.parent_invocation_id,
    )
    return InvocationRecord(state.invocation_id, _dump(message), workflow.workflow_id, workflow.workflow_type,
                            state.parent_invocation_id)


def _history(event_id: str, timestamp_us: int, status: int, runner_id: str) -> HistoryEvent:
    entry = sb.InvocationHistory(status=status, runner_id=runner_id)
    entry.timestamp.FromMicroseconds(timestamp_us)
    return HistoryEvent(event_id, timestamp_us, _dump(entry))


def history_events(state: TaskState, now_us: int) -> tuple[HistoryEvent, ...]:
    """Every status the state implies, oldest first: REGISTERED; RUNNING for its (latest)
    lease, by the runner that took it; SUCCESS or FAILED once finished.

    Entries are timed now, except in a finished state, where all are timed at the outcome:
    those written then (only after a lost projection) still sort before the final one."""
    at = (state.finished_us or now_us) if state.finished else now_us
    events = [_history("registered", at, REGISTERED, state.runner_id)]
    if state.lease_id and (state.status == RUNNING or state.finished):
        events.append(_history(f"running:{state.lease_id}", at, RUNNING, state.runner_id))
    if state.finished:
        events.append(_history("final", at, state.status, state.runner_id))
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
        exception = _dump(common_pb2.TaskError(**json.loads(state.error_json)))
    runner = None
    if state.runner_id:
        runner = (state.runner_id, _dump(sb.RunnerContext(runner_id=state.runner_id, runner_cls=RUNNER_CLS)))
    return ProjectedInvocation(
        record=invocation_record(state),
        events=history_events(state, now_us),
        result_json=state.result_json if state.status == SUCCESS else None,
        exception=exception,
        sub_invocation_of=sub_invocation_of(state),
        runner=runner,
    )


class StateProjection:
    """Writes the projection of executor task states to the StateBackend store."""

    def __init__(self, store: StateBackendStore) -> None:
        self.store = store

    async def task_changed(self, app_id: str, state: TaskState, now_us: int) -> None:
        await self.store.project_invocation(app_id, project(state, now_us))
