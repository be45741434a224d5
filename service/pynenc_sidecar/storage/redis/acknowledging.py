"""Replica acknowledgement of writes (WAIT): a connection class that sends WAIT after each
write on the same connection, for users who must not lose an acknowledged value in a failover
(--redis-wait-replicas)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection

C = TypeVar("C", bound=AbstractConnection)

# Commands that may write, after which WAIT is sent when replicas must acknowledge writes.
# Scripts count as writes: most of the stores' scripts write.
WRITES = frozenset({
    "EVAL", "EVALSHA", "SET", "HSET", "HSETNX", "HDEL", "HINCRBY", "SADD", "SREM", "ZADD", "ZREM", "DEL",
    "UNLINK", "INCR", "INCRBY", "EXEC", "FLUSHALL", "FLUSHDB",
})


class NotAcknowledged(redis_errors.RedisError):
    """A write the master applied but too few replicas acknowledged within the timeout."""


def _command_name(args: Iterable[Any]) -> str:
    for arg in args:
        name = arg.decode() if isinstance(arg, bytes) else str(arg)
        return name.split(" ", 1)[0].upper()
    return ""


def acknowledging(base: type[C], replicas: int, timeout_ms: int) -> type[C]:
    """A connection class that sends `WAIT replicas timeout_ms` right after each write (a
    command, or a pipeline holding one) and reads its reply after the write's own replies.

    WAIT acknowledges the writes of its own connection only, so it must follow the write on
    the same connection: redis-py sends a command or a pipeline on one connection, which
    this class extends by one command."""

    class AcknowledgingConnection(base):  # type: ignore[misc, valid-type]
        _replies_before_wait = 0
        _packing_batch = False  # pack_commands packs each command with pack_command

        def pack_command(self, *args: Any) -> list[bytes]:
            packed: list[bytes] = super().pack_command(*args)
            if not self._packing_batch:
                self._replies_before_wait = 1 if _command_name(args) in WRITES else 0
                if self._replies_before_wait:
                    packed += super().pack_command("WAIT", replicas, timeout_ms)
            return packed

        async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            # redis-py packs a command, then connects when it sends it: the connection's own
            # set-up commands (HELLO, SCRIPT EXISTS) and replies come first and must not be
            # counted as the packed command's, or every later reply would be read one off
            # (a WAIT reply taken for another write's). The count is kept for after them,
            # and dropped when connecting fails (the command is never sent then).
            pending, self._replies_before_wait = self._replies_before_wait, 0
            await super().connect_check_health(*args, **kwargs)
            self._replies_before_wait = pending

        def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
            batch = [tuple(command) for command in commands]
            if any(_command_name(command) in WRITES for command in batch):
                self._replies_before_wait = len(batch)
                batch.append(("WAIT", replicas, timeout_ms))
            self._packing_batch = True
            try:
                packed: list[bytes] = super().pack_commands(batch)
                return packed
            finally:
                self._packing_batch = False

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            if self._replies_before_wait == 0:
                return await super().read_response(*args, **kwargs)
            try:
                reply = await super().read_response(*args, **kwargs)
            except redis_errors.ResponseError:  # a reply all the same: the WAIT reply follows
                if self._replies_before_wait == 1:
                    self._replies_before_wait = 0
                    await super().read_response()
                else:
                    self._replies_before_wait -= 1
                raise
            except BaseException:
                self._replies_before_wait = 0  # the connection is dropped: nothing follows
                raise
            self._replies_before_wait -= 1
            if self._replies_before_wait == 0:
                acknowledged = await super().read_response()
                if int(acknowledged) < replicas:
                    raise NotAcknowledged(f"the write reached {acknowledged} of the {replicas} replica(s) "
                                          f"--redis-wait-replicas asks for within {timeout_ms} ms")
            return reply

        async def disconnect(self, *args: Any, **kwargs: Any) -> None:
            self._replies_before_wait = 0
            await super().disconnect(*args, **kwargs)

    return AcknowledgingConnection
