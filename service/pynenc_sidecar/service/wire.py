"""Requests that are not the message their method expects: INVALID_ARGUMENT, quietly.

grpc.aio deserializes a request before any servicer code runs, and a deserializer that
raises makes grpc log an ERROR traceback and answer UNKNOWN. `MalformedRequestInterceptor`
wraps every handler's request deserializer: bytes that do not parse become a
`MalformedRequest` marker, and the wrapped behavior answers it with INVALID_ARGUMENT (reason
MALFORMED_REQUEST, the method and the parser's complaint) before anything else sees it. One
debug line per such request: a flood of garbage cannot fill the log.

It also sends every streamed response itself (see `write_responses`), so a stream the client
cancels, or whose deadline passes, ends quietly: one debug line, no traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from pynenc_sidecar.core.errors import ERROR_DOMAIN

log = logging.getLogger("pynenc_sidecar.wire")

MALFORMED_REQUEST = "MALFORMED_REQUEST"


class MalformedRequest:
    """What a request deserializer returns for bytes that are not its message."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:  # protobuf's DecodeError, or any parser's complaint
            return MalformedRequest(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    return deserialize


def malformed_status(method: str, problem: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=MALFORMED_REQUEST, domain=ERROR_DOMAIN, metadata={"method": method})
    holder = any_pb2.Any()
    holder.Pack(info)
    message = (f"the request bytes do not parse as the request message of {method} ({problem}): "
               "send that message, serialized by stubs generated from the sidecar's protos")
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[holder]))


async def write_responses(result: Any, context: grpc.aio.ServicerContext, method: str) -> None:
    """Send a streaming behavior's responses with context.write, and close it in this task.

    A stream the client cancels or lets time out stops between two responses. Were this an
    async generator, grpc would drop it there and asyncio would close the generators below it
    later, in another task: the tracing context they entered could not be left ("Failed to
    detach context" tracebacks) and the span was already over. Here the cancellation reaches
    this coroutine, which closes them at once, where they were entered."""
    if not hasattr(result, "__aiter__"):
        await result  # it writes its responses itself
        return
    try:
        async for response in result:
            await context.write(response)
    except asyncio.CancelledError:
        log.debug("%s: the client cancelled the stream or its deadline passed", method)
        raise
    finally:
        await result.aclose()


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Turns undecodable requests into INVALID_ARGUMENT (see the module docstring)."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method or ""

        async def reject(request: MalformedRequest, context: grpc.aio.ServicerContext) -> None:
            log.debug("malformed request to %s from %s: %s", method, context.peer(), request.problem)
            await context.abort_with_status(malformed_status(method, request.problem))

        deserializer = _safe(handler.request_deserializer)
        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, MalformedRequest):
                    await reject(request, context)
                return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, deserializer, handler.response_serializer)
        if handler.unary_stream:
            stream_behavior = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> None:
                if isinstance(request, MalformedRequest):
                    await reject(request, context)
                await write_responses(stream_behavior(request, context), context, method)

            return grpc.unary_stream_rpc_method_handler(unary_stream, deserializer, handler.response_serializer)

        async def checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, MalformedRequest):
                    await reject(request, context)
                yield request

        if handler.stream_unary:
            client_stream = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                return await client_stream(checked(requests, context), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, deserializer, handler.response_serializer)
        bidi = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
            await write_responses(bidi(checked(requests, context), context), context, method)

        return grpc.stream_stream_rpc_method_handler(stream_stream, deserializer, handler.response_serializer)
