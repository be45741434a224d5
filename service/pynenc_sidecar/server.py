"""Assemble and run the gRPC server (grpc.aio): services, health, reflection, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pynenc_sidecar.engine import WorkflowEngine
from pynenc_sidecar.service.deterministic_executor import DeterministicExecutorServicer
from pynenc_sidecar.service.validation import Limits
from pynenc_sidecar.storage.redis_store import RedisStore
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2, deterministic_executor_pb2_grpc

log = logging.getLogger("pynenc_sidecar")

SERVICE_NAMES = [
    deterministic_executor_pb2.DESCRIPTOR.services_by_name["DeterministicExecutorService"].full_name,
]


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 50051
    redis_url: str = "redis://127.0.0.1:6379/0"
    grace_period_s: float = 10.0
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = 4 * 1024 * 1024


async def build_server(settings: ServerSettings) -> tuple[grpc.aio.Server, RedisStore, health.HealthServicer, int]:
    store = RedisStore(settings.redis_url)
    engine = WorkflowEngine(store)
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", max(settings.max_message_bytes, 64 * 1024 * 1024)),
        ("grpc.so_reuseport", 0),
    ])
    deterministic_executor_pb2_grpc.add_DeterministicExecutorServiceServicer_to_server(
        DeterministicExecutorServicer(engine, settings.limits), server
    )
    from pynenc_sidecar.service.state_backend import register_state_backend

    names = SERVICE_NAMES + register_state_backend(server, store, settings.limits)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, store, health_servicer, port


async def serve(settings: ServerSettings) -> int:
    server, store, health_servicer, port = await build_server(settings)
    await server.start()
    log.info("pynenc-sidecar serving on %s:%d (redis %s)", settings.host, port, _redact(settings.redis_url))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight calls for up to %.1fs", settings.grace_period_s)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.grace_period_s)
    await store.close()
    log.info("stopped")
    return 0


def _redact(url: str) -> str:
    """Hide a password in a redis URL before it is logged."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
