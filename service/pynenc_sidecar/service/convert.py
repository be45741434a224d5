"""Core values <-> proto messages."""

from __future__ import annotations

import json
from typing import Any, cast

from google.protobuf import timestamp_pb2

from pynenc_sidecar.core.positions import DATA_NOT_FOUND, Kind, Position
from pynenc_sidecar.core.tasks import RUNNING, TaskCall, TaskState, WorkflowRef
from pynenc_sidecar.engine import LogBatch
from pynenc_sidecar.storage.interface import LeaseRequest
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de


def timestamp(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def workflow_identity(ref: WorkflowRef) -> common_pb2.WorkflowIdentity:
    return common_pb2.WorkflowIdentity(
        workflow_id=ref.workflow_id, workflow_type=ref.workflow_type, parent_workflow_id=ref.parent_workflow_id
    )


def task_invocation(state: TaskState) -> de.TaskInvocation:
    message = de.TaskInvocation(
        invocation_id=state.invocation_id,
        task_id=state.task_id,
        arguments_json=state.arguments_json,
        status=cast(common_pb2.InvocationStatus, state.status),  # an enum field takes its number
        workflow=workflow_identity(state.workflow),
        parent_invocation_id=state.parent_invocation_id,
    )
    if state.result_json is not None:
        message.result_json = state.result_json
    if state.error_json is not None:
        error = json.loads(state.error_json)
        message.error.CopyFrom(common_pb2.TaskError(**error))
    if state.status == RUNNING and state.lease_expire_us:
        message.lease_runner_id = state.runner_id
        message.lease_expire_time.CopyFrom(timestamp(state.lease_expire_us))
    return message


def task_lease(lease: LeaseRequest | None, expire_us: int) -> de.TaskLease | None:
    if lease is None:
        return None
    return de.TaskLease(lease_id=lease.lease_id, expire_time=timestamp(expire_us))


def recorded_operation(pos: Position, value: str, origin: str | None = None) -> de.RecordedOperation:
    message = de.RecordedOperation(scope=pos.scope, kind=cast(de.OperationKind, int(pos.kind)), sequence=pos.sequence)
    if origin and len(origin) == 48:  # trace id (32 hex) + span id (16 hex), see observability.origin
        message.origin_span.trace_id, message.origin_span.span_id = origin[:32], origin[32:]
    if pos.kind is Kind.RANDOM:
        message.random_value = float(value)
    elif pos.kind is Kind.TIME:
        message.time_value.CopyFrom(timestamp(int(value)))
    elif pos.kind is Kind.UUID:
        message.uuid_value = value
    elif pos.kind is Kind.TASK:
        call = TaskCall.decode(value)
        message.task_value.CopyFrom(
            de.TaskCall(invocation_id=call.invocation_id, task_id=call.task_id, arguments_json=call.arguments_json)
        )
    elif pos.kind is Kind.CUSTOM:
        message.custom_name = pos.name
        message.json_value = value
    else:
        message.custom_name = pos.name
        message.data_value.CopyFrom(de.DataValue(**data_value(value)))
    return message


def data_value(recorded: str) -> dict[str, Any]:
    """A data position's record as DataValue fields ("not found" is recorded as DATA_NOT_FOUND)."""
    return {"found": False} if recorded == DATA_NOT_FOUND else {"found": True, "value_json": recorded}


def workflow_log_response(batch: LogBatch) -> de.GetWorkflowLogResponse:
    """One GetWorkflowLog message."""
    return de.GetWorkflowLogResponse(**workflow_log_fields(batch))


def workflow_log_fields(batch: LogBatch) -> dict[str, Any]:
    """A GetWorkflowLog message's fields as constructor keywords. The operations are plain
    dicts, which upb turns into messages in C: faster than a call or a message per
    operation in Python (the log is the one reply with thousands of them)."""
    operations: list[dict[str, Any]] = []
    append = operations.append
    for (scope, kind, name), sequence, value, _ in batch.operations:
        # kind as a plain int: upb converts an IntEnum slowly
        if kind is Kind.RANDOM:
            append({"scope": scope, "kind": _RANDOM, "sequence": sequence, "random_value": float(value)})
        elif kind is Kind.UUID:
            append({"scope": scope, "kind": _UUID, "sequence": sequence, "uuid_value": value})
        elif kind is Kind.CUSTOM:
            append({"scope": scope, "kind": _CUSTOM, "sequence": sequence, "custom_name": name, "json_value": value})
        elif kind is Kind.TIME:
            us = int(value)
            append({"scope": scope, "kind": _TIME, "sequence": sequence,
                    "time_value": {"seconds": us // 1_000_000, "nanos": (us % 1_000_000) * 1000}})
        elif kind is Kind.DATA_READ or kind is Kind.DATA_WRITE:
            append({"scope": scope, "kind": int(kind), "sequence": sequence, "custom_name": name,
                    "data_value": data_value(value)})
        else:
            call = TaskCall.decode(value)
            append({"scope": scope, "kind": int(kind), "sequence": sequence, "task_value": {
                "invocation_id": call.invocation_id, "task_id": call.task_id, "arguments_json": call.arguments_json}})
    if batch.origins is not None:
        for operation, origin in zip(operations, batch.origins):
            if origin and len(origin) == 48:  # as in recorded_operation
                operation["origin_span"] = {"trace_id": origin[:32], "span_id": origin[32:]}
    fields: dict[str, Any] = {"operations": operations}
    if batch.tasks:
        fields["tasks"] = [task_invocation(t) for t in batch.tasks]
    if batch.base_time_us is not None:
        fields["base_time"] = timestamp(batch.base_time_us)
    return fields


_RANDOM, _TIME, _UUID, _CUSTOM = int(Kind.RANDOM), int(Kind.TIME), int(Kind.UUID), int(Kind.CUSTOM)
