"""Task positions: the recorded call, the invocation state, and the replay rule."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pynenc_sidecar.core.errors import NONDETERMINISTIC_REPLAY, FailedPrecondition

# Pynenc 0.4.0 InvocationStatus values, numbered as the proto enum.
REGISTERED = 1
RUNNING = 7
SUCCESS = 11
FAILED = 12
RETRY = 13  # a failed invocation reset by RetryWorkflow: not final, leased again like REGISTERED
FINAL_STATUSES = frozenset({SUCCESS, FAILED})
# Pynenc's names, as the proto enum's without its prefix.
_STATUS_NAMES = {1: "REGISTERED", 2: "CONCURRENCY_CONTROLLED", 3: "CONCURRENCY_CONTROLLED_FINAL", 4: "REROUTED",
                 5: "PENDING", 6: "PENDING_RECOVERY", 7: "RUNNING", 8: "RUNNING_RECOVERY", 9: "PAUSED", 10: "KILLED",
                 11: "SUCCESS", 12: "FAILED", 13: "RETRY"}


def status_name(status: int) -> str:
    return _STATUS_NAMES.get(status, str(status))


@dataclass(frozen=True)
class TaskCall:
    """What a task position records: which invocation runs which call."""

    invocation_id: str
    task_id: str
    arguments_json: str  # canonical
    force_new_workflow: bool = False
    dispatched: bool = False  # queued for a worker serving task_id instead of run by the caller

    def encode(self) -> str:
        fields = {"i": self.invocation_id, "t": self.task_id, "a": self.arguments_json,
                  "n": int(self.force_new_workflow)}
        if self.dispatched:  # absent otherwise: records of inline calls stay as they were
            fields["d"] = 1
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> TaskCall:
        data = json.loads(text)
        return cls(data["i"], data["t"], data["a"], bool(data.get("n", 0)), bool(data.get("d", 0)))

    def same_call(self, other: TaskCall) -> bool:
        return self.task_id == other.task_id and self.arguments_json == other.arguments_json

    def describe(self) -> str:
        return f"{self.task_id}({self.arguments_json})"


def check_replay(recorded: TaskCall, requested: TaskCall, where: str) -> None:
    """Raise NONDETERMINISTIC_REPLAY when a replay asks for another call than the record."""
    if recorded.same_call(requested):
        return
    raise FailedPrecondition(
        f"non-deterministic replay at {where}: recorded {recorded.describe()}, "
        f"requested {requested.describe()}",
        reason=NONDETERMINISTIC_REPLAY,
        metadata={
            "position": where,
            "recorded_task_id": recorded.task_id,
            "recorded_arguments": recorded.arguments_json[:512],
            "requested_task_id": requested.task_id,
            "requested_arguments": requested.arguments_json[:512],
            "recorded_invocation_id": recorded.invocation_id,
        },
    )


@dataclass(frozen=True)
class WorkflowRef:
    workflow_id: str
    workflow_type: str = ""
    parent_workflow_id: str = ""

    def encode(self) -> str:
        return json.dumps([self.workflow_id, self.workflow_type, self.parent_workflow_id], separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> WorkflowRef:
        return cls(*json.loads(text))


@dataclass
class TaskState:
    """An invocation as the task store keeps it (all strings on the way to storage)."""

    invocation_id: str
    task_id: str
    arguments_json: str
    workflow: WorkflowRef
    parent_invocation_id: str = ""
    status: int = REGISTERED
    result_json: str | None = None
    error_json: str | None = None  # {"type","message","detail_json","traceback"}
    lease_id: str = ""
    lease_expire_us: int = 0
    runner_id: str = ""
    finished_us: int = 0  # when the outcome was stored (0: unfinished, or finished before this was kept)
    extra: dict[str, str] = field(default_factory=dict)
    # Not stored: set by a store whose step that returned this state also wrote its StateBackend
    # projection (one Redis folds it into the task's script), so the caller need not write it.
    projected: bool = field(default=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def definition(self) -> dict[str, str]:
        """The fields written when the invocation is first registered."""
        return {
            "task_id": self.task_id,
            "args": self.arguments_json,
            "wf": self.workflow.encode(),
            "parent": self.parent_invocation_id,
            "status": str(REGISTERED),
        }

    @classmethod
    def from_fields(cls, invocation_id: str, data: dict[str, str]) -> TaskState:
        return cls(
            invocation_id=invocation_id,
            task_id=data["task_id"],
            arguments_json=data["args"],
            workflow=WorkflowRef.decode(data["wf"]),
            parent_invocation_id=data.get("parent", ""),
            status=int(data["status"]),
            result_json=data.get("result"),
            error_json=data.get("error"),
            lease_id=data.get("lease_id", ""),
            lease_expire_us=int(data.get("lease_exp") or 0),
            runner_id=data.get("runner", ""),
            finished_us=int(data.get("done") or 0),
        )


def child_workflow(call: TaskCall, caller: WorkflowRef) -> WorkflowRef:
    """The workflow a child runs in: its own when forced, else the caller's."""
    if call.force_new_workflow:
        return WorkflowRef(call.invocation_id, call.task_id, caller.workflow_id)
    return caller
