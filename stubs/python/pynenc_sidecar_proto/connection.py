"""How a client reaches the sidecar: address, TLS, mutual TLS and a bearer token, from arguments
or the PYNENC_SIDECAR_* variables every SDK reads (docs/client-contract.md).

Hand-written, next to the generated stubs, because the worker SDK (pynenc_sidecar_sdk) and the
Pynenc plugin (pynenc_sidecar_plugin) both open channels this way and depend on this
distribution only: one rule for which variable means what, one error for a half-set pair.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"

# The environment variables every SDK reads (docs/client-contract.md).
ENV = {"address": "PYNENC_SIDECAR_ADDRESS", "tls": "PYNENC_SIDECAR_TLS", "tls_ca": "PYNENC_SIDECAR_TLS_CA",
       "client_cert": "PYNENC_SIDECAR_CLIENT_CERT", "client_key": "PYNENC_SIDECAR_CLIENT_KEY",
       "token": "PYNENC_SIDECAR_TOKEN"}
_TRUE = ("1", "true", "yes")


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, stripped; None when unset or blank."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class OptionNames:
    """What the caller calls each option, for error messages (the SDK's keyword arguments, the
    plugin's config fields)."""

    tls_ca: str = "tls_ca"
    client_cert: str = "tls_cert"
    client_key: str = "tls_key"


@dataclass(frozen=True)
class ClientSecurity:
    """TLS files and token of one client; hashable, so a process can keep one channel per value."""

    tls: bool = False
    tls_ca: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    token: str | None = field(default=None, repr=False)
    names: OptionNames = field(default_factory=OptionNames, compare=False, repr=False)

    @classmethod
    def resolve(cls, *, tls: bool | None = None, tls_ca: str | None = None, client_cert: str | None = None,
                client_key: str | None = None, token: str | None = None, names: OptionNames | None = None,
                environ: Mapping[str, str] | None = None) -> ClientSecurity:
        """Each unset (None or empty) option from its PYNENC_SIDECAR_* variable. `tls` None: TLS is
        on when any TLS file is set, or with PYNENC_SIDECAR_TLS=true (the system's CAs).
        A certificate without its key (or the reverse) is refused here, naming both options."""
        names = names or OptionNames()
        tls_ca = tls_ca or env_value(ENV["tls_ca"], environ)
        client_cert = client_cert or env_value(ENV["client_cert"], environ)
        client_key = client_key or env_value(ENV["client_key"], environ)
        token = token or env_value(ENV["token"], environ)
        if bool(client_cert) != bool(client_key):
            raise ValueError(f"a client certificate needs its key: set both {names.client_cert} and "
                             f"{names.client_key} ({ENV['client_cert']} and {ENV['client_key']})")
        if tls is None:
            tls = bool(tls_ca or client_cert or (env_value(ENV["tls"], environ) or "").lower() in _TRUE)
        return cls(tls, tls_ca, client_cert, client_key, token, names)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=read_file(self.tls_ca, f"{self.names.tls_ca} file") if self.tls_ca else None,
            private_key=read_file(self.client_key, f"{self.names.client_key} file") if self.client_key else None,
            certificate_chain=(read_file(self.client_cert, f"{self.names.client_cert} file")
                               if self.client_cert else None))


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


class _CallDetails(collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                           "wait_for_ready", "compression")),
                   grpc.ClientCallDetails):
    pass


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (call credentials need TLS; a token
    over a plain loopback channel is a documented use too)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)


def open_channel(address: str, security: ClientSecurity,
                 options: Sequence[tuple[str, Any]] = ()) -> tuple[grpc.Channel, grpc.Channel]:
    """(the channel to call through, the underlying channel to close)."""
    if security.tls:
        channel = grpc.secure_channel(address, security.credentials(), options=list(options))
    else:
        channel = grpc.insecure_channel(address, options=list(options))
    if security.token:
        return grpc.intercept_channel(channel, BearerToken(security.token)), channel
    return channel, channel
