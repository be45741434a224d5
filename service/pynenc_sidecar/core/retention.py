"""When a workflow finished, for retention and purging by age (retention.py says what is kept).

A workflow is finished when its main task (the invocation whose id is the workflow id) has its
outcome: a task run through DeterministicExecutorService finished when its SUCCESS or FAILED
was stored (its finished_us); one run by Pynenc's own runners through StateBackendService only
finished at its last history entry, when that entry's status is final."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pynenc_sidecar.core.tasks import TaskState, WorkflowRef

# StateBackendService stores history entries as protobuf JSON: the status is the enum's name.
FINAL_HISTORY_STATUSES = frozenset({
    "INVOCATION_STATUS_SUCCESS", "INVOCATION_STATUS_FAILED", "INVOCATION_STATUS_CONCURRENCY_CONTROLLED_FINAL",
})


@dataclass(frozen=True)
class Finished:
    app_id: str
    workflow: WorkflowRef
    finished_us: int


def task_finished_at(main_task: TaskState, first_us: int) -> int | None:
    """When a main task run through the executor finished (None while it has not). A task that
    finished before finish times were kept (0.1.0) is aged by its run's start, first_us."""
    if not main_task.finished:
        return None
    return main_task.finished_us or first_us


def history_finished_at(last_entry_payload: str, last_entry_us: int) -> int | None:
    """When a workflow run through StateBackendService finished, from its main invocation's
    last history entry (None while that entry's status is not final, or is unreadable)."""
    try:
        status = json.loads(last_entry_payload).get("status")
    except (ValueError, AttributeError):
        return None
    return last_entry_us if status in FINAL_HISTORY_STATUSES else None
