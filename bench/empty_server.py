"""The baselines of scenario (a): the sidecar's gRPC surface with empty handlers.

    python bench/empty_server.py --port P [--redis-url URL]

Same transport as the product (`grpc.aio`, the default asyncio loop, the options of
`pynenc_sidecar.server.build_server`), same generated servicer, health and reflection, so
ghz drives it exactly as it drives the sidecar. Every DeterministicExecutorService method
returns its empty response at once: what is left is the cost of gRPC in Python, the ceiling
any grpc.aio server can reach on this machine.

With --redis-url, every handler first awaits one Redis PING through redis.asyncio with the
product's client settings (storage/redis/executor_store.py): the floor of any handler that makes one
Redis round trip per call, which every sidecar RPC does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pynenc_sidecar.service.reflection import enable_reflection
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc

SERVICE = de.DESCRIPTOR.services_by_name["DeterministicExecutorService"]
# The product's server options (service/pynenc_sidecar/server.py, build_server).
OPTIONS = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


def _empty_unary(response_cls):
    async def handler(self, request, context):
        if self.redis is not None:
            await self.redis.ping()
        return response_cls()

    return handler


def _empty_stream(response_cls):
    async def handler(self, request, context):
        if self.redis is not None:
            await self.redis.ping()
        yield response_cls()

    return handler


class EmptyExecutor(de_grpc.DeterministicExecutorServiceServicer):
    """Every method answers its empty response (built from the service descriptor)."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis = None
        if redis_url:
            import redis.asyncio as aioredis

            # The product's RedisStore client settings.
            self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2.0,
                                                 socket_connect_timeout=2.0, max_connections=256,
                                                 health_check_interval=0)


for _method in SERVICE.methods:
    _response = getattr(de, _method.output_type.name)
    _make = _empty_stream if _method.server_streaming else _empty_unary
    setattr(EmptyExecutor, _method.name, _make(_response))


async def serve(port: int, redis_url: str | None) -> None:
    server = grpc.aio.server(options=OPTIONS)
    de_grpc.add_DeterministicExecutorServiceServicer_to_server(EmptyExecutor(redis_url), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection([SERVICE.full_name, health.SERVICE_NAME], server)  # the sidecar's own reflection
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", help="await one Redis PING in every handler")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.redis_url))


if __name__ == "__main__":
    main()
