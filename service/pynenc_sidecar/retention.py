"""Retention: finished workflows are deleted some time after they finished.

A workflow is finished when its main task (the invocation whose id is the workflow id) has
its outcome:
- run through DeterministicExecutorService (the SDKs): the task is SUCCESS or FAILED, and it
  finished when that outcome was stored (the task's finished_us);
- run by Pynenc's own runners through StateBackendService only: the main invocation's last
  history entry has a final status (SUCCESS, FAILED, CONCURRENCY_CONTROLLED_FINAL), and it
  finished at that entry's time.
An unfinished workflow is never deleted by age, however old. A workflow whose task finished
before finish times were kept (files and Redis data of 0.1.0) is aged by its start.

Deleting a workflow is `StateBackendStore.purge_workflow`: everything it recorded, its data,
its tasks, its StateBackend invocations and its index entries. Its child workflows
(force_new_workflow) are workflows of their own, deleted when they are old enough.

The server sweeps periodically (`sweep_forever`, `serve --retention`); `pynenc-sidecar purge
--older-than` runs the same sweep once. Every replica may sweep: purging is idempotent.

Each sweep first repairs the run index (`repair_runs`): a StartWorkflow of 0.1.0 cut short by a
client deadline could register a workflow's main task without indexing its run, which no
listing or sweep would then find. Such a run is indexed as first stored when its task finished
(else now), and aged like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from pynenc_sidecar.clock import Clock, wall_clock_us
from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.core.tasks import TaskState, WorkflowRef
from pynenc_sidecar.storage.interface import RunRecord

log = logging.getLogger("pynenc_sidecar.retention")

# StateBackendService stores history entries as protobuf JSON: the status is the enum's name.
FINAL_HISTORY_STATUSES = frozenset({
    "INVOCATION_STATUS_SUCCESS", "INVOCATION_STATUS_FAILED", "INVOCATION_STATUS_CONCURRENCY_CONTROLLED_FINAL",
})


@dataclass(frozen=True)
class Finished:
    app_id: str
    workflow: WorkflowRef
    finished_us: int


async def finished_at(stores, app_id: str, run: RunRecord, main_task: TaskState | None) -> int | None:
    """When the run's workflow finished, or None while it has not."""
    if main_task is not None:
        if not main_task.finished:
            return None
        return main_task.finished_us or run.first_us
    history = await stores.state_backend.get_history(app_id, run.workflow.workflow_id)
    if history:
        try:
            status = json.loads(history[-1].payload).get("status")
        except (ValueError, AttributeError):
            return None
        if status in FINAL_HISTORY_STATUSES:
            return history[-1].timestamp_us
    return None


async def finished_workflows(stores, cutoff_us: int, app_ids: Iterable[str] | None = None,
                             batch_size: int = 200) -> AsyncIterator[Finished]:
    """Workflows that finished at or before cutoff_us, app by app, oldest run first.

    A workflow finishes after it starts, so only runs started by the cutoff are looked at."""
    apps = list(app_ids) if app_ids is not None else await stores.store.app_ids()
    for app_id in apps:
        async for runs in stores.store.scan_runs(app_id, until_us=cutoff_us, batch_size=batch_size):
            main_tasks = await stores.store.get_tasks(app_id, [run.workflow.workflow_id for run in runs])
            for run, main_task in zip(runs, main_tasks):
                done = await finished_at(stores, app_id, run, main_task)
                if done is not None and done <= cutoff_us:
                    yield Finished(app_id, run.workflow, done)


async def purge_finished(stores, cutoff_us: int, app_ids: Iterable[str] | None = None, *,
                         dry_run: bool = False) -> AsyncIterator[Finished]:
    """Delete (unless dry_run) every workflow finished at or before cutoff_us; yields each."""
    async for finished in finished_workflows(stores, cutoff_us, app_ids):
        if not dry_run:
            await stores.state_backend.purge_workflow(finished.app_id, finished.workflow.workflow_id,
                                                      [finished.workflow])
        yield finished


async def repair_runs(stores, clock: Clock = wall_clock_us) -> int:
    """Index the runs of workflow main tasks left without a run entry; how many were."""
    repaired = await stores.store.index_unindexed_runs(clock())
    for app_id, workflow in repaired:
        log.info("indexed run %s of app %s: its task was stored without its run", workflow.workflow_id, app_id)
    return len(repaired)


async def sweep_once(stores, retention_s: float, clock: Clock = wall_clock_us) -> int:
    await repair_runs(stores, clock)
    cutoff = clock() - int(retention_s * 1_000_000)
    deleted = 0
    async for _ in purge_finished(stores, cutoff):
        deleted += 1
    return deleted


async def sweep_forever(stores, retention_s: float, interval_s: float, clock: Clock = wall_clock_us) -> None:
    """The server's sweep: now, then every interval (±10%, so replicas drift apart), until
    cancelled. A store that is down skips a sweep; the next one catches up."""
    while True:
        started = time.monotonic()
        try:
            deleted = await sweep_once(stores, retention_s, clock)
            level = logging.INFO if deleted else logging.DEBUG
            log.log(level, "retention sweep deleted %d finished workflow(s) in %.2fs", deleted,
                    time.monotonic() - started)
        except Unavailable as exc:
            log.warning("retention sweep skipped: %s", exc)
        except Exception:  # a sweep must never take the server down
            log.exception("retention sweep failed")
        await asyncio.sleep(interval_s * random.uniform(0.9, 1.1))
