"""A command Redis may have run is never sent again by the client library.

A timeout, or a connection that closes, after a command went out says nothing about whether
Redis ran it: a frozen Redis runs the queued command when it resumes, a master may die
between running a script and replying (and its replica, promoted, has the write). Sending it
again could apply a write twice: AddHistory would append its entry twice, a MULTI that
another caller's write followed would overwrite that newer write. So such an error becomes
ReplyLost, which no retry inside the server takes up: the caller sees UNAVAILABLE and decides
(docs/reliability.md, "A write whose reply was lost").

Errors before the command went out (connecting, the connection's own set-up commands) keep
their type, so redis-py's cluster client still retries them after rediscovering the topology.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry

T = TypeVar("T")
C = TypeVar("C", bound=AbstractConnection)


class ReplyLost(redis_errors.ConnectionError):
    """A command went out to Redis and its reply did not come back: it may have run.

    A ConnectionError, so that the cluster client still treats the node as failed (it marks
    the topology for rediscovery) and the stores answer UNAVAILABLE. Never retried: redis-py's
    cluster client retries only the exact types in ERRORS_ALLOW_RETRY, and RetryUnlessSent
    refuses it where redis-py retries by isinstance."""

    def __init__(self, cause_name: str) -> None:
        # The cause's class only (the cause itself is chained): its text names Redis's
        # address, which callers are not told.
        self.cause_name = cause_name
        super().__init__(f"no reply to a command sent to Redis ({cause_name})")


def reporting_lost_replies(base: type[C]) -> type[C]:
    """A connection class whose errors after a command went out are ReplyLost."""

    class ReplyTrackingConnection(base):  # type: ignore[misc, valid-type]
        # While connecting: the connection's own set-up commands (HELLO, CLIENT SETINFO, the
        # script preload) fail before any caller's command was sent.
        _connecting = False

        async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            self._connecting = True
            try:
                await super().connect_check_health(*args, **kwargs)
            finally:
                self._connecting = False

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self.is_connected:  # what redis-py does first, here so its errors keep their type
                await self.connect_check_health(check_health=False)
            # A write that fails may still have handed Redis the whole command.
            with self._outcome_unknown():
                await super().send_packed_command(command, check_health)

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            with self._outcome_unknown():
                return await super().read_response(*args, **kwargs)

        @contextlib.contextmanager
        def _outcome_unknown(self) -> Iterator[None]:
            try:
                yield
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                if self._connecting or isinstance(exc, ReplyLost):
                    raise
                raise ReplyLost(exc.__class__.__name__) from exc

    return ReplyTrackingConnection


class RetryUnlessSent(Retry):
    """redis-py's Retry, never for a command that may have reached Redis (ReplyLost)."""

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[..., Any],
                              is_retryable: Callable[[Exception], bool] | None = None,
                              with_failure_count: bool = False) -> T:
        def retryable(error: Exception) -> bool:
            return not isinstance(error, ReplyLost) and (is_retryable is None or is_retryable(error))

        return await super().call_with_retry(do, fail, retryable, with_failure_count)
