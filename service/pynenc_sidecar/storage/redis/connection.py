"""The Redis connection both Redis stores share: one client (redis-py asyncio, hiredis),
the Lua scripts loaded on each new connection, and store errors mapped to Unavailable."""

from __future__ import annotations

import builtins
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from importlib import resources
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.commands.core import AsyncScript

from pynenc_sidecar.core.errors import Unavailable

T = TypeVar("T")
P = ParamSpec("P")


INCLUDE = "--#include "


def load_script(name: str) -> str:
    """The text of a Lua script shipped in this package, each `--#include <file>` line
    replaced by that file's text (Redis has no include: shared Lua is composed here)."""
    text = resources.files(__package__ or "pynenc_sidecar.storage.redis").joinpath(name).read_text()
    return "".join(load_script(line[len(INCLUDE):].strip()) if line.startswith(INCLUDE) else line
                   for line in text.splitlines(keepends=True))


@contextlib.contextmanager
def redis_unavailable() -> Iterator[None]:
    """Connection and timeout errors become Unavailable (UNAVAILABLE to the client)."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise Unavailable(f"redis unavailable: {exc.__class__.__name__}") from exc


def unavailable_on_redis_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """redis_unavailable around a coroutine method."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with redis_unavailable():
            return await method(*args, **kwargs)

    return wrapper


class ScriptLoadingRedis(aioredis.Redis):
    """A client that loads every Lua script registered on it (by any store) into Redis on each
    new connection, before the connection serves its first command.

    redis-py runs a script by EVALSHA and, on NOSCRIPT, loads it and tries again: correct,
    but a fresh Redis (a start, a restart, a failover) then shows a NoScriptError span and a
    retry in every trace that first runs a script. A new connection is the moment a restarted
    Redis can be reached again, so loading there means normal operation never sees NOSCRIPT;
    only an operator's SCRIPT FLUSH still does (and redis-py's reload covers it). The loads go
    straight to the connection: they are not traced."""

    preloaded: list[str]

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]  # the asyncio client's
        if script not in self.preloaded:
            self.preloaded.append(script)
        return super().register_script(script)

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> ScriptLoadingRedis:
        scripts: list[str] = []

        async def on_connect(connection: Any) -> None:
            await connection.on_connect()
            for script in scripts:
                await connection.send_command("SCRIPT", "LOAD", script)
                await connection.read_response()

        client = cast(ScriptLoadingRedis, cls.from_url(url, redis_connect_func=on_connect, **kwargs))
        client.preloaded = scripts
        return client


class DecodedRedis(Protocol):
    """The client as the stores use it: every command they send, typed as it replies with
    decode_responses=True (text, never bytes; redis-py's own types cannot say which)."""

    async def get(self, name: str) -> str | None: ...
    async def set(self, name: str, value: str) -> bool | None: ...
    async def hget(self, name: str, key: str) -> str | None: ...
    async def hgetall(self, name: str) -> dict[str, str]: ...
    async def hkeys(self, name: str) -> list[str]: ...
    async def hmget(self, name: str, keys: list[str]) -> list[str | None]: ...
    async def hset(self, name: str, key: str, value: str) -> int: ...
    async def hdel(self, name: str, *keys: str) -> int: ...
    async def hscan(self, name: str, cursor: int = 0, *, count: int | None = None) -> tuple[int, dict[str, str]]: ...
    async def scan(self, cursor: int = 0, *, match: str | None = None, count: int | None = None
                   ) -> tuple[int, list[str]]: ...
    async def sadd(self, name: str, *values: str) -> int: ...
    async def srem(self, name: str, *values: str) -> int: ...
    async def smembers(self, name: str) -> builtins.set[str]: ...
    async def zscore(self, name: str, value: str) -> float | None: ...
    async def zcard(self, name: str) -> int: ...
    async def zadd(self, name: str, mapping: dict[str, float | int], *, nx: bool = False, xx: bool = False
                   ) -> int: ...
    async def zrem(self, name: str, *values: str) -> int: ...
    async def zcount(self, name: str, min: str | float, max: str | float) -> int: ...
    async def zrange(self, name: str, start: int, end: int, *, withscores: bool = False) -> list[Any]: ...
    async def zrangebyscore(self, name: str, min: str | float, max: str | float, start: int | None = None,
                            num: int | None = None) -> list[str]: ...
    async def unlink(self, *names: str) -> int: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...
    def zscan_iter(self, name: str, match: str | None = None, count: int | None = None
                   ) -> AsyncIterator[tuple[str, float]]: ...
    def pipeline(self, transaction: bool = True) -> Any: ...  # its commands queue; execute() replies
    def register_script(self, script: str) -> AsyncScript: ...


def connect(url: str, *, socket_timeout: float = 2.0, max_connections: int = 256) -> DecodedRedis:
    """The product's client settings: replies decoded, bounded pool, no health-check pings."""
    return cast(DecodedRedis, ScriptLoadingRedis.connect(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        max_connections=max_connections,
        health_check_interval=0,
    ))
