"""`task.wf`: Pynenc's WorkflowContext and DeterministicExecutor, served by the sidecar."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk import tracing
from pynenc_sidecar_sdk.context import RunContext, WorkflowIdentity, WorkflowLog, require_run
from pynenc_sidecar_sdk.invocation import Invocation
from pynenc_sidecar_sdk.runner import FINAL, drive, duration, run_leased

if TYPE_CHECKING:
    from pynenc_sidecar_sdk.app import Task

T = TypeVar("T")
RANDOM, TIME, UUID, TASK, CUSTOM = (de.OPERATION_KIND_RANDOM, de.OPERATION_KIND_TIME, de.OPERATION_KIND_UUID,
                                    de.OPERATION_KIND_TASK, de.OPERATION_KIND_CUSTOM)
DATA_READ, DATA_WRITE = de.OPERATION_KIND_DATA_READ, de.OPERATION_KIND_DATA_WRITE


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _utc(timestamp: Any) -> datetime.datetime:
    """timestamp.ToDatetime(tzinfo=datetime.UTC), several times faster (nanos are >= 0, so
    flooring them to microseconds truncates as ToDatetime does)."""
    return _EPOCH + datetime.timedelta(seconds=timestamp.seconds, microseconds=timestamp.nanos // 1000)


# How each built-in value is read from a log entry and from the RPC's reply.
_LOGGED_RANDOM, _REPLY_RANDOM = attrgetter("random_value"), attrgetter("value")
_LOGGED_TIME, _REPLY_TIME = (lambda op: _utc(op.time_value)), (lambda reply: _utc(reply.time))
_LOGGED_UUID, _REPLY_UUID = attrgetter("uuid_value"), attrgetter("uuid")


class DeterministicExecutor:
    """Deterministic operations of the running invocation (Pynenc's class of the same name)."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    @property
    def _client(self) -> Any:
        return self.run.app.client

    # Each operation first looks in the run's log: a recorded value is served from there
    # without a call. With tracing off (tracing.tracer() is None) that path does nothing else.
    def _deterministic_operation(self, operation: str, generator: Callable[[], T]) -> T:
        """A custom recorded operation: the generator runs only if nothing is recorded."""
        run = self.run
        sequence, recorded = run.next_recorded(CUSTOM, operation)
        if recorded is not None and tracing.tracer() is None:
            return json.loads(recorded.json_value)
        with run.giving_back(CUSTOM, operation, sequence), \
                tracing.operation_span(run, "custom", sequence, name=operation, recorded=recorded) as span:
            if recorded is None:
                reply = self._client.call(self._client.executor.GetRecorded, de.GetRecordedRequest(
                    position=run.position(sequence), kind=CUSTOM, custom_name=operation))
                recorded = reply.operation if reply.found else None
                if recorded is not None:
                    span.replayed(True, recorded.origin_span if recorded.HasField("origin_span") else None)
            if recorded is not None:
                return json.loads(recorded.json_value)
            run.generating = operation
            try:
                value_json = json.dumps(generator())
            finally:
                run.generating = ""
            reply = self._client.call(self._client.executor.Record, de.RecordRequest(
                position=run.position(sequence), operation=operation, value_json=value_json))
            span.replayed(reply.replayed)
            return json.loads(reply.value_json)

    def _builtin(self, kind: int, name: str, rpc: str, request_cls: Any,
                 from_log: Callable[[Any], T], from_reply: Callable[[Any], T]) -> T:
        """random/utc_now/uuid: the logged value if any, else the server's (recorded once)."""
        run = self.run
        sequence, recorded = run.next_recorded(kind)
        if recorded is not None and tracing.tracer() is None:
            return from_log(recorded)
        with (run.giving_back(kind, "", sequence),
              tracing.operation_span(run, name, sequence, recorded=recorded) as span):
            if recorded is not None:
                return from_log(recorded)
            reply = self._client.call(getattr(self._client.executor, rpc), request_cls(position=run.position(sequence)))
            span.replayed(reply.replayed)
            return from_reply(reply)

    def random(self) -> float:
        return self._builtin(RANDOM, "random", "Random", de.RandomRequest, _LOGGED_RANDOM, _REPLY_RANDOM)

    def utc_now(self) -> datetime.datetime:
        return self._builtin(TIME, "time", "UtcNow", de.UtcNowRequest, _LOGGED_TIME, _REPLY_TIME)

    def uuid(self) -> str:
        return self._builtin(UUID, "uuid", "Uuid", de.UuidRequest, _LOGGED_UUID, _REPLY_UUID)

    def get_base_time(self) -> datetime.datetime:
        reply = self._client.call(self._client.executor.GetBaseTime, de.GetBaseTimeRequest(
            app_id=self.run.app.app_id, workflow_id=self.run.workflow.workflow_id))
        return _utc(reply.base_time)

    def get_operation_count(self, operation: str) -> int:
        """How many operations of this kind this run has performed (as Pynenc's executor)."""
        kinds = {"random": RANDOM, "time": TIME, "uuid": UUID, "task": TASK}
        if operation in kinds:
            return self.run.count(kinds[operation])
        return self.run.count(CUSTOM, operation)

    def execute_task(self, task: Task, *args: Any, **kwargs: Any) -> Invocation:
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

    def _execute_task(self, run: RunContext, sequence: int, task: Task, arguments: dict[str, Any], args: tuple,
                      kwargs: dict, span: Any) -> Invocation:
        app = run.app
        request = de.ExecuteTaskRequest(
            position=run.position(sequence), task_id=task.task_id, arguments_json=json.dumps(arguments),
            force_new_workflow=task.force_new_workflow, runner_id=app.runner_id, lease_ttl=duration(app.lease_ttl))
        if task.dispatch is not None:  # a worker serving task_id runs it; this run waits for it
            request.dispatch.CopyFrom(task.dispatch.to_proto())
        reply = app.client.call(app.client.executor.ExecuteTask, request)
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
    def app(self) -> Any:
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
                if recorded is None:
                    read = run.app.client.call(run.app.client.executor.GetData, de.GetDataRequest(
                        key=key, position=run.position(sequence)))
                    span.replayed(read.replayed)
                else:
                    read = recorded.data_value
        return json.loads(read.value_json) if read.found else default

    def set_data(self, key: str, value: Any) -> None:
        """Only the workflow's main task may write; others get WorkflowAccessError. A
        replayed write is not applied again; a replay writing another value raises
        NondeterministicReplayError."""
        run = self._run
        value_json = json.dumps(value)
        sequence, recorded = run.next_recorded(DATA_WRITE, key)
        served = recorded is not None and recorded.data_value.value_json == value_json
        if served and tracing.tracer() is None:
            return
        with run.giving_back(DATA_WRITE, key, sequence), \
                tracing.operation_span(run, "data_write", sequence, name=key, recorded=recorded) as span:
            if served:
                return
            # Not recorded, or recorded with other text: the server applies it or judges the
            # difference (as canonical JSON: 1.0 and 1 are the same value).
            reply = run.app.client.call(run.app.client.executor.SetData, de.SetDataRequest(
                key=key, value_json=value_json, position=run.position(sequence)))
            span.replayed(reply.replayed)

    def random(self) -> float:
        return self.deterministic.random()

    def utc_now(self) -> datetime.datetime:
        return self.deterministic.utc_now()

    def uuid(self) -> str:
        return self.deterministic.uuid()

    def execute_task(self, task: Task, *args: Any, **kwargs: Any) -> Invocation:
        return self.deterministic.execute_task(task, *args, **kwargs)


def empty_log() -> WorkflowLog:
    return WorkflowLog()
