"""Domain errors of the core. The transport maps each to one gRPC status code.

Reasons are the `google.rpc.ErrorInfo` reasons clients switch on; keep them stable.
"""

from __future__ import annotations

ERROR_DOMAIN = "sidecar.pynenc.org"


class SidecarError(Exception):
    """Base of every error the sidecar reports to a client on purpose."""

    reason: str = ""

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})


class InvalidArgument(SidecarError):
    """A request field is missing, empty, oversized or malformed."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}", metadata={"field": field})
        self.field = field
        self.description = description


class NotFound(SidecarError):
    """The named resource does not exist (reason names which kind)."""


class PermissionDenied(SidecarError):
    """The caller may not do this (e.g. a non-owner writing workflow data)."""


class FailedPrecondition(SidecarError):
    """The state of the system forbids the call (non-deterministic replay, lost lease)."""


class Aborted(SidecarError):
    """A concurrent writer won: the caller re-reads and tries again at a higher level."""


class ResourceExhausted(SidecarError):
    """A server-side queue is full; the call may be retried later, with backoff."""


class Unavailable(SidecarError):
    """The store cannot be reached; the call may be retried."""

    reason = "STORE_UNAVAILABLE"


NONDETERMINISTIC_REPLAY = "NONDETERMINISTIC_REPLAY"
WORKFLOW_ACCESS_DENIED = "WORKFLOW_ACCESS_DENIED"
LEASE_NOT_HELD = "LEASE_NOT_HELD"
INVOCATION_NOT_FOUND = "INVOCATION_NOT_FOUND"
WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
WORKFLOW_NOT_FAILED = "WORKFLOW_NOT_FAILED"
COMMIT_CONFLICT = "COMMIT_CONFLICT"
BULK_READ_QUEUE_FULL = "BULK_READ_QUEUE_FULL"
BULK_READ_INTERRUPTED = "BULK_READ_INTERRUPTED"
