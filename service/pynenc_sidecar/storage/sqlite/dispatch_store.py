"""Dispatched tasks on SQLite: two tables in the store's file, each step one transaction.

Tables:
    dispatch       (app, invocation) -> policy, attempt, queued/started times, last error
    dispatch_queue (app, task_id, invocation) -> available_us
A task row deleted (purge, retention) takes its dispatch row with it (a trigger); a queue
entry whose task is gone is dropped by the next poll that meets it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from pynenc_sidecar.core.dispatch import DispatchPolicy, DispatchState
from pynenc_sidecar.core.tasks import REGISTERED, RETRY, RUNNING, TaskState
from pynenc_sidecar.storage.interface import (
    EXPIRED,
    FINISHED,
    GRANTED,
    LEASED,
    MISSING,
    NOT_DISPATCHED,
    RELEASED_LEASE,
    ClaimResult,
    LeaseNotHeld,
    LeaseRequest,
    QueuedEntry,
    TaskNotFound,
)
from pynenc_sidecar.storage.sqlite.executor_store import SqliteStore

T = TypeVar("T")

SCHEMA = ["""
CREATE TABLE IF NOT EXISTS dispatch (
    app TEXT NOT NULL, invocation TEXT NOT NULL, policy TEXT NOT NULL, schedule_to_start_us INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0, queued_us INTEGER NOT NULL DEFAULT 0,
    started_us INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    PRIMARY KEY (app, invocation)) WITHOUT ROWID""", """
CREATE TABLE IF NOT EXISTS dispatch_queue (
    app TEXT NOT NULL, task_id TEXT NOT NULL, invocation TEXT NOT NULL, available_us INTEGER NOT NULL,
    PRIMARY KEY (app, task_id, invocation)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS dispatch_queue_ready ON dispatch_queue (app, task_id, available_us)", """
CREATE TRIGGER IF NOT EXISTS dispatch_follows_task AFTER DELETE ON tasks BEGIN
    DELETE FROM dispatch WHERE app = old.app AND invocation = old.invocation;
END"""]


def _create_tables(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA:  # in the step's transaction: DDL is transactional in SQLite
        conn.execute(statement)


_COLUMNS = "policy, attempt, queued_us, started_us, last_error"


class SqliteDispatchStore:
    """Implements storage.dispatch_base.DispatchStore in a SqliteStore's file."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        store.connection.add_schema(_create_tables)  # idempotent: any process may be first

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        return await self.store.connection.run(fn, write=write)

    @staticmethod
    def _dispatch(conn: sqlite3.Connection, app_id: str, invocation_id: str) -> DispatchState | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM dispatch WHERE app=? AND invocation=?",
                           (app_id, invocation_id)).fetchone()
        if row is None:
            return None
        policy, attempt, queued_us, started_us, last_error = row
        return DispatchState(DispatchPolicy.decode(policy), attempt, queued_us, started_us, last_error)

    def _states(self, conn: sqlite3.Connection, app_id: str, invocation_id: str
                ) -> tuple[TaskState, DispatchState | None] | None:
        task = self.store.load_task(conn, app_id, invocation_id)
        return None if task is None else (task, self._dispatch(conn, app_id, invocation_id))

    def _update(self, conn: sqlite3.Connection, table: str, app_id: str, invocation_id: str, **values: Any) -> None:
        columns = ", ".join(f"{name}=?" for name in values)
        conn.execute(f"UPDATE {table} SET {columns} WHERE app=? AND invocation=?",
                     (*values.values(), app_id, invocation_id))

    async def register(self, app_id: str, state: TaskState, policy: DispatchPolicy, now_us: int
                       ) -> tuple[TaskState, DispatchState]:
        def step(conn: sqlite3.Connection) -> tuple[TaskState, DispatchState]:
            d = state.definition()
            conn.execute("INSERT INTO tasks (app, invocation, task_id, args, wf, parent, status) VALUES (?,?,?,?,?,?,?)"
                         " ON CONFLICT (app, invocation) DO NOTHING",
                         (app_id, state.invocation_id, d["task_id"], d["args"], d["wf"], d["parent"], int(d["status"])))
            conn.execute("INSERT INTO dispatch (app, invocation, policy, schedule_to_start_us, queued_us)"
                         " VALUES (?,?,?,?,?) ON CONFLICT (app, invocation) DO NOTHING",
                         (app_id, state.invocation_id, policy.encode(), policy.schedule_to_start_us, now_us))
            states = self._states(conn, app_id, state.invocation_id)
            assert states is not None and states[1] is not None
            return states[0], states[1]

        return await self._run(step, write=True)

    async def get(self, app_id: str, invocation_id: str) -> tuple[TaskState, DispatchState | None] | None:
        return await self._run(lambda conn: self._states(conn, app_id, invocation_id), write=False)

    async def claim(self, app_id: str, invocation_id: str, lease: LeaseRequest, now_us: int) -> ClaimResult:
        def step(conn: sqlite3.Connection) -> ClaimResult:
            states = self._states(conn, app_id, invocation_id)
            if states is None:
                return ClaimResult(MISSING)
            task, dispatch = states
            if dispatch is None:
                return ClaimResult(NOT_DISPATCHED)
            if task.finished:
                return ClaimResult(FINISHED, task, dispatch)
            store_now = self.store.clock_us()
            if task.lease_expire_us > store_now:
                return ClaimResult(LEASED, task, dispatch)
            attempt = dispatch.attempt
            if task.status != RUNNING:  # a fresh start, not a redelivery
                if dispatch.queued_us and dispatch.queued_us + dispatch.policy.schedule_to_start_us < now_us:
                    return ClaimResult(EXPIRED, task, dispatch)
                attempt += 1
            self._update(conn, "tasks", app_id, invocation_id, lease_id=lease.lease_id,
                         lease_exp=store_now + lease.ttl_us, runner=lease.runner_id, status=RUNNING)
            self._update(conn, "dispatch", app_id, invocation_id, attempt=attempt, queued_us=0, started_us=now_us)
            states = self._states(conn, app_id, invocation_id)
            assert states is not None
            return ClaimResult(GRANTED, *states)

        return await self._run(step, write=True)

    async def requeue(self, app_id: str, invocation_id: str, lease_id: str, available_us: int,
                      last_error_json: str | None) -> tuple[TaskState, DispatchState] | None:
        def step(conn: sqlite3.Connection) -> tuple[TaskState, DispatchState] | None:
            states = self._states(conn, app_id, invocation_id)
            if states is None:
                raise TaskNotFound(invocation_id)
            task, dispatch = states
            if task.finished:
                return None
            if dispatch is None or task.lease_id != lease_id:
                raise LeaseNotHeld(invocation_id)
            if last_error_json is not None:
                status, attempt = RETRY, dispatch.attempt
            else:
                status, attempt = REGISTERED, max(dispatch.attempt - 1, 0)
            # The lease id becomes a tombstone: the previous holder's late outcome is refused.
            self._update(conn, "tasks", app_id, invocation_id, lease_id=RELEASED_LEASE, lease_exp=0, status=status)
            self._update(conn, "dispatch", app_id, invocation_id, queued_us=available_us, attempt=attempt,
                         last_error=last_error_json if last_error_json is not None else dispatch.last_error_json)
            states = self._states(conn, app_id, invocation_id)
            assert states is not None and states[1] is not None
            return states[0], states[1]

        return await self._run(step, write=True)

    # --- queues -------------------------------------------------------------------
    async def queue_push(self, app_id: str, task_id: str, invocation_id: str, available_us: int, *,
                         keep_existing: bool) -> None:
        conflict = "DO NOTHING" if keep_existing else "DO UPDATE SET available_us=excluded.available_us"
        await self._run(lambda conn: conn.execute(
            f"INSERT INTO dispatch_queue VALUES (?,?,?,?) ON CONFLICT (app, task_id, invocation) {conflict}",
            (app_id, task_id, invocation_id, available_us)), write=True)

    async def queue_ready(self, app_id: str, task_id: str, now_us: int, limit: int) -> list[str]:
        return await self._run(lambda conn: [row[0] for row in conn.execute(
            "SELECT invocation FROM dispatch_queue WHERE app=? AND task_id=? AND available_us<=?"
            " ORDER BY available_us LIMIT ?", (app_id, task_id, now_us, limit))], write=False)

    async def queue_defer(self, app_id: str, task_id: str, invocation_id: str, until_us: int) -> None:
        await self._run(lambda conn: conn.execute(
            "UPDATE dispatch_queue SET available_us=? WHERE app=? AND task_id=? AND invocation=?",
            (until_us, app_id, task_id, invocation_id)), write=True)

    async def queue_remove(self, app_id: str, task_id: str, invocation_id: str) -> None:
        await self._run(lambda conn: conn.execute(
            "DELETE FROM dispatch_queue WHERE app=? AND task_id=? AND invocation=?",
            (app_id, task_id, invocation_id)), write=True)

    async def queued(self, app_id: str) -> list[QueuedEntry]:
        return await self._run(lambda conn: [QueuedEntry(*row) for row in conn.execute(
            "SELECT task_id, invocation, available_us FROM dispatch_queue WHERE app=?"
            " ORDER BY task_id, available_us", (app_id,))], write=False)
