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

A token may be bound to the app ids it may touch (`TokenGrant`: a token file line
``TOKEN APP_ID [APP_ID ...]``; in the variable, entries separated by commas or newlines,
each ``TOKEN [APP_ID ...]``). A bound token's call naming another app (``app_id``,
``position.app_id`` or ``app_info.app_id``) is ``PERMISSION_DENIED`` with reason
``APP_NOT_AUTHORIZED``; a method that names no app is refused to it too, except health,
reflection and ``DiscoverAppInfos``, which lists only its apps (`caller_apps`). An unbound
token may use every app, as before.

A bound token may also not call a privileged method unless its grant names the permission:
``PurgeApp`` (it deletes an app's whole state) needs ``+purge`` (``TOKEN APP_ID +purge``), so a
worker's token cannot wipe the app it works for. Without it the call is ``PERMISSION_DENIED``
with reason ``METHOD_NOT_AUTHORIZED`` and touches nothing.

No token, key or certificate content is ever logged; rejected calls are logged as one
warning a minute at most, with their count, method and peer, and counted in the metric
``pynenc.auth.rejected`` (by reason and method).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from pynenc_sidecar import observability
from pynenc_sidecar.core.errors import ERROR_DOMAIN
from pynenc_sidecar.service.wire import MalformedRequest, write_responses

log = logging.getLogger("pynenc_sidecar.security")

UNAUTHENTICATED = "UNAUTHENTICATED"
APP_NOT_AUTHORIZED = "APP_NOT_AUTHORIZED"
METHOD_NOT_AUTHORIZED = "METHOD_NOT_AUTHORIZED"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
# Methods anyone may call without a token: health, for orchestrators' probes.
OPEN_METHOD_PREFIXES: tuple[str, ...] = (HEALTH_PREFIX,)
# Methods a token bound to apps may call although they name no app: they hold no app's state.
APP_FREE_PREFIXES: tuple[str, ...] = (HEALTH_PREFIX, "/grpc.reflection.")
# Names no app, and answers only with the caller's apps (caller_apps()).
APP_FILTERED_METHODS = frozenset({"/pynenc.sidecar.v1.StateBackendService/DiscoverAppInfos"})
# Methods a token bound to apps may call only if its grant holds the permission.
PRIVILEGED_METHODS: dict[str, str] = {"/pynenc.sidecar.v1.StateBackendService/PurgeApp": "purge"}
PERMISSIONS = frozenset(PRIVILEGED_METHODS.values())

# The apps the current call's token may use; None: every app (no token, or an unbound one).
_caller_apps: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("caller_apps", default=None)


def caller_apps() -> frozenset[str] | None:
    """The app ids the current call may use, None when it may use every app."""
    return _caller_apps.get()
MIN_TOKEN_LENGTH = 16
_REJECTION_LOG_INTERVAL_S = 60.0


class CredentialsError(ValueError):
    """A token, certificate or key is unusable; the message never contains its content."""


# --- tokens ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenGrant:
    """An accepted token, the app ids it may use (None: every app and every method) and, when
    bound to apps, the permissions for PRIVILEGED_METHODS it holds."""

    token: str = field(repr=False)
    apps: frozenset[str] | None = None
    permissions: frozenset[str] = frozenset()


def check_token(token: str, where: str) -> str:
    """A token as accepted: visible ASCII (it travels in an HTTP/2 header), 16+ characters."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise CredentialsError(f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters "
                               f"(this one has {len(token)})")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in token):
        raise CredentialsError(f"{where}: a token may hold only visible ASCII characters (no spaces)")
    return token


def parse_grant(entry: str, where: str) -> TokenGrant:
    """`TOKEN` (every app) or `TOKEN APP_ID [APP_ID ...] [+PERMISSION ...]`, separated by
    whitespace."""
    token, *words = entry.split()
    token = check_token(token, where)
    apps = frozenset(word for word in words if not word.startswith("+"))
    permissions = frozenset(word[1:] for word in words if word.startswith("+"))
    if unknown := sorted(permissions - PERMISSIONS):
        raise CredentialsError(f"{where}: unknown permission +{unknown[0]} (known: "
                               f"{', '.join('+' + p for p in sorted(PERMISSIONS))})")
    if permissions and not apps:
        raise CredentialsError(f"{where}: a permission such as +{min(permissions)} only applies to a token bound "
                               "to apps (a token bound to no app may call every method): name its app ids")
    return TokenGrant(token, apps or None, permissions)


def parse_token_lines(text: str, where: str) -> list[TokenGrant]:
    """Grants of a token file: one a line; blank lines and lines starting with '#' are skipped."""
    grants = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            grants.append(parse_grant(line, f"{where} line {number}"))
    return grants


def parse_token_list(text: str, where: str) -> list[TokenGrant]:
    """Grants of the environment variable / config entry: separated by newlines or commas."""
    parts = [part.strip() for chunk in text.splitlines() for part in chunk.split(",")]
    return [parse_grant(part, f"{where} token {n}") for n, part in enumerate((p for p in parts if p), start=1)]


def merge_grants(grants: Iterable[TokenGrant | str]) -> list[TokenGrant]:
    """One grant per token: a token given twice may use the apps of both (every app if either
    is unbound)."""
    merged: dict[str, TokenGrant] = {}
    for grant in grants:
        grant = grant if isinstance(grant, TokenGrant) else TokenGrant(grant)
        before = merged.get(grant.token)
        if before is None:
            merged[grant.token] = grant
        elif before.apps is None or grant.apps is None:
            merged[grant.token] = TokenGrant(grant.token)
        else:
            merged[grant.token] = TokenGrant(grant.token, before.apps | grant.apps,
                                             before.permissions | grant.permissions)
    return list(merged.values())


def read_token_file(path: str) -> list[TokenGrant]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsError(f"cannot read the token file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CredentialsError("the token file is not UTF-8 text") from None
    grants = parse_token_lines(text, "token file")
    if not grants:
        raise CredentialsError("the token file holds no token (one a line; '#' starts a comment)")
    return grants


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
    """Accepted tokens, kept only as SHA-256 digests, each with the apps it may use."""

    def __init__(self, tokens: Sequence[str | TokenGrant]) -> None:
        if not tokens:
            raise ValueError("TokenVerifier needs at least one token")
        grants = merge_grants(tokens)
        self._digests = [_digest(g.token) for g in grants]
        self._grants = [TokenGrant("", g.apps, g.permissions) for g in grants]  # no token kept

    def __len__(self) -> int:
        return len(self._digests)

    def grant(self, token: bytes) -> TokenGrant | None:
        """The accepted token's grant (its token text blanked), None when it is not accepted."""
        given = _digest(token)
        found = -1
        for index, digest in enumerate(self._digests):  # every digest is compared: no early exit
            if hmac.compare_digest(given, digest):
                found = index
        return self._grants[found] if found >= 0 else None

    def verify(self, token: bytes) -> bool:
        return self.grant(token) is not None


def request_app_id(request: Any) -> str | None:
    """The app a request names (`app_id`, or `app_id` of a message field such as `position`
    or `app_info`); None when its message has no app field."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return None
    fields = descriptor.fields_by_name
    if "app_id" in fields:
        return request.app_id
    for name, field_descriptor in fields.items():
        message_type = field_descriptor.message_type
        if message_type is not None and "app_id" in message_type.fields_by_name and not _repeated(field_descriptor):
            return getattr(request, name).app_id
    return None


def _repeated(field_descriptor: Any) -> bool:
    repeated = getattr(field_descriptor, "is_repeated", None)  # protobuf 6; `label` before
    return bool(repeated) if repeated is not None else field_descriptor.label == field_descriptor.LABEL_REPEATED


def _status(code: int, reason: str, message: str, metadata: dict[str, str]) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    holder = any_pb2.Any()
    holder.Pack(info)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[holder]))


def app_denied_status(method: str, app_id: str | None, apps: frozenset[str]) -> grpc.Status:
    allowed = ", ".join(sorted(apps))
    if app_id is None:
        message = (f"{method} names no app, and this bearer token is bound to apps ({allowed}): "
                   "call it with a token that is not bound to apps")
        return _status(code_pb2.PERMISSION_DENIED, APP_NOT_AUTHORIZED, message, {"method": method})
    message = (f"this bearer token may not use app {app_id!r} (it is bound to: {allowed}): "
               f"use a token bound to {app_id!r}, or one bound to no app")
    return _status(code_pb2.PERMISSION_DENIED, APP_NOT_AUTHORIZED, message, {"method": method, "app_id": app_id})


def method_denied_status(method: str, permission: str, apps: frozenset[str]) -> grpc.Status:
    allowed = " ".join(sorted(apps))
    message = (f"{method} needs the +{permission} permission, which this bearer token (bound to apps: "
               f"{allowed.replace(' ', ', ')}) does not hold: grant it in the token's line "
               f"(TOKEN {allowed} +{permission}) or use a token bound to no app")
    return _status(code_pb2.PERMISSION_DENIED, METHOD_NOT_AUTHORIZED, message,
                   {"method": method, "permission": permission})


def unauthenticated_status(message: str, method: str) -> grpc.Status:
    return _status(code_pb2.UNAUTHENTICATED, UNAUTHENTICATED, message, {"method": method})


# grpc's type stubs describe a handler's behaviours as the sync server's functions; on this aio
# server they are coroutine functions taking an aio context.
AioUnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
AioStreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


def _rejecting(handler: grpc.RpcMethodHandler | None, status: grpc.Status) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that aborts every call with `status`; for an
    unknown method (None) a stream-stream one, which reads no request before aborting."""
    if handler is None:
        return grpc.stream_stream_rpc_method_handler(_streaming_refusal(status))

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)

    streaming = _streaming_refusal(status)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, handler.request_deserializer,
                                                    handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(streaming, handler.request_deserializer,
                                                 handler.response_serializer)


def _streaming_refusal(status: grpc.Status) -> AioStreamBehavior:
    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover - makes this an async generator

    return streaming


def _scoped(handler: grpc.RpcMethodHandler, grant: TokenGrant, method: str,
            on_denied: Any) -> grpc.RpcMethodHandler:
    """`handler` for a token bound to apps: a privileged method without its permission, or a
    request naming another app (or, but for APP_FILTERED_METHODS, no app), is
    PERMISSION_DENIED; the others run with caller_apps()."""
    assert grant.apps is not None
    apps = grant.apps
    permission = PRIVILEGED_METHODS.get(method)
    missing = permission if permission is not None and permission not in grant.permissions else None
    filtered = method in APP_FILTERED_METHODS

    async def admit(request: Any, context: grpc.aio.ServicerContext) -> None:
        if isinstance(request, MalformedRequest):
            return  # answered INVALID_ARGUMENT further in
        app_id = request_app_id(request)
        # An empty app id touches nothing: the servicer's validation names the missing field.
        if (app_id is None and not filtered) or (app_id and app_id not in apps):
            on_denied(method, APP_NOT_AUTHORIZED, "app not authorized")
            await context.abort_with_status(app_denied_status(method, app_id, apps))
        if missing is not None:  # its own app, but a method the grant does not cover
            on_denied(method, METHOD_NOT_AUTHORIZED, f"no +{missing} permission")
            await context.abort_with_status(method_denied_status(method, missing, apps))

    if handler.unary_unary:
        behavior = cast(AioUnaryBehavior, handler.unary_unary)

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await admit(request, context)
            _caller_apps.set(apps)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        stream_behavior = cast(AioStreamBehavior, handler.unary_stream)

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> None:
            await admit(request, context)
            _caller_apps.set(apps)
            await write_responses(stream_behavior(request, context), context, method)

        return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                    handler.response_serializer)
    # No streaming-request method names an app (reflection is APP_FREE).
    on_denied(method, APP_NOT_AUTHORIZED, "app not authorized")
    return _rejecting(handler, app_denied_status(method, None, apps))


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a valid bearer token with UNAUTHENTICATED (health is open), and
    calls of a token bound to apps outside them with PERMISSION_DENIED."""

    def __init__(
        self, tokens: Sequence[str | TokenGrant], open_prefixes: tuple[str, ...] = OPEN_METHOD_PREFIXES
    ) -> None:
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
            grant = self.verifier.grant(token)
            if grant is not None:
                handler = await continuation(details)
                if grant.apps is None or handler is None or method.startswith(APP_FREE_PREFIXES):
                    return handler
                return _scoped(handler, grant, method, self._note_rejection)
            problem = "invalid bearer token"
        handler = await continuation(details)  # None: an unknown method, UNIMPLEMENTED once authenticated
        self._note_rejection(method, UNAUTHENTICATED, problem)
        return _rejecting(handler, unauthenticated_status(problem, method))

    def _note_rejection(self, method: str, reason: str, problem: str) -> None:
        observability.auth_rejected(reason, method)
        self._rejected += 1
        now = time.monotonic()
        if now - self._last_log >= _REJECTION_LOG_INTERVAL_S:
            log.warning("rejected %d call(s) (unauthenticated, or outside the token's apps or permissions) "
                        "since the last report; "
                        "latest: %s (%s)", self._rejected, method, problem)
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
