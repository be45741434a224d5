"""A pynenc-sidecar inside the test process, on an in-memory store, for fast tests.

    from pynenc_sidecar_sdk.testing import InProcessSidecar

    with InProcessSidecar() as sidecar:
        app = sidecar.app("my-app")          # a Pynenc app connected to it
        ...

The server is the real one (the same servicers, engine and embedded SQLite store as
`pynenc-sidecar serve`), run on its own thread and event loop and listening on a free
loopback port; only the store's file is replaced by SQLite's `:memory:` database, so nothing
is written to disk and every server starts empty. Needs the server distribution:
`pip install 'pynenc-sidecar-sdk[testing]'` (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc

from pynenc_sidecar_sdk.app import Pynenc

try:
    from pynenc_sidecar.server import MEMORY_DATA_FILE, ServerSettings, Stores, build_server
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("pynenc_sidecar_sdk.testing runs the server in-process: install the testing extra, "
                      "pip install 'pynenc-sidecar-sdk[testing]' (it brings the pynenc-sidecar server)") from exc

__all__ = ["InProcessSidecar"]

R = TypeVar("R")

START_TIMEOUT_S = 30.0


class InProcessSidecar:
    """One server on 127.0.0.1 and a free port; a context manager (or start()/stop())."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._settings = ServerSettings(host=host, port=port, data_file=MEMORY_DATA_FILE, grace_period_s=0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self._stores: Stores | None = None
        self._apps: list[Pynenc] = []
        self.port = 0

    @property
    def address(self) -> str:
        """host:port to give a client (Pynenc(address=...), PYNENC_SIDECAR_ADDRESS, other SDKs)."""
        if not self.port:
            raise RuntimeError("the in-process sidecar is not started: use `with InProcessSidecar() as s:`")
        return f"{self._settings.host}:{self.port}"

    def start(self) -> InProcessSidecar:
        if self._thread is not None:
            raise RuntimeError("this in-process sidecar is already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="pynenc-sidecar-testing", daemon=True)
        self._thread.start()
        try:
            self._server, self._stores, self.port = self._run(self._start())
        except BaseException:
            self._shut_loop()
            raise
        return self

    def stop(self) -> None:
        """Close the apps made by app(), stop the server, drop the in-memory store."""
        for app in self._apps:
            app.client.close()
        self._apps.clear()
        if self._loop is None:
            return
        try:
            if self._server is not None and self._stores is not None:
                self._run(self._stop())
        finally:
            self._server = self._stores = None
            self.port = 0
            self._shut_loop()

    def app(self, app_id: str = "pynenc", **options: Any) -> Pynenc:
        """A Pynenc app connected to this server (closed by stop())."""
        app = Pynenc(app_id, address=self.address, **options)
        self._apps.append(app)
        return app

    def __enter__(self) -> InProcessSidecar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the server's thread ---------------------------------------------------------------
    async def _start(self) -> tuple[grpc.aio.Server, Stores, int]:
        server, stores, _, port = await build_server(self._settings)
        await server.start()
        return server, stores, port

    async def _stop(self) -> None:
        assert self._server is not None and self._stores is not None
        await self._server.stop(self._settings.grace_period_s)
        await self._stores.close()

    def _run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(START_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _shut_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(START_TIMEOUT_S)
        loop.close()
