"""Assemble and run the gRPC server (grpc.aio): stores, services, health, reflection, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pynenc_sidecar import observability, security
from pynenc_sidecar.bulk_reader import BulkReader
from pynenc_sidecar.connections import ConnectionSettings, open_file_budget
from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.engine import WorkflowEngine
from pynenc_sidecar.projection import StateProjection
from pynenc_sidecar.service import bulk
from pynenc_sidecar.service.deterministic_executor import DeterministicExecutorServicer
from pynenc_sidecar.service.reflection import enable_reflection
from pynenc_sidecar.service.validation import Limits
from pynenc_sidecar.service.wire import MalformedRequestInterceptor
from pynenc_sidecar.state_backend_engine import StateBackendEngine
from pynenc_sidecar.storage.interface import StateBackendStore, Store
from pynenc_sidecar.storage.redis.connection import RedisOptions
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2, deterministic_executor_pb2_grpc

log = logging.getLogger("pynenc_sidecar")

SERVICE_NAMES = [
    deterministic_executor_pb2.DESCRIPTOR.services_by_name["DeterministicExecutorService"].full_name,
]

# Where the embedded store lives when no Redis URL is given: relative to the working directory.
DEFAULT_DATA_FILE = "pynenc-sidecar.db"
# SQLite's name for a database in memory: the embedded store, gone when the server stops
# (pynenc_sidecar_sdk.testing). One connection holds it, shared by both stores.
MEMORY_DATA_FILE = ":memory:"
# A health service name that is SERVING while the process runs, whether the store answers
# or not: for liveness probes (the overall "" status is readiness, see watch_readiness).
LIVENESS_SERVICE = "liveness"


class StartupError(Exception):
    """The server cannot start (store file unusable, port taken); the message says why."""


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 50051
    # With a Redis URL, all state lives in that Redis; without one, in the SQLite file data_file.
    redis_url: str | None = None
    # Cluster mode and replica acknowledgement (WAIT) of that Redis.
    redis: RedisOptions = field(default_factory=RedisOptions)
    data_file: str = DEFAULT_DATA_FILE
    grace_period_s: float = 10.0
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = 20 * 1024 * 1024
    # Prometheus scrape endpoint (on host) when set; tracing is configured by OTEL_* variables.
    metrics_port: int | None = None
    # Finished workflows are deleted this long after they finished (None: kept forever), by
    # a sweep every sweep_interval_s (retention.py).
    retention_s: float | None = None
    sweep_interval_s: float = 3600.0
    # TLS (mutual TLS with a client CA) when set; plaintext otherwise.
    tls: security.TlsFiles | None = None
    # Bearer tokens accepted (security.AuthInterceptor); empty: no token required.
    auth_tokens: tuple[str | security.TokenGrant, ...] = field(default=(), repr=False)
    # A second, plaintext listener serving grpc.health.v1 only (for probes without TLS).
    health_port: int | None = None
    # How often the Redis store is pinged; health is NOT_SERVING while it does not answer.
    readiness_interval_s: float = 1.0
    connections: ConnectionSettings = field(default_factory=ConnectionSettings)
    # Bulk pages read and decoded at once, and how many more may wait (service/bulk.py).
    max_concurrent_bulk_reads: int = bulk.DEFAULT_CONCURRENT
    max_queued_bulk_reads: int = bulk.DEFAULT_QUEUED
    # A read's later history pages are built by a second process (bulk_reader.py).
    bulk_read_process: bool = True


@dataclass
class Stores:
    """The executor's Store and the StateBackendStore, on one backend."""

    store: Store
    state_backend: StateBackendStore
    description: str  # for logs: never holds a password
    # The process that builds bulk history pages on its own connection to them, if any.
    bulk_reader: BulkReader | None = None

    async def close(self) -> None:
        if self.bulk_reader is not None:
            await self.bulk_reader.close()
        await self.state_backend.close()
        await self.store.close()


async def open_stores(settings: ServerSettings) -> Stores:
    if settings.redis_url:
        from pynenc_sidecar.storage.redis.executor_store import RedisStore
        from pynenc_sidecar.storage.redis.state_backend_store import RedisStateBackendStore

        # Not pinged: the server starts while Redis is down, answers UNAVAILABLE, and
        # recovers by itself when Redis comes back.
        redis_store = RedisStore(settings.redis_url, settings.redis)
        return Stores(redis_store, RedisStateBackendStore(redis_store.client), f"redis {_redact(settings.redis_url)}")

    from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore
    from pynenc_sidecar.storage.sqlite.state_backend_store import SqliteStateBackendStore

    path = Path(settings.data_file)
    if settings.data_file != MEMORY_DATA_FILE:
        path = path.expanduser().resolve()
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
        engine = WorkflowEngine(stores.store, projection=StateProjection(stores.state_backend),
                                observer=observability.ENGINE_OBSERVER)
        # The token check comes first: a call without a valid token reaches nothing else.
        auth = [security.AuthInterceptor(settings.auth_tokens)] if settings.auth_tokens else []
        # Then undecodable requests: answered INVALID_ARGUMENT before any span or servicer.
        interceptors = [*auth, MalformedRequestInterceptor(), *observability.server_interceptors()]
        server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", max(settings.max_message_bytes, 64 * 1024 * 1024)),
            ("grpc.so_reuseport", 0),
            *settings.connections.grpc_options(open_file_budget(settings.connections.max_connections)),
        ])
        deterministic_executor_pb2_grpc.add_DeterministicExecutorServiceServicer_to_server(
            DeterministicExecutorServicer(engine, settings.limits), server
        )
        from pynenc_sidecar.service.state_backend import register_state_backend

        state_backend = StateBackendEngine(stores.state_backend)
        bulk_reads = bulk.BulkReads(settings.max_concurrent_bulk_reads, settings.max_queued_bulk_reads)
        if settings.bulk_read_process and (settings.redis_url or settings.data_file != MEMORY_DATA_FILE):
            stores.bulk_reader = BulkReader(settings)
        names = SERVICE_NAMES + register_state_backend(server, state_backend, settings.limits, bulk_reads,
                                                       stores.bulk_reader)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        enable_reflection([*names, health.SERVICE_NAME], server)
        try:
            credentials = security.server_credentials(settings.tls) if settings.tls else None
        except security.CredentialsError as exc:
            raise StartupError(str(exc)) from exc
        try:
            address = f"{settings.host}:{settings.port}"
            port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc raises RuntimeError when it cannot bind
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
        if port == 0:
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}")
        for name in ["", LIVENESS_SERVICE, *names]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    except BaseException:
        await stores.close()
        raise
    return server, stores, health_servicer, port


async def serve(settings: ServerSettings) -> int:
    try:  # before build_server: the interceptors and Redis spans depend on it
        telemetry = observability.configure(store_system="redis" if settings.redis_url else "sqlite",
                                            metrics_port=settings.metrics_port, metrics_host=settings.host)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {exc}") from exc
    try:
        server, stores, health_servicer, port = await build_server(settings)
    except BaseException:
        telemetry.shutdown()
        raise
    health_server = None
    if settings.health_port:
        try:
            health_server = await build_health_server(settings, health_servicer)
        except BaseException:
            await stores.close()
            telemetry.shutdown()
            raise
    await server.start()
    if health_server is not None:
        await health_server.start()
    log.info("pynenc-sidecar serving on %s:%d (store: %s; %s)", settings.host, port, stores.description,
             _security_description(settings))
    if settings.auth_tokens and not settings.tls and not _loopback(settings.host):
        log.warning("bearer tokens are required but TLS is off: tokens cross the network in clear text "
                    "(set --tls-cert and --tls-key)")
    readiness = None
    if hasattr(stores.store, "ping"):
        # Untraced: a ping a second would fill the tracing backend with one-span traces.
        readiness = asyncio.create_task(watch_readiness(observability.untraced(stores.store.ping), health_servicer,
                                                        _served_names(), settings.readiness_interval_s))
    sweeper = None
    if settings.retention_s:
        from pynenc_sidecar.maintenance_engine import MaintenanceEngine
        from pynenc_sidecar.retention import sweep_forever

        sweeper = asyncio.create_task(sweep_forever(MaintenanceEngine(stores.store, stores.state_backend),
                                                    settings.retention_s, settings.sweep_interval_s))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight calls for up to %.1fs", settings.grace_period_s)
    await health_servicer.enter_graceful_shutdown()
    for background in (sweeper, readiness):
        if background is not None:
            background.cancel()
            await asyncio.gather(background, return_exceptions=True)
    if health_server is not None:
        await health_server.stop(0)
    await server.stop(settings.grace_period_s)
    await stores.close()
    telemetry.shutdown()  # flushes pending spans
    log.info("stopped")
    return 0


async def build_health_server(settings: ServerSettings, health_servicer: health.HealthServicer) -> grpc.aio.Server:
    """A plaintext listener on --health-port serving grpc.health.v1 alone (the same statuses)."""
    server = grpc.aio.server(interceptors=[MalformedRequestInterceptor()], options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        port = server.add_insecure_port(f"{settings.host}:{settings.health_port}")
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {settings.host}:{settings.health_port} (--health-port): {exc}") from exc
    if port == 0:
        raise StartupError(f"cannot listen on {settings.host}:{settings.health_port} (--health-port)")
    return server


def _served_names() -> list[str]:
    from pynenc_sidecar.service.state_backend import SERVICE_NAME as STATE_BACKEND

    return ["", *SERVICE_NAMES, STATE_BACKEND]


async def watch_readiness(ping, health_servicer: health.HealthServicer, names: list[str], interval_s: float) -> None:
    """Readiness: ping the store every interval; while it does not answer (within the
    interval, at least 1 s), the overall status and the services' are NOT_SERVING; SERVING
    again as soon as it answers. LIVENESS_SERVICE is left alone. Runs until cancelled."""
    serving = True
    while True:
        try:
            answered = bool(await asyncio.wait_for(ping(), timeout=max(1.0, interval_s)))
        except (TimeoutError, Unavailable, OSError):
            answered = False
        except Exception:  # never let the probe die: an unexpected failure counts as not ready
            log.exception("readiness probe failed")
            answered = False
        if answered != serving:
            serving = answered
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in names:
                await health_servicer.set(name, status)
            if serving:
                log.info("the store answers again: health SERVING")
            else:
                log.warning("the store does not answer: health NOT_SERVING until it does")
        await asyncio.sleep(interval_s)


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def _security_description(settings: ServerSettings) -> str:
    if settings.tls is None:
        transport = "plaintext"
    else:
        transport = "mutual TLS" if settings.tls.client_ca else "TLS"
    grants = security.merge_grants(settings.auth_tokens)
    bound = sum(g.apps is not None for g in grants)
    auth = (f"bearer token required ({len(grants)} accepted, {bound} bound to apps)" if grants else "no token")
    health_port = f"; health also on port {settings.health_port}" if settings.health_port else ""
    return f"{transport}, {auth}{health_port}"


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
