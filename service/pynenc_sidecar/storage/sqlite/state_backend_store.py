"""Pynenc's StateBackend in the embedded SQLite file (the StateBackendStore interface).

It shares the SqliteStore's file, connection and worker thread, so both see one database:
workflow data is SqliteStore's `data` table and workflow runs its `runs` table (what the
deterministic executor writes, this lists, and the other way round), and every call is one
transaction on that thread. Writes take the write lock up front (BEGIN IMMEDIATE), so
read-modify-write steps stay atomic even with several processes on one file.

Tables (besides SqliteStore's ops, data, tasks, runs):
    sb_apps        (app)                  -> app info payload (discovery lists all apps)
    sb_invocations (app, invocation)      -> workflow_id, workflow_type, parent, payload, parent_event
    sb_history     seq (arrival order)    -> app, invocation, ts_us, payload, digest
    sb_history_payloads (app, digest)     -> payload: a history payload stored once
    sb_history_refs     (app, digest)     -> how many history entries name it
    sb_results     (app, invocation)      -> result JSON
    sb_exceptions  (app, invocation)      -> exception payload
    sb_dvalues     (app, workflow, key)   -> deterministic value, first writer wins
    sb_subs        (app, workflow, invocation)
    sb_runners     (app, runner)          -> runner context payload
    sb_projected   (app, invocation, event)  history entries projected from the executor, each once

A history entry names its payload by SHA-256 (sb_history.digest, its payload column empty):
one AddHistory for 1,000 invocations stores its execution context once, with sb_history_refs
counting the entries that name it (a table of its own: SQLite rewrites a whole row on
UPDATE, so a count beside the payload would rewrite the payload at every entry);
purge_workflow lowers the count of the entries it deletes and deletes a payload none names
any more. Rows written before that hold the payload inline
(digest NULL) and are read as they are.

Every table of the file keys its rows by an `app` column: purge_app deletes the app's rows
from each such table, so the executor's state goes with it, as on Redis.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from pynenc_sidecar.core.task_rules import run_prefix, tasks_of_workflow
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.storage.history import first_sightings, payload_digest
from pynenc_sidecar.storage.interface import (
    Cursor,
    HistoryCursor,
    HistoryRecord,
    InvocationRecord,
    ProjectedInvocation,
    PurgeCounts,
)
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore

T = TypeVar("T")

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS sb_apps (app TEXT PRIMARY KEY, payload TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS sb_invocations (
        app TEXT NOT NULL, invocation TEXT NOT NULL, workflow_id TEXT NOT NULL, workflow_type TEXT NOT NULL,
        parent TEXT NOT NULL, payload TEXT NOT NULL, parent_event TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (app, invocation))""",
    "CREATE INDEX IF NOT EXISTS sb_invocations_by_parent ON sb_invocations (app, parent, invocation)",
    "CREATE INDEX IF NOT EXISTS sb_invocations_by_workflow ON sb_invocations (app, workflow_id, invocation)",
    "CREATE INDEX IF NOT EXISTS sb_invocations_by_type ON sb_invocations (app, workflow_type, invocation)",
    # Added with ListInvocationsByParentEvent; _install_schema adds the column to older files.
    "CREATE INDEX IF NOT EXISTS sb_invocations_by_event ON sb_invocations (app, parent_event, invocation)",
    """CREATE TABLE IF NOT EXISTS sb_history (
        seq INTEGER PRIMARY KEY, app TEXT NOT NULL, invocation TEXT NOT NULL, ts_us INTEGER NOT NULL,
        payload TEXT NOT NULL, digest BLOB)""",
    "CREATE INDEX IF NOT EXISTS sb_history_by_time ON sb_history (app, ts_us, seq)",
    # _install_schema adds sb_history.digest to older files first.
    """CREATE TABLE IF NOT EXISTS sb_history_payloads (
        app TEXT NOT NULL, digest BLOB NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (app, digest))""",
    """CREATE TABLE IF NOT EXISTS sb_history_refs (
        app TEXT NOT NULL, digest BLOB NOT NULL, refs INTEGER NOT NULL, PRIMARY KEY (app, digest)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS sb_history_by_invocation ON sb_history (app, invocation, ts_us, seq)",
    """CREATE TABLE IF NOT EXISTS sb_results (
        app TEXT NOT NULL, invocation TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (app, invocation))""",
    """CREATE TABLE IF NOT EXISTS sb_exceptions (
        app TEXT NOT NULL, invocation TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (app, invocation))""",
    """CREATE TABLE IF NOT EXISTS sb_dvalues (
        app TEXT NOT NULL, workflow TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (app, workflow, key))""",
    """CREATE TABLE IF NOT EXISTS sb_subs (
        app TEXT NOT NULL, workflow TEXT NOT NULL, invocation TEXT NOT NULL,
        PRIMARY KEY (app, workflow, invocation)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS sb_runners (
        app TEXT NOT NULL, runner TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (app, runner))""",
    """CREATE TABLE IF NOT EXISTS sb_projected (
        app TEXT NOT NULL, invocation TEXT NOT NULL, event TEXT NOT NULL,
        PRIMARY KEY (app, invocation, event)) WITHOUT ROWID""",
    # Runs of all types, oldest first (SqliteStore indexes runs by type only).
    "CREATE INDEX IF NOT EXISTS sb_runs_by_time ON runs (app, first_us, run)",
]


def _column(rows: list[tuple[str]]) -> list[str]:
    return [row[0] for row in rows]


# A history entry's payload: its own (rows from before payloads were stored once) or the
# stored one its digest names.
_PAYLOAD = "CASE WHEN h.digest IS NULL THEN h.payload ELSE p.payload END"
_PAYLOAD_JOIN = "LEFT JOIN sb_history_payloads p ON p.app = h.app AND p.digest = h.digest"


def _insert_history(conn: sqlite3.Connection, app_id: str, invocation_ids: list[str], timestamp_us: int,
                    payload: str) -> None:
    """One entry per id, naming the payload stored once (its count raised by as many)."""
    digest = payload_digest(payload)
    conn.execute("INSERT INTO sb_history_payloads VALUES (?,?,?) ON CONFLICT DO NOTHING", (app_id, digest, payload))
    conn.execute("INSERT INTO sb_history_refs VALUES (?,?,?) ON CONFLICT (app, digest) DO UPDATE SET"
                 " refs = refs + excluded.refs", (app_id, digest, len(invocation_ids)))
    conn.executemany("INSERT INTO sb_history (app, invocation, ts_us, payload, digest) VALUES (?,?,?,'',?)",
                     [(app_id, i, timestamp_us, digest) for i in invocation_ids])


def _drop_history(conn: sqlite3.Connection, app_id: str, invocation_id: str) -> Counter[str]:
    """Delete the invocation's history entries and the payloads no other entry names."""
    deleted: Counter[str] = Counter()
    named = conn.execute("SELECT digest, count(*) FROM sb_history WHERE app=? AND invocation=? AND digest IS NOT NULL"
                         " GROUP BY digest", (app_id, invocation_id)).fetchall()
    if not named:
        return deleted + Counter(sb_history=conn.execute("DELETE FROM sb_history WHERE app=? AND invocation=?",
                                                         (app_id, invocation_id)).rowcount)
    conn.executemany("UPDATE sb_history_refs SET refs = refs - ? WHERE app=? AND digest=?",
                     [(count, app_id, digest) for digest, count in named])
    unnamed = [(digest,) for digest, _ in named if conn.execute(
        "SELECT refs FROM sb_history_refs WHERE app=? AND digest=?", (app_id, digest)).fetchone()[0] <= 0]
    conn.executemany("DELETE FROM sb_history_refs WHERE app=? AND digest=?", [(app_id, d) for (d,) in unnamed])
    deleted["sb_history_refs"] += len(unnamed)
    deleted["sb_history_payloads"] += conn.executemany(
        "DELETE FROM sb_history_payloads WHERE app=? AND digest=?", [(app_id, d) for (d,) in unnamed]).rowcount
    deleted["sb_history"] += conn.execute("DELETE FROM sb_history WHERE app=? AND invocation=?",
                                          (app_id, invocation_id)).rowcount
    return deleted


def _install_schema(conn: sqlite3.Connection) -> None:
    """The tables of this store, columns added to older files first; one write transaction,
    so two processes opening one old file cannot both add a column."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA:
            if "sb_history_payloads" in statement:
                columns = _column(conn.execute("SELECT name FROM pragma_table_info('sb_history')").fetchall())
                if "digest" not in columns:
                    conn.execute("ALTER TABLE sb_history ADD COLUMN digest BLOB")
            if "sb_invocations_by_event" in statement:
                columns = _column(conn.execute("SELECT name FROM pragma_table_info('sb_invocations')").fetchall())
                if "parent_event" not in columns:
                    conn.execute("ALTER TABLE sb_invocations ADD COLUMN parent_event TEXT NOT NULL DEFAULT ''")
            conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


class SqliteStateBackendStore:
    """Implements storage.interface.StateBackendStore on a SqliteStore's file."""

    purge_unit = "rows"  # what PurgeCounts.entries counts

    def __init__(self, store: SqliteStore) -> None:
        # The executor store's file: its connection, worker thread and tables (data, runs,
        # written through its public methods).
        self.executor_store = store
        self.connection = store.connection
        self.connection.add_schema(_install_schema)

    async def open(self) -> None:
        """Open the file and create the tables now (they are also created on first use)."""
        await self._run(lambda conn: None, write=True)

    async def close(self) -> None:
        """Nothing to do: the connection belongs to the SqliteStore."""

    # --- plumbing --------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        return await self.connection.run(fn, write=write)

    async def _value(self, sql: str, params: tuple[object, ...]) -> str | None:
        row = await self._run(lambda conn: conn.execute(sql, params).fetchone(), write=False)
        return None if row is None else row[0]

    async def _id_page(self, table: str, column: str, where: str, params: tuple[object, ...], limit: int | None,
                       after: str | None) -> list[str]:
        """Sorted `column` values of the rows matching `where`, the first `limit` after `after`."""
        sql = f"SELECT {column} FROM {table} WHERE {where}"
        if after is not None:
            sql += f" AND {column} > ?"
            params += (after,)
        sql += f" ORDER BY {column} LIMIT ?"
        return _column(await self._run(lambda conn: conn.execute(sql, params + (-1 if limit is None else limit,))
                                       .fetchall(), write=False))

    # --- app -------------------------------------------------------------------------
    # A purge is one transaction counting what it deletes, by table. Its preview runs the
    # very same transaction and rolls it back: it counts exactly what the purge would delete.
    async def purge_app(self, app_id: str, *, keep_app_info: bool = False) -> int:
        return sum((await self._run(lambda conn: _purge_app(conn, app_id, keep_app_info), write=True)).values())

    async def purge_app_preview(self, app_id: str) -> PurgeCounts:
        return _counts(await self._rolled_back(lambda conn: _purge_app(conn, app_id)))

    async def purge_workflow(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None) -> int:
        # `runs` is not needed: runs of the workflow are a key range.
        return sum((await self._run(lambda conn: _purge_workflow(conn, app_id, workflow_id), write=True)).values())

    async def purge_workflow_preview(self, app_id: str, workflow_id: str, runs: list[WorkflowRef] | None = None
                                     ) -> PurgeCounts:
        return _counts(await self._rolled_back(lambda conn: _purge_workflow(conn, app_id, workflow_id)))

    async def _rolled_back(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.connection.run(fn, write=True, commit=False)

    async def store_app_info(self, app_id: str, payload: str) -> None:
        await self._run(lambda conn: conn.execute(
            "INSERT INTO sb_apps VALUES (?,?) ON CONFLICT (app) DO UPDATE SET payload=excluded.payload",
            (app_id, payload)), write=True)

    async def get_app_info(self, app_id: str) -> str | None:
        return await self._value("SELECT payload FROM sb_apps WHERE app=?", (app_id,))

    async def all_app_infos(self) -> dict[str, str]:
        return dict(await self._run(lambda conn: conn.execute("SELECT app, payload FROM sb_apps").fetchall(),
                                    write=False))

    async def app_infos_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        return await self._run(lambda conn: conn.execute(
            "SELECT app, payload FROM sb_apps WHERE app > ? ORDER BY app LIMIT ?",
            ("" if after is None else after, limit)).fetchall(), write=False)

    # --- invocations -----------------------------------------------------------------
    async def upsert_invocations(self, app_id: str, records: list[InvocationRecord]) -> None:
        latest = {r.invocation_id: r for r in records}  # the last of repeated ids wins

        def step(conn: sqlite3.Connection) -> None:
            # The indexes are columns of the row: replacing the row moves the invocation
            # out of its former parent's, workflow's and type's lists.
            conn.executemany(
                "INSERT INTO sb_invocations (app, invocation, workflow_id, workflow_type, parent, payload,"
                " parent_event) VALUES (?,?,?,?,?,?,?) ON CONFLICT (app, invocation) DO UPDATE SET"
                " workflow_id=excluded.workflow_id, workflow_type=excluded.workflow_type,"
                " parent=excluded.parent, payload=excluded.payload, parent_event=excluded.parent_event",
                [(app_id, r.invocation_id, r.workflow_id, r.workflow_type, r.parent_invocation_id, r.payload,
                  r.parent_event_id) for r in latest.values()],
            )

        await self._run(step, write=True)

    async def project_invocation(self, app_id: str, projected: ProjectedInvocation) -> int:
        record = projected.record
        invocation_id = record.invocation_id

        def step(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO sb_invocations (app, invocation, workflow_id, workflow_type, parent, payload,"
                " parent_event) VALUES (?,?,?,?,?,?,?) ON CONFLICT (app, invocation) DO UPDATE SET"
                " workflow_id=excluded.workflow_id, workflow_type=excluded.workflow_type,"
                " parent=excluded.parent, payload=excluded.payload, parent_event=excluded.parent_event",
                (app_id, invocation_id, record.workflow_id, record.workflow_type, record.parent_invocation_id,
                 record.payload, record.parent_event_id))
            if projected.sub_invocation_of:
                conn.execute("INSERT INTO sb_subs VALUES (?,?,?) ON CONFLICT DO NOTHING",
                             (app_id, projected.sub_invocation_of, invocation_id))
            if projected.result_json is not None:
                conn.execute("INSERT INTO sb_results VALUES (?,?,?) ON CONFLICT (app, invocation) DO UPDATE SET"
                             " value=excluded.value", (app_id, invocation_id, projected.result_json))
            if projected.exception is not None:
                conn.execute("INSERT INTO sb_exceptions VALUES (?,?,?) ON CONFLICT (app, invocation) DO UPDATE SET"
                             " payload=excluded.payload", (app_id, invocation_id, projected.exception))
            if projected.runner is not None:
                conn.execute(
                    "INSERT INTO sb_runners VALUES (?,?,?) ON CONFLICT DO NOTHING", (app_id, *projected.runner)
                )
            appended = 0
            for event in projected.events:
                if conn.execute("INSERT INTO sb_projected VALUES (?,?,?) ON CONFLICT DO NOTHING",
                                (app_id, invocation_id, event.event_id)).rowcount:
                    _insert_history(conn, app_id, [invocation_id], event.timestamp_us, event.payload)
                    appended += 1
            return appended

        return await self._run(step, write=True)

    async def get_invocation(self, app_id: str, invocation_id: str) -> InvocationRecord | None:
        row = await self._run(lambda conn: conn.execute(
            "SELECT payload, workflow_id, workflow_type, parent, parent_event FROM sb_invocations"
            " WHERE app=? AND invocation=?",
            (app_id, invocation_id)).fetchone(), write=False)
        return None if row is None else InvocationRecord(invocation_id, *row)

    async def child_invocations(self, app_id: str, parent_invocation_id: str, limit: int | None = None,
                                after: str | None = None) -> list[str]:
        if not parent_invocation_id:
            return []  # "" means "no parent", not a parent named ""
        return await self._id_page("sb_invocations", "invocation", "app=? AND parent=?",
                                   (app_id, parent_invocation_id), limit, after)

    async def invocations_by_parent_event(self, app_id: str, parent_event_id: str, limit: int | None = None,
                                          after: str | None = None) -> list[str]:
        if not parent_event_id:
            return []  # "" means "no parent event"
        return await self._id_page("sb_invocations", "invocation", "app=? AND parent_event=?",
                                   (app_id, parent_event_id), limit, after)

    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str,
                                         limit: int | None = None, after: str | None = None) -> list[str]:
        conditions = [
            (column, value)
            for column, value in (("workflow_id", workflow_id), ("workflow_type", workflow_type))
            if value
        ]
        if not conditions:
            return []
        where = " AND ".join(["app=?", *(f"{column}=?" for column, _ in conditions)])
        return await self._id_page("sb_invocations", "invocation", where, (app_id, *(v for _, v in conditions)),
                                   limit, after)

    # --- history ---------------------------------------------------------------------
    async def add_history(self, app_id: str, invocation_ids: list[str], timestamp_us: int, payload: str) -> None:
        ids = list(dict.fromkeys(invocation_ids))
        await self._run(lambda conn: _insert_history(conn, app_id, ids, timestamp_us, payload), write=True)

    async def get_history(self, app_id: str, invocation_id: str, limit: int | None = None,
                          after: HistoryCursor | None = None) -> list[HistoryRecord]:
        # Keyset from (time, seq); the cursor's rank is a hint for Redis only.
        last_ts, last_seq = (after[0], after[1]) if after else (-(2**63), -1)
        rows = await self._run(lambda conn: conn.execute(
            f"SELECT h.ts_us, h.seq, {_PAYLOAD} FROM sb_history h {_PAYLOAD_JOIN}"
            " WHERE h.app=? AND h.invocation=? AND (h.ts_us, h.seq) > (?, ?) ORDER BY h.ts_us, h.seq LIMIT ?",
            (app_id, invocation_id, last_ts, last_seq, -1 if limit is None else limit)).fetchall(), write=False)
        return [HistoryRecord(invocation_id, ts_us, payload, (ts_us, seq, 0)) for ts_us, seq, payload in rows]

    async def history_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                               ) -> AsyncIterator[list[HistoryRecord]]:
        # Keyset pages from the last (time, seq) seen: entries added meanwhile shift no
        # page, and no transaction stays open between pages.
        limit = max(1, batch_size)
        after: tuple[int, int] | None = None

        def page(after: tuple[int, int] | None) -> Callable[[sqlite3.Connection], list[tuple[Any, ...]]]:
            last_ts, last_seq = after if after else (start_us, -1)
            return lambda conn: conn.execute(
                f"SELECT h.ts_us, h.seq, h.invocation, {_PAYLOAD} FROM sb_history h {_PAYLOAD_JOIN}"
                " WHERE h.app=? AND h.ts_us<=? AND (h.ts_us, h.seq) > (?, ?) ORDER BY h.ts_us, h.seq LIMIT ?",
                (app_id, end_us, last_ts, last_seq, limit)).fetchall()

        while rows := await self._run(page(after), write=False):
            yield [HistoryRecord(invocation, ts_us, payload) for ts_us, _, invocation, payload in rows]
            if len(rows) < limit:
                return
            after = (rows[-1][0], rows[-1][1])

    def invocations_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                             ) -> AsyncIterator[list[str]]:
        return first_sightings(self.history_in_range(app_id, start_us, end_us, batch_size), batch_size)

    # --- results -----------------------------------------------------------------------
    async def _put(self, table: str, column: str, app_id: str, invocation_id: str, value: str) -> None:
        await self._run(lambda conn: conn.execute(
            f"INSERT INTO {table} VALUES (?,?,?) ON CONFLICT (app, invocation) "
            f"DO UPDATE SET {column}=excluded.{column}",
            (app_id, invocation_id, value)), write=True)

    async def set_result(self, app_id: str, invocation_id: str, result_json: str) -> None:
        await self._put("sb_results", "value", app_id, invocation_id, result_json)

    async def get_result(self, app_id: str, invocation_id: str) -> str | None:
        return await self._value("SELECT value FROM sb_results WHERE app=? AND invocation=?", (app_id, invocation_id))

    async def set_exception(self, app_id: str, invocation_id: str, payload: str) -> None:
        await self._put("sb_exceptions", "payload", app_id, invocation_id, payload)

    async def get_exception(self, app_id: str, invocation_id: str) -> str | None:
        return await self._value("SELECT payload FROM sb_exceptions WHERE app=? AND invocation=?",
                                 (app_id, invocation_id))

    # --- workflow data and deterministic values ----------------------------------------
    async def get_workflow_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.executor_store.get_data(app_id, workflow_id, key)

    async def set_workflow_data(self, app_id: str, workflow_id: str, key: str, value_json: str) -> None:
        await self.executor_store.set_data(app_id, workflow_id, key, value_json)

    async def get_deterministic_value(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self._value("SELECT value FROM sb_dvalues WHERE app=? AND workflow=? AND key=?",
                                 (app_id, workflow_id, key))

    async def set_deterministic_value(
        self, app_id: str, workflow_id: str, key: str, value_json: str
    ) -> tuple[str, bool]:
        """Store unless stored; return (stored value, replayed)."""
        def step(conn: sqlite3.Connection) -> tuple[str, bool]:
            created = conn.execute(
                "INSERT INTO sb_dvalues VALUES (?,?,?,?) ON CONFLICT (app, workflow, key) DO NOTHING",
                (app_id, workflow_id, key, value_json)).rowcount == 1
            (stored,) = conn.execute("SELECT value FROM sb_dvalues WHERE app=? AND workflow=? AND key=?",
                                     (app_id, workflow_id, key)).fetchone()
            return stored, not created

        return await self._run(step, write=True)

    # --- workflow runs -------------------------------------------------------------------
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
        # The executor's own call: one table of runs for both services.
        await self.executor_store.store_workflow_run(app_id, workflow, now_us)

    async def workflow_types(self, app_id: str, limit: int | None = None, after: str | None = None) -> list[str]:
        since = " AND workflow_type > ?" if after is not None else ""
        params = (app_id, *(() if after is None else (after,)), -1 if limit is None else limit)
        return _column(await self._run(lambda conn: conn.execute(
            f"SELECT DISTINCT workflow_type FROM runs WHERE app=?{since} ORDER BY workflow_type LIMIT ?",
            params).fetchall(), write=False))

    async def workflow_runs(self, app_id: str, workflow_type: str, page_size: int, after: Cursor | None
                            ) -> tuple[list[WorkflowRef], Cursor | None]:
        """One page of runs, oldest first, and the cursor of the next page (None on the last)."""
        by_type = " AND workflow_type=:type" if workflow_type else ""
        since = " AND (first_us, run) > (:after_us, :after_run)" if after else ""
        params = {"app": app_id, "type": workflow_type, "limit": page_size + 1,
                  "after_us": after[0] if after else 0, "after_run": after[1] if after else ""}
        # One more than asked, to know whether another page follows.
        rows = await self._run(lambda conn: conn.execute(
            f"SELECT first_us, run FROM runs WHERE app=:app{by_type}{since} ORDER BY first_us, run LIMIT :limit",
            params).fetchall(), write=False)
        page = rows[:page_size]
        cursor = (float(page[-1][0]), page[-1][1]) if len(rows) > page_size else None
        return [WorkflowRef.decode(run) for _, run in page], cursor

    async def store_sub_invocation(self, app_id: str, workflow_id: str, invocation_id: str) -> None:
        await self._run(lambda conn: conn.execute(
            "INSERT INTO sb_subs VALUES (?,?,?) ON CONFLICT DO NOTHING", (app_id, workflow_id, invocation_id)),
            write=True)

    async def sub_invocations(self, app_id: str, workflow_id: str, limit: int | None = None,
                              after: str | None = None) -> list[str]:
        return await self._id_page("sb_subs", "invocation", "app=? AND workflow=?", (app_id, workflow_id),
                                   limit, after)

    # --- runner contexts -------------------------------------------------------------------
    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None:
        await self._run(lambda conn: conn.execute(
            "INSERT INTO sb_runners VALUES (?,?,?) ON CONFLICT (app, runner) DO UPDATE SET payload=excluded.payload",
            (app_id, runner_id, payload)), write=True)

    async def get_runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str | None]:
        if not runner_ids:
            return []

        def read(conn: sqlite3.Connection) -> list[str | None]:
            out: list[str | None] = []
            for runner_id in runner_ids:
                row = conn.execute("SELECT payload FROM sb_runners WHERE app=? AND runner=?",
                                   (app_id, runner_id)).fetchone()
                out.append(None if row is None else row[0])
            return out

        return await self._run(read, write=False)

    async def search_runner_contexts(self, app_id: str, partial_id: str, limit: int, after: str | None = None
                                     ) -> tuple[list[tuple[str, str]], str | None]:
        # instr() is a literal, case-sensitive substring test: no LIKE wildcards to escape.
        rows = await self._run(lambda conn: conn.execute(
            "SELECT runner, payload FROM sb_runners WHERE app=? AND runner > ? AND instr(runner, ?) > 0"
            " ORDER BY runner LIMIT ?", (app_id, after or "", partial_id, limit + 1)).fetchall(), write=False)
        page = rows[:limit]
        return page, (page[-1][0] if len(rows) > limit else None)



def _counts(deleted: Counter[str]) -> PurgeCounts:
    return PurgeCounts(deleted["runs"], deleted["tasks"], sum(deleted.values()), SqliteStateBackendStore.purge_unit)


def _purge_app(conn: sqlite3.Connection, app_id: str, keep_app_info: bool = False) -> Counter[str]:
    tables = _column(conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall())
    deleted: Counter[str] = Counter()
    for table in tables:
        if keep_app_info and table == "sb_apps":
            continue
        quoted = '"' + table.replace('"', '""') + '"'
        if "app" in _column(conn.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()):
            deleted[table] += conn.execute(f"DELETE FROM {quoted} WHERE app=?", (app_id,)).rowcount
    return deleted


def _purge_workflow(conn: sqlite3.Connection, app_id: str, workflow_id: str) -> Counter[str]:
    task_ids = tasks_of_workflow(workflow_id, conn.execute(
        "SELECT field, value FROM ops WHERE app=? AND workflow=?", (app_id, workflow_id)))
    # The StateBackend invocations of the workflow, and any StateBackend state of its tasks.
    invocation_ids = sorted(set(_column(conn.execute(
        "SELECT invocation FROM sb_invocations WHERE app=? AND workflow_id=?", (app_id, workflow_id)
    ).fetchall())) | task_ids)
    deleted: Counter[str] = Counter()

    def delete(table: str, where: str, *params: object) -> None:
        deleted[table] += conn.execute(f"DELETE FROM {table} WHERE {where}", params).rowcount

    for table in ("ops", "data", "sb_dvalues", "sb_subs"):
        delete(table, "app=? AND workflow=?", app_id, workflow_id)
    for task_id in sorted(task_ids):
        delete("tasks", "app=? AND invocation=?", app_id, task_id)
    for invocation_id in invocation_ids:
        deleted += _drop_history(conn, app_id, invocation_id)
        for table in ("sb_results", "sb_exceptions", "sb_invocations", "sb_projected"):
            delete(table, "app=? AND invocation=?", app_id, invocation_id)
    # Every run of this workflow sorts in [prefix, prefix with its final ',' raised to '-').
    prefix = run_prefix(workflow_id)
    delete("runs", "app=? AND run >= ? AND run < ?", app_id, prefix, prefix[:-1] + "-")
    return deleted
