"""Dispatched tasks: their policies and the rules applied to them (no I/O).

A dispatched invocation is queued for a worker serving its task id (docs/client-contract.md,
"Dispatch"). Its policy is chosen by the first caller and kept with the invocation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# Error types a dispatched invocation can fail with, whatever its code does.
CANCELLED = "TaskCancelled"
SCHEDULE_TO_START = "ScheduleToStartTimeout"
START_TO_CLOSE = "StartToCloseTimeout"
NEVER_RETRIED = frozenset({CANCELLED, SCHEDULE_TO_START})

SECOND_US = 1_000_000
DEFAULT_SCHEDULE_TO_START_US = 600 * SECOND_US
DEFAULT_INITIAL_BACKOFF_US = SECOND_US
DEFAULT_MAX_BACKOFF_US = 60 * SECOND_US
DEFAULT_MULTIPLIER = 2.0
# A lease id handed out by PollTasks starts with this, so renewals and completions know a
# dispatched invocation without reading its dispatch state first. Lease ids stay opaque.
DISPATCH_LEASE_PREFIX = "d."


@dataclass(frozen=True)
class DispatchPolicy:
    max_attempts: int = 1
    initial_backoff_us: int = DEFAULT_INITIAL_BACKOFF_US
    backoff_multiplier: float = DEFAULT_MULTIPLIER
    max_backoff_us: int = DEFAULT_MAX_BACKOFF_US
    retryable: tuple[str, ...] = ()
    non_retryable: tuple[str, ...] = ()
    start_to_close_us: int = 0  # 0: no limit
    schedule_to_start_us: int = DEFAULT_SCHEDULE_TO_START_US

    def encode(self) -> str:
        return json.dumps([self.max_attempts, self.initial_backoff_us, self.backoff_multiplier, self.max_backoff_us,
                           list(self.retryable), list(self.non_retryable), self.start_to_close_us,
                           self.schedule_to_start_us], separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> DispatchPolicy:
        a, b, c, d, e, f, g, h = json.loads(text)
        return cls(a, b, c, d, tuple(e), tuple(f), g, h)

    def retries(self, error_type: str, attempt: int) -> bool:
        """Whether attempt (1-based) failing with error_type is followed by another one."""
        if attempt >= self.max_attempts or error_type in NEVER_RETRIED or error_type in self.non_retryable:
            return False
        return not self.retryable or error_type in self.retryable

    def backoff_us(self, attempt: int) -> int:
        """The wait after failed attempt `attempt` (1-based) before the next one."""
        wait = self.initial_backoff_us * self.backoff_multiplier ** max(attempt - 1, 0)
        return int(min(wait, self.max_backoff_us))


@dataclass
class DispatchState:
    """What the store keeps for a dispatched invocation beside its task state."""

    policy: DispatchPolicy
    attempt: int = 0  # 0: never handed to a worker
    queued_us: int = 0  # when it became available in its queue (0: not waiting in it)
    started_us: int = 0  # when the current attempt's lease was granted
    last_error_json: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def schedule_deadline_us(self) -> int:
        return self.queued_us + self.policy.schedule_to_start_us if self.queued_us else 0

    def start_deadline_us(self) -> int:
        limit = self.policy.start_to_close_us
        return self.started_us + limit if limit and self.started_us else 0


def error_json(error_type: str, message: str, detail: dict[str, str] | None = None) -> str:
    """A TaskError as the task store keeps it."""
    return json.dumps({"type": error_type, "message": message,
                       "detail_json": json.dumps(detail, separators=(",", ":")) if detail else "",
                       "traceback": ""}, separators=(",", ":"))


def _seconds(us: int) -> str:
    return f"{us / SECOND_US:g} s"


def schedule_to_start_error(task_id: str, invocation_id: str, waited_us: int, limit_us: int) -> str:
    return error_json(SCHEDULE_TO_START, (
        f"task {task_id} (invocation {invocation_id}) waited {_seconds(waited_us)} in its queue, longer than its "
        f"schedule-to-start timeout of {_seconds(limit_us)}: no worker serving task id {task_id!r} took it. Start "
        "a worker that serves it, or give the call a longer schedule_to_start_timeout"),
        {"task_id": task_id, "waited_us": str(waited_us), "timeout_us": str(limit_us)})


def start_to_close_error(task_id: str, invocation_id: str, attempt: int, limit_us: int) -> str:
    return error_json(START_TO_CLOSE, (
        f"attempt {attempt} of task {task_id} (invocation {invocation_id}) ran longer than its start-to-close "
        f"timeout of {_seconds(limit_us)}: its lease was taken back. Make the task faster, or give the call a "
        "longer start_to_close_timeout"), {"task_id": task_id, "attempt": str(attempt), "timeout_us": str(limit_us)})


def cancelled_error(task_id: str, invocation_id: str, reason: str) -> str:
    because = f": {reason}" if reason else ""
    return error_json(CANCELLED, f"task {task_id} (invocation {invocation_id}) was cancelled{because}",
                      {"task_id": task_id, "reason": reason})


def error_type(error: str | None) -> str:
    if not error:
        return ""
    try:
        return str(json.loads(error).get("type", ""))
    except (ValueError, AttributeError):
        return ""
