"""A read's later history pages built in a second process, off the serving event loop (issue 12).

Building a 256 KiB page of history entries (store reply, decoding, encoding) keeps the serving
loop busy for about 3 ms, in slices; a small call that arrives meanwhile waits behind a slice at
each of its own steps (request, store round trip, reply), so during a huge read other calls'
p99 was 4-7x their idle p99. Here the pages after a read's first one (calls that carry a
page_token, which only reads longer than a page send), and history streams
(StreamHistoryInTimeRange), go to a child process: the same
StateBackendService on its own connection to the same store, behind a Unix socket in a
private directory. The serving loop forwards the request and the reply's bytes, which it
neither decodes nor encodes again; the child's own turns (--max-concurrent-bulk-reads) bound
its memory. Authorization and validation stay in the serving process, which checks every
call before it forwards one.

A history that fits one page (most) never leaves the server. The child starts at the first
call it would serve; until it answers, and whenever it has died (it is started again at most
every RESTART_DELAY_S), pages are built in-process as before, so no page read fails because of
it (a stream it was sending when it died ends with UNAVAILABLE, BULK_READ_INTERRUPTED). It
exits when its stdin closes: when the server stops, and when it dies, even by kill -9. Off
with --bulk-read-process off, and for the in-memory store (which no second process can open).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import grpc

from pynenc_sidecar.core.errors import BULK_READ_INTERRUPTED, Unavailable
from pynenc_sidecar.service.errors import RelayedStatus
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb

if TYPE_CHECKING:
    from pynenc_sidecar.server import ServerSettings

log = logging.getLogger("pynenc_sidecar.bulk_reader")  # also when run as __main__

GET_HISTORY = "/pynenc.sidecar.v1.StateBackendService/GetHistory"
STREAM_HISTORY = "/pynenc.sidecar.v1.StateBackendService/StreamHistoryInTimeRange"
START_TIMEOUT_S = 30.0
RESTART_DELAY_S = 5.0
RESTART_DELAY_MAX_S = 300.0  # after failed starts, the delay doubles up to this
STOP_TIMEOUT_S = 5.0
# Below the server's priority: when both want the CPU, the serving process runs first (a busy
# process at the same priority took other calls' p99 from 1.3 to 3.9 ms on two cores).
NICE = 10
_READY = b"ready\n"
_LENGTH = struct.Struct(">Q")


class BulkReader:
    """The serving process's side: starts the child on first use, forwards pages to it."""

    def __init__(self, settings: ServerSettings) -> None:
        # The child serves a Unix socket only the server can reach: no TLS, no tokens, no ports.
        self._settings = dataclasses.replace(settings, tls=None, auth_tokens=(), health_port=None,
                                             metrics_port=None, retention_s=None)
        self._process: asyncio.subprocess.Process | None = None
        self._channel: grpc.aio.Channel | None = None
        self._get_history: Any = None
        self._stream_history: Any = None
        self._starting: asyncio.Task[None] | None = None
        self._next_start = 0.0
        self._delay = RESTART_DELAY_S
        self._starts = 0
        self._directory: str | None = None

    @property
    def ready(self) -> bool:
        return self._get_history is not None and self._process is not None and self._process.returncode is None

    async def get_history(self, request: sb.GetHistoryRequest, timeout: float | None) -> bytes | None:
        """The serialized GetHistoryResponse the child built, or None when it cannot answer now
        (starting, or gone): the caller then builds the page itself. Its errors raise RelayedStatus."""
        if not self.ready:
            self._start_soon()
            return None
        try:
            data: bytes = await self._get_history(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE and not _answered(error):
                self._lost()  # the child is gone, or going: this page is built here
                return None
            raise RelayedStatus.of(error) from None
        return data

    def stream_history(self, request: sb.StreamHistoryInTimeRangeRequest,
                       timeout: float | None) -> AsyncGenerator[bytes, None] | None:
        """The child's serialized StreamHistoryInTimeRangeResponse messages, or None when it
        cannot answer now (the caller then streams them itself)."""
        if not self.ready:
            self._start_soon()
            return None
        return self._relayed(self._stream_history(request, timeout=timeout))

    async def _relayed(self, call: Any) -> AsyncGenerator[bytes, None]:
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE and not _answered(error):
                self._lost()
                raise Unavailable("the bulk read process stopped during this stream (the server starts another): "
                                  "call again", reason=BULK_READ_INTERRUPTED) from None
            raise RelayedStatus.of(error) from None
        finally:
            call.cancel()  # a no-op once the stream is over; stops the child's when the caller went

    def _start_soon(self) -> None:
        if self._starting is not None or time.monotonic() < self._next_start:
            return
        if self._process is not None:
            self._lost()
        self._next_start = time.monotonic() + self._delay
        self._starting = asyncio.get_running_loop().create_task(self._start())

    def _lost(self) -> None:
        process, self._process = self._process, None
        self._get_history = self._stream_history = None
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()  # it no longer answers: a new one will
            log.warning("the bulk read process (pid %s) is gone: history pages are built in the server until "
                        "it is started again", process.pid)
        if self._channel is not None:
            asyncio.get_running_loop().create_task(self._channel.close())
            self._channel = None

    async def _start(self) -> None:
        try:
            # Private (0700) and short: a Unix socket path has at most 107 bytes. tempfile falls back
            # to the working directory when no temporary directory is writable.
            self._directory = self._directory or tempfile.mkdtemp(prefix="psc-bulk-")
            self._starts += 1
            path = os.path.join(self._directory, f"{self._starts}.sock")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pynenc_sidecar.bulk_reader", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE)
            self._process = process
            assert process.stdin is not None and process.stdout is not None
            level = logging.getLevelName(logging.getLogger("pynenc_sidecar").getEffectiveLevel())
            setup = pickle.dumps((self._settings, path, level))
            process.stdin.write(_LENGTH.pack(len(setup)) + setup)
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            if line != _READY:
                raise RuntimeError(f"it exited before serving (status {await process.wait()})")
            limit = max(self._settings.max_message_bytes, 64 * 1024 * 1024)
            self._channel = grpc.aio.insecure_channel(f"unix:{path}", options=[
                ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])
            self._get_history = self._channel.unary_unary(
                GET_HISTORY, request_serializer=sb.GetHistoryRequest.SerializeToString, response_deserializer=None)
            self._stream_history = self._channel.unary_stream(
                STREAM_HISTORY, request_serializer=sb.StreamHistoryInTimeRangeRequest.SerializeToString,
                response_deserializer=None)
            log.info("bulk read process %d serves history pages after the first (--bulk-read-process)", process.pid)
            self._delay = RESTART_DELAY_S
        except Exception as error:  # the server goes on building pages itself
            log.warning("cannot start the bulk read process: %s; history pages are built in the server, and it is "
                        "tried again in %.0fs (it needs a writable temporary directory with a short path, TMPDIR; "
                        "--bulk-read-process off stops trying)", error, self._delay)
            self._delay = min(self._delay * 2, RESTART_DELAY_MAX_S)
            await self._stop_process()
        finally:
            self._starting = None

    async def close(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        self._get_history = self._stream_history = None
        await self._stop_process()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # its signal to stop
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()


def _answered(error: grpc.aio.AioRpcError) -> bool:
    """Whether the child's servicer sent this error (every one it sends has google.rpc details),
    rather than the connection to it failing."""
    return any(key == "grpc-status-details-bin" for key, _ in error.trailing_metadata() or ())


# --- the child process -----------------------------------------------------------------


def _read_setup() -> tuple[ServerSettings, str, str]:
    stream = sys.stdin.buffer
    header = stream.read(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    # Written by the server that started this process, through a pipe only the two share.
    settings, path, level = pickle.loads(stream.read(length))  # noqa: S301
    return settings, path, level


async def _serve_child(settings: ServerSettings, path: str) -> None:
    from pynenc_sidecar.server import open_stores
    from pynenc_sidecar.service.bulk import BulkReads
    from pynenc_sidecar.service.state_backend import register_state_backend
    from pynenc_sidecar.service.wire import MalformedRequestInterceptor
    from pynenc_sidecar.state_backend_engine import StateBackendEngine

    stores = await open_stores(settings)
    limit = max(settings.max_message_bytes, 64 * 1024 * 1024)
    server = grpc.aio.server(interceptors=[MalformedRequestInterceptor()], options=[
        ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])
    register_state_backend(server, StateBackendEngine(stores.state_backend), settings.limits,
                           BulkReads(settings.max_concurrent_bulk_reads, settings.max_queued_bulk_reads))
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def watch_parent() -> None:  # stdin closes when the server closes it or is gone, however it went
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    sys.stdout.buffer.write(_READY)
    sys.stdout.flush()
    os.dup2(2, 1)  # nobody reads that pipe from now on: anything printed goes to the log instead
    try:
        await stop.wait()
    finally:
        await server.stop(1)
        await stores.close()
        with contextlib.suppress(OSError):
            os.unlink(path)


def main() -> int:
    # Ctrl-C, and a stop signal sent to the whole group (systemd, killpg), reach this process
    # too: the server decides when it stops, after the calls it forwarded have been answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICE)
    settings, path, level = _read_setup()
    from pynenc_sidecar import logs

    logs.configure(level)
    try:
        asyncio.run(_serve_child(settings, path))
    except Exception as error:  # the server logs that it could not start this process, and why
        log.error("bulk read process cannot serve on %s: %s", path, error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
