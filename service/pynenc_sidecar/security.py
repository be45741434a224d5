"""Transport security and authentication: TLS / mutual TLS credentials and bearer tokens.

Bearer tokens are checked by `AuthInterceptor`, a grpc.aio server interceptor placed before
every other one, so a call without a valid token reaches nothing but this check:

* the caller sends the metadata ``authorization: Bearer <token>``;
* the token is compared with every accepted token in constant time (``hmac.compare_digest``
  of SHA-256 digests: neither which token matched nor the tokens' lengths leak through time);
* a missing, malformed or wrong token is ``UNAUTHENTICATED`` with a ``google.rpc.ErrorInfo``
  (reason ``UNAUTHENTICATED``, domain ``sidecar.pynenc.org``); the message never echoes what
  the caller sent;
* ``grpc.health.v1.Health`` needs no token (orchestrators' probes carry none); server
  reflection does need one (it is a tool for people, who can pass ``-H``).

No token, key or certificate content is ever logged; rejected calls are logged as one
warning a minute at most, with their count, method and peer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from pynenc_sidecar.core.errors import ERROR_DOMAIN

log = logging.getLogger("pynenc_sidecar.security")

UNAUTHENTICATED = "UNAUTHENTICATED"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
# Methods anyone may call without a token: health, for orchestrators' probes.
OPEN_METHOD_PREFIXES: tuple[str, ...] = (HEALTH_PREFIX,)
MIN_TOKEN_LENGTH = 16
_REJECTION_LOG_INTERVAL_S = 60.0


class CredentialsError(ValueError):
    """A token, certificate or key is unusable; the message never contains its content."""


# --- tokens ------------------------------------------------------------------------------------
def check_token(token: str, where: str) -> str:
    """A token as accepted: visible ASCII (it travels in an HTTP/2 header), 16+ characters."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise CredentialsError(f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters "
                               f"(this one has {len(token)})")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in token):
        raise CredentialsError(f"{where}: a token may hold only visible ASCII characters (no spaces)")
    return token


def parse_token_lines(text: str, where: str) -> list[str]:
    """Tokens of a token file: one a line; blank lines and lines starting with '#' are skipped."""
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            tokens.append(check_token(line, f"{where} line {number}"))
    return tokens


def parse_token_list(text: str, where: str) -> list[str]:
    """Tokens of the environment variable / config entry: separated by newlines or commas."""
    parts = [part.strip() for chunk in text.splitlines() for part in chunk.split(",")]
    return [check_token(part, f"{where} token {n}") for n, part in enumerate((p for p in parts if p), start=1)]


def read_token_file(path: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsError(f"cannot read the token file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CredentialsError("the token file is not UTF-8 text") from None
    tokens = parse_token_lines(text, "token file")
    if not tokens:
        raise CredentialsError("the token file holds no token (one a line; '#' starts a comment)")
    return tokens


def _digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode("utf-8") if isinstance(token, str) else token).digest()


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> tuple[bytes | None, str]:
    """The token of `authorization: Bearer <token>` and "" — or None and what is wrong."""
    values = [value for key, value in (metadata or ()) if key.lower() == "authorization"]
    if not values:
        return None, "missing credentials: send the metadata 'authorization: Bearer <token>'"
    if len(values) > 1:
        return None, "more than one 'authorization' metadata entry"
    value = values[0]
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
    scheme, _, token = raw.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None, "the 'authorization' metadata must be 'Bearer <token>'"
    return token.strip(), ""


class TokenVerifier:
    """Accepted tokens, kept only as SHA-256 digests."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens:
            raise ValueError("TokenVerifier needs at least one token")
        self._digests = [_digest(t) for t in tokens]

    def __len__(self) -> int:
        return len(self._digests)

    def verify(self, token: bytes) -> bool:
        given = _digest(token)
        matched = False
        for digest in self._digests:  # every digest is compared: no early exit
            matched |= hmac.compare_digest(given, digest)
        return matched


def unauthenticated_status(message: str, method: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=UNAUTHENTICATED, domain=ERROR_DOMAIN, metadata={"method": method})
    holder = any_pb2.Any()
    holder.Pack(info)
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.UNAUTHENTICATED, message=message, details=[holder]))


def _rejecting(handler: grpc.RpcMethodHandler, status: grpc.Status) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that aborts every call with `status`."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover - makes this an async generator

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, handler.request_deserializer,
                                                    handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(streaming, handler.request_deserializer,
                                                 handler.response_serializer)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a valid bearer token with UNAUTHENTICATED (health is open)."""

    def __init__(self, tokens: Sequence[str], open_prefixes: tuple[str, ...] = OPEN_METHOD_PREFIXES) -> None:
        self.verifier = TokenVerifier(tokens)
        self.open_prefixes = open_prefixes
        self._rejected = 0
        self._last_log = float("-inf")

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method or ""
        if method.startswith(self.open_prefixes):
            return await continuation(details)
        token, problem = bearer_token(details.invocation_metadata)
        if token is not None:
            if self.verifier.verify(token):
                return await continuation(details)
            problem = "invalid bearer token"
        handler = await continuation(details)
        if handler is None:  # an unknown method stays UNIMPLEMENTED... only once authenticated
            handler = grpc.unary_unary_rpc_method_handler(None)
        self._note_rejection(method, problem)
        return _rejecting(handler, unauthenticated_status(problem, method))

    def _note_rejection(self, method: str, problem: str) -> None:
        self._rejected += 1
        now = time.monotonic()
        if now - self._last_log >= _REJECTION_LOG_INTERVAL_S:
            log.warning("rejected %d unauthenticated call(s) since the last report; latest: %s (%s)",
                        self._rejected, method, problem)
            self._rejected, self._last_log = 0, now


# --- TLS ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    """Paths of the server's certificate chain, its key and, for mutual TLS, the client CA."""

    cert: str
    key: str
    client_ca: str | None = None


def read_pem(path: str, what: str, marker: str) -> bytes:
    """A PEM file's bytes; CredentialsError (naming the file, never its content) if unusable."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data or marker.encode() not in data:
        raise CredentialsError(f"the {what} {path} is not a PEM file holding a {marker.strip('- ')}")
    return data


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    cert = read_pem(files.cert, "TLS certificate", "CERTIFICATE-----")
    key = read_pem(files.key, "TLS key", "PRIVATE KEY-----")
    client_ca = read_pem(files.client_ca, "client CA", "CERTIFICATE-----") if files.client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)
