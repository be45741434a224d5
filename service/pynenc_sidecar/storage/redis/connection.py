"""The Redis connection both Redis stores share: one client (redis-py asyncio, hiredis),
the Lua scripts loaded on each new connection, and store errors mapped to Unavailable."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from typing import Any, ParamSpec, TypeVar

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


def unavailable_on_redis_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
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

    def register_script(self, script: str | bytes) -> AsyncScript:  # type: ignore[override]
        text = script.decode() if isinstance(script, bytes) else script
        if text not in self.preloaded:
            self.preloaded.append(text)
        return super().register_script(text)

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> ScriptLoadingRedis:
        scripts: list[str] = []

        async def on_connect(connection: Any) -> None:
            await connection.on_connect()
            for script in scripts:
                await connection.send_command("SCRIPT", "LOAD", script)
                await connection.read_response()

        client = cls.from_url(url, redis_connect_func=on_connect, **kwargs)
        client.preloaded = scripts
        return client


def connect(url: str, *, socket_timeout: float = 2.0, max_connections: int = 256) -> ScriptLoadingRedis:
    """The product's client settings: replies decoded, bounded pool, no health-check pings."""
    return ScriptLoadingRedis.connect(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        max_connections=max_connections,
        health_check_interval=0,
    )
