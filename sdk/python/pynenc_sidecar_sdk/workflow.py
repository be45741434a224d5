"""`task.wf`: Pynenc's WorkflowContext and DeterministicExecutor, served by the sidecar."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk import derivations, tracing
from pynenc_sidecar_sdk.context import RunContext, WorkflowIdentity, WorkflowLog, require_run
from pynenc_sidecar_sdk.errors import NondeterministicReplayError, WorkflowAccessError
from pynenc_sidecar_sdk.invocation import Invocation
from pynenc_sidecar_sdk.runner import FINAL, drive, duration, run_leased

if TYPE_CHECKING:  # app.py and dispatch.py import this module
    from pynenc_sidecar_sdk.app import Pynenc, Task
    from pynenc_sidecar_sdk.client import SidecarClient
    from pynenc_sidecar_sdk.dispatch import RemoteTask
    from pynenc_sidecar_sdk.tracing import SpanHook

T = TypeVar("T")
RANDOM, TIME, UUID, TASK, CUSTOM = (de.OPERATION_KIND_RANDOM, de.OPERATION_KIND_TIME, de.OPERATION_KIND_UUID,
                                    de.OPERATION_KIND_TASK, de.OPERATION_KIND_CUSTOM)
DATA_READ, DATA_WRITE = de.OPERATION_KIND_DATA_READ, de.OPERATION_KIND_DATA_WRITE


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _utc(timestamp: timestamp_pb2.Timestamp) -> datetime.datetime:
    """timestamp.ToDatetime(tzinfo=datetime.UTC), several times faster (nanos are >= 0, so
    flooring them to microseconds truncates as ToDatetime does)."""
    return _EPOCH + datetime.timedelta(seconds=timestamp.seconds, microseconds=timestamp.nanos // 1000)


# How each built-in value is read from a log entry, and made anew (value, buffered operation).
def _logged_random(op: de.RecordedOperation) -> float:
    return op.random_value


def _logged_time(op: de.RecordedOperation) -> datetime.datetime:
    return _utc(op.time_value)


def _logged_uuid(op: de.RecordedOperation) -> str:
    return op.uuid_value


def _new_random(run: RunContext, sequence: int) -> tuple[float, de.BufferedOperation]:
    value = derivations.random_value(run.invocation_id, sequence)
    return value, de.BufferedOperation(kind=RANDOM, sequence=sequence, random_value=value)


def _new_uuid(run: RunContext, sequence: int) -> tuple[str, de.BufferedOperation]:
    value = derivations.uuid_value(run.invocation_id, sequence)
    return value, de.BufferedOperation(kind=UUID, sequence=sequence, uuid_value=value)


def _new_time(run: RunContext, sequence: int) -> tuple[datetime.datetime, de.BufferedOperation]:
    us = run.next_time_us(time.time_ns() // 1000)
    stamp = timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)
    return (_EPOCH + datetime.timedelta(microseconds=us),
            de.BufferedOperation(kind=TIME, sequence=sequence, time_value=stamp))


class DeterministicExecutor:
    """Deterministic operations of the running invocation (Pynenc's class of the same name)."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    @property
    def _client(self) -> SidecarClient:
        return self.run.app.client

    # Each operation first looks in the run's log: a recorded value is served from there
    # without a call. With tracing off (tracing.tracer() is None) that path does nothing else.
    def _deterministic_operation(self, operation: str, generator: Callable[[], T]) -> T:
        """A custom recorded operation: the generator runs only if the log holds nothing at its
        position; its value is buffered and committed with the run's next blocking call."""
        run = self.run
        sequence, recorded = run.next_recorded(CUSTOM, operation)
        if recorded is not None and tracing.tracer() is None:
            replayed: T = json.loads(recorded.json_value)  # what the generator returned, through JSON
            return replayed
        with run.giving_back(CUSTOM, operation, sequence), \
                tracing.operation_span(run, "custom", sequence, name=operation, recorded=recorded) as span:
            if recorded is not None:
                replayed = json.loads(recorded.json_value)
                return replayed
            run.generating = operation
            try:
                value_json = json.dumps(generator())
            finally:
                run.generating = ""
            run.buffer(de.BufferedOperation(kind=CUSTOM, custom_name=operation, sequence=sequence,
                                            json_value=value_json))
            span.replayed(False)
            value: T = json.loads(value_json)  # as a replay will return it (a tuple comes back a list)
            return value

    def _builtin(self, kind: int, name: str, from_log: Callable[[de.RecordedOperation], T],
                 compute: Callable[[RunContext, int], tuple[T, de.BufferedOperation]]) -> T:
        """random/utc_now/uuid: the logged value if any, else computed here and buffered."""
        run = self.run
        sequence, recorded = run.next_recorded(kind)
        if recorded is not None and tracing.tracer() is None:
            return from_log(recorded)
        with run.giving_back(kind, "", sequence), \
                tracing.operation_span(run, name, sequence, recorded=recorded) as span:
            if recorded is not None:
                return from_log(recorded)
            value, operation = compute(run, sequence)
            run.buffer(operation)
            span.replayed(False)
            return value

    def random(self) -> float:
        return self._builtin(RANDOM, "random", _logged_random, _new_random)

    def utc_now(self) -> datetime.datetime:
        return self._builtin(TIME, "time", _logged_time, _new_time)

    def uuid(self) -> str:
        return self._builtin(UUID, "uuid", _logged_uuid, _new_uuid)

    def get_base_time(self) -> datetime.datetime:
        self.run.flush()  # a buffered utc_now fixes the base time: commit it first
        reply = self._client.call(self._client.executor.GetBaseTime, de.GetBaseTimeRequest(
            app_id=self.run.app.app_id, workflow_id=self.run.workflow.workflow_id))
        return _utc(reply.base_time)

    def get_operation_count(self, operation: str) -> int:
        """How many operations of this kind this run has performed (as Pynenc's executor)."""
        kinds = {"random": RANDOM, "time": TIME, "uuid": UUID, "task": TASK}
        if operation in kinds:
            return self.run.count(kinds[operation])
        return self.run.count(CUSTOM, operation)

    def execute_task(self, task: Task | RemoteTask, *args: Any, **kwargs: Any) -> Invocation:
        """Run a task at the next task position, or return the recorded invocation on replay."""
        run = self.run
        sequence, recorded = run.next_recorded(TASK)
        arguments = task.arguments(args, kwargs)
        if recorded is not None:
            call = recorded.task_value
            state = run.log.tasks.get(call.invocation_id)
            same_call = call.task_id == task.task_id and json.loads(call.arguments_json) == arguments
            if same_call and state is not None and state.status in FINAL:
                with tracing.operation_span(run, "task", sequence, task_id=task.task_id, recorded=recorded):
                    return Invocation(state, replayed=True)
        with run.giving_back(TASK, "", sequence), \
                tracing.operation_span(run, "task", sequence, task_id=task.task_id, recorded=recorded) as span:
            return self._execute_task(run, sequence, task, arguments, args, kwargs, span)

    def _execute_task(self, run: RunContext, sequence: int, task: Task | RemoteTask, arguments: dict[str, Any],
                      args: tuple[Any, ...], kwargs: dict[str, Any], span: SpanHook) -> Invocation:
        app = run.app
        # The buffer goes with this call: the task starts only once everything before it is recorded.
        request = de.ExecuteTaskRequest(
            position=run.position(sequence), task_id=task.task_id, arguments_json=json.dumps(arguments),
            force_new_workflow=task.force_new_workflow, runner_id=app.runner_id, lease_ttl=duration(app.lease_ttl),
            commit=run.commit())
        if task.dispatch is not None:  # a worker serving task_id runs it; this run waits for it
            request.dispatch.CopyFrom(task.dispatch.to_proto())
        reply = app.client.call(app.client.executor.ExecuteTask, request)
        run.committed()
        span.replayed(reply.replayed)
        invocation, lease_id = reply.invocation, reply.lease.lease_id if reply.HasField("lease") else ""

        def run_child(invocation: de.TaskInvocation, lease_id: str) -> de.TaskInvocation:
            child_workflow = WorkflowIdentity.from_proto(invocation.workflow)
            log = run.log if child_workflow.workflow_id == run.workflow.workflow_id else app.read_log(child_workflow)
            child = RunContext(app, child_workflow, invocation.invocation_id, log)
            return run_leased(child, lease_id, task.func, args, kwargs, task.task_id)

        return Invocation(drive(app, invocation, lease_id, run_child), replayed=reply.replayed)


class WorkflowContext:
    """`task.wf`: the workflow context of the invocation running now."""

    def __init__(self, task: Task) -> None:
        self.task = task

    @property
    def _run(self) -> RunContext:
        return require_run()

    @property
    def deterministic(self) -> DeterministicExecutor:
        run = self._run
        if run.executor is None:  # one per run, not one per operation
            run.executor = DeterministicExecutor(run)
        return run.executor

    @property
    def app(self) -> Pynenc:
        return self.task.app

    @property
    def identity(self) -> WorkflowIdentity:
        return self._run.workflow

    # Data reads and writes are recorded steps (a sequence per key): a replay returns what
    # the read returned the first time and does not write again, served from the log.
    def get_data(self, key: str, default: Any = None) -> Any:
        """The value of a workflow data key (default when it has none), as this position
        read it the first time."""
        run = self._run
        sequence, recorded = run.next_recorded(DATA_READ, key)
        if recorded is not None and tracing.tracer() is None:
            read: Any = recorded.data_value
        else:
            with run.giving_back(DATA_READ, key, sequence), \
                    tracing.operation_span(run, "data_read", sequence, name=key, recorded=recorded) as span:
                if recorded is None:  # with the buffer: the read sees this run's own writes
                    read = run.app.client.call(run.app.client.executor.GetData, de.GetDataRequest(
                        key=key, position=run.position(sequence), commit=run.commit()))
                    run.committed()
                    span.replayed(read.replayed)
                else:
                    read = recorded.data_value
        return json.loads(read.value_json) if read.found else default

    def set_data(self, key: str, value: Any) -> None:
        """Only the workflow's main task may write; others get WorkflowAccessError. The write is
        buffered and applied with the run's next blocking call. A replayed write is not
        applied again; a replay writing another value raises NondeterministicReplayError."""
        run = self._run
        value_json = json.dumps(value)
        if run.invocation_id != run.workflow.workflow_id:
            raise WorkflowAccessError(
                f"invocation {run.invocation_id!r} is not the main task of workflow {run.workflow.workflow_id!r}: "
                "only the workflow's main task may write its data", grpc.StatusCode.PERMISSION_DENIED,
                "WORKFLOW_ACCESS_DENIED", {"workflow_id": run.workflow.workflow_id, "invocation_id": run.invocation_id})
        sequence, recorded = run.next_recorded(DATA_WRITE, key)
        with run.giving_back(DATA_WRITE, key, sequence), \
                tracing.operation_span(run, "data_write", sequence, name=key, recorded=recorded) as span:
            if recorded is None:
                run.buffer(de.BufferedOperation(kind=DATA_WRITE, custom_name=key, sequence=sequence,
                                                json_value=value_json))
                span.replayed(False)
            elif recorded.data_value.value_json != value_json and not _same_json(recorded.data_value.value_json,
                                                                                    value_json):
                raise NondeterministicReplayError(
                    f"non-deterministic replay at data write {key!r} #{sequence} of invocation {run.invocation_id!r}: "
                    f"data key {key!r} was written {recorded.data_value.value_json[:256]} there, the replay writes "
                    f"{value_json[:256]}",
                    grpc.StatusCode.FAILED_PRECONDITION, "NONDETERMINISTIC_REPLAY",
                    {"workflow_id": run.workflow.workflow_id, "invocation_id": run.invocation_id, "key": key,
                     "sequence": str(sequence)})

    def random(self) -> float:
        return self.deterministic.random()

    def utc_now(self) -> datetime.datetime:
        return self.deterministic.utc_now()

    def uuid(self) -> str:
        return self.deterministic.uuid()

    def execute_task(self, task: Task | RemoteTask, *args: Any, **kwargs: Any) -> Invocation:
        return self.deterministic.execute_task(task, *args, **kwargs)


def _same_json(recorded: str, given: str) -> bool:
    """Two JSON texts of one value (1.0 and 1 alike, as the sidecar compares them)."""
    return bool(json.loads(recorded) == json.loads(given))


def empty_log() -> WorkflowLog:
    return WorkflowLog()
