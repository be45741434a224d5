from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_cluster import RedisCluster  # noqa: E402
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


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """One real Redis Cluster (3 masters, 3 replicas) for the whole session: tests keep apart
    by their own app ids. A test that kills a node starts a cluster of its own."""
    cluster = RedisCluster().start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def cluster_sidecar(redis_cluster: RedisCluster) -> Iterator[SidecarServer]:
    """A sidecar in front of the session's cluster, given every seed node."""
    server = SidecarServer(f"redis://{redis_cluster.seeds}", extra_args=["--redis-cluster", "on"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_sidecar() -> Iterator[SidecarServer]:
    """A sidecar on the embedded SQLite store (no Redis URL), in a temp data file."""
    directory = tempfile.mkdtemp(prefix="psc-sqlite-")
    server = SidecarServer(None, data_file=f"{directory}/sidecar.db").start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def in_process_sidecar():
    """pynenc_sidecar_sdk.testing's server: in this process, on an in-memory store. For SDK
    tests where a separate server process is not the point."""
    from pynenc_sidecar_sdk.testing import InProcessSidecar

    with InProcessSidecar() as server:
        yield server
