"""Real processes for the tests: a redis-server and the sidecar, on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """The processes `pid` started that still run (a server's bulk read process, if it has one)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def seed_history(channel: grpc.Channel, app_id: str, invocation_id: str, entries: int, pad_bytes: int) -> None:
    """An invocation `invocation_id` with `entries` history entries of about `pad_bytes` each
    (execution_context_json {"pad": ..., "n": n}, timestamps 1.7e15 + n us), plus an invocation
    "small" to call small calls on, written through the StateBackendService."""
    from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
    from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc

    stub = sb_grpc.StateBackendServiceStub(channel)
    stub.UpsertInvocations(sb.UpsertInvocationsRequest(
        app_id=app_id, invocations=[sb.Invocation(invocation_id="small", task_id="t")]), timeout=30)
    for start in range(0, entries, 100):  # at most 100 in flight
        calls = []
        for n in range(start, min(start + 100, entries)):
            entry = sb.InvocationHistory(status=7, runner_id="r",
                                         execution_context_json=json.dumps({"pad": "x" * pad_bytes, "n": n}))
            entry.timestamp.FromMicroseconds(1_700_000_000_000_000 + n)
            calls.append(stub.AddHistory.future(sb.AddHistoryRequest(
                app_id=app_id, invocation_ids=[invocation_id], history=entry), timeout=60))
        [call.result() for call in calls]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


@dataclass
class RedisServer:
    """A redis-server the test suite owns: its own port and directory, stopped by PID."""

    extra_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="psc-redis-"))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: install it (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory,
             "--save", "", "--appendonly", "no", "--protected-mode", "no", *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, 10, "redis-server")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


# The session's sidecar fixture (tests/conftest.py) for each store a test runs on.
SIDECAR_FIXTURES = {"redis": "sidecar", "sqlite": "sqlite_sidecar", "cluster": "cluster_sidecar"}


@dataclass
class SidecarServer:
    """The real `pynenc-sidecar serve` process.

    With a redis_url it runs on that Redis. With redis_url=None it runs on the embedded
    SQLite store: at data_file when given, else at the server's default path (relative to
    cwd, the process's working directory). Store settings in the environment are not
    inherited (only `env` can set them), so the server uses the store the test asks for."""

    redis_url: str | None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: str = field(default_factory=lambda: tempfile.mktemp(prefix="psc-server-", suffix=".log"))
    data_file: str | None = None
    cwd: str | None = None
    # For a server started with --tls-cert: how to reach it (grpc.ssl_channel_credentials(...)).
    credentials: grpc.ChannelCredentials | None = None
    # A command the server runs under, e.g. ["faketime", "-f", "+2s"] or ["prlimit", "--nofile=1024"].
    # It runs in a session of its own and stop() signals that whole group: a launcher that
    # forks (faketime does) would otherwise leave the server running.
    launcher: list[str] = field(default_factory=list)

    def channel(self) -> grpc.Channel:
        """A new channel to the server, with TLS when the server has it."""
        if self.credentials is not None:
            return grpc.secure_channel(self.address, self.credentials)
        return grpc.insecure_channel(self.address)

    def store_args(self) -> list[str]:
        if self.redis_url is not None:
            return ["--redis-url", self.redis_url]
        return ["--data-file", self.data_file] if self.data_file else []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SidecarServer:
        env = dict(os.environ)
        for name in ("PYNENC_SIDECAR_REDIS_URL", "PYNENC_SIDECAR_DATA_FILE"):  # the store is the test's choice
            env.pop(name, None)
        env.update(self.env)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [*self.launcher, sys.executable, "-m", "pynenc_sidecar", "serve", "--host", "127.0.0.1", "--port",
             str(self.port),
             *self.store_args(), *self.extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd, start_new_session=bool(self.launcher),
        )
        wait_until(self.serving, 20, f"sidecar on {self.address} (log: {self.log_path})")
        return self

    def serving(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise RuntimeError(f"sidecar exited with {self.process.returncode}: {Path(self.log_path).read_text()}")
        try:
            with self.channel() as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def _signal(self, sig: int) -> None:
        if self.launcher:
            try:
                os.killpg(self.process.pid, sig)  # the session started with the launcher
            except ProcessLookupError:
                pass
        else:
            self.process.send_signal(sig)

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        if self.launcher:  # the launcher may be gone before what it started: make sure
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.process.returncode
