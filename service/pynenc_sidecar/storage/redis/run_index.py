"""The run index both Redis stores write: runs by app and by type, the type set, the app set."""

from __future__ import annotations

from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.storage.redis.connection import DecodedRedis
from pynenc_sidecar.storage.redis.keys import APP_IDS_KEY, app_tag, run_keys, runs_key

# A purge drops a run from the app's indexes, and its type from the type list when no run of
# that type is left. KEYS: runs, runs:<type>, wf_types (keys.run_keys). ARGV: member, type.
DROP_RUN = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
return removed
"""


async def index_workflow_run(client: DecodedRedis, app_id: str, workflow: WorkflowRef, now_us: int, *,
                             app_listed: bool = False) -> None:
    """Index a run by app and type (first store time wins); both services write runs here."""
    # The app goes into the app index first (its own slot, so outside the MULTI): a run
    # is never indexed under an app a retention sweep does not visit.
    if not app_listed:
        await client.sadd(APP_IDS_KEY, app_id)
    member = workflow.encode()
    async with client.pipeline(transaction=True) as pipe:
        pipe.sadd(app_tag(app_id) + ":wf_types", workflow.workflow_type)
        pipe.zadd(runs_key(app_id), {member: now_us}, nx=True)
        pipe.zadd(runs_key(app_id, workflow.workflow_type), {member: now_us}, nx=True)
        await pipe.execute()


async def drop_workflow_run(client: DecodedRedis, app_id: str, workflow: WorkflowRef) -> int:
    return int(await client.eval(DROP_RUN, 3, *run_keys(app_id, workflow.workflow_type), workflow.encode(),
                                 workflow.workflow_type))
