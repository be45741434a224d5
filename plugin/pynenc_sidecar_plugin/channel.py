"""One gRPC channel per process (and per distinct settings), renewed in a forked child.

A gRPC channel must not be used across fork(), and gRPC's own fork handlers give up when
another thread is inside a call at that moment ("Other threads are currently calling into
gRPC, skipping fork() handlers"), after which the child's calls can hang. Pynenc's process
runners fork while other threads of the runner use the state backend, so:
- every call passes a gate; fork() first waits (at most FORK_DRAIN_SEC) until no call of this
  process is inside gRPC and holds new ones back until the fork is done;
- a child drops the parent's channels (without closing them: they belong to the parent) and
  opens its own on first use.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from pynenc_sidecar_plugin.conf import ConnectionSettings
from pynenc_sidecar_proto.connection import open_channel

SERVICE = "pynenc.sidecar.v1.StateBackendService"
# The executor (deterministic.py) calls only Random, UtcNow, Uuid, Record, GetRecorded and
# GetBaseTime: each records at most once per position (first writer wins) or only reads.
EXECUTOR_SERVICE = "pynenc.sidecar.v1.DeterministicExecutorService"
# AddHistory appends an entry: replaying it after a lost reply would record the transition
# twice. Every other StateBackendService call is a read, a replace, a set insert or
# first-writer-wins, so gRPC may retry it on UNAVAILABLE.
NOT_IDEMPOTENT = ("AddHistory",)

FORK_DRAIN_SEC = 30.0

_lock = threading.Lock()
_channels: dict[ConnectionSettings, grpc.Channel] = {}


class _CallGate:
    """Calls in flight on one side, fork() on the other."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._forking = False

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._forking)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()  # held across fork(): no call starts meanwhile
        self._forking = True
        self._cond.wait_for(lambda: self._active == 0, timeout=FORK_DRAIN_SEC)

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()


gate = _CallGate()


def _before_fork() -> None:
    gate.before_fork()


def _after_fork_in_parent() -> None:
    gate.after_fork_in_parent()


def _after_fork_in_child() -> None:
    global _lock, gate
    _lock = threading.Lock()
    gate = _CallGate()  # the parent's is locked, and its calls are not the child's
    _channels.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def service_config(retry_attempts: int) -> str:
    """gRPC's retry policy for every idempotent method (the empty method name matches all
    methods of the service; the more specific AddHistory entry overrides it)."""
    configs = [{"name": [{"service": SERVICE, "method": name} for name in NOT_IDEMPOTENT]}]
    if retry_attempts > 1:
        configs.append({
            "name": [{"service": SERVICE}, {"service": EXECUTOR_SERVICE}],
            "retryPolicy": {"maxAttempts": retry_attempts, "initialBackoff": "0.1s", "maxBackoff": "2s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
        })
    return json.dumps({"methodConfig": configs})


def _open(settings: ConnectionSettings) -> grpc.Channel:
    options = [("grpc.service_config", service_config(settings.retry_attempts)), ("grpc.enable_retries", 1),
               ("grpc.max_receive_message_length", settings.max_message_bytes),
               ("grpc.max_send_message_length", settings.max_message_bytes)]
    channel, _ = open_channel(settings.address, settings.security, options)
    return channel


def channel_for(settings: ConnectionSettings) -> grpc.Channel:
    """This process's channel for these settings, opened on first use."""
    channel = _channels.get(settings)
    if channel is None:
        with _lock:
            channel = _channels.get(settings)
            if channel is None:
                channel = _channels[settings] = _open(settings)
    return channel
