"""Task and run rules both stores apply (pure: no I/O). The Redis store applies the lease
rules inside task.lua, in the same atomic step as its write; these are their statement for
every other store, and the conformance suite holds both to them."""

from __future__ import annotations

import json
from collections.abc import Iterable

from pynenc_sidecar.core.positions import Kind, parse_field
from pynenc_sidecar.core.tasks import TaskCall, TaskState


def tasks_of_workflow(workflow_id: str, log: Iterable[tuple[str, str]]) -> set[str]:
    """The executor tasks that belong to a workflow, from its recorded operations (field,
    value): its main task and every task its log recorded, except child workflows (a forced
    new workflow is a workflow of its own)."""
    task_ids = {workflow_id}
    for name, value in log:
        pos = parse_field(workflow_id, name)
        if pos is not None and pos.kind is Kind.TASK:
            call = TaskCall.decode(value)
            if not call.force_new_workflow:
                task_ids.add(call.invocation_id)
    return task_ids


def run_prefix(workflow_id: str) -> str:
    """What every encoded run of the workflow starts with (WorkflowRef.encode():
    '["<id>","<type>","<parent>"]'), and no run of another workflow does."""
    return json.dumps([workflow_id])[:-1] + ","


def lease_grantable(state: TaskState, lease_id: str, now_us: int) -> bool:
    """A lease may be granted: one is asked for, the task is unfinished, and no lease is live
    at now_us (on the store's clock)."""
    return bool(lease_id) and not state.finished and state.lease_expire_us <= now_us


def renewal_held(state: TaskState, lease_id: str) -> bool:
    """The caller may renew: the task is unfinished and its lease is still the caller's (a
    lapsed lease nobody took over may be renewed)."""
    return not state.finished and state.lease_id == lease_id


def completion_fenced(state: TaskState, lease_id: str) -> bool:
    """An unfinished task's outcome is refused: another caller was granted its lease since
    (live or lapsed: the previous holder may still be running)."""
    return bool(state.lease_id) and state.lease_id != lease_id
