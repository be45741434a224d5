"""Running a leased task: renew the lease while it runs, record its outcome, or wait."""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import duration_pb2

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk.context import RunContext, current_run
from pynenc_sidecar_sdk.errors import CommitConflictError, LeaseNotHeldError, SidecarError, TaskFailedError

if TYPE_CHECKING:  # app.py imports this module
    from google.protobuf import timestamp_pb2

    from pynenc_sidecar_sdk.app import Pynenc

log = logging.getLogger(__name__)
FINAL = {common_pb2.INVOCATION_STATUS_SUCCESS, common_pb2.INVOCATION_STATUS_FAILED}
WAIT_SLICE_S = 10  # the client contract's wait slice (tests/vectors/client_contract.json)
DEFAULT_LEASE_TTL_S = 30
RENEW_FRACTION = 3  # a held lease is renewed every lease_ttl / RENEW_FRACTION
TASK_MISTAKES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}
CONFLICT_RERUNS = 3  # runs again after COMMIT_CONFLICT (client_contract.json, commit.conflict_reruns)


def duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(seconds * 1e9))
    return message


class LeaseKeeper:
    """Renews a lease every third of its length until stopped, in a daemon thread."""

    def __init__(self, run: RunContext, lease_id: str) -> None:
        self.run, self.app, self.invocation_id, self.lease_id = run, run.app, run.invocation_id, lease_id
        self.stopped = threading.Event()
        # In the caller's context, so that renewals belong to the run's trace.
        self.thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,), daemon=True,
                                       name=f"lease-{self.invocation_id[:8]}")

    def __enter__(self) -> LeaseKeeper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopped.wait(self.app.lease_ttl / RENEW_FRACTION):
            try:
                self.app.client.call(self.app.client.executor.RenewTaskLease, de.RenewTaskLeaseRequest(
                    app_id=self.app.app_id, invocation_id=self.invocation_id, lease_id=self.lease_id,
                    lease_ttl=duration(self.app.lease_ttl)))
            except LeaseNotHeldError:
                log.warning("lost the lease on %s: another worker took it over", self.invocation_id)
                self.run.lease_lost.set()  # the run's next operation raises LeaseNotHeldError
                return
            except SidecarError as error:
                if error.code is grpc.StatusCode.NOT_FOUND:  # the invocation is gone
                    self.run.lease_lost.set()
                    return
                log.warning("could not renew the lease on %s: %s", self.invocation_id, error)



def task_error(exc: BaseException, run: RunContext) -> common_pb2.TaskError:
    """The error a task records for exc. A child's failure the task let through keeps the
    child's identity: its type, message and traceback, then where this task raised it."""
    here = "".join(traceback.format_exception(exc))
    if isinstance(exc, TaskFailedError):
        where = f"\nre-raised by invocation {run.invocation_id} (it failed in invocation {exc.invocation_id}):\n"
        return common_pb2.TaskError(type=exc.error_type, message=exc.error_message,
                                    detail_json=json.dumps({"failed_invocation_id": exc.invocation_id}),
                                    traceback=(exc.traceback or "") + where + here)
    return common_pb2.TaskError(type=type(exc).__name__, message=str(exc), traceback=here)


def too_large_error(request: de.CompleteTaskRequest, task_id: str, refusal: SidecarError) -> common_pb2.TaskError:
    """The failure recorded when the outcome does not fit in one request to the sidecar."""
    if request.WhichOneof("outcome") == "result_json":
        what, size = "result", len(request.result_json.encode("utf-8"))
    else:
        what, size = "error", request.error.ByteSize()
    return common_pb2.TaskError(type="ResultTooLarge", message=(
        f"the {what} of task {task_id or '?'} (invocation {request.invocation_id}) is {size} bytes, more than "
        f"the sidecar accepts in one request ({refusal}): return less (keep large data elsewhere and return a "
        "reference), or raise the sidecar's --max-message-bytes / PYNENC_SIDECAR_MAX_MESSAGE_BYTES and "
        "--max-value-bytes / PYNENC_SIDECAR_MAX_VALUE_BYTES"))


def run_leased(run: RunContext, lease_id: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               task_id: str = "") -> de.TaskInvocation:
    """Run func as the invocation, then record its result or error with the run's buffered
    operations; returns the final state. A commit refused with COMMIT_CONFLICT (this run's log
    was stale) makes the run read the log again and run func again from its top."""
    run.lease_id = lease_id
    for rerun in range(CONFLICT_RERUNS + 1):
        try:
            return _run_once(run, lease_id, func, args, kwargs, task_id)
        except CommitConflictError as conflict:
            if rerun == CONFLICT_RERUNS:
                raise
            log.warning("invocation %s: %s; reading the log again and running the task again", run.invocation_id,
                        conflict)
            run.restart(run.app.read_log(run.workflow))
    raise AssertionError("unreachable")


def _run_once(run: RunContext, lease_id: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              task_id: str) -> de.TaskInvocation:
    app = run.app
    request = de.CompleteTaskRequest(app_id=app.app_id, invocation_id=run.invocation_id, lease_id=lease_id)
    token = current_run.set(run)
    try:
        with LeaseKeeper(run, lease_id):
            try:
                result = func(*args, **kwargs)
            except SidecarError as exc:
                # Divergence, a lost lease or an unreachable sidecar is not the task's outcome:
                # leave it unfinished (its lease lapses) and tell the caller. The task's own
                # mistakes (bad values, writing data it does not own) are its outcome.
                if exc.code not in TASK_MISTAKES:
                    raise
                request.error.CopyFrom(task_error(exc, run))
            except Exception as exc:  # the task's own failure is its outcome
                request.error.CopyFrom(task_error(exc, run))
            else:
                try:
                    request.result_json = json.dumps(result)
                except (TypeError, ValueError) as exc:
                    request.error.CopyFrom(common_pb2.TaskError(
                        type="ResultNotSerializable", message=f"task results must be JSON values: {exc}",
                        traceback="".join(traceback.format_exception(exc))))
    finally:
        current_run.reset(token)
    commit = run.commit(run.workflow.workflow_id)
    if commit is not None:
        commit.lease_id = ""  # the request's own lease_id fences it
        request.commit.CopyFrom(commit)
    try:
        invocation = app.client.call(app.client.executor.CompleteTask, request).invocation
        run.committed()
        return invocation
    except SidecarError as refusal:
        # Refused before the sidecar's handler saw it (larger than its gRPC message limit):
        # record that as the task's failure, so the task does not stay RUNNING.
        if refusal.code is not grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        request.error.CopyFrom(too_large_error(request, task_id, refusal))
        invocation = app.client.call(app.client.executor.CompleteTask, request).invocation
        run.committed()
        return invocation


def drive(app: Pynenc, invocation: de.TaskInvocation, lease_id: str,
          run_once: Callable[[de.TaskInvocation, str], de.TaskInvocation]) -> de.TaskInvocation:
    """Bring an invocation to an outcome: run it while this worker holds its lease, else wait
    for the holder (taking over if its lease lapses). A run that lost its lease to another
    live worker waits for that worker's outcome."""
    while invocation.status not in FINAL:
        if lease_id:
            try:
                return run_once(invocation, lease_id)
            except LeaseNotHeldError:
                log.warning("invocation %s was taken over by another worker: waiting for its outcome",
                            invocation.invocation_id)
        invocation, lease_id = wait_or_take_over(app, invocation)
    return invocation


def describe_wait(invocation: de.TaskInvocation, now: datetime, again: bool = False) -> str:
    """What a run waits for and until when; the same words in every SDK."""
    holder = (f"runner {json.dumps(invocation.lease_runner_id, ensure_ascii=False)}" if invocation.lease_runner_id
              else "another worker")
    if invocation.dispatched:
        return describe_dispatched_wait(invocation, now, again, holder)
    text = (f"{'still waiting' if again else 'waiting'} for task {invocation.task_id} (invocation "
            f"{invocation.invocation_id}, workflow {invocation.workflow.workflow_id}) held by {holder}: ")
    if not invocation.HasField("lease_expire_time"):
        return text + "its lease expiry is unknown"
    expires = invocation.lease_expire_time.ToDatetime(tzinfo=UTC)
    at = expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    left = (expires - now).total_seconds()
    if left <= 0:
        return text + f"its lease expired at {at}; this run takes the task over now"
    return text + (f"its lease expires at {at} ({left:.1f} s left); this run takes the task over then "
                   "unless the holder renews it")


def _iso(timestamp: timestamp_pb2.Timestamp) -> tuple[str, datetime]:
    moment = timestamp.ToDatetime(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), moment


def describe_dispatched_wait(invocation: de.TaskInvocation, now: datetime, again: bool, holder: str) -> str:
    """What a caller waits for when its task is dispatched to a worker serving it."""
    text = (f"{'still waiting' if again else 'waiting'} for task {invocation.task_id} (invocation "
            f"{invocation.invocation_id}, workflow {invocation.workflow.workflow_id}), dispatched to a worker "
            "serving it: ")
    if invocation.status == common_pb2.INVOCATION_STATUS_RUNNING:
        return text + f"attempt {invocation.attempt} runs on {holder}"
    if not invocation.HasField("queue_time"):
        return text + "queued"
    at, queued = _iso(invocation.queue_time)
    waited = (now - queued).total_seconds()
    retry = f" (attempt {invocation.attempt} failed: {invocation.last_error.type})" if invocation.attempt else ""
    if waited < 0:
        return text + f"to be retried at {at}{retry}"
    return text + f"queued since {at} ({waited:.1f} s){retry}"


def wait_or_take_over(app: Pynenc, invocation: de.TaskInvocation) -> tuple[de.TaskInvocation, str]:
    """Wait for another worker's task: returns (state, lease_id) — a lease when its holder died.

    Says so: a WARNING when the wait starts (INFO for a dispatched task), an INFO line on every
    later wait slice."""
    slices = 0
    while invocation.status not in FINAL:
        # Waiting for a dispatched task is the normal case: INFO; for another caller's, WARNING.
        log.log(logging.INFO if slices or invocation.dispatched else logging.WARNING, "%s",
                describe_wait(invocation, datetime.now(UTC), again=slices > 0))
        slices += 1
        reply = app.client.call(app.client.executor.WaitTask, de.WaitTaskRequest(
            app_id=app.app_id, invocation_id=invocation.invocation_id, runner_id=app.runner_id,
            timeout=duration(WAIT_SLICE_S), lease_ttl=duration(app.lease_ttl)), timeout=WAIT_SLICE_S + 30)
        invocation = reply.invocation
        if reply.HasField("lease"):
            return invocation, reply.lease.lease_id
    return invocation, ""
