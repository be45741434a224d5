"""Errors the SDK raises, carrying the server's google.rpc.ErrorInfo reason."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class SidecarError(Exception):
    """A call to the sidecar failed. `code` is the gRPC status, `reason` the ErrorInfo reason."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None, reason: str = "",
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.metadata = metadata or {}


class NondeterministicReplayError(SidecarError):
    """A replay diverged from its record (another task call or data value at a position), or
    reached an unrecorded position of an invocation that already finished."""


class WorkflowAccessError(SidecarError):
    """A task other than the workflow's main task tried to write workflow data (Pynenc's name)."""


class LeaseNotHeldError(SidecarError):
    """This worker's lease on a task lapsed and another worker took the task over."""


class CommitConflictError(SidecarError):
    """A commit of buffered operations was refused: another run recorded one of its positions
    with another value (this run's log was stale). The SDK reads the log again and runs the
    code again from its top (docs/client-contract.md, "One round trip per blocking point")."""


class OperationInGeneratorError(RuntimeError):
    """A workflow operation was called inside a custom operation's generator. The generator's
    value is recorded once and the generator does not run on replay, so operations inside it
    would take positions only the first time (docs/client-contract.md)."""

    reason = "OPERATION_IN_GENERATOR"


class TaskFailedError(Exception):
    """A task finished with an error; raised by `Invocation.result`. A task that lets it
    propagate records the original error (type, message, traceback) as its own."""

    def __init__(self, error_type: str, message: str, invocation_id: str, traceback: str = "") -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.error_message = message
        self.invocation_id = invocation_id
        self.traceback = traceback


_BY_REASON = {
    "NONDETERMINISTIC_REPLAY": NondeterministicReplayError,
    "WORKFLOW_ACCESS_DENIED": WorkflowAccessError,
    "LEASE_NOT_HELD": LeaseNotHeldError,
    "COMMIT_CONFLICT": CommitConflictError,
}


def from_rpc_error(error: grpc.RpcError) -> SidecarError:
    """Turn a failed call into the matching SidecarError subclass."""
    reason, metadata = "", dict[str, str]()
    status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
    cls = _BY_REASON.get(reason, SidecarError)
    return cls(error.details() or str(error), error.code(), reason, metadata)
