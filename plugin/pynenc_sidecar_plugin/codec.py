"""Pynenc's objects <-> StateBackendService messages.

Payloads (results, arguments, workflow data, exception details) are Pynenc's serializer text
as a SerializedValue: `json` when the text is strict JSON (JsonSerializer's and
JsonPickleSerializer's text of plain values, Pynenc's serialized exceptions), so that readers
in other languages parse it; `opaque` otherwise (PickleSerializer's base64, NaN, the
sidecar's reserved {"$opaque": ...} form). Either way the text reads back exactly as written.
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
def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _strict_json(text: str) -> object:
    """The parsed text, by the sidecar's rule (NaN and Infinity are not JSON); raises if not JSON."""
    return json.loads(text, parse_constant=_reject_constant)


def _is_opaque_envelope(value: object) -> bool:
    # The sidecar keeps opaque text as {"$opaque": text} and refuses JSON of exactly that form.
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$opaque"), str)


def payload(serialized: str) -> sb.SerializedValue:
    try:
        value = _strict_json(serialized)
    except (ValueError, RecursionError):
        return sb.SerializedValue(opaque=serialized)
    return sb.SerializedValue(opaque=serialized) if _is_opaque_envelope(value) else sb.SerializedValue(json=serialized)


def from_payload(value: sb.SerializedValue) -> str:
    return value.json if value.WhichOneof("kind") == "json" else value.opaque


def task_error(serialized_exception: str, message: str) -> tuple[common_pb2.TaskError, sb.SerializedValue]:
    """Pynenc's serialized exception (a JSON object naming the error) as a TaskError that any
    language reads (its type and message) and Pynenc's text as the detail."""
    try:
        error_name = json.loads(serialized_exception).get("error_name")
    except (ValueError, AttributeError):
        error_name = None
    return common_pb2.TaskError(type=str(error_name or "Exception"), message=message), payload(serialized_exception)


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
        arguments={name: payload(text) for name, text in call.serialized_arguments.items()},
        parent_invocation_id=inv.parent_invocation_id or "", parent_event_id=inv.parent_event_id or "")
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
    message = sb.InvocationHistory(status=status_to_proto(record.status), runner_id=history.runner_context_id,
                                   status_runner_id=record.runner_id or "",
                                   registered_by_invocation_id=history.registered_by_inv_id or "")
    message.timestamp.FromDatetime(_aware(history.timestamp))
    message.status_timestamp.FromDatetime(_aware(record.timestamp))
    return message


def history_from_proto(message: sb.InvocationHistory) -> InvocationHistory:
    timestamp = message.timestamp.ToDatetime(tzinfo=UTC)
    history = InvocationHistory(
        invocation_id=message.invocation_id,
        status_record=InvocationStatusRecord(
            status=status_from_proto(message.status), runner_id=message.status_runner_id or None,
            timestamp=message.status_timestamp.ToDatetime(tzinfo=UTC)
            if message.HasField("status_timestamp") else timestamp),
        runner_context_id=message.runner_id,
        registered_by_inv_id=message.registered_by_invocation_id or None)
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
