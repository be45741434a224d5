"""The one clock abstraction: a Clock is a function returning microseconds since the Unix
epoch. The engines take one (tests pass their own); the two real ones are below.

The wall clock is what the server records (a task's finish, a history entry's time, a run's
first store). Leases are measured on the store's clock instead, so replicas whose wall clocks
disagree still agree on when a lease lapses: Redis reads its own `TIME` inside its scripts,
and the SQLite store reads host_clock_us."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
# Elapsed time, for waits and deadlines (never recorded): seconds, any origin.
Monotonic = Callable[[], float]
monotonic_s: Monotonic = time.monotonic


def wall_clock_us() -> int:
    """This process's wall clock."""
    return time.time_ns() // 1000


def host_clock_us() -> int:
    """The host kernel's clock, as boot time + uptime from /proc: the SQLite store's lease clock.

    Every process sharing one SQLite file runs on one host (WAL's shared memory needs that),
    so the kernel's clock is the one clock they all see; reading it from /proc rather than
    through the C library means no process-level clock (a faked time, an LD_PRELOAD shim)
    can make one replica see a lease lapse early. Same scale as wall-clock time (boot time
    is whole seconds, so it may lag by under a second, equally for every process). Where
    /proc is missing, the process's wall clock."""
    try:
        with open("/proc/uptime", "rb") as uptime_file:
            uptime = float(uptime_file.read().split()[0])
        with open("/proc/stat", "rb") as stat_file:
            boot = next(int(line.split()[1]) for line in stat_file if line.startswith(b"btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return wall_clock_us()
    return boot * 1_000_000 + round(uptime * 1_000_000)
