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

The rules are in core/retention.py, the sweep's steps in MaintenanceEngine
(maintenance_engine.py, which the CLI's purge uses too); this module only repeats the sweep.

The server sweeps periodically (`sweep_forever`, `serve --retention`); `pynenc-sidecar purge
--older-than` runs the same sweep once. Every replica may sweep: purging is idempotent.

Each sweep first repairs the run index (`MaintenanceEngine.repair_runs`): a StartWorkflow of 0.1.0 cut short by a
client deadline could register a workflow's main task without indexing its run, which no
listing or sweep would then find. Such a run is indexed as first stored when its task finished
(else now), and aged like any other.
"""

from __future__ import annotations

import asyncio
import logging
import random

from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.maintenance_engine import MaintenanceEngine

log = logging.getLogger("pynenc_sidecar.retention")


async def sweep_forever(engine: MaintenanceEngine, retention_s: float, interval_s: float) -> None:
    """The server's sweep: now, then every interval (±10%, so replicas drift apart), until
    cancelled. A store that is down skips a sweep; the next one catches up."""
    while True:
        started = engine.monotonic()
        try:
            deleted = await engine.sweep_once(retention_s)
            level = logging.INFO if deleted else logging.DEBUG
            log.log(level, "retention sweep deleted %d finished workflow(s) in %.2fs", deleted,
                    engine.monotonic() - started)
        except Unavailable as exc:
            log.warning("retention sweep skipped: %s", exc)
        except Exception:  # a sweep must never take the server down
            log.exception("retention sweep failed")
        await asyncio.sleep(interval_s * random.uniform(0.9, 1.1))
