"""Assemble and run the gRPC server (grpc.aio): stores, services, health, reflection, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pynenc_sidecar.engine import WorkflowEngine
from pynenc_sidecar.service.deterministic_executor import DeterministicExecutorServicer
from pynenc_sidecar.service.validation import Limits
from pynenc_sidecar.storage.base import Store
from pynenc_sidecar.storage.state_backend_store import StateBackendStore
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2, deterministic_executor_pb2_grpc

log = logging.getLogger("pynenc_sidecar")

SERVICE_NAMES = [
    deterministic_executor_pb2.DESCRIPTOR.services_by_name["DeterministicExecutorService"].full_name,
]

# Where the embedded store lives when no Redis URL is given: relative to the working directory.
DEFAULT_DATA_FILE = "pynenc-sidecar.db"


class StartupError(Exception):
    """The server cannot start (store file unusable, port taken); the message says why."""


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 50051
    # With a Redis URL, all state lives in that Redis; without one, in the SQLite file data_file.
    redis_url: str | None = None
    data_file: str = DEFAULT_DATA_FILE
    grace_period_s: float = 10.0
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = 4 * 1024 * 1024


@dataclass
class Stores:
    """The executor's Store and the StateBackendStore, on one backend."""

    store: Store
    state_backend: StateBackendStore
    description: str  # for logs: never holds a password

    async def close(self) -> None:
        await self.state_backend.close()
        await self.store.close()


async def open_stores(settings: ServerSettings) -> Stores:
    if settings.redis_url:
        from pynenc_sidecar.storage.redis_store import RedisStore
        from pynenc_sidecar.storage.state_backend_store import RedisStateBackendStore

        # Not pinged: the server starts while Redis is down, answers UNAVAILABLE, and
        # recovers by itself when Redis comes back.
        redis_store = RedisStore(settings.redis_url)
        return Stores(redis_store, RedisStateBackendStore(redis_store.client), f"redis {_redact(settings.redis_url)}")

    from pynenc_sidecar.storage.sqlite_state_backend_store import SqliteStateBackendStore
    from pynenc_sidecar.storage.sqlite_store import SqliteStore

    path = Path(settings.data_file).expanduser().resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create the directory of data file {path}: {exc}") from exc
    sqlite_store = SqliteStore(path)
    state_backend = SqliteStateBackendStore(sqlite_store)
    # Opened now, so that a file that is not a database or cannot be written stops the
    # start with a clear message instead of failing every call.
    try:
        await state_backend.open()
    except Exception as exc:
        await sqlite_store.close()
        raise StartupError(f"cannot open data file {path}: {exc}") from exc
    return Stores(sqlite_store, state_backend, f"embedded sqlite {path}")


async def build_server(settings: ServerSettings) -> tuple[grpc.aio.Server, Stores, health.HealthServicer, int]:
    stores = await open_stores(settings)
    try:
        engine = WorkflowEngine(stores.store)
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", max(settings.max_message_bytes, 64 * 1024 * 1024)),
            ("grpc.so_reuseport", 0),
        ])
        deterministic_executor_pb2_grpc.add_DeterministicExecutorServiceServicer_to_server(
            DeterministicExecutorServicer(engine, settings.limits), server
        )
        from pynenc_sidecar.service.state_backend import register_state_backend

        names = SERVICE_NAMES + register_state_backend(server, stores.state_backend, settings.limits)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        try:
            port = server.add_insecure_port(f"{settings.host}:{settings.port}")
        except RuntimeError as exc:  # grpc raises RuntimeError when it cannot bind
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
        if port == 0:
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}")
        for name in ["", *names]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    except BaseException:
        await stores.close()
        raise
    return server, stores, health_servicer, port


async def serve(settings: ServerSettings) -> int:
    server, stores, health_servicer, port = await build_server(settings)
    await server.start()
    log.info("pynenc-sidecar serving on %s:%d (store: %s)", settings.host, port, stores.description)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight calls for up to %.1fs", settings.grace_period_s)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.grace_period_s)
    await stores.close()
    log.info("stopped")
    return 0


def _redact(url: str) -> str:
    """Hide a password in a redis URL (user info or ?password=) before it is logged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest, qmark, query = rest.partition("?")
    if "@" in rest:  # up to the last "@": a password with a raw "/" or "@" stays hidden too
        rest = "***@" + rest.rsplit("@", 1)[1]
    if query:
        params = [p.split("=", 1) for p in query.split("&")]
        query = "&".join(p[0] + "=***" if p[0].lower() == "password" and len(p) == 2 else "=".join(p) for p in params)
    return f"{scheme}{sep}{rest}{qmark}{query}"
