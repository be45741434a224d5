"""Small helpers for calling DeterministicExecutorService with the raw generated stubs."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de


def position(app_id: str, workflow_id: str, sequence: int = 1, invocation_id: str = "") -> de.OperationPosition:
    return de.OperationPosition(app_id=app_id, workflow=common_pb2.WorkflowIdentity(workflow_id=workflow_id),
                                invocation_id=invocation_id, sequence=sequence)


def error_details(error: grpc.RpcError) -> tuple[str, str, dict[str, str]]:
    """(ErrorInfo reason, BadRequest field, ErrorInfo metadata) of a failed call."""
    status = rpc_status.from_call(error)
    reason, field, metadata = "", "", {}
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
            assert info.domain == "sidecar.pynenc.org"
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            field = bad.field_violations[0].field
    return reason, field, metadata
