"""A gRPC proxy in front of a sidecar that refuses chosen calls with UNAVAILABLE.

It forwards every call as raw bytes (metadata, deadline, status and error details too), but
answers the first `refuse[method]` calls of a method with UNAVAILABLE, as a sidecar that is
restarting or a proxy shedding load does: the client contract's retry case, without timing.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent import futures

import grpc

from support import free_port

STREAMING = {"GetWorkflowLog", "StreamInvocationsInTimeRange", "StreamHistoryInTimeRange"}


class RefusingProxy(grpc.GenericRpcHandler):
    def __init__(self, target: str, refuse: dict[str, int]) -> None:
        self.refuse = dict(refuse)
        self.calls: Counter[str] = Counter()  # every call that reached the proxy, by method name
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._channel = grpc.insecure_channel(target)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[self])
        self.address = f"127.0.0.1:{free_port()}"
        self._server.add_insecure_port(self.address)

    def __enter__(self) -> RefusingProxy:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
        self._channel.close()

    def allow(self, name: str) -> None:
        """Forward every later call of method `name` (stop refusing it)."""
        with self._lock:
            self.refuse[name] = 0

    def service(self, details: grpc.HandlerCallDetails):
        method = details.method
        name = method.rsplit("/", 1)[-1]
        if name in STREAMING:
            return grpc.unary_stream_rpc_method_handler(lambda request, context: self._stream(method, request, context))
        return grpc.unary_unary_rpc_method_handler(lambda request, context: self._unary(method, request, context))

    def _admit(self, name: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls[name] += 1
            refuse = self.refuse.get(name, 0) > 0
            if refuse:
                self.refuse[name] -= 1
                self.refused[name] += 1
        if refuse:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the test proxy refuses this {name} call")

    @staticmethod
    def _forwarded(context: grpc.ServicerContext) -> dict:
        metadata = [(k, v) for k, v in context.invocation_metadata() if not k.startswith("grpc-") and k != "user-agent"]
        remaining = context.time_remaining()
        return {"metadata": metadata, "timeout": remaining if remaining is not None and remaining < 1e6 else None}

    def _relay_error(self, error: grpc.RpcError, context: grpc.ServicerContext) -> None:
        context.set_trailing_metadata(error.trailing_metadata() or ())
        context.abort(error.code(), error.details() or "")

    def _unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._admit(method.rsplit("/", 1)[-1], context)
        try:
            return self._channel.unary_unary(method)(request, **self._forwarded(context))
        except grpc.RpcError as error:
            self._relay_error(error, context)
            raise  # not reached: abort raises

    def _stream(self, method: str, request: bytes, context: grpc.ServicerContext):
        self._admit(method.rsplit("/", 1)[-1], context)
        try:
            yield from self._channel.unary_stream(method)(request, **self._forwarded(context))
        except grpc.RpcError as error:
            self._relay_error(error, context)
