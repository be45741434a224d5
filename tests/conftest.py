from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import RedisServer, SidecarServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def sidecar(redis_server: RedisServer) -> Iterator[SidecarServer]:
    server = SidecarServer(redis_server.url).start()
    yield server
    server.stop()
