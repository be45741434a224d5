"""The operators' use cases: inspect a workflow, list an app's workflows, purge (one workflow, a
whole app, or the workflows finished by a cutoff) and the retention sweep.

The CLI calls them (cli.py; inspector.py renders what they return) and so does the server's
sweeper (retention.py). Like the workflow engine, this module only sequences core rules and
store steps: it opens no store, shows nothing and knows nothing of gRPC (tests/test_layering.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from pynenc_sidecar.clock import Clock, Monotonic, monotonic_s, wall_clock_us
from pynenc_sidecar.core.dispatch import DispatchState
from pynenc_sidecar.core.positions import Kind, Position, parse_field
from pynenc_sidecar.core.retention import Finished, history_finished_at, task_finished_at
from pynenc_sidecar.core.tasks import TaskCall, TaskState
from pynenc_sidecar.dispatcher import dispatch_store_for
from pynenc_sidecar.storage.interface import (
    HistoryRecord,
    InvocationRecord,
    PurgeCounts,
    RunRecord,
    StateBackendStore,
    Store,
)

log = logging.getLogger("pynenc_sidecar.retention")

SCAN_BATCH = 1000  # log fields and runs read from the store at a time
TASKS_PER_READ = 500


@dataclass(frozen=True)
class StateBackendInvocation:
    """What StateBackendService holds of one invocation of a workflow."""

    invocation_id: str
    record: InvocationRecord | None
    history: list[HistoryRecord]
    result: str | None
    exception: str | None


@dataclass(frozen=True)
class WorkflowSnapshot:
    """Everything the store holds of one workflow, read at now_us (the engine's clock)."""

    app_id: str
    workflow_id: str
    fields: dict[str, str]  # the recorded log's fields, as stored
    positions: list[tuple[Position, str]]  # the recorded operations, in the store's order
    calls: dict[Position, TaskCall]  # its task positions' calls
    task_ids: list[str]  # the main task, then the called tasks in call order
    states: dict[str, TaskState]  # by invocation id, those that exist
    data: dict[str, str]
    runs: list[RunRecord]
    dispatched: list[tuple[TaskState, DispatchState]]
    state_backend_invocations: list[StateBackendInvocation]
    now_us: int

    @property
    def main(self) -> TaskState | None:
        return self.states.get(self.workflow_id)


@dataclass(frozen=True)
class RunListing:
    """An app's workflow runs (oldest first), with each run's main task when it has one."""

    app_id: str
    workflow_type: str
    runs: list[tuple[RunRecord, TaskState | None]]  # the last `limit` runs
    runs_by_type: dict[str, int]
    total_runs: int
    apps_with_runs: list[str] | None  # when the app has none: the apps that have some


class MaintenanceEngine:
    def __init__(self, store: Store, state_backend: StateBackendStore, clock: Clock = wall_clock_us,
                 monotonic: Monotonic = monotonic_s) -> None:
        self.store = store
        self.state_backend = state_backend
        self.clock = clock
        self.monotonic = monotonic  # times a sweep (retention.py)

    # --- purge ---------------------------------------------------------------------------
    @property
    def purge_unit(self) -> str:
        """What PurgeCounts.entries counts on this store: "keys" (Redis) or "rows" (SQLite)."""
        return self.state_backend.purge_unit

    async def purge_workflow(self, app_id: str, workflow_id: str) -> bool:
        """Delete the workflow and everything it stored; whether there was anything."""
        return await self.state_backend.purge_workflow(app_id, workflow_id) > 0

    async def purge_workflow_preview(self, app_id: str, workflow_id: str) -> PurgeCounts:
        return await self.state_backend.purge_workflow_preview(app_id, workflow_id)

    async def purge_app(self, app_id: str) -> bool:
        """Delete all of the app's state; whether there was any."""
        return await self.state_backend.purge_app(app_id) > 0

    async def purge_app_preview(self, app_id: str) -> PurgeCounts:
        return await self.state_backend.purge_app_preview(app_id)

    def cutoff_us(self, older_than_s: float) -> int:
        """The finish time before which a workflow is older than older_than_s, now."""
        return self.clock() - int(older_than_s * 1_000_000)

    async def finished_at(self, app_id: str, run: RunRecord, main_task: TaskState | None) -> int | None:
        """When the run's workflow finished, or None while it has not (core/retention.py)."""
        if main_task is not None:
            return task_finished_at(main_task, run.first_us)
        history = await self.state_backend.get_history(app_id, run.workflow.workflow_id)
        return history_finished_at(history[-1].payload, history[-1].timestamp_us) if history else None

    async def finished_workflows(self, cutoff_us: int, app_ids: Iterable[str] | None = None,
                                 batch_size: int = 200) -> AsyncIterator[Finished]:
        """Workflows that finished at or before cutoff_us, app by app, oldest run first.

        A workflow finishes after it starts, so only runs started by the cutoff are looked at."""
        apps = list(app_ids) if app_ids is not None else await self.store.app_ids()
        for app_id in apps:
            async for runs in self.store.scan_runs(app_id, until_us=cutoff_us, batch_size=batch_size):
                main_tasks = await self.store.get_tasks(app_id, [run.workflow.workflow_id for run in runs])
                for run, main_task in zip(runs, main_tasks, strict=True):
                    done = await self.finished_at(app_id, run, main_task)
                    if done is not None and done <= cutoff_us:
                        yield Finished(app_id, run.workflow, done)

    async def finished_previews(self, cutoff_us: int, app_ids: Iterable[str] | None = None
                                ) -> list[tuple[Finished, PurgeCounts]]:
        """A dry run of purge_finished: each workflow it would delete, and what that is."""
        return [(f, await self.state_backend.purge_workflow_preview(f.app_id, f.workflow.workflow_id, [f.workflow]))
                async for f in self.finished_workflows(cutoff_us, app_ids)]

    async def purge_finished(self, cutoff_us: int, app_ids: Iterable[str] | None = None) -> AsyncIterator[Finished]:
        """Delete every workflow finished at or before cutoff_us; yields each."""
        async for finished in self.finished_workflows(cutoff_us, app_ids):
            await self.state_backend.purge_workflow(finished.app_id, finished.workflow.workflow_id,
                                                    [finished.workflow])
            yield finished

    async def repair_runs(self) -> int:
        """Index the runs of workflow main tasks left without a run entry (retention.py); how
        many were."""
        repaired = await self.store.index_unindexed_runs(self.clock())
        for app_id, workflow in repaired:
            log.info("indexed run %s of app %s: its task was stored without its run", workflow.workflow_id, app_id)
        return len(repaired)

    async def sweep_once(self, retention_s: float) -> int:
        """One retention sweep: repair the run index, then delete the workflows finished more
        than retention_s ago; how many were deleted."""
        await self.repair_runs()
        deleted = 0
        async for _ in self.purge_finished(self.cutoff_us(retention_s)):
            deleted += 1
        return deleted

    # --- inspect -------------------------------------------------------------------------
    async def workflow_snapshot(self, app_id: str, workflow_id: str) -> WorkflowSnapshot | None:
        """Everything known about one workflow; None when nothing is."""
        store = self.store
        fields: dict[str, str] = {}
        async for chunk in store.scan_log(app_id, workflow_id, SCAN_BATCH):
            fields.update(chunk)
        positions = [(pos, value) for name, value in fields.items() if (pos := parse_field(workflow_id, name))]
        calls = {pos: TaskCall.decode(value) for pos, value in positions if pos.kind is Kind.TASK}
        task_ids = list(dict.fromkeys([workflow_id, *(call.invocation_id for call in calls.values())]))
        states = {s.invocation_id: s for s in await store.get_tasks(app_id, task_ids) if s is not None}
        data = await store.workflow_data(app_id, workflow_id)
        runs = await self._runs_of(app_id, workflow_id, states.get(workflow_id))
        sb_ids = await self.state_backend.invocation_ids_by_workflow(app_id, workflow_id, "")
        if not (fields or workflow_id in states or data or runs or sb_ids):
            return None
        dispatched = await self._dispatched(app_id, [c.invocation_id for c in calls.values() if c.dispatched])
        return WorkflowSnapshot(app_id, workflow_id, fields, positions, calls, task_ids, states, data, runs,
                                dispatched, [await self._state_backend_invocation(app_id, i) for i in sb_ids],
                                self.clock())

    async def _runs_of(self, app_id: str, workflow_id: str, main: TaskState | None) -> list[RunRecord]:
        """The workflow's runs: looked up by the identity its main task names (one read), else
        (a workflow run by Pynenc's own runners) found among the app's runs."""
        if main is not None:
            started = await self.store.run_started(app_id, main.workflow)
            if started is not None:
                return [RunRecord(main.workflow, started)]
        found = []
        async for batch in self.store.scan_runs(app_id, batch_size=SCAN_BATCH):
            found += [run for run in batch if run.workflow.workflow_id == workflow_id]
        return found

    async def _dispatched(self, app_id: str, invocation_ids: list[str]) -> list[tuple[TaskState, DispatchState]]:
        dispatch_store = dispatch_store_for(self.store)
        found = [await dispatch_store.get(app_id, invocation_id) for invocation_id in invocation_ids]
        return [(state, dispatch) for state, dispatch in filter(None, found) if dispatch is not None]

    async def _state_backend_invocation(self, app_id: str, invocation_id: str) -> StateBackendInvocation:
        backend = self.state_backend
        return StateBackendInvocation(invocation_id, await backend.get_invocation(app_id, invocation_id),
                                      await backend.get_history(app_id, invocation_id),
                                      await backend.get_result(app_id, invocation_id),
                                      await backend.get_exception(app_id, invocation_id))

    async def workflow_runs(self, app_id: str, workflow_type: str = "", limit: int | None = None) -> RunListing:
        """The app's runs (of workflow_type, if given), the last `limit` of them with their main
        tasks, and how many there are of each type."""
        runs: list[RunRecord] = []
        async for batch in self.store.scan_runs(app_id, workflow_type, batch_size=SCAN_BATCH):
            runs += batch
        counts = Counter(run.workflow.workflow_type for run in runs)
        total = len(runs)
        if limit is not None:
            runs = runs[-limit:] if limit else []
        mains: list[TaskState | None] = []
        for start in range(0, len(runs), TASKS_PER_READ):
            chunk = runs[start:start + TASKS_PER_READ]
            mains += await self.store.get_tasks(app_id, [r.workflow.workflow_id for r in chunk])
        return RunListing(app_id, workflow_type, list(zip(runs, mains, strict=True)), dict(sorted(counts.items())),
                          total, None if total else await self.store.app_ids())
