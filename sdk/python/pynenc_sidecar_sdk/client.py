"""The gRPC connection to the sidecar and error translation."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk.errors import from_rpc_error

DEFAULT_ADDRESS = "127.0.0.1:50051"
T = TypeVar("T")


class SidecarClient:
    """One channel to the sidecar. Calls raise SidecarError subclasses, never grpc.RpcError."""

    def __init__(self, address: str | None = None, timeout: float = 30.0) -> None:
        self.address = address or os.environ.get("PYNENC_SIDECAR_ADDRESS", DEFAULT_ADDRESS)
        self.timeout = timeout
        self.channel = grpc.insecure_channel(self.address)
        self.executor = de_grpc.DeterministicExecutorServiceStub(self.channel)

    def call(self, method: Callable[..., T], request: Any, timeout: float | None = None) -> T:
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def stream(self, method: Callable[..., Any], request: Any) -> list[Any]:
        try:
            return list(method(request, timeout=self.timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def close(self) -> None:
        self.channel.close()


@functools.cache
def shared_client(address: str) -> SidecarClient:
    return SidecarClient(address)
