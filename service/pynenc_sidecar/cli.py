"""`pynenc-sidecar`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap

from pynenc_sidecar import __version__
from pynenc_sidecar.server import DEFAULT_DATA_FILE, ServerSettings, StartupError, serve
from pynenc_sidecar.service.validation import Limits


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults (except for options whose help says what happens when unset), keeps the
    description's paragraphs, and never breaks a line inside a name such as --redis-url."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


SERVE_DESCRIPTION = f"""\
Run the gRPC server. Every option can also be set by the environment variable named in its help.

Storage: with --redis-url, all state lives in that Redis (share it between replicas and
machines). Without it, state lives in an embedded SQLite file (--data-file, default
./{DEFAULT_DATA_FILE} in the working directory): nothing else to install, and it survives
restarts. Several sidecars on one machine may share that file; sidecars on other machines
cannot (use Redis).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pynenc-sidecar",
        description="A gRPC sidecar that gives workers in any language the Pynenc workflow context "
        "(deterministic random, time, UUIDs, recorded operations, replayed task execution, workflow data) "
        "and Pynenc's StateBackend, on Redis or an embedded SQLite file.",
    )
    parser.add_argument("--version", action="version", version=f"pynenc-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve", help="run the gRPC server", description=SERVE_DESCRIPTION, formatter_class=_HelpFormatter,
    )
    serve_parser.add_argument("--host", default=_env("PYNENC_SIDECAR_HOST", "127.0.0.1"),
                              help="address to listen on; 0.0.0.0 for every interface (env PYNENC_SIDECAR_HOST)")
    serve_parser.add_argument("--port", type=int, default=int(_env("PYNENC_SIDECAR_PORT", "50051")),
                              help="TCP port to listen on (env PYNENC_SIDECAR_PORT)")
    serve_parser.add_argument("--redis-url", metavar="URL", default=_env("PYNENC_SIDECAR_REDIS_URL", "") or None,
                              help="keep all state in this Redis, e.g. redis://:password@host:6379/0 "
                                   "(env PYNENC_SIDECAR_REDIS_URL). Unset (the default): use the embedded "
                                   "SQLite store at --data-file instead")
    serve_parser.add_argument("--data-file", metavar="PATH", default=_env("PYNENC_SIDECAR_DATA_FILE", "") or None,
                              help="SQLite file of the embedded store, created if missing, used when no Redis URL "
                                   "is set (env PYNENC_SIDECAR_DATA_FILE). Default: ./" + DEFAULT_DATA_FILE
                                   + " (relative paths are resolved against the working directory)")
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
    if args.redis_url and args.data_file:
        # State lives in one place: silently ignoring one of the two would hide a mistake.
        parser.error("set either --redis-url (PYNENC_SIDECAR_REDIS_URL) or --data-file (PYNENC_SIDECAR_DATA_FILE), "
                     "not both")
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings(
        host=args.host, port=args.port, redis_url=args.redis_url, data_file=args.data_file or DEFAULT_DATA_FILE,
        grace_period_s=args.grace_period, limits=Limits(max_value_bytes=args.max_value_bytes),
        max_message_bytes=args.max_message_bytes,
    )
    try:
        return asyncio.run(serve(settings))
    except StartupError as exc:
        logging.getLogger("pynenc_sidecar").error("cannot start: %s", exc)
        return 1
