"""The embedded store: one SQLite file, for a machine with no Redis.

Same semantics as the Redis store (tests/conformance runs both). Each method is one
transaction on the file's one connection and worker thread (connection.py: serialized, the
event loop never blocks, writes write-locked up front, on disk before the call returns).

Tables:
    ops   (app, workflow, field) -> value   recorded operations + "#" metadata fields
                                            ("#s:<field>": origin of a traced record, as on Redis)
    data  (app, workflow, key)   -> value   workflow user data, apart from ops
    tasks (app, invocation)      -> state   one row per task invocation (done_us: when it finished)
    runs  (app, run)             -> type, first store time
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from pynenc_sidecar.clock import Clock, host_clock_us
from pynenc_sidecar.core.commits import CommitEntry
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, DATA_NOT_FOUND, LAST_TIME_FIELD, ORIGIN_PREFIX, origin_field
from pynenc_sidecar.core.task_rules import completion_fenced, lease_grantable, renewal_held
from pynenc_sidecar.core.tasks import FAILED, FINAL_STATUSES, RETRY, RUNNING, TaskState, WorkflowRef
from pynenc_sidecar.storage.interface import (
    CommitConflict,
    LeaseNotHeld,
    LeaseRequest,
    Recorded,
    RunRecord,
    ScopeFinished,
    TaskNotFound,
    TaskProjection,
)
from pynenc_sidecar.storage.sqlite.connection import SqliteConnection

T = TypeVar("T")

# 2: tasks.done_us (files of version 1 get the column when first opened).
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS ops (
    app TEXT NOT NULL, workflow TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (app, workflow, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data (
    app TEXT NOT NULL, workflow TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (app, workflow, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    app TEXT NOT NULL, invocation TEXT NOT NULL,
    task_id TEXT NOT NULL, args TEXT NOT NULL, wf TEXT NOT NULL, parent TEXT NOT NULL,
    status INTEGER NOT NULL, result TEXT, error TEXT,
    lease_id TEXT NOT NULL DEFAULT '', lease_exp INTEGER NOT NULL DEFAULT 0, runner TEXT NOT NULL DEFAULT '',
    done_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app, invocation)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    app TEXT NOT NULL, run TEXT NOT NULL, workflow_type TEXT NOT NULL, first_us INTEGER NOT NULL,
    PRIMARY KEY (app, run)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_type ON runs (app, workflow_type, first_us);
"""


_TASK_COLUMNS = "task_id, args, wf, parent, status, result, error, lease_id, lease_exp, runner, done_us"

# Columns added after version 1: (table, column, declaration).
_ADDED_COLUMNS = [("tasks", "done_us", "INTEGER NOT NULL DEFAULT 0")]


def _task_state(invocation_id: str, row: tuple[Any, ...]) -> TaskState:
    task_id, args, wf, parent, status, result, error, lease_id, lease_exp, runner, done_us = row
    fields = {"task_id": task_id, "args": args, "wf": wf, "parent": parent, "status": str(status),
              "lease_id": lease_id, "lease_exp": str(lease_exp), "runner": runner, "done": str(done_us)}
    if result is not None:
        fields["result"] = result
    if error is not None:
        fields["error"] = error
    return TaskState.from_fields(invocation_id, fields)


class SqliteStore:
    """Implements storage.interface.Store on one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 2.0,
                 clock_us: Clock = host_clock_us) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        # Leases are measured on this clock, read inside the write transaction; the callers'
        # now_us (a replica's clock) is only what a finished task records.
        self.clock_us = clock_us
        # The file's one connection and worker thread, shared with the StateBackend store.
        self.connection = SqliteConnection(self.path, busy_timeout_s=busy_timeout_s)
        self.connection.add_schema(self._install_schema)

    # --- plumbing (worker thread) ----------------------------------------------------
    @classmethod
    def _install_schema(cls, conn: sqlite3.Connection) -> None:
        conn.executescript(SCHEMA)
        cls._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring a file of an older version up to SCHEMA_VERSION. Write-locked, so two
        processes opening one old file cannot both add a column."""
        if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, column, declaration in _ADDED_COLUMNS:
                if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        return await self.connection.run(fn, write=write)

    async def ping(self) -> bool:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone(), write=False)
        return True

    async def close(self) -> None:
        await self.connection.close()

    # --- recorded operations ---------------------------------------------------------
    @staticmethod
    def _get_op(conn: sqlite3.Connection, app_id: str, workflow_id: str, field: str) -> str | None:
        row = conn.execute(
            "SELECT value FROM ops WHERE app=? AND workflow=? AND field=?", (app_id, workflow_id, field)
        ).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _put_op(
        conn: sqlite3.Connection, app_id: str, workflow_id: str, field: str, value: str, *, replace: bool = True
    ) -> None:
        conflict = "DO UPDATE SET value=excluded.value" if replace else "DO NOTHING"
        conn.execute(
            f"INSERT INTO ops VALUES (?,?,?,?) ON CONFLICT (app, workflow, field) {conflict}",
            (app_id, workflow_id, field, value),
        )

    @staticmethod
    def _count_up(conn: sqlite3.Connection, app_id: str, workflow_id: str, count_field: str) -> None:
        conn.execute(
            "INSERT INTO ops VALUES (?,?,?,'1') ON CONFLICT (app, workflow, field)"
            " DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
            (app_id, workflow_id, count_field),
        )

    def _replayed(self, conn: sqlite3.Connection, app_id: str, workflow_id: str, field: str, value: Any,
                  origin: str | None) -> Recorded:
        stored_origin = (self._get_op(conn, app_id, workflow_id, origin_field(field)) or "") if origin else ""
        return Recorded(value, True, stored_origin)

    @staticmethod
    def _check_guard(conn: sqlite3.Connection, app_id: str, guard: str | None) -> None:
        """ScopeFinished when the guard invocation is finished (in the write's transaction)."""
        if not guard:
            return
        row = conn.execute("SELECT status FROM tasks WHERE app=? AND invocation=?", (app_id, guard)).fetchone()
        if row is not None and row[0] in FINAL_STATUSES:
            raise ScopeFinished(row[0])

    def _put_record(self, conn: sqlite3.Connection, app_id: str, workflow_id: str, field: str, count_field: str,
                    value: str, origin: str | None) -> None:
        self._put_op(conn, app_id, workflow_id, field, value)
        if origin:
            self._put_op(conn, app_id, workflow_id, origin_field(field), origin)
        self._count_up(conn, app_id, workflow_id, count_field)

    async def record(
        self, app_id: str, workflow_id: str, field: str, count_field: str, value: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        def step(conn: sqlite3.Connection) -> Recorded:
            existing = self._get_op(conn, app_id, workflow_id, field)
            if existing is not None:
                return self._replayed(conn, app_id, workflow_id, field, existing, origin)
            self._check_guard(conn, app_id, guard)
            self._put_record(conn, app_id, workflow_id, field, count_field, value, origin)
            return Recorded(value, False)

        return await self._run(step, write=True)

    async def _data_step(self, app_id: str, workflow_id: str, field: str, count_field: str, key: str,
                         value: str | None, origin: str | None, guard: str | None) -> Recorded:
        """A data read (value None) or write at field, recorded in the same transaction."""
        def step(conn: sqlite3.Connection) -> Recorded:
            existing = self._get_op(conn, app_id, workflow_id, field)
            if existing is not None:
                return self._replayed(conn, app_id, workflow_id, field, existing, origin)
            self._check_guard(conn, app_id, guard)
            if value is None:
                recorded = self._read_data(conn, app_id, workflow_id, key)
                recorded = DATA_NOT_FOUND if recorded is None else recorded
            else:
                self._write_data(conn, app_id, workflow_id, key, value)
                recorded = value
            self._put_record(conn, app_id, workflow_id, field, count_field, recorded, origin)
            return Recorded(recorded, False)

        return await self._run(step, write=True)

    async def record_data_read(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        return await self._data_step(app_id, workflow_id, field, count_field, key, None, origin, guard)

    async def record_data_write(
        self, app_id: str, workflow_id: str, field: str, count_field: str, key: str, value: str,
        origin: str | None = None, guard: str | None = None,
    ) -> Recorded:
        return await self._data_step(app_id, workflow_id, field, count_field, key, value, origin, guard)

    async def record_time(
        self, app_id: str, workflow_id: str, field: str, count_field: str, now_us: int, origin: str | None = None,
        guard: str | None = None,
    ) -> Recorded:
        def step(conn: sqlite3.Connection) -> Recorded:
            existing = self._get_op(conn, app_id, workflow_id, field)
            if existing is not None:
                return self._replayed(conn, app_id, workflow_id, field, int(existing), origin)
            self._check_guard(conn, app_id, guard)
            last = self._get_op(conn, app_id, workflow_id, LAST_TIME_FIELD)
            recorded = max(now_us, int(last) + 1) if last is not None else now_us
            self._put_op(conn, app_id, workflow_id, field, str(recorded))
            self._put_op(conn, app_id, workflow_id, LAST_TIME_FIELD, str(recorded))
            self._put_op(conn, app_id, workflow_id, BASE_TIME_FIELD, str(recorded), replace=False)
            if origin:
                self._put_op(conn, app_id, workflow_id, origin_field(field), origin)
            self._count_up(conn, app_id, workflow_id, count_field)
            return Recorded(recorded, False)

        return await self._run(step, write=True)

    async def commit(
        self, app_id: str, workflow_id: str, scope: str, lease_id: str, entries: list[CommitEntry],
        origin: str | None = None,
    ) -> list[bool]:
        def step(conn: sqlite3.Connection) -> list[bool]:
            row = conn.execute("SELECT status, lease_id FROM tasks WHERE app=? AND invocation=?",
                               (app_id, scope)).fetchone()
            if row is None:
                raise TaskNotFound(scope)
            if row[1] != lease_id:
                raise LeaseNotHeld(scope)
            new: list[bool] = []
            for index, e in enumerate(entries):
                stored = self._get_op(conn, app_id, workflow_id, e.field)
                if stored is not None and stored != e.value:
                    raise CommitConflict(index, stored)
                new.append(stored is None)
            if any(new) and row[0] in FINAL_STATUSES:
                raise ScopeFinished(row[0], new.index(True))
            for e, is_new in zip(entries, new):
                if not is_new:
                    continue
                self._put_record(conn, app_id, workflow_id, e.field, e.count_field, e.value, origin)
                if e.is_time:
                    last = self._get_op(conn, app_id, workflow_id, LAST_TIME_FIELD)
                    if last is None or int(e.value) > int(last):
                        self._put_op(conn, app_id, workflow_id, LAST_TIME_FIELD, e.value)
                    self._put_op(conn, app_id, workflow_id, BASE_TIME_FIELD, e.value, replace=False)
                elif e.data_key is not None:
                    self._write_data(conn, app_id, workflow_id, e.data_key, e.value)
            return new

        return await self._run(step, write=True)

    async def get_origins(self, app_id: str, workflow_id: str, fields: list[str]) -> list[str | None]:
        if not fields:
            return []
        return await self._run(
            lambda conn: [self._get_op(conn, app_id, workflow_id, origin_field(f)) for f in fields], write=False
        )

    async def base_time(self, app_id: str, workflow_id: str, now_us: int) -> tuple[int, bool]:
        def step(conn: sqlite3.Connection) -> tuple[int, bool]:
            existing = self._get_op(conn, app_id, workflow_id, BASE_TIME_FIELD)
            if existing is not None:
                return int(existing), True
            self._put_op(conn, app_id, workflow_id, BASE_TIME_FIELD, str(now_us))
            # Later utc_now() values must come after time zero.
            self._put_op(conn, app_id, workflow_id, LAST_TIME_FIELD, str(now_us), replace=False)
            return now_us, False

        return await self._run(step, write=True)

    async def get_recorded(self, app_id: str, workflow_id: str, field: str) -> str | None:
        return await self._run(lambda conn: self._get_op(conn, app_id, workflow_id, field), write=False)

    async def get_count(self, app_id: str, workflow_id: str, count_field: str) -> int:
        value = await self._run(lambda conn: self._get_op(conn, app_id, workflow_id, count_field), write=False)
        return int(value or 0)

    @staticmethod
    def _log_page(app_id: str, workflow_id: str, after: str | None, limit: int
                  ) -> Callable[[sqlite3.Connection], list[tuple[str, str, str | None]]]:
        """Up to `limit` (field, value, origin) rows after the field `after`, by field. Origin
        fields are not paged: each comes joined to its value's row."""
        return lambda conn: conn.execute(
            "SELECT o.field, o.value, s.value FROM ops o LEFT JOIN ops s"
            " ON s.app=o.app AND s.workflow=o.workflow AND s.field=:prefix || o.field"
            " WHERE o.app=:app AND o.workflow=:wf AND (:after IS NULL OR o.field>:after)"
            " AND substr(o.field, 1, length(:prefix)) <> :prefix"
            " ORDER BY o.field LIMIT :limit",
            {"app": app_id, "wf": workflow_id, "after": after, "limit": limit, "prefix": ORIGIN_PREFIX},
        ).fetchall()

    @staticmethod
    def _log_chunk(rows: list[tuple[str, str, str | None]]) -> dict[str, str]:
        chunk = {field: value for field, value, _ in rows}
        chunk.update((origin_field(field), origin) for field, _, origin in rows if origin is not None)
        return chunk

    async def scan_log(self, app_id: str, workflow_id: str, batch_size: int) -> AsyncIterator[dict[str, str]]:
        # Keyset pages: each field present for the whole scan comes back exactly once,
        # and no transaction stays open between batches.
        limit = max(1, batch_size)
        after: str | None = None
        while True:
            rows = await self._run(self._log_page(app_id, workflow_id, after, limit), write=False)
            if rows:
                yield self._log_chunk(rows)
            if len(rows) < limit:
                return
            after = rows[-1][0]

    async def read_log(self, app_id: str, workflow_id: str, max_fields: int) -> dict[str, str] | None:
        limit = max(1, max_fields)
        rows = await self._run(self._log_page(app_id, workflow_id, None, limit + 1), write=False)
        return None if len(rows) > limit else self._log_chunk(rows)

    # --- workflow data ---------------------------------------------------------------
    @staticmethod
    def _read_data(conn: sqlite3.Connection, app_id: str, workflow_id: str, key: str) -> str | None:
        row = conn.execute(
            "SELECT value FROM data WHERE app=? AND workflow=? AND key=?", (app_id, workflow_id, key)
        ).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _write_data(conn: sqlite3.Connection, app_id: str, workflow_id: str, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO data VALUES (?,?,?,?) ON CONFLICT (app, workflow, key) DO UPDATE SET value=excluded.value",
            (app_id, workflow_id, key, value),
        )

    async def get_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self._run(lambda conn: self._read_data(conn, app_id, workflow_id, key), write=False)

    async def set_data(self, app_id: str, workflow_id: str, key: str, value: str) -> None:
        await self._run(lambda conn: self._write_data(conn, app_id, workflow_id, key, value), write=True)

    # --- tasks -----------------------------------------------------------------------
    @staticmethod
    def load_task(conn: sqlite3.Connection, app_id: str, invocation_id: str) -> TaskState | None:
        row = conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE app=? AND invocation=?", (app_id, invocation_id)
        ).fetchone()
        return None if row is None else _task_state(invocation_id, row)

    def _require_task(self, conn: sqlite3.Connection, app_id: str, invocation_id: str) -> TaskState:
        state = self.load_task(conn, app_id, invocation_id)
        if state is None:
            raise TaskNotFound(invocation_id)
        return state

    def _try_lease(self, conn: sqlite3.Connection, app_id: str, state: TaskState, lease: LeaseRequest | None) -> bool:
        now_us = self.clock_us()
        if lease is None or not lease_grantable(state, lease.lease_id, now_us):
            return False
        conn.execute(
            "UPDATE tasks SET lease_id=?, lease_exp=?, runner=?, status=? WHERE app=? AND invocation=?",
            (lease.lease_id, now_us + lease.ttl_us, lease.runner_id, RUNNING, app_id, state.invocation_id),
        )
        return True

    # The projection (TaskProjection) is left to the caller: on an embedded store its own
    # transaction costs no round trip.
    async def ensure_task(
        self, app_id: str, state: TaskState, lease: LeaseRequest | None, now_us: int, *, index_run: bool = False,
        projection: TaskProjection | None = None,
    ) -> tuple[TaskState, bool, bool]:
        def step(conn: sqlite3.Connection) -> tuple[TaskState, bool, bool]:
            current = self.load_task(conn, app_id, state.invocation_id)
            created = current is None
            if current is None:
                d = state.definition()
                conn.execute(
                    "INSERT INTO tasks (app, invocation, task_id, args, wf, parent, status) VALUES (?,?,?,?,?,?,?)",
                    (app_id, state.invocation_id, d["task_id"], d["args"], d["wf"], d["parent"], int(d["status"])),
                )
                current = self._require_task(conn, app_id, state.invocation_id)
            if index_run:  # in the task's transaction: a call cut short leaves both or neither
                self._index_run(conn, app_id, state.workflow, now_us)
            granted = self._try_lease(conn, app_id, current, lease)
            return self._require_task(conn, app_id, state.invocation_id), granted, created

        return await self._run(step, write=True)

    async def acquire_lease(
        self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int
    ) -> tuple[TaskState, bool]:
        def step(conn: sqlite3.Connection) -> tuple[TaskState, bool]:
            granted = self._try_lease(conn, app_id, self._require_task(conn, app_id, invocation_id), lease)
            return self._require_task(conn, app_id, invocation_id), granted

        return await self._run(step, write=True)

    async def get_task(self, app_id: str, invocation_id: str) -> TaskState | None:
        return await self._run(lambda conn: self.load_task(conn, app_id, invocation_id), write=False)

    async def get_tasks(self, app_id: str, invocation_ids: list[str]) -> list[TaskState | None]:
        if not invocation_ids:
            return []
        return await self._run(
            lambda conn: [self.load_task(conn, app_id, i) for i in invocation_ids], write=False
        )

    async def renew_lease(self, app_id: str, invocation_id: str, lease_id: str, ttl_us: int, now_us: int) -> int:
        def step(conn: sqlite3.Connection) -> int:
            state = self._require_task(conn, app_id, invocation_id)
            if not renewal_held(state, lease_id):
                raise LeaseNotHeld(invocation_id)
            expire_us = self.clock_us() + ttl_us
            conn.execute(
                "UPDATE tasks SET lease_exp=? WHERE app=? AND invocation=?", (expire_us, app_id, invocation_id)
            )
            return expire_us

        return await self._run(step, write=True)

    async def complete_task(
        self, app_id: str, invocation_id: str, lease_id: str, status: int, result_json: str | None,
        error_json: str | None, now_us: int, *, projection: TaskProjection | None = None,
    ) -> tuple[TaskState, bool]:
        def step(conn: sqlite3.Connection) -> tuple[TaskState, bool]:
            state = self._require_task(conn, app_id, invocation_id)
            if state.finished:
                return state, False
            if completion_fenced(state, lease_id):
                raise LeaseNotHeld(invocation_id)
            # As in Redis: a result, or else an error ("" when none was given).
            column, value = ("result", result_json) if result_json is not None else ("error", error_json or "")
            conn.execute(
                f"UPDATE tasks SET status=?, lease_exp=0, done_us=?, {column}=? WHERE app=? AND invocation=?",
                (status, now_us, value, app_id, invocation_id),
            )
            return self._require_task(conn, app_id, invocation_id), True

        return await self._run(step, write=True)

    async def retry_failed(self, app_id: str, invocation_ids: list[str]) -> list[TaskState]:
        def step(conn: sqlite3.Connection) -> list[TaskState]:  # one transaction: all or nothing
            reset = []
            for invocation_id in invocation_ids:
                changed = conn.execute(
                    "UPDATE tasks SET status=?, error=NULL, lease_id='', lease_exp=0, done_us=0"
                    " WHERE app=? AND invocation=? AND status=?", (RETRY, app_id, invocation_id, FAILED)).rowcount
                if changed:
                    reset.append(self._require_task(conn, app_id, invocation_id))
            return reset

        return await self._run(step, write=True)

    # --- workflow runs ---------------------------------------------------------------
    @staticmethod
    def _index_run(conn: sqlite3.Connection, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        conn.execute("INSERT INTO runs VALUES (?,?,?,?) ON CONFLICT (app, run) DO NOTHING",
                     (app_id, workflow.encode(), workflow.workflow_type, now_us))

    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        await self._run(lambda conn: self._index_run(conn, app_id, workflow, now_us), write=True)

    async def index_unindexed_runs(self, now_us: int) -> list[tuple[str, WorkflowRef]]:
        # Found by a read, then indexed in one short write that checks again, so the sweep
        # never holds the write lock for a scan of every task.
        def find(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
            return conn.execute(
                "SELECT app, wf, done_us FROM tasks t WHERE json_extract(wf, '$[0]') = invocation"
                " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.app = t.app AND r.run = t.wf)").fetchall()

        def index(conn: sqlite3.Connection) -> list[tuple[str, WorkflowRef]]:
            indexed = []
            for app_id, wf, done_us in found:
                workflow = WorkflowRef.decode(wf)
                inserted = conn.execute(
                    "INSERT INTO runs SELECT app, wf, ?, ? FROM tasks WHERE app=? AND invocation=? AND wf=?"
                    " ON CONFLICT (app, run) DO NOTHING",
                    (workflow.workflow_type, done_us or now_us, app_id, workflow.workflow_id, wf)).rowcount
                if inserted:
                    indexed.append((app_id, workflow))
            return indexed

        found = await self._run(find, write=False)
        return await self._run(index, write=True) if found else []

    # --- reads for the operator's tools ----------------------------------------------
    async def scan_runs(self, app_id: str, workflow_type: str = "", until_us: int | None = None,
                        batch_size: int = 500) -> AsyncIterator[list[RunRecord]]:
        by_type = " AND workflow_type=:type" if workflow_type else ""
        limit = max(1, batch_size)

        def page(after: tuple[int, str] | None) -> Callable[[sqlite3.Connection], list[tuple[int, str]]]:
            since = " AND (first_us, run) > (:after_us, :after_run)" if after else ""
            params = {"app": app_id, "type": workflow_type, "until": until_us, "limit": limit,
                      "after_us": after[0] if after else 0, "after_run": after[1] if after else ""}
            return lambda conn: conn.execute(
                f"SELECT first_us, run FROM runs WHERE app=:app{by_type}{since}"
                " AND (:until IS NULL OR first_us <= :until) ORDER BY first_us, run LIMIT :limit",
                params).fetchall()

        after: tuple[int, str] | None = None
        while rows := await self._run(page(after), write=False):
            yield [RunRecord(WorkflowRef.decode(run), first_us) for first_us, run in rows]
            if len(rows) < limit:
                return
            after = rows[-1]

    async def app_ids(self) -> list[str]:
        rows = await self._run(lambda conn: conn.execute("SELECT DISTINCT app FROM runs ORDER BY app").fetchall(),
                               write=False)
        return [app for (app,) in rows]

    async def run_started(self, app_id: str, workflow: WorkflowRef) -> int | None:
        row = await self._run(lambda conn: conn.execute(
            "SELECT first_us FROM runs WHERE app=? AND run=?", (app_id, workflow.encode())).fetchone(), write=False)
        return None if row is None else row[0]

    async def workflow_data(self, app_id: str, workflow_id: str) -> dict[str, str]:
        return dict(await self._run(lambda conn: conn.execute(
            "SELECT key, value FROM data WHERE app=? AND workflow=?", (app_id, workflow_id)).fetchall(), write=False))

