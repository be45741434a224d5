"""Small helpers for calling DeterministicExecutorService with the raw generated stubs."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de


def start_workflows_cut_short(channel: grpc.Channel, app_id: str, count: int = 400) -> int:
    """StartWorkflow wf-0 .. wf-<count-1> (type mod.flow) at once, with client deadlines of
    0.3-12 ms, so that some calls are cut short mid-handler; how many were (asserted > 0: a
    test built on it would otherwise check nothing)."""
    from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc

    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    calls = [stub.StartWorkflow.future(de.StartWorkflowRequest(
        app_id=app_id, workflow=common_pb2.WorkflowIdentity(workflow_id=f"wf-{n}", workflow_type="mod.flow"),
        arguments_json="{}", runner_id="r"), timeout=0.0003 * (1 + n % 40)) for n in range(count)]
    cut_short = 0
    for call in calls:
        try:
            call.result()
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), error
            cut_short += 1
    assert cut_short, "no call was cut short by its deadline"
    return cut_short


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
