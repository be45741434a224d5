"""Dispatched tasks, caller's side: `Dispatch` policies and `RemoteTask`, a task served by a
worker elsewhere (any language), known here only by its task id."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk.context import WorkflowIdentity, current_run
from pynenc_sidecar_sdk.invocation import Invocation
from pynenc_sidecar_sdk.runner import duration

if TYPE_CHECKING:
    from pynenc_sidecar_sdk.app import Pynenc


@dataclass(frozen=True)
class Dispatch:
    """How a dispatched task runs (docs/client-contract.md, "Dispatch"); times in seconds.

    max_attempts counts the first one (1: no retry); a failed attempt waits initial_backoff,
    times backoff_multiplier per attempt, at most max_backoff; retry_on lists the error types
    that retry (empty: all), never_retry_on those that never do. start_to_close bounds one
    attempt (None: no limit); schedule_to_start bounds the wait for a worker (None: the
    sidecar's 10 minutes)."""

    max_attempts: int = 1
    initial_backoff: float | None = None
    backoff_multiplier: float | None = None
    max_backoff: float | None = None
    retry_on: Sequence[str] = ()
    never_retry_on: Sequence[str] = ()
    start_to_close: float | None = None
    schedule_to_start: float | None = None

    def to_proto(self) -> de.TaskDispatch:
        message = de.TaskDispatch()
        if self.start_to_close is not None:
            message.start_to_close_timeout.CopyFrom(duration(self.start_to_close))
        if self.schedule_to_start is not None:
            message.schedule_to_start_timeout.CopyFrom(duration(self.schedule_to_start))
        retry = message.retry_policy
        retry.max_attempts = self.max_attempts
        retry.backoff_multiplier = self.backoff_multiplier or 0
        retry.retryable_error_types.extend(self.retry_on)
        retry.non_retryable_error_types.extend(self.never_retry_on)
        if self.initial_backoff is not None:
            retry.initial_backoff.CopyFrom(duration(self.initial_backoff))
        if self.max_backoff is not None:
            retry.max_backoff.CopyFrom(duration(self.max_backoff))
        return message


class RemoteTask:
    """A task this process does not serve: calling it inside a workflow dispatches it to a
    worker that serves `task_id` (Go, TypeScript, Java or Python) and waits for its outcome.
    Arguments go by name (keywords), or positionally when `params` names them in order."""

    force_new_workflow = False

    def __init__(self, app: Pynenc, task_id: str, params: Sequence[str] = (), dispatch: Dispatch | None = None
                 ) -> None:
        self.app = app
        self.task_id = task_id
        self.params = tuple(params)
        self.dispatch = dispatch or Dispatch()

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if len(args) > len(self.params):
            raise TypeError(f"{self.task_id} takes its arguments by name: call it with keywords, or declare "
                            f"app.remote_task({self.task_id!r}, params=[...]) to pass them in order")
        arguments: dict[str, Any] = dict(zip(self.params, args, strict=False))
        for name in kwargs:
            if name in arguments:
                raise TypeError(f"{self.task_id} got {name!r} twice")
        arguments.update(kwargs)
        try:
            as_json: dict[str, Any] = json.loads(json.dumps(arguments))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"arguments of {self.task_id} must be JSON values: {exc}") from None
        return as_json

    def func(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"task {self.task_id} is served by another worker: this process cannot run it")

    def __call__(self, *args: Any, **kwargs: Any) -> Invocation:
        run = current_run.get()
        if run is None:
            raise RuntimeError(f"{self.task_id} is a remote task: call it inside a workflow task")
        from pynenc_sidecar_sdk.workflow import DeterministicExecutor

        if run.executor is None:
            run.executor = DeterministicExecutor(run)
        return run.executor.execute_task(self, *args, **kwargs)

    @property
    def workflow(self) -> WorkflowIdentity:
        run = current_run.get()
        if run is None:
            raise RuntimeError("no workflow is running")
        return run.workflow

    def __repr__(self) -> str:
        return f"RemoteTask({self.task_id})"
