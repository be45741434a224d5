"""SidecarMonitorOrchestrator: the orchestrator to give Pynenc's tools (pynmon) for an app
whose workflows sidecar SDK workers run.

Pynenc reads an invocation's current status from its orchestrator, not its state backend.
An SDK worker's invocations go through DeterministicExecutorService, which has no Pynenc
orchestrator: their status of record is the StateBackend history the sidecar projects
(docs/pynenc-state.md). This orchestrator is Pynenc's in-memory one, and answers a status it
does not hold with the invocation's last history entry. Select it with
orchestrator_cls="SidecarMonitorOrchestrator" in a process that reads (a monitor); a
process that runs Pynenc tasks keeps its real orchestrator (Redis, SQLite, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynenc.orchestrator.mem_orchestrator import MemOrchestrator

if TYPE_CHECKING:
    from pynenc.identifiers.invocation_id import InvocationId
    from pynenc.invocation.status import InvocationStatusRecord


class SidecarMonitorOrchestrator(MemOrchestrator):
    def get_invocation_status_record(self, invocation_id: InvocationId) -> InvocationStatusRecord:
        if invocation_id in self.invocation_status_record:
            return self.invocation_status_record[invocation_id]
        history = self.app.state_backend.get_history(invocation_id)
        if not history:
            raise KeyError(invocation_id)  # what every orchestrator raises for an unknown id
        return max(history, key=lambda entry: entry.timestamp).status_record
