"""The Redis client the stores share: one Redis or a Redis Cluster, scripts preloaded on every
connection, and, when asked, every write acknowledged by replicas (WAIT) before it returns.

On a cluster, redis-py's RedisCluster discovers the topology from the seed nodes, sends each
command to the master of its key's slot, follows MOVED/ASK, and after a connection error
rediscovers the topology, so a promoted replica is used without a restart. Every atomic
step of the stores names keys of one hash tag (docs/deployment.md, "Key layout on Redis
Cluster"), so every script and MULTI runs on one node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection

# Commands that may write, after which WAIT is sent when replicas must acknowledge writes.
# Scripts count as writes: most of the stores' scripts write.
WRITES = frozenset({
    "EVAL", "EVALSHA", "SET", "HSET", "HSETNX", "HDEL", "HINCRBY", "SADD", "SREM", "ZADD", "ZREM", "DEL",
    "UNLINK", "INCR", "INCRBY", "EXEC", "FLUSHALL", "FLUSHDB",
})


@dataclass(frozen=True)
class RedisOptions:
    # The URL names a Redis Cluster's seed nodes.
    cluster: bool = False
    # Replicas that must acknowledge each write (WAIT) before it is answered; 0: none.
    wait_replicas: int = 0
    wait_timeout_s: float = 1.0


DEFAULT_OPTIONS = RedisOptions()


class NotAcknowledged(redis_errors.RedisError):
    """A write the master applied but too few replicas acknowledged within the timeout."""


def _command_name(args: Iterable[Any]) -> str:
    for arg in args:
        name = arg.decode() if isinstance(arg, bytes) else str(arg)
        return name.split(" ", 1)[0].upper()
    return ""


def _acknowledging(base: type[Connection], replicas: int, timeout_ms: int) -> type[Connection]:
    """A connection class that sends `WAIT replicas timeout_ms` right after each write (a
    command, or a pipeline holding one) and reads its reply after the write's own replies.

    WAIT acknowledges the writes of its own connection only, so it must follow the write on
    the same connection: redis-py sends a command or a pipeline on one connection, which
    this class extends by one command."""

    class AcknowledgingConnection(base):  # type: ignore[misc, valid-type]
        _replies_before_wait = 0
        _packing_batch = False  # pack_commands packs each command with pack_command

        def pack_command(self, *args: Any) -> list[bytes]:
            packed = super().pack_command(*args)
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
                return super().pack_commands(batch)
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

    def register_script(self, script: str) -> Any:
        self.registry.add(script)
        return super().register_script(script)


class ScriptLoadingRedisCluster(RedisCluster):
    registry: ScriptRegistry
    # What redis-py retries after rediscovering the topology: not a timeout, since a command
    # that timed out may have run, and a script such as AddHistory's must not run twice.
    ERRORS_ALLOW_RETRY = (redis_errors.ConnectionError, redis_errors.ClusterDownError,
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

    def register_script(self, script: str) -> Any:
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


def connect(url: str, options: RedisOptions = DEFAULT_OPTIONS, **kwargs: Any) -> aioredis.Redis | RedisCluster:
    """A client of one Redis or of a cluster (options.cluster), for every store."""
    registry = ScriptRegistry()
    timeout_ms = max(1, int(options.wait_timeout_s * 1000))
    if not options.cluster:
        base = SSLConnection if url.startswith("rediss://") else Connection
        extra = {"connection_class": _acknowledging(base, options.wait_replicas, timeout_ms)} \
            if options.wait_replicas else {}
        client: Any = ScriptLoadingRedis.from_url(url, redis_connect_func=registry.on_connect, **extra, **kwargs)
        client.registry = registry
        return client
    nodes, first = seed_nodes(url)
    # max_connections applies per node on a cluster (as on one Redis: a call beyond it fails).
    cluster = ScriptLoadingRedisCluster.from_url(
        first, startup_nodes=[ClusterNode(host, port) for host, port in nodes], **kwargs)
    cluster.registry = registry
    # redis-py's cluster client takes neither a connection class nor a connect callback as
    # arguments: they go into the connection settings every node is made from (discovered
    # nodes too), and into the seed nodes already made.
    extra_kwargs: dict[str, Any] = {"redis_connect_func": registry.on_connect}
    base = cluster.connection_kwargs.get("connection_class", Connection)
    connection_class = _acknowledging(base, options.wait_replicas, timeout_ms) if options.wait_replicas else base
    cluster.nodes_manager.connection_kwargs.update(extra_kwargs, connection_class=connection_class)
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_kwargs.update(extra_kwargs)
        node.connection_class = connection_class
    return cluster


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
