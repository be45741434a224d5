"""Fixtures of the storage conformance suite: every test runs once per store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.test_store_conformance import Run
from pynenc_sidecar.server import Stores
from pynenc_sidecar.storage.interface import Store
from pynenc_sidecar.storage.redis.connection import RedisOptions
from pynenc_sidecar.storage.redis.executor_store import RedisStore
from pynenc_sidecar.storage.redis.state_backend_store import RedisStateBackendStore
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore
from pynenc_sidecar.storage.sqlite.state_backend_store import SqliteStateBackendStore


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Run:
    return loop.run_until_complete


def redis_store(request: pytest.FixtureRequest, kind: str) -> RedisStore:
    """A RedisStore on the session's redis-server, or ("cluster") on the session's 6-node
    Redis Cluster, given every node as a seed."""
    if kind == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return RedisStore(f"redis://{cluster.seeds}", RedisOptions(cluster=True))
    return RedisStore(request.getfixturevalue("redis_server").url)


STORES = ["redis", "sqlite", "cluster"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Store]:
    if request.param in ("redis", "cluster"):
        subject: Any = redis_store(request, request.param)
    else:
        subject = SqliteStore(tmp_path / "state.db")
    yield subject
    loop.run_until_complete(subject.close())


@pytest.fixture(params=STORES)
def stores(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Stores]:
    """The executor's Store and the StateBackendStore on one backend, as the server opens them."""
    if request.param in ("redis", "cluster"):
        store: Any = redis_store(request, request.param)
        subject = Stores(store, RedisStateBackendStore(store.client), request.param)
    else:
        store = SqliteStore(tmp_path / "state.db")
        subject = Stores(store, SqliteStateBackendStore(store), "sqlite")
    yield subject
    loop.run_until_complete(subject.close())


@pytest.fixture
def app() -> str:
    return f"conf-{uuid.uuid4().hex}"
