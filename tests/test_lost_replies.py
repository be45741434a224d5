"""A write whose reply Redis never sent is applied once (storage/redis/lost_replies.py).

Two ways to lose a reply, each on one Redis and on the session's cluster (the sidecar reaching
each redis-server, each master, through a proxy in tests/reply_dropping_proxy.py):
* Redis frozen (SIGSTOP) while a write is in flight, longer than the store's socket timeout
  (shortened here through the URL), then resumed: the frozen Redis runs the queued write when
  it resumes. On the cluster only the master of the write's slot is frozen, for less than the
  cluster's node timeout (no failover starts).
* The proxy closes the connection once Redis ran the write, before its reply is relayed (as
  when a master dies then).
A client library that sent the write again would apply it twice. The caller must get
UNAVAILABLE saying the write may have been applied, and find it applied once. AddHistory is
a Lua script (one command), SetWorkflowDeterministicValue a MULTI: redis-py's cluster client
sent a MULTI again after a timeout, and a script after a closed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from redis import exceptions as redis_errors
from redis.asyncio import connection as redis_connection

from pynenc_sidecar.storage.redis.connection import RedisOptions, connect, open_client
from pynenc_sidecar.storage.redis.keys import app_tag, workflow_tag
from pynenc_sidecar.storage.redis.lost_replies import ReplyLost
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from redis_cluster import redis_cli
from reply_dropping_proxy import ReplyDroppingProxies
from support import RedisServer, SidecarServer, free_port, wait_until

SOCKET_TIMEOUT_S = 0.5
# Past the socket timeout, inside the window in which redis-py's cluster client retried a
# MULTI (the first timeout and three more), and under the cluster's 2 s node timeout.
FROZEN_S = 1.4
WORKFLOW = "wf"
# The readiness probe pings once, at the start: a probe meeting the frozen Redis would delay
# the write sent meanwhile (on a cluster, its lost reply makes the next call rediscover the
# topology first) past the moment Redis resumes.
QUIET_PROBE = ["--readiness-interval", "1h"]


@dataclass
class FaultyStore:
    server: SidecarServer
    node_of_key: Callable[[str], RedisServer]  # the redis-server holding a key
    proxies: ReplyDroppingProxies  # between the sidecar and each redis-server (each master)

    @contextlib.contextmanager
    def frozen(self, key: str) -> Iterator[None]:
        process = self.node_of_key(key).process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)


def announce(cluster, ports: dict[int, int]) -> None:
    """Each master (by its port) tells clients to reach it at ports[port] (0: its own), until
    every node sees it so."""
    for master, announced in ports.items():
        redis_cli(master, "config", "set", "cluster-announce-port", str(announced))
    seen = tuple(sorted(announced or master for master, announced in ports.items()))
    wait_until(lambda: all(cluster.master_ports_seen_by(node) == seen for node in cluster.running()), 30,
               "every node seeing the masters' announced ports")


@pytest.fixture(scope="module", params=["redis", "cluster"])
def store(request) -> Iterator[FaultyStore]:
    if request.param == "redis":
        redis = RedisServer().start()
        with ReplyDroppingProxies([redis.port]) as proxies:
            server = SidecarServer(f"redis://127.0.0.1:{proxies.port_for[redis.port]}/0"
                                   f"?socket_timeout={SOCKET_TIMEOUT_S}", extra_args=QUIET_PROBE).start()
            try:
                yield FaultyStore(server, lambda key: redis, proxies)
            finally:
                server.stop()
                redis.cleanup()
        return
    cluster = request.getfixturevalue("redis_cluster")  # the session's: left as found
    masters = [node for node in cluster.running() if cluster.node_is_master(node)]

    def master_of(key: str) -> RedisServer:
        slot = cluster.key_slot(key)
        return next(master for master in masters if slot in cluster.slots_of(master))

    with ReplyDroppingProxies([master.port for master in masters]) as proxies:
        announce(cluster, proxies.port_for)
        try:
            seeds = ",".join(f"127.0.0.1:{port}" for port in proxies.port_for.values())
            server = SidecarServer(f"redis://{seeds}?socket_timeout={SOCKET_TIMEOUT_S}",
                                   extra_args=["--redis-cluster", "on", *QUIET_PROBE]).start()
            try:
                yield FaultyStore(server, master_of, proxies)
            finally:
                server.stop()
        finally:
            announce(cluster, {master.port: 0 for master in masters})
    cluster.wait_ok()


@pytest.fixture
def stub(store) -> Iterator[sb_grpc.StateBackendServiceStub]:
    with store.server.channel() as channel:
        yield sb_grpc.StateBackendServiceStub(channel)


def lost_while_frozen(store: FaultyStore, key: str, call: Callable[[int], Any],
                      answered: Callable[[int, Any], None]) -> tuple[grpc.RpcError, int]:
    """(the error, the trial) of the first of up to 3 calls sent while the node of `key` is
    frozen for FROZEN_S that fails. A pooled connection may need setting up again first (after
    a lost reply, redis-py reconnects the node's connections): that set-up meets the freeze,
    is retried (nothing was sent), and the call goes out once Redis resumes and is answered;
    answered(trial, reply) checks such a call, and the next trial starts on a connected one."""
    for trial in range(3):
        outcome: list[Any] = []

        def run(trial: int, outcome: list[Any]) -> None:
            started = time.monotonic()
            try:
                outcome.append(call(trial))
            except grpc.RpcError as error:
                outcome.append(error)
            outcome.append(time.monotonic() - started)

        thread = threading.Thread(target=run, args=(trial, outcome))
        with store.frozen(key):
            thread.start()
            time.sleep(FROZEN_S)
        thread.join(30)
        assert outcome, "the call did not end within its deadline"
        reply, took = outcome
        if isinstance(reply, grpc.RpcError):
            return reply, trial
        assert took >= FROZEN_S - 0.05, f"answered after {took:.2f} s, while Redis was frozen"
        answered(trial, reply)
    pytest.fail(f"none of 3 calls sent while Redis was frozen for {FROZEN_S} s lost its reply")


def assert_lost_reply(error: grpc.RpcError | None) -> None:
    assert error is not None, "the write was answered although its reply was lost"
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert "may have been applied" in (error.details() or ""), error.details()


def history_request(app: str, n: int) -> sb.AddHistoryRequest:
    entry = sb.InvocationHistory(status=7, runner_id="r", execution_context_json=f'{{"n": {n}}}')
    entry.timestamp.FromMicroseconds(1_700_000_000_000_000 + n)
    return sb.AddHistoryRequest(app_id=app, invocation_ids=["inv"], history=entry)


def history_of(stub, app: str) -> list[str]:
    reply = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id="inv"), timeout=10)
    return [entry.execution_context_json for entry in reply.history]


def test_an_add_history_whose_reply_was_lost_is_appended_once(store, stub) -> None:
    app = f"lost-{uuid.uuid4().hex[:8]}"
    stub.AddHistory(history_request(app, 0), timeout=10)  # the connection and the script are ready
    error, trial = lost_while_frozen(store, app_tag(app) + ":timeline",
                                     lambda n: stub.AddHistory(history_request(app, n + 1), timeout=20),
                                     lambda n, reply: None)
    # Redis ran the queued write when it resumed, and nothing sent it (nor any other) a second time.
    expected = [f'{{"n": {n}}}' for n in range(trial + 2)]
    assert history_of(stub, app) == expected
    assert_lost_reply(error)
    stub.AddHistory(history_request(app, trial + 2), timeout=10)  # the store serves again by itself
    assert history_of(stub, app) == [*expected, f'{{"n": {trial + 2}}}']


def test_an_add_history_whose_connection_closed_after_it_was_sent_is_appended_once(store, stub) -> None:
    """Redis ran the script, and the connection closed before its reply came (a master dying
    then): redis-py's cluster client sent it again after rediscovering the topology."""
    app = f"lost-{uuid.uuid4().hex[:8]}"
    stub.AddHistory(history_request(app, 0), timeout=10)
    store.proxies.drop_reply_to(b"EVALSHA")  # AddHistory's script
    try:
        stub.AddHistory(history_request(app, 1), timeout=20)
        error = None
    except grpc.RpcError as failure:
        error = failure
    assert store.proxies.dropped == 1
    assert history_of(stub, app) == ['{"n": 0}', '{"n": 1}']
    assert_lost_reply(error)


def test_a_multi_whose_reply_was_lost_runs_once_and_its_retry_is_told_it_is_a_replay(store, stub) -> None:
    app = f"lost-{uuid.uuid4().hex[:8]}"

    def request(key: str, value: str) -> sb.SetWorkflowDeterministicValueRequest:
        return sb.SetWorkflowDeterministicValueRequest(app_id=app, workflow_id=WORKFLOW, key=key, value_json=value)

    warm = stub.SetWorkflowDeterministicValue(request("warm", '"w"'), timeout=10)
    assert (warm.value_json, warm.replayed) == ('"w"', False)

    def answered(n: int, reply: sb.SetWorkflowDeterministicValueResponse) -> None:
        assert (reply.value_json, reply.replayed) == ('"first"', False), "sent twice: its first writer told replayed"

    error, trial = lost_while_frozen(
        store, workflow_tag(app, WORKFLOW) + ":dv",
        lambda n: stub.SetWorkflowDeterministicValue(request(f"seed{n}", '"first"'), timeout=20), answered)
    assert_lost_reply(error)
    # The caller's retry (what the SDKs do on UNAVAILABLE) finds its own first attempt's value.
    again = stub.SetWorkflowDeterministicValue(request(f"seed{trial}", '"second"'), timeout=10)
    assert (again.value_json, again.replayed) == ('"first"', True)


def test_only_an_error_after_the_command_went_out_is_a_lost_reply(redis_server) -> None:
    """What the client library may retry: a refused connection keeps its type (ConnectionError,
    retried on a cluster after the topology is rediscovered); a command that went out and got
    no reply in time (BLPOP waiting longer than the socket timeout) is ReplyLost, never retried."""

    async def main() -> None:
        client = connect(redis_server.url, socket_timeout=0.2)
        refused = connect(f"redis://127.0.0.1:{free_port()}", socket_timeout=0.2)
        try:
            assert await client.ping()
            with pytest.raises(ReplyLost):
                await client.execute_command("BLPOP", f"lost-{uuid.uuid4().hex}", 2)
            assert await client.ping()  # a new connection serves the next command
            with pytest.raises(redis_errors.ConnectionError) as refusal:
                await refused.ping()
            assert not isinstance(refusal.value, ReplyLost)
        finally:
            await client.aclose()
            await refused.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(("url", "base"), [("redis://127.0.0.1:1/0", "Connection"),
                                           ("rediss://127.0.0.1:1/0", "SSLConnection"),
                                           ("unix:///tmp/no-such-redis.sock", "UnixDomainSocketConnection")])
def test_every_url_scheme_keeps_its_connection_class_extended_by_lost_replies_and_wait(url, base) -> None:
    """The URL's scheme picks redis-py's connection class (and overrode one passed in: with
    rediss:// or unix://, --redis-wait-replicas sent no WAIT): the stores extend it instead."""
    client = open_client(url, RedisOptions(wait_replicas=1))
    try:
        made = client.connection_pool.connection_class
        assert issubclass(made, getattr(redis_connection, base))
        assert [cls.__name__ for cls in made.__mro__[:2]] == ["AcknowledgingConnection", "ReplyTrackingConnection"]
        # No retry inside the server on one Redis.
        assert made(**client.connection_pool.connection_kwargs).retry.get_retries() == 0
    finally:
        asyncio.run(client.aclose())
