"""Pynenc's objects <-> StateBackendService messages.

Two conventions stand in for contract fields the sidecar does not have yet (issue 10, item 3):
- payload(): Pynenc's serialized values (results, workflow data) are its serializer's text,
  which need not be JSON (PickleSerializer's is not); the *_json fields require JSON, so the
  text travels as one JSON string. Serialized arguments are free text on the wire and travel
  as they are.
- history context: a history entry's status owner, the status's own timestamp and the
  registering invocation travel in execution_context_json as
  {"status_runner_id": ..., "status_timestamp": ..., "registered_by_inv_id": ...}.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pynenc.app_info import AppInfo
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb


# --- payloads ------------------------------------------------------------------------
def payload(serialized: str) -> str:
    return json.dumps(serialized)


def from_payload(value_json: str) -> str:
    value = json.loads(value_json)
    if not isinstance(value, str):
        raise ValueError(f"stored value is not a Pynenc serialized payload (a JSON string): {value_json[:80]!r}")
    return value


def task_error(serialized_exception: str, message: str) -> common_pb2.TaskError:
    """Pynenc's serialized exception (a JSON object naming the error) as a TaskError that any
    language reads: its type, its message, and Pynenc's form in detail_json."""
    try:
        error_name = json.loads(serialized_exception).get("error_name")
    except (ValueError, AttributeError):
        error_name = None
    return common_pb2.TaskError(type=str(error_name or "Exception"), message=message, detail_json=serialized_exception)


# --- time and statuses ---------------------------------------------------------------
def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def status_to_proto(status: InvocationStatus) -> int:
    return common_pb2.InvocationStatus.Value(f"INVOCATION_STATUS_{status.name}")


def status_from_proto(value: int) -> InvocationStatus:
    return InvocationStatus[common_pb2.InvocationStatus.Name(value).removeprefix("INVOCATION_STATUS_")]


# --- workflows -----------------------------------------------------------------------
def workflow_to_proto(workflow: WorkflowIdentity) -> common_pb2.WorkflowIdentity:
    return common_pb2.WorkflowIdentity(workflow_id=workflow.workflow_id, workflow_type=workflow.workflow_type.key,
                                       parent_workflow_id=workflow.parent_workflow_id or "")


def workflow_from_proto(workflow: common_pb2.WorkflowIdentity) -> WorkflowIdentity:
    return WorkflowIdentity(workflow_id=InvocationId(workflow.workflow_id),
                            workflow_type=TaskId.from_key(workflow.workflow_type),
                            parent_workflow_id=InvocationId(workflow.parent_workflow_id)
                            if workflow.parent_workflow_id else None)


# --- invocations ---------------------------------------------------------------------
def invocation_to_proto(inv: InvocationDTO, call: CallDTO) -> sb.Invocation:
    message = sb.Invocation(
        invocation_id=inv.invocation_id, task_id=call.call_id.task_id.key, call_id=call.call_id.key,
        serialized_arguments=call.serialized_arguments, parent_invocation_id=inv.parent_invocation_id or "",
        parent_event_id=inv.parent_event_id or "")
    if inv.workflow is not None:
        message.workflow.CopyFrom(workflow_to_proto(inv.workflow))
    return message


def invocation_from_proto(message: sb.Invocation) -> tuple[InvocationDTO, CallDTO]:
    call_id = CallId.from_key(message.call_id)
    inv = InvocationDTO(
        invocation_id=InvocationId(message.invocation_id), call_id=call_id,
        workflow=workflow_from_proto(message.workflow)
        if message.HasField("workflow") and message.workflow.workflow_type else None,
        parent_invocation_id=InvocationId(message.parent_invocation_id) if message.parent_invocation_id else None,
        parent_event_id=message.parent_event_id or None)
    return inv, CallDTO(call_id=call_id, serialized_arguments=dict(message.serialized_arguments))


# --- history -------------------------------------------------------------------------
def history_to_proto(history: InvocationHistory) -> sb.InvocationHistory:
    record = history.status_record
    context = {"status_runner_id": record.runner_id, "status_timestamp": _aware(record.timestamp).isoformat(),
               "registered_by_inv_id": history.registered_by_inv_id}
    message = sb.InvocationHistory(status=status_to_proto(record.status), runner_id=history.runner_context_id,
                                   execution_context_json=json.dumps(context))
    message.timestamp.FromDatetime(_aware(history.timestamp))
    return message


def history_from_proto(message: sb.InvocationHistory) -> InvocationHistory:
    timestamp = message.timestamp.ToDatetime(tzinfo=UTC)
    context = json.loads(message.execution_context_json) if message.execution_context_json else {}
    status_timestamp = context.get("status_timestamp")
    history = InvocationHistory(
        invocation_id=message.invocation_id,
        status_record=InvocationStatusRecord(
            status=status_from_proto(message.status), runner_id=context.get("status_runner_id"),
            timestamp=_aware(datetime.fromisoformat(status_timestamp)) if status_timestamp else timestamp),
        runner_context_id=message.runner_id,
        registered_by_inv_id=context.get("registered_by_inv_id"))
    history._timestamp = timestamp
    return history


# --- apps and runner contexts ----------------------------------------------------------
def app_info_to_proto(info: AppInfo) -> sb.AppInfo:
    return sb.AppInfo(app_id=info.app_id, module=info.module,
                      config_values_json=json.dumps(info.config_values) if info.config_values is not None else "",
                      config_filepath=info.config_filepath or "", module_filepath=info.module_filepath or "",
                      app_variable=info.app_variable or "")


def app_info_from_proto(message: sb.AppInfo) -> AppInfo:
    return AppInfo(app_id=message.app_id, module=message.module,
                   config_values=json.loads(message.config_values_json) if message.config_values_json else None,
                   config_filepath=message.config_filepath or None, module_filepath=message.module_filepath or None,
                   app_variable=message.app_variable or None)


def runner_context_to_proto(ctx: RunnerContext) -> sb.RunnerContext:
    return sb.RunnerContext(runner_id=ctx.runner_id, runner_cls=ctx.runner_cls,
                            parent_runner_id=ctx.parent_ctx.runner_id if ctx.parent_ctx else "",
                            pid=ctx.pid, hostname=ctx.hostname, thread_id=ctx.thread_id)


def runner_context_from_proto(message: sb.RunnerContext, parent: RunnerContext | None) -> RunnerContext:
    return RunnerContext(runner_cls=message.runner_cls, runner_id=message.runner_id, parent_ctx=parent,
                         pid=message.pid, hostname=message.hostname, thread_id=message.thread_id)
