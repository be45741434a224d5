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


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Store]:
    if request.param == "redis":
        subject: Any = RedisStore(request.getfixturevalue("redis_server").url)
    else:
        subject = SqliteStore(tmp_path / "state.db")
    yield subject
    loop.run_until_complete(subject.close())


@pytest.fixture(params=["redis", "sqlite"])
def stores(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Stores]:
    """The executor's Store and the StateBackendStore on one backend, as the server opens them."""
    if request.param == "redis":
        store: Any = RedisStore(request.getfixturevalue("redis_server").url)
        subject = Stores(store, RedisStateBackendStore(store.client), "redis")
    else:
        store = SqliteStore(tmp_path / "state.db")
        subject = Stores(store, SqliteStateBackendStore(store), "sqlite")
    yield subject
    loop.run_until_complete(subject.close())


@pytest.fixture
def app() -> str:
    return f"conf-{uuid.uuid4().hex}"
