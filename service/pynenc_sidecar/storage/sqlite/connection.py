"""The embedded store's one connection to its SQLite file, shared by both SQLite stores.

All sqlite3 work runs on one dedicated thread: calls are serialized there and the event loop
never blocks. Each call is one transaction; writes take the write lock up front (BEGIN
IMMEDIATE), so two processes sharing the file cannot both "win" a read-modify-write step.
WAL + synchronous=FULL: a write is on disk before its call returns. Each store adds the
tables it needs (add_schema); they are created on every connection opened, before its
first transaction, so a file lost and found again gets them too."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pynenc_sidecar.core.errors import Unavailable

T = TypeVar("T")

# Primary result codes meaning "the file cannot be used right now", not "the code is wrong".
_UNAVAILABLE_CODES = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL,
})

SchemaInstaller = Callable[[sqlite3.Connection], None]


class SqliteConnection:
    def __init__(self, path: str | Path, *, busy_timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._schemas: list[SchemaInstaller] = []
        # Touched only on the worker thread: the connection and how many schemas it has.
        self._conn: sqlite3.Connection | None = None
        self._installed = 0
        self._closed = False

    def add_schema(self, install: SchemaInstaller) -> None:
        """install(conn) runs on each connection opened (and on the open one, before its next
        call); it must be idempotent (CREATE ... IF NOT EXISTS, checked migrations)."""
        self._schemas.append(install)

    # --- worker thread ---------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        # Opened lazily, and again after a failed open, so the store recovers by itself
        # once the file becomes reachable.
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except BaseException:
                conn.close()
                raise
            self._conn, self._installed = conn, 0
        try:
            while self._installed < len(self._schemas):
                self._schemas[self._installed](self._conn)
                self._installed += 1
        except BaseException:
            self._drop_connection()
            raise
        return self._conn

    def _in_transaction(self, fn: Callable[[sqlite3.Connection], T], begin: str, commit: bool) -> T:
        try:
            conn = self._connection()
            conn.execute(begin)
            try:
                result = fn(conn)
                if isinstance(result, sqlite3.Cursor):
                    # A cursor must not leave this thread: freed on the event loop's thread,
                    # it resets its cached statement while this thread may be running that
                    # same statement for another call ("bad parameter or other API misuse").
                    result.close()
                    result = None  # type: ignore[assignment]  # a statement's cursor: no result
                if commit:  # else rolled back below
                    conn.execute("COMMIT")
                return result
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            code = exc.sqlite_errorcode & 0xFF
            if code not in _UNAVAILABLE_CODES:
                raise
            if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                self._drop_connection()  # e.g. the file went away: reopen on the next call
            raise Unavailable(f"sqlite unavailable: {exc}") from exc

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    # --- event loop ------------------------------------------------------------------
    async def run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool, commit: bool = True) -> T:
        """fn in one transaction on the worker thread; commit=False rolls it back (a preview)."""
        if self._closed:
            raise Unavailable("sqlite store is closed")
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._in_transaction, fn, begin,
                                                                commit)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._drop_connection)
        self._executor.shutdown(wait=True)
