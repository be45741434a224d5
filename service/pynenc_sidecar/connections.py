"""Connection hygiene: how long a client connection may live, idle or silent, and how many.

Everything here is a gRPC core channel argument (`grpc_options`), except the open-file
budget: a connection is a file descriptor, and a server that has run out of them cannot
accept the next client whatever gRPC is told, so `open_file_budget` raises the process's
soft RLIMIT_NOFILE towards its hard limit at start and keeps the connection cap below it.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("pynenc_sidecar.connections")

# Descriptors kept for everything but client connections: the store's connections (up to
# 256 to Redis), the SQLite file and its WAL, listeners, gRPC's own pipes and epoll.
RESERVED_FILES = 320


@dataclass(frozen=True)
class ConnectionSettings:
    # The server pings a connection after this long without traffic, and closes it when the
    # ping is not answered within keepalive_timeout_s: dead peers (a host gone, a NAT that
    # dropped the flow) do not hold a descriptor forever.
    keepalive_time_s: float = 60.0
    keepalive_timeout_s: float = 20.0
    # A connection with no call in flight for this long is closed (GOAWAY); clients reconnect
    # on their next call by themselves.
    max_connection_idle_s: float = 300.0
    # Any connection is asked to go (GOAWAY) after this long, so clients spread over replicas
    # added since; calls in flight then get max_connection_age_grace_s to finish. The grace
    # is above the longest WaitTask (60 s).
    max_connection_age_s: float = 3600.0
    max_connection_age_grace_s: float = 300.0
    # A connection must complete its TLS and HTTP/2 handshake within this: one that never
    # sends a byte is closed then.
    handshake_timeout_s: float = 10.0
    # Calls in flight on one connection; more wait on the client side, not fail.
    max_concurrent_streams: int = 1000
    # Connections accepted at once; the next is refused until one closes.
    max_connections: int = 4096

    def grpc_options(self, max_connections: int | None = None) -> list[tuple[str, int]]:
        def ms(seconds: float) -> int:
            return max(1, int(seconds * 1000))

        return [
            ("grpc.keepalive_time_ms", ms(self.keepalive_time_s)),
            ("grpc.keepalive_timeout_ms", ms(self.keepalive_timeout_s)),
            # Clients may keep their own keepalive pings: without calls too, every 10 s at most.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.max_connection_idle_ms", ms(self.max_connection_idle_s)),
            ("grpc.max_connection_age_ms", ms(self.max_connection_age_s)),
            ("grpc.max_connection_age_grace_ms", ms(self.max_connection_age_grace_s)),
            ("grpc.server_handshake_timeout_ms", ms(self.handshake_timeout_s)),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.max_allowed_incoming_connections", max_connections or self.max_connections),
        ]


def open_file_budget(max_connections: int) -> int:
    """Raise the soft open-file limit so max_connections fit beside RESERVED_FILES (up to the
    hard limit), and return the connection cap that fits: max_connections, or less, with a
    warning, when the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. a sandbox refusing it: keep the limit we have
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fitting = max(16, soft - RESERVED_FILES)
    log.warning("the open-file limit (%d) leaves room for %d client connections, not --max-connections %d: "
                "accepting at most %d (raise `ulimit -n` to allow more)", soft, fitting, max_connections, fitting)
    return fitting
