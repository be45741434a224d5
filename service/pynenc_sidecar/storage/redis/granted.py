"""The task states this replica granted leases in, kept a while (bounded), so that on one Redis
the outcome of a lease can write its StateBackend projection and its scope's mirror in the
outcome's own script (executor_store): those need the task's definition and runner, which
CompleteTask does not carry. A state not kept (another replica granted the lease, a restart,
evicted) only means the outcome takes the separate steps, as on a cluster."""

from __future__ import annotations

from collections import OrderedDict

from pynenc_sidecar.core.tasks import TaskState

BUDGET_BYTES = 8 * 1024 * 1024  # about what the kept states' text may take
LARGEST_BYTES = 64 * 1024  # a state with more text (large arguments) is not kept


def _size(state: TaskState) -> int:
    return (len(state.arguments_json) + len(state.task_id) + len(state.invocation_id) + len(state.runner_id)
            + len(state.parent_invocation_id) + len(state.workflow.workflow_id) + len(state.workflow.workflow_type)
            + len(state.workflow.parent_workflow_id) + 200)


class GrantedLeases:
    """Least recently granted first out, within a byte budget."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES, largest_bytes: int = LARGEST_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self.largest_bytes = largest_bytes
        self._states: OrderedDict[tuple[str, str], tuple[TaskState, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._states)

    def keep(self, app_id: str, state: TaskState) -> None:
        """The state a lease was just granted in (its lease_id names the grant)."""
        self._drop((app_id, state.invocation_id))
        size = _size(state)
        if size > self.largest_bytes:
            return
        self._states[(app_id, state.invocation_id)] = (state, size)
        self._bytes += size
        while self._bytes > self.budget_bytes:
            self._drop(next(iter(self._states)))

    def take(self, app_id: str, invocation_id: str, lease_id: str) -> TaskState | None:
        """The state kept for this grant of the lease (None if none), no longer kept. A state of
        another grant stays (an old holder's late outcome, refused, does not evict the new one)."""
        entry = self._states.get((app_id, invocation_id))
        if entry is None or not lease_id or entry[0].lease_id != lease_id:
            return None
        return self._drop((app_id, invocation_id))

    def _drop(self, key: tuple[str, str]) -> TaskState | None:
        entry = self._states.pop(key, None)
        if entry is None:
            return None
        self._bytes -= entry[1]
        return entry[0]
