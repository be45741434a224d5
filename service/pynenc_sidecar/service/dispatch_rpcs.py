"""The dispatch RPCs of DeterministicExecutorService (PollTasks, ReleaseTask, CancelTask),
the parsing of ExecuteTaskRequest.dispatch, and a dispatched invocation as the wire shows it."""

from __future__ import annotations

import json
from typing import Any

from pynenc_sidecar.core import dispatch as rules
from pynenc_sidecar.core.dispatch import DispatchPolicy, DispatchState
from pynenc_sidecar.core.errors import InvalidArgument
from pynenc_sidecar.core.tasks import TaskState
from pynenc_sidecar.dispatcher import Dispatcher
from pynenc_sidecar.service import convert
from pynenc_sidecar.service.errors import handle_errors
from pynenc_sidecar.service.validation import Limits, duration_us, optional_id, require_id, require_name
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de

POLL_DEFAULT_S, POLL_MAX_S = 30.0, 60.0
MAX_TASKS_PER_POLL = MAX_TASK_IDS_PER_POLL = 100
MAX_ATTEMPTS = 100
MAX_ERROR_TYPES = 100  # per list of a retry policy
DAY_S = 86400.0


def _seconds(message: Any, name: str, field: str, default_s: float, low_s: float, high_s: float) -> int:
    return duration_us(getattr(message, name), message.HasField(name), field, default_s, low_s, high_s)


def dispatch_policy(request: de.ExecuteTaskRequest, limits: Limits) -> DispatchPolicy | None:
    """ExecuteTaskRequest.dispatch as a policy (None when unset), each field checked."""
    if not request.HasField("dispatch"):
        return None
    d = request.dispatch
    start_to_close = _seconds(d, "start_to_close_timeout", "dispatch.start_to_close_timeout", 0, 1, 30 * DAY_S) \
        if d.HasField("start_to_close_timeout") else 0
    schedule_to_start = _seconds(d, "schedule_to_start_timeout", "dispatch.schedule_to_start_timeout",
                                 rules.DEFAULT_SCHEDULE_TO_START_US / 1e6, 1, 30 * DAY_S)
    if not d.HasField("retry_policy"):
        return DispatchPolicy(start_to_close_us=start_to_close, schedule_to_start_us=schedule_to_start)
    r, prefix = d.retry_policy, "dispatch.retry_policy."
    if not 0 <= r.max_attempts <= MAX_ATTEMPTS:
        raise InvalidArgument(prefix + "max_attempts",
                              f"must be between 1 and {MAX_ATTEMPTS} (0: 1), got {r.max_attempts}")
    multiplier = r.backoff_multiplier or rules.DEFAULT_MULTIPLIER
    if not 1 <= multiplier <= 10:
        raise InvalidArgument(prefix + "backoff_multiplier", f"must be between 1 and 10 (0: 2), got {multiplier:g}")
    for name in ("retryable_error_types", "non_retryable_error_types"):
        if len(getattr(r, name)) > MAX_ERROR_TYPES:
            raise InvalidArgument(prefix + name, f"names {len(getattr(r, name))} error types; at most "
                                                 f"{MAX_ERROR_TYPES} are allowed")
    types = [[require_name(t, f"{prefix}{name}[{i}]", limits) for i, t in enumerate(getattr(r, name))]
             for name in ("retryable_error_types", "non_retryable_error_types")]
    return DispatchPolicy(
        max_attempts=r.max_attempts or 1,
        initial_backoff_us=_seconds(r, "initial_backoff", prefix + "initial_backoff",
                                    rules.DEFAULT_INITIAL_BACKOFF_US / 1e6, 0, 3600),
        backoff_multiplier=multiplier,
        max_backoff_us=_seconds(r, "max_backoff", prefix + "max_backoff", rules.DEFAULT_MAX_BACKOFF_US / 1e6, 0, DAY_S),
        retryable=tuple(types[0]), non_retryable=tuple(types[1]),
        start_to_close_us=start_to_close, schedule_to_start_us=schedule_to_start)


def invocation(state: TaskState, dispatch: DispatchState | None) -> de.TaskInvocation:
    """The invocation as the wire shows it, with its dispatch state when it has one."""
    message = convert.task_invocation(state)
    if dispatch is not None:
        message.dispatched = True
        message.attempt = dispatch.attempt
        if dispatch.queued_us and not state.finished:
            message.queue_time.CopyFrom(convert.timestamp(dispatch.queued_us))
        if dispatch.last_error_json and not state.finished:
            message.last_error.CopyFrom(common_pb2.TaskError(**json.loads(dispatch.last_error_json)))
    return message


class DispatchRpcs:
    """Mixed into DeterministicExecutorServicer (which sets engine and limits)."""

    limits: Limits
    _lease_ttl: Any

    @property
    def dispatcher(self) -> Dispatcher:
        return self.engine.dispatcher  # type: ignore[attr-defined]

    def _app_and_invocation(self, request: Any) -> tuple[str, str]:
        return (require_id(request.app_id, "app_id", self.limits),
                require_id(request.invocation_id, "invocation_id", self.limits))

    @handle_errors
    async def PollTasks(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        if not request.task_ids:
            raise InvalidArgument("task_ids", "is required: name the task ids this worker serves")
        if len(request.task_ids) > MAX_TASK_IDS_PER_POLL:
            raise InvalidArgument("task_ids", f"names {len(request.task_ids)} task ids; at most "
                                              f"{MAX_TASK_IDS_PER_POLL} are allowed per poll")
        task_ids = list(dict.fromkeys(require_id(t, f"task_ids[{i}]", self.limits)
                                      for i, t in enumerate(request.task_ids)))
        worker_id = optional_id(request.worker_id, "worker_id", self.limits)
        if not 0 <= request.max_tasks <= MAX_TASKS_PER_POLL:
            raise InvalidArgument("max_tasks", f"must be between 1 and {MAX_TASKS_PER_POLL} (0: 1), "
                                               f"got {request.max_tasks}")
        timeout_s = _seconds(request, "timeout", "timeout", POLL_DEFAULT_S, 0, POLL_MAX_S) / 1e6
        remaining = context.time_remaining()
        if remaining is not None:  # answer (empty) before the client's own deadline
            timeout_s = min(timeout_s, max(remaining - 0.05, 0))
        taken = await self.dispatcher.poll(app_id, task_ids, worker_id, request.max_tasks or 1,
                                           self._lease_ttl(request), timeout_s)
        reply = de.PollTasksResponse()
        for item in taken:
            assert item.lease is not None
            task = reply.tasks.add(invocation=invocation(item.state, item.dispatch),
                                   lease=de.TaskLease(lease_id=item.lease.lease_id,
                                                      expire_time=convert.timestamp(item.state.lease_expire_us)))
            deadline = item.dispatch.start_deadline_us() if item.dispatch else 0
            if deadline:
                task.deadline.CopyFrom(convert.timestamp(deadline))
        return reply

    @handle_errors
    async def ReleaseTask(self, request, context):
        app_id, invocation_id = self._app_and_invocation(request)
        lease_id = require_id(request.lease_id, "lease_id", self.limits)
        done = await self.dispatcher.release(app_id, invocation_id, lease_id)
        return de.ReleaseTaskResponse(invocation=invocation(done.state, done.dispatch))

    @handle_errors
    async def CancelTask(self, request, context):
        app_id, invocation_id = self._app_and_invocation(request)
        if len(request.reason.encode("utf-8")) > self.limits.max_value_bytes:
            raise InvalidArgument("reason", f"is longer than {self.limits.max_value_bytes} bytes")
        done, cancelled = await self.dispatcher.cancel(app_id, invocation_id, request.reason)
        return de.CancelTaskResponse(invocation=invocation(done.state, done.dispatch), cancelled=cancelled)
