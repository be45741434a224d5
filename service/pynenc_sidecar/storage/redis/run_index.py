"""The run index both Redis stores write: runs by app and by type, the type set, the app set."""

from __future__ import annotations

from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.storage.redis.connection import DecodedRedis
from pynenc_sidecar.storage.redis.keys import APP_IDS_KEY, app_tag, runs_key


async def index_workflow_run(client: DecodedRedis, app_id: str, workflow: WorkflowRef, now_us: int) -> None:
    """Index a run by app and type (first store time wins); both services write runs here."""
    # The app goes into the app index first (its own slot, so outside the MULTI): a run
    # is never indexed under an app a retention sweep does not visit.
    await client.sadd(APP_IDS_KEY, app_id)
    member = workflow.encode()
    async with client.pipeline(transaction=True) as pipe:
        pipe.sadd(app_tag(app_id) + ":wf_types", workflow.workflow_type)
        pipe.zadd(runs_key(app_id), {member: now_us}, nx=True)
        pipe.zadd(runs_key(app_id, workflow.workflow_type), {member: now_us}, nx=True)
        await pipe.execute()
