"""The state of one run of one invocation's code: its sequences and the recorded log.

The log is read once per workflow run (one streaming call); recorded positions are then
served locally, and only unrecorded ones reach the server. Recorded values never change,
so a snapshot can only be incomplete, never wrong.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk.errors import LeaseNotHeldError, OperationInGeneratorError

if TYPE_CHECKING:  # both import this module
    from pynenc_sidecar_sdk.app import Pynenc
    from pynenc_sidecar_sdk.workflow import DeterministicExecutor

Key = tuple[str, int, str, int]  # scope, kind, custom name, sequence


@dataclass(frozen=True)
class WorkflowIdentity:
    """As Pynenc's: the workflow id is its main task's invocation id."""

    workflow_id: str
    workflow_type: str = ""
    parent_workflow_id: str | None = None

    def to_proto(self) -> common_pb2.WorkflowIdentity:
        return common_pb2.WorkflowIdentity(
            workflow_id=self.workflow_id, workflow_type=self.workflow_type,
            parent_workflow_id=self.parent_workflow_id or "",
        )

    @classmethod
    def from_proto(cls, message: common_pb2.WorkflowIdentity) -> WorkflowIdentity:
        return cls(message.workflow_id, message.workflow_type, message.parent_workflow_id or None)


FLUSH_AT_OPERATIONS = 1000  # a run commits its buffer on its own at this size (client_contract.json)


@dataclass
class WorkflowLog:
    """A snapshot of a workflow's recorded operations and their tasks' states."""

    operations: dict[Key, de.RecordedOperation] = field(default_factory=dict)
    tasks: dict[str, de.TaskInvocation] = field(default_factory=dict)
    base_time_us: int = 0  # 0: none recorded

    def last_time_us(self) -> int:
        """The latest time the snapshot knows of (any scope's utc_now, the base time)."""
        times = [op.time_value.seconds * 1_000_000 + op.time_value.nanos // 1000
                 for op in self.operations.values() if op.kind == de.OPERATION_KIND_TIME]
        return max(times, default=self.base_time_us)

    @classmethod
    def from_batches(cls, batches: Iterable[de.GetWorkflowLogResponse]) -> WorkflowLog:
        """The log from GetWorkflowLog's messages (or StartWorkflowResponse.log.batches), in
        whatever order they list the operations."""
        operations: dict[Key, de.RecordedOperation] = {}
        tasks: dict[str, de.TaskInvocation] = {}
        base_time_us = 0
        for batch in batches:
            for op in batch.operations:
                operations[op.scope, op.kind, op.custom_name, op.sequence] = op
            for task in batch.tasks:
                tasks[task.invocation_id] = task
            if batch.HasField("base_time"):
                base_time_us = batch.base_time.seconds * 1_000_000 + batch.base_time.nanos // 1000
        return cls(operations, tasks, base_time_us)

    def get(self, key: Key) -> de.RecordedOperation | None:
        return self.operations.get(key)


@dataclass
class RunContext:
    """One run of one invocation's code inside a workflow."""

    app: Pynenc
    workflow: WorkflowIdentity
    invocation_id: str
    log: WorkflowLog
    counters: dict[tuple[int, str], int] = field(default_factory=dict)
    executor: DeterministicExecutor | None = None  # made at first use (workflow.py)
    # Set by the lease keeper when another worker took the task over: every later
    # operation of this run raises LeaseNotHeldError (Python cannot stop a thread).
    lease_lost: threading.Event = field(default_factory=threading.Event)
    generating: str = ""  # the custom operation whose generator runs now
    lease_id: str = ""  # this run's lease on its invocation: fences its commits
    # Operations whose values were computed here and not yet committed, in call order
    # (docs/client-contract.md, "One round trip per blocking point").
    pending: list[de.BufferedOperation] = field(default_factory=list)
    last_time_us: int | None = None  # the latest time this run knows of; None: not read from the log yet

    def buffer(self, operation: de.BufferedOperation) -> None:
        """Buffer an operation whose value the code gets now. At FLUSH_AT_OPERATIONS the buffer
        is committed; if that fails, the operation fails too (it leaves the buffer, and its
        caller gives its position back)."""
        self.pending.append(operation)
        if len(self.pending) >= FLUSH_AT_OPERATIONS:
            try:
                self.flush()
            except BaseException:
                self.pending.pop()
                raise

    def commit(self, workflow_id: str = "") -> de.OperationCommit | None:
        """The buffer as the OperationCommit of the next blocking call (None when empty). The
        buffer is kept until `committed()`: a call that failed leaves it to the next one."""
        if not self.pending:
            return None
        return de.OperationCommit(lease_id=self.lease_id, operations=self.pending, workflow_id=workflow_id)

    def committed(self) -> None:
        self.pending.clear()

    def flush(self) -> None:
        """Commit the buffer on its own (CommitOperations)."""
        commit = self.commit()
        if commit is None:
            return
        client = self.app.client
        client.call(client.executor.CommitOperations, de.CommitOperationsRequest(
            app_id=self.app.app_id, workflow_id=self.workflow.workflow_id, invocation_id=self.invocation_id,
            commit=commit))
        self.committed()

    def next_time_us(self, now_us: int) -> int:
        """A new utc_now: now, or 1 us after the latest time this run knows of."""
        last = self.last_time_us if self.last_time_us is not None else self.log.last_time_us()
        self.last_time_us = value = max(now_us, last + 1)
        return value

    def restart(self, log: WorkflowLog) -> None:
        """Run again from the top with a fresh log (after COMMIT_CONFLICT): counters at 0,
        the buffer dropped."""
        self.log, self.counters, self.pending, self.last_time_us = log, {}, [], None

    def _check_lease(self) -> None:
        if self.generating:
            raise OperationInGeneratorError(
                f"OPERATION_IN_GENERATOR: a workflow operation was called inside the generator of custom operation "
                f"{self.generating!r}; call it before the custom operation and use its value inside the generator")
        if self.lease_lost.is_set():
            raise LeaseNotHeldError(
                f"this worker lost its lease on invocation {self.invocation_id}: another worker took the task "
                "over, so this run stops at its next workflow operation", reason="LEASE_NOT_HELD")

    def next_sequence(self, kind: int, name: str = "") -> int:
        self._check_lease()
        key = (kind, name)
        self.counters[key] = sequence = self.counters.get(key, 0) + 1
        return sequence

    def give_back(self, kind: int, name: str, sequence: int) -> None:
        """After an operation at `sequence` failed: its position is free again, unless a later
        operation of the kind was called meanwhile (docs/client-contract.md, "Positions")."""
        if self.counters.get((kind, name)) == sequence:
            self.counters[kind, name] = sequence - 1

    @contextlib.contextmanager
    def giving_back(self, kind: int, name: str, sequence: int) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.give_back(kind, name, sequence)
            raise

    def next_recorded(self, kind: int, name: str = "") -> tuple[int, de.RecordedOperation | None]:
        """Take the next sequence of this operation: (sequence, the value the log holds there
        or None). The per-operation hot path of a replay: one call, two dict lookups."""
        if self.generating or self.lease_lost.is_set():
            self._check_lease()
        key = (kind, name)
        self.counters[key] = sequence = self.counters.get(key, 0) + 1
        return sequence, self.log.operations.get((self.invocation_id, kind, name, sequence))

    def count(self, kind: int, name: str = "") -> int:
        return self.counters.get((kind, name), 0)

    def position(self, sequence: int) -> de.OperationPosition:
        return de.OperationPosition(
            app_id=self.app.app_id, workflow=self.workflow.to_proto(),
            invocation_id=self.invocation_id, sequence=sequence,
        )

    def recorded(self, kind: int, name: str, sequence: int) -> de.RecordedOperation | None:
        return self.log.get((self.invocation_id, kind, name, sequence))


current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("pynenc_sidecar_run", default=None)


def require_run() -> RunContext:
    run = current_run.get()
    if run is None:
        raise RuntimeError("no workflow is running here: call wf methods from inside a task run by the sidecar SDK")
    return run
