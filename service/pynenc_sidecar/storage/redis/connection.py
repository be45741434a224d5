"""The Redis client both Redis stores share: one Redis or a Redis Cluster (redis-py asyncio,
hiredis), the Lua scripts loaded on each new connection, when asked every write acknowledged
by replicas (WAIT, acknowledging.py) before it returns, and store errors mapped to Unavailable.

No command that may have reached Redis is sent again by the client library (lost_replies.py):
a timeout or a closed connection after it went out becomes UNAVAILABLE for the caller. On one
Redis nothing is retried inside the server; on a cluster, only what failed before it went out.

On a cluster, redis-py's RedisCluster discovers the topology from the seed nodes, sends each
command to the master of its key's slot, follows MOVED/ASK, and after a connection error
rediscovers the topology, so a promoted replica is used without a restart. Every atomic
step of the stores names keys of one hash tag (docs/deployment.md, "Key layout on Redis
Cluster"), so every script and MULTI runs on one node.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, ParamSpec, Protocol, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.commands.core import AsyncScript

from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.storage.redis.acknowledging import NotAcknowledged, acknowledging
from pynenc_sidecar.storage.redis.lost_replies import ReplyLost, RetryUnlessSent, reporting_lost_replies

T = TypeVar("T")
P = ParamSpec("P")
C = TypeVar("C", bound=AbstractConnection)


INCLUDE = "--#include "


def load_script(name: str) -> str:
    """The text of a Lua script shipped in this package, each `--#include <file>` line
    replaced by that file's text (Redis has no include: shared Lua is composed here)."""
    text = resources.files(__package__ or "pynenc_sidecar.storage.redis").joinpath(name).read_text()
    return "".join(load_script(line[len(INCLUDE):].strip()) if line.startswith(INCLUDE) else line
                   for line in text.splitlines(keepends=True))


# What a caller may retry: Redis down or unreachable, a command whose reply was lost (ReplyLost,
# a ConnectionError: it may have run), a cluster without a master for the key's slot (during a
# failover), or a write the replicas did not acknowledge in time.
UNAVAILABLE_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ClusterError,
                      redis_errors.TryAgainError, redis_errors.SlotNotCoveredError, redis_errors.ReadOnlyError,
                      NotAcknowledged)


def unavailable(exc: Exception) -> Unavailable:
    if isinstance(exc, NotAcknowledged):
        return Unavailable(f"redis write not acknowledged: {exc}; it may not survive a failover, retry it")
    if isinstance(exc, ReplyLost):
        return Unavailable(f"redis unavailable: no reply to a command sent to Redis ({exc.cause_name}); "
                           "it may have been applied (a retry repeats it)")
    return Unavailable(f"redis unavailable: {exc.__class__.__name__}")


@contextlib.contextmanager
def redis_unavailable() -> Iterator[None]:
    """Errors a caller may retry (UNAVAILABLE_ERRORS) become Unavailable (UNAVAILABLE to the client)."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable(exc) from exc


def unavailable_on_redis_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """redis_unavailable around a coroutine method."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with redis_unavailable():
            return await method(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class RedisOptions:
    # The URL names a Redis Cluster's seed nodes.
    cluster: bool = False
    # Replicas that must acknowledge each write (WAIT) before it is answered; 0: none.
    wait_replicas: int = 0
    wait_timeout_s: float = 1.0


DEFAULT_OPTIONS = RedisOptions()



class ScriptRegistry:
    """The Lua scripts the stores registered, loaded on each new connection before it serves
    its first command.

    redis-py runs a script by EVALSHA and, on NOSCRIPT, loads it and tries again: correct,
    but a fresh Redis (a start, a restart, a failover) then shows a NoScriptError span and a
    retry in every trace that first runs a script. A new connection is the moment a restarted
    Redis (or a promoted replica) can be reached, so loading there means normal operation never
    sees NOSCRIPT; only an operator's SCRIPT FLUSH still does (and redis-py's reload covers it).
    The loads go straight to the connection: they are not traced."""

    def __init__(self) -> None:
        self.scripts: dict[str, str] = {}  # sha1 -> script

    def add(self, script: str) -> None:
        self.scripts.setdefault(hashlib.sha1(script.encode()).hexdigest(), script)

    async def on_connect(self, connection: Any) -> None:
        await connection.on_connect()
        if not self.scripts:
            return
        # One round trip when the server has them all (every connection but a fresh server's
        # first): scripts live per server, not per connection.
        shas = list(self.scripts)
        await connection.send_command("SCRIPT", "EXISTS", *shas)
        present = await connection.read_response()
        for sha, there in zip(shas, present):
            if not int(there):
                await connection.send_command("SCRIPT", "LOAD", self.scripts[sha])
                await connection.read_response()


class ScriptLoadingRedis(aioredis.Redis):
    registry: ScriptRegistry

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]  # the asyncio client's
        self.registry.add(script)
        return super().register_script(script)


class ScriptLoadingRedisCluster(RedisCluster):
    registry: ScriptRegistry
    # What redis-py retries after rediscovering the topology (it compares exact types): errors
    # before the command went out, never ReplyLost (a subclass: it may have run, and a script
    # such as AddHistory's must not run twice), nor a timeout.
    ERRORS_ALLOW_RETRY = (redis_errors.ConnectionError, redis_errors.ClusterDownError,  # type: ignore[assignment]
                          redis_errors.SlotNotCoveredError)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # Discover the topology before routing the command: a burst of first calls would
        # otherwise pick connections of the seed nodes that the discovery then replaces and
        # closes under them (seen as "Connection closed by server" on 1 call in 100).
        if self._initialize:
            await self.initialize()
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as exc:
            # A rediscovery after a failover closes the connections of nodes that changed,
            # including one another call is using: its writer is then None. That call met a
            # connection lost, not a bug of its own: report it so (callers see UNAVAILABLE).
            raise redis_errors.ConnectionError(f"connection closed during a topology change: {exc}") from exc

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]  # the asyncio client's
        self.registry.add(script)
        return super().register_script(script)


def seed_nodes(url: str) -> tuple[list[tuple[str, int]], str]:
    """The (host, port) of each node a URL names (redis://h1:6379,h2:6379), and the URL with
    the first of them only, for the rest of its options."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    nodes = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        if not colon or name.endswith(":") or "]" in port:  # no port (or a bare IPv6 address)
            name, port = host, "6379"
        nodes.append((name.strip("[]"), int(port)))
    first = urlunsplit((parts.scheme, f"{userinfo}{at}{hosts.split(',')[0]}", parts.path, parts.query, parts.fragment))
    return nodes, first


# The cluster client's retries of what failed before it reached Redis (redis-py's defaults).
CLUSTER_RETRIES = 3
CLUSTER_RETRY_BACKOFF = (0.01, 1.0)  # base, cap (s)


def connection_class(base: type[C], options: RedisOptions, timeout_ms: int) -> type[C]:
    """The URL's connection class (TCP, TLS, Unix socket) reporting lost replies, and
    acknowledged by replicas when the options ask for it."""
    tracking = reporting_lost_replies(base)
    return acknowledging(tracking, options.wait_replicas, timeout_ms) if options.wait_replicas else tracking


def open_client(url: str, options: RedisOptions = DEFAULT_OPTIONS, **kwargs: Any) -> aioredis.Redis | RedisCluster:
    """A client of one Redis or of a cluster (options.cluster), for every store."""
    registry = ScriptRegistry()
    timeout_ms = max(1, int(options.wait_timeout_s * 1000))
    if not options.cluster:
        # No retries (redis-py's from_url gives none; said here so that no default changes it).
        client = cast(ScriptLoadingRedis, ScriptLoadingRedis.from_url(
            url, redis_connect_func=registry.on_connect, retry=Retry(NoBackoff(), 0), **kwargs))
        client.registry = registry
        # The URL's scheme chose the pool's class (and would override one passed in): extended.
        pool = client.connection_pool
        pool.connection_class = connection_class(pool.connection_class, options, timeout_ms)
        return client
    nodes, first = seed_nodes(url)
    # max_connections applies per node on a cluster (as on one Redis: a call beyond it fails).
    # redis-py's transactions (MULTI) retry by isinstance with this Retry: RetryUnlessSent
    # keeps ReplyLost out of it. Its pipelines without MULTI retry any ConnectionError whatever
    # the Retry: the stores send only reads that way, and a write must not be.
    cluster = cast(ScriptLoadingRedisCluster, ScriptLoadingRedisCluster.from_url(
        first, startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        retry=RetryUnlessSent(ExponentialWithJitterBackoff(*CLUSTER_RETRY_BACKOFF), CLUSTER_RETRIES), **kwargs))
    cluster.registry = registry
    # redis-py's cluster client takes neither a connection class nor a connect callback as
    # arguments: they go into the connection settings every node is made from (discovered
    # nodes too), and into the seed nodes already made.
    extra_kwargs: dict[str, Any] = {"redis_connect_func": registry.on_connect}
    node_class = connection_class(cluster.connection_kwargs.get("connection_class", Connection), options, timeout_ms)
    cluster.nodes_manager.connection_kwargs.update(extra_kwargs, connection_class=node_class)
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_kwargs.update(extra_kwargs)
        node.connection_class = node_class
    return cluster


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
    async def exists(self, *names: str) -> int: ...
    async def eval(self, script: str, numkeys: int, *keys_and_args: str | int) -> Any: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...
    def zscan_iter(self, name: str, match: str | None = None, count: int | None = None
                   ) -> AsyncIterator[tuple[str, float]]: ...
    def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[str]: ...
    def hscan_iter(self, name: str, match: str | None = None, count: int | None = None
                   ) -> AsyncIterator[tuple[str, str]]: ...
    def pipeline(self, transaction: bool = True) -> Any: ...  # its commands queue; execute() replies
    def register_script(self, script: str) -> AsyncScript: ...


def connect(url: str, options: RedisOptions = DEFAULT_OPTIONS, *, socket_timeout: float = 2.0,
            max_connections: int = 256) -> DecodedRedis:
    """The product's client settings: replies decoded, bounded pool (per node on a cluster),
    no health-check pings."""
    return cast(DecodedRedis, open_client(
        url, options,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        max_connections=max_connections,
        health_check_interval=0,
    ))


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


async def ping(client: Any) -> bool:
    """The store answers: PING on one Redis; on a cluster, every slot is served (some node
    says cluster_state:ok) and each master answers PING."""
    if not is_cluster(client):
        return bool(await client.ping())
    info = await client.cluster_info(target_nodes=RedisCluster.RANDOM)
    if info.get("cluster_state") != "ok":
        return False
    answered = await client.ping(target_nodes=RedisCluster.PRIMARIES)
    return all(answered.values()) if isinstance(answered, dict) else bool(answered)
