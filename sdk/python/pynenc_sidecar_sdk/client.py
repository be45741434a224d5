"""The gRPC connection to the sidecar and error translation."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from pynenc_sidecar_proto import connection
from pynenc_sidecar_proto.connection import DEFAULT_ADDRESS, ENV, ClientSecurity, OptionNames
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk import tracing
from pynenc_sidecar_sdk.errors import from_rpc_error

T = TypeVar("T")
# How errors name the options: SidecarClient's keyword arguments.
OPTION_NAMES = OptionNames(tls_ca="tls_ca", client_cert="tls_cert", client_key="tls_key")

# The client contract's retry policy: a call refused with UNAVAILABLE is sent again (every
# call of the service is safe to repeat), by gRPC's own retry support.
RETRY: dict[str, Any] = {"retryable_codes": ["UNAVAILABLE"], "max_attempts": 5, "initial_backoff_ms": 100,
         "max_backoff_ms": 2000, "backoff_multiplier": 2}
RETRY_SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "pynenc.sidecar.v1.DeterministicExecutorService"},
             {"service": "pynenc.sidecar.v1.StateBackendService"}],
    "retryPolicy": {"maxAttempts": RETRY["max_attempts"], "initialBackoff": f"{RETRY['initial_backoff_ms'] / 1000}s",
                    "maxBackoff": f"{RETRY['max_backoff_ms'] / 1000}s",
                    "backoffMultiplier": RETRY["backoff_multiplier"],
                    "retryableStatusCodes": RETRY["retryable_codes"]}}]})
CHANNEL_OPTIONS = [("grpc.enable_retries", 1), ("grpc.service_config", RETRY_SERVICE_CONFIG)]


def open_channel(address: str, *, tls: bool | None = None, tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, token: str | None = None) -> tuple[grpc.Channel, grpc.Channel]:
    """(the channel to call through, the underlying channel to close).

    Unset options come from the environment: PYNENC_SIDECAR_TLS_CA (PEM CA that signed the
    sidecar's certificate), PYNENC_SIDECAR_CLIENT_CERT / PYNENC_SIDECAR_CLIENT_KEY (this
    worker's certificate and key, for mutual TLS), PYNENC_SIDECAR_TOKEN (bearer token),
    PYNENC_SIDECAR_TLS=true (TLS with the system's CAs). TLS is on when any of the TLS
    options is set. Calls refused with UNAVAILABLE are retried (RETRY)."""
    security = ClientSecurity.resolve(tls=tls, tls_ca=tls_ca, client_cert=tls_cert, client_key=tls_key, token=token,
                                      names=OPTION_NAMES)
    return connection.open_channel(address, security, CHANNEL_OPTIONS)


class SidecarClient:
    """One channel to the sidecar. Calls raise SidecarError subclasses, never grpc.RpcError.

    TLS, mutual TLS and a bearer token: see open_channel (arguments or PYNENC_SIDECAR_* variables).
    """

    def __init__(self, address: str | None = None, timeout: float = 30.0, *, tls: bool | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 token: str | None = None) -> None:
        self.address = address or os.environ.get(ENV["address"], DEFAULT_ADDRESS)
        self.timeout = timeout
        self.channel, self._raw_channel = open_channel(self.address, tls=tls, tls_ca=tls_ca, tls_cert=tls_cert,
                                                       tls_key=tls_key, token=token)
        self._executor = de_grpc.DeterministicExecutorServiceStub(self.channel)
        self._traced_executor: de_grpc.DeterministicExecutorServiceStub | None = None

    @property
    def executor(self) -> de_grpc.DeterministicExecutorServiceStub:
        """The executor stub; while tracing is on (tracing.py), one whose calls are CLIENT spans
        carrying the caller's trace context to the sidecar."""
        if tracing.tracer() is None:
            return self._executor
        if self._traced_executor is None:
            self._traced_executor = de_grpc.DeterministicExecutorServiceStub(tracing.traced_channel(self.channel))
        return self._traced_executor

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
        self._raw_channel.close()


@functools.cache
def shared_client(address: str) -> SidecarClient:
    return SidecarClient(address)
