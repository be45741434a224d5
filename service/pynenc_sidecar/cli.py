"""`pynenc-sidecar`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from pynenc_sidecar import __version__
from pynenc_sidecar.server import ServerSettings, serve
from pynenc_sidecar.service.validation import Limits


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pynenc-sidecar",
        description="A gRPC sidecar that gives workers in any language the Pynenc workflow context "
        "(deterministic random, time, UUIDs, recorded operations, replayed task execution, workflow data) "
        "and Pynenc's StateBackend, on Redis.",
    )
    parser.add_argument("--version", action="version", version=f"pynenc-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve", help="run the gRPC server",
        description="Run the gRPC server. Every option can also be set by the environment variable named in its help.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve_parser.add_argument("--host", default=_env("PYNENC_SIDECAR_HOST", "127.0.0.1"),
                              help="address to listen on; 0.0.0.0 for every interface (env PYNENC_SIDECAR_HOST)")
    serve_parser.add_argument("--port", type=int, default=int(_env("PYNENC_SIDECAR_PORT", "50051")),
                              help="TCP port to listen on (env PYNENC_SIDECAR_PORT)")
    serve_parser.add_argument("--redis-url", default=_env("PYNENC_SIDECAR_REDIS_URL", "redis://127.0.0.1:6379/0"),
                              help="Redis holding all state, e.g. redis://:password@host:6379/0 (env PYNENC_SIDECAR_REDIS_URL)")
    serve_parser.add_argument("--grace-period", type=float, default=float(_env("PYNENC_SIDECAR_GRACE_PERIOD", "10")),
                              help="seconds SIGTERM waits for in-flight calls before exiting (env PYNENC_SIDECAR_GRACE_PERIOD)")
    serve_parser.add_argument("--max-value-bytes", type=int, default=int(_env("PYNENC_SIDECAR_MAX_VALUE_BYTES", str(1024 * 1024))),
                              help="largest JSON value accepted (results, data, custom ops) (env PYNENC_SIDECAR_MAX_VALUE_BYTES)")
    serve_parser.add_argument("--max-message-bytes", type=int,
                              default=int(_env("PYNENC_SIDECAR_MAX_MESSAGE_BYTES", str(4 * 1024 * 1024))),
                              help="largest gRPC request accepted (env PYNENC_SIDECAR_MAX_MESSAGE_BYTES)")
    serve_parser.add_argument("--log-level", default=_env("PYNENC_SIDECAR_LOG_LEVEL", "INFO"),
                              choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (env PYNENC_SIDECAR_LOG_LEVEL)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 0 if args.command is None and argv == [] else 2
    if args.max_value_bytes < 1 or args.max_message_bytes < 1024:
        parser.error("--max-value-bytes must be >= 1 and --max-message-bytes >= 1024")
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings(
        host=args.host, port=args.port, redis_url=args.redis_url, grace_period_s=args.grace_period,
        limits=Limits(max_value_bytes=args.max_value_bytes),
        max_message_bytes=args.max_message_bytes,
    )
    return asyncio.run(serve(settings))
