"""`Pynenc` and its `task` decorator, with the sidecar keeping every workflow's state."""

from __future__ import annotations

import inspect
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, overload

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk import tracing
from pynenc_sidecar_sdk.client import SidecarClient
from pynenc_sidecar_sdk.context import RunContext, WorkflowIdentity, WorkflowLog, current_run
from pynenc_sidecar_sdk.dispatch import Dispatch, RemoteTask
from pynenc_sidecar_sdk.invocation import Invocation
from pynenc_sidecar_sdk.runner import DEFAULT_LEASE_TTL_S, FINAL, drive, duration, run_leased, wait_or_take_over
from pynenc_sidecar_sdk.worker import Worker
from pynenc_sidecar_sdk.workflow import WorkflowContext


def _module_name(func: Callable[..., Any]) -> str:
    # A script run as __main__ names its tasks after its file, so that importing the same
    # file elsewhere (another worker, a test) gives the same task ids.
    module = func.__module__
    if module == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if main_file:
            return Path(main_file).stem
    return module


class Task:
    """A function the workflow system can run and replay."""

    def __init__(self, app: Pynenc, func: Callable[..., Any], force_new_workflow: bool,
                 dispatch: Dispatch | None = None, task_id: str | None = None) -> None:
        self.app = app
        self.func = func
        self.force_new_workflow = force_new_workflow
        # Set: a call inside a workflow is dispatched to a worker serving this task (app.worker).
        self.dispatch = dispatch
        # A chosen id names the task across languages (e.g. "orders.process_payment").
        self.task_id = task_id or f"{_module_name(func)}.{func.__qualname__}"
        self.signature = inspect.signature(func)
        self.wf = WorkflowContext(self)
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    @property
    def workflow(self) -> WorkflowIdentity:
        """The identity of the workflow running now."""
        return self.wf.identity

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, as JSON values (what a task position records)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        try:
            arguments: dict[str, Any] = json.loads(json.dumps(bound.arguments))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"arguments of {self.task_id} must be JSON values: {exc}") from None
        return arguments

    def __call__(self, *args: Any, **kwargs: Any) -> Invocation:
        """Inside a workflow: execute_task. Outside: run as a new workflow with a fresh id."""
        if current_run.get() is not None:
            return self.wf.execute_task(self, *args, **kwargs)
        return self.run_workflow(uuid.uuid4().hex, *args, **kwargs)

    def run_workflow(self, workflow_id: str, *args: Any, **kwargs: Any) -> Invocation:
        """Run this task as the main task of workflow `workflow_id`.

        Running again with the same id replays: a finished workflow returns its recorded
        outcome without running any code, finished tasks are not re-run, and a run that
        crashed resumes from its first unrecorded step.
        """
        return self.app.run_workflow(self, workflow_id, *args, **kwargs)

    def retry_workflow(self, workflow_id: str, *args: Any, **kwargs: Any) -> Invocation:
        """Retry the FAILED workflow `workflow_id` from its failed steps, then run it.

        Its failed invocations (the main task, the failed tasks inside it, failed child
        workflows) are reset; everything recorded is kept. The run then replays the recorded
        steps and runs the failed ones again. Give the arguments of the first run.
        A workflow that is not FAILED raises SidecarError (reason WORKFLOW_NOT_FAILED)."""
        self.app.retry_workflow(workflow_id)
        return self.app.run_workflow(self, workflow_id, *args, **kwargs)

    def __repr__(self) -> str:
        return f"Task({self.task_id})"


class Pynenc:
    """The app: names the tenant (`app_id`) and where the sidecar listens.

    address defaults to $PYNENC_SIDECAR_ADDRESS or 127.0.0.1:50051; lease_ttl (seconds) is how
    long a crashed worker's task stays claimed before another worker takes it over
    ($PYNENC_SIDECAR_LEASE_TTL, default 30).

    Security (each defaults to its variable): tls_ca, the PEM CA that signed the sidecar's
    certificate ($PYNENC_SIDECAR_TLS_CA; setting it turns TLS on); tls_cert and tls_key, this
    worker's certificate and key for mutual TLS ($PYNENC_SIDECAR_CLIENT_CERT,
    $PYNENC_SIDECAR_CLIENT_KEY); token, a bearer token sent as `authorization: Bearer <token>`
    ($PYNENC_SIDECAR_TOKEN); tls=True for TLS with the system's CAs ($PYNENC_SIDECAR_TLS=true).
    """

    def __init__(self, app_id: str = "pynenc", address: str | None = None, lease_ttl: float | None = None, *,
                 tls: bool | None = None, tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, token: str | None = None) -> None:
        self.app_id = app_id
        self.client = SidecarClient(address, tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, token=token)
        self.lease_ttl = float(lease_ttl if lease_ttl is not None
                               else os.environ.get("PYNENC_SIDECAR_LEASE_TTL", DEFAULT_LEASE_TTL_S))
        self.runner_id = f"py-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tasks: dict[str, Task] = {}

    @overload
    def task(self, func: Callable[..., Any], *, force_new_workflow: bool = False,
             dispatch: bool | Dispatch = False, task_id: str | None = None) -> Task: ...

    @overload
    def task(self, func: None = None, *, force_new_workflow: bool = False,
             dispatch: bool | Dispatch = False, task_id: str | None = None) -> Callable[[Callable[..., Any]], Task]: ...

    def task(self, func: Callable[..., Any] | None = None, *, force_new_workflow: bool = False,
             dispatch: bool | Dispatch = False, task_id: str | None = None
             ) -> Task | Callable[[Callable[..., Any]], Task]:
        """A task. With dispatch (True, or a Dispatch of policies), a call inside a workflow
        is not run by the caller but queued for a worker serving it (`app.worker`). task_id
        replaces the default id (<module>.<function>), e.g. to serve a task other languages
        call by that id."""
        policy = Dispatch() if dispatch is True else (dispatch or None)

        def register(f: Callable[..., Any]) -> Task:
            task = Task(self, f, force_new_workflow, policy, task_id)
            self.tasks[task.task_id] = task
            return task

        return register(func) if func is not None else register

    def remote_task(self, task_id: str, *, params: Sequence[str] = (), dispatch: Dispatch | None = None
                    ) -> RemoteTask:
        """A task served by a worker elsewhere, in any language, known here by its task id:
        calling it inside a workflow dispatches it and waits for its outcome."""
        return RemoteTask(self, task_id, params, dispatch)

    def worker(self, tasks: Iterable[Task | str] | None = None, **options: Any) -> Worker:
        """A worker serving tasks (default: every task of this app) for dispatched calls;
        options: concurrency, poll_timeout, shutdown_grace, worker_id (see Worker)."""
        return Worker(self, tasks, **options)

    def read_log(self, workflow: WorkflowIdentity) -> WorkflowLog:
        """The workflow's recorded log, in one streaming call."""
        batches = self.client.stream(self.client.executor.GetWorkflowLog,
                                     de.GetWorkflowLogRequest(app_id=self.app_id, workflow_id=workflow.workflow_id))
        return WorkflowLog.from_batches(batches)

    def retry_workflow(self, workflow_id: str) -> list[Invocation]:
        """Reset the FAILED workflow's failed invocations to RETRY (RetryWorkflow); run it
        again with run_workflow (or Task.retry_workflow, which does both)."""
        reply = self.client.call(self.client.executor.RetryWorkflow,
                                 de.RetryWorkflowRequest(app_id=self.app_id, workflow_id=workflow_id))
        return [Invocation(message) for message in reply.invocations]

    def run_workflow(self, task: Task, workflow_id: str, *args: Any, **kwargs: Any) -> Invocation:
        identity = WorkflowIdentity(workflow_id, task.task_id)
        with tracing.workflow_span(self.app_id, identity) as span:  # the root of the run's trace
            return self._run_workflow(task, identity, span, args, kwargs)

    def _run_workflow(self, task: Task, identity: WorkflowIdentity, span: tracing.SpanHook, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Invocation:
        workflow_id = identity.workflow_id
        # include_log: on a replay the reply brings the log (when small), saving a GetWorkflowLog.
        reply = self.client.call(self.client.executor.StartWorkflow, de.StartWorkflowRequest(
            app_id=self.app_id, workflow=identity.to_proto(), arguments_json=json.dumps(task.arguments(args, kwargs)),
            runner_id=self.runner_id, lease_ttl=duration(self.lease_ttl), include_log=True))
        span.replayed(reply.replayed)
        invocation, lease_id = reply.invocation, reply.lease.lease_id if reply.HasField("lease") else ""
        log = WorkflowLog.from_batches(reply.log.batches) if reply.HasField("log") else None
        if not lease_id and invocation.status not in FINAL:  # another worker runs it now
            invocation, lease_id = wait_or_take_over(self, invocation)
            log = None  # it went on meanwhile: read the log as it is now
        if not lease_id:
            # Finished (now or before): its recorded outcome, and none of its code runs again,
            # so a newer version of the code cannot start new work in a finished workflow.
            return Invocation(invocation, replayed=True)
        if not reply.replayed:
            log = WorkflowLog()
        elif log is None:  # a large log, or a server that predates include_log
            log = self.read_log(identity)
        first = [log]

        def run_main(invocation: de.TaskInvocation, lease_id: str) -> de.TaskInvocation:
            # The first run uses this log; a run after losing the lease and taking it back reads it anew.
            log = first.pop() if first else self.read_log(identity)
            run = RunContext(self, identity, workflow_id, log)
            return run_leased(run, lease_id, task.func, args, kwargs, task.task_id)

        return Invocation(drive(self, invocation, lease_id, run_main), replayed=reply.replayed)
