"""Domain errors -> gRPC status with google.rpc details (ErrorInfo, BadRequest)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from pynenc_sidecar.core.errors import (
    ERROR_DOMAIN,
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SidecarError,
    Unavailable,
)

log = logging.getLogger(__name__)

_CODES: list[tuple[type[SidecarError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (Aborted, code_pb2.ABORTED),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    (Unavailable, code_pb2.UNAVAILABLE),
]


def to_status(error: SidecarError) -> grpc.Status:
    code = next((c for cls, c in _CODES if isinstance(error, cls)), code_pb2.INTERNAL)
    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details.append(info)
    if isinstance(error, InvalidArgument):
        details.append(error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=error.field,
                                                                          description=error.description)]
        ))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(status_pb2.Status(code=code, message=error.message, details=packed))


class RelayedStatus(Exception):
    """Another server's error answer to a call forwarded to it (bulk_reader.py): the caller gets
    it as it came, details included."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, Any], ...]) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata

    @classmethod
    def of(cls, error: grpc.aio.AioRpcError) -> RelayedStatus:
        return cls(error.code(), error.details() or "", tuple(error.trailing_metadata() or ()))


async def _abort(context: grpc.aio.ServicerContext, error: Exception, where: str) -> None:
    """End the call with the error's mapped status; anything unexpected is INTERNAL, logged."""
    if isinstance(error, RelayedStatus):
        await context.abort(error.code, error.details, error.trailing_metadata)
    if isinstance(error, SidecarError):
        await context.abort_with_status(to_status(error))  # raises: the call ends here
    else:
        log.exception("internal error in %s", where, exc_info=error)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def handle_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Abort unary calls with the mapped status; unexpected errors become INTERNAL, logged."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except Exception as error:
            await _abort(context, error, method.__name__)

    return wrapper


def handle_stream_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """The same for server-streaming calls (async generators)."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as error:
            await _abort(context, error, method.__name__)

    return wrapper
