"""A worker serving task ids for dispatched calls (docs/client-contract.md, "Dispatch").

It long-polls the sidecar for invocations of the tasks it serves, never asking for more than
its free slots, and runs each under its lease as a caller runs a task inline (renewed while
it runs, its outcome recorded). Graceful shutdown: stop polling, let running invocations
finish for `shutdown_grace` seconds, hand the rest back (ReleaseTask) for another worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import grpc

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk.context import RunContext, WorkflowIdentity, WorkflowLog
from pynenc_sidecar_sdk.errors import SidecarError, from_rpc_error
from pynenc_sidecar_sdk.runner import duration, run_leased

if TYPE_CHECKING:
    from pynenc_sidecar_sdk.app import Pynenc, Task

log = logging.getLogger(__name__)
POLL_TIMEOUT_S = 30.0  # the contract's default long poll (tests/vectors/client_contract.json)
SHUTDOWN_GRACE_S = 30.0
RETRY_PAUSE_S = 1.0  # after a failed poll (the sidecar unreachable past the channel's retries)


class Worker:
    """Serves `tasks` (Task objects or task ids of the app's tasks; default: all of them).

    concurrency: invocations run at once (threads); poll_timeout: seconds one long poll
    waits; shutdown_grace: seconds stop() lets running invocations finish before handing
    them back; worker_id: recorded on the leases (default py-<pid>-<random>)."""

    def __init__(self, app: Pynenc, tasks: Iterable[Task | str] | None = None, *, concurrency: int = 4,
                 poll_timeout: float = POLL_TIMEOUT_S, shutdown_grace: float = SHUTDOWN_GRACE_S,
                 worker_id: str | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        chosen = list(app.tasks.values()) if tasks is None else [
            app.tasks[t] if isinstance(t, str) else t for t in tasks]
        if not chosen:
            raise ValueError("a worker serves at least one task: define tasks with @app.task first")
        self.tasks: dict[str, Task] = {task.task_id: task for task in chosen}
        self.concurrency = concurrency
        self.poll_timeout = poll_timeout
        self.shutdown_grace = shutdown_grace
        self.worker_id = worker_id or f"py-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.completed = 0  # invocations this worker ran to an outcome
        self._slots = threading.Semaphore(concurrency)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._held: dict[str, tuple[de.DispatchedTask, RunContext | None]] = {}
        self._poll: grpc.Future[de.PollTasksResponse] | None = None  # the long poll in flight (stop cancels it)
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> Worker:
        """Poll in a background thread; returns at once."""
        self._thread = threading.Thread(target=self._poll_loop, name=f"worker-{self.worker_id}", daemon=True)
        self._thread.start()
        return self

    def run(self, handle_signals: bool = True) -> None:
        """Poll until stop() (or SIGTERM/SIGINT with handle_signals), then shut down gracefully."""
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stopping.set())
        self.start()
        self._stopping.wait()
        self.stop()

    def stop(self, grace: float | None = None) -> None:
        """Stop taking work; let running invocations finish for `grace` seconds (default
        shutdown_grace), then hand back what is still running."""
        self._stopping.set()
        poll = self._poll
        if poll is not None:
            poll.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        # Every slot free again means every invocation finished.
        acquired = 0
        deadline = threading.Event()
        timer = threading.Timer(self.shutdown_grace if grace is None else grace, deadline.set)
        timer.start()
        while acquired < self.concurrency and not deadline.is_set():
            if self._slots.acquire(timeout=0.05):
                acquired += 1
        timer.cancel()
        with self._lock:
            left = list(self._held.values())
        for dispatched, run in left:
            self._hand_back(dispatched, run)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- polling -------------------------------------------------------------------
    def _poll_loop(self) -> None:
        app = self.app
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.1):  # at least one free slot before asking for work
                continue
            free = 1
            while free < self.concurrency and self._slots.acquire(blocking=False):
                free += 1
            try:
                tasks = self._poll_once(free)
            except SidecarError as error:
                log.warning("worker %s could not poll %s: %s", self.worker_id, app.client.address, error)
                tasks = []
                self._stopping.wait(RETRY_PAUSE_S)
            for dispatched in tasks[:free]:
                if self._stopping.is_set():
                    self._hand_back(dispatched, None)
                    self._slots.release()
                    continue
                with self._lock:
                    self._held[dispatched.invocation.invocation_id] = (dispatched, None)
                # Daemon threads: a run handed back at shutdown does not keep the process alive.
                threading.Thread(target=self._run_one, args=(dispatched,), daemon=True,
                                 name=f"task-{dispatched.invocation.invocation_id[:8]}").start()
            for _ in range(free - min(len(tasks), free)):
                self._slots.release()

    def _poll_once(self, free: int) -> list[de.DispatchedTask]:
        app = self.app
        request = de.PollTasksRequest(app_id=app.app_id, task_ids=list(self.tasks), worker_id=self.worker_id,
                                      max_tasks=free, lease_ttl=duration(app.lease_ttl),
                                      timeout=duration(self.poll_timeout))
        self._poll = app.client.executor.PollTasks.future(request, timeout=self.poll_timeout + 10)
        if self._stopping.is_set():
            self._poll.cancel()
        try:
            return list(self._poll.result().tasks)
        except grpc.FutureCancelledError:
            return []
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.CANCELLED:
                return []
            raise from_rpc_error(error) from None
        finally:
            self._poll = None

    # --- running -------------------------------------------------------------------
    def _run_one(self, dispatched: de.DispatchedTask) -> None:
        invocation = dispatched.invocation
        try:
            task = self.tasks[invocation.task_id]
            run = RunContext(self.app, WorkflowIdentity.from_proto(invocation.workflow), invocation.invocation_id,
                             WorkflowLog())  # recorded positions of a redelivered run replay from the sidecar
            with self._lock:
                self._held[invocation.invocation_id] = (dispatched, run)
            final = run_leased(run, dispatched.lease.lease_id, task.func, (), json.loads(invocation.arguments_json),
                               task.task_id)
            with self._lock:
                self.completed += 1
            log.debug("worker %s: %s %s", self.worker_id, invocation.task_id, final.status)
        except SidecarError as error:  # a lost lease, a cancellation, an unreachable sidecar
            log.warning("worker %s: %s (invocation %s) left unfinished: %s", self.worker_id, invocation.task_id,
                        invocation.invocation_id, error)
        except Exception:  # never lose the slot
            log.exception("worker %s: running %s failed", self.worker_id, invocation.invocation_id)
        finally:
            with self._lock:
                self._held.pop(invocation.invocation_id, None)
            self._slots.release()

    def _hand_back(self, dispatched: de.DispatchedTask, run: RunContext | None) -> None:
        invocation = dispatched.invocation
        if run is not None:
            run.lease_lost.set()  # its next workflow operation stops it
        try:
            self.app.client.call(self.app.client.executor.ReleaseTask, de.ReleaseTaskRequest(
                app_id=self.app.app_id, invocation_id=invocation.invocation_id, lease_id=dispatched.lease.lease_id))
            log.warning("worker %s handed %s (invocation %s) back: shutting down", self.worker_id,
                        invocation.task_id, invocation.invocation_id)
        except SidecarError as error:  # finished meanwhile, or already someone else's
            log.info("worker %s: no need to hand back %s: %s", self.worker_id, invocation.invocation_id, error)
