"""The engines read the clock, not the servicers or the stores' callers: what a write records
as "now" is the engine's clock, on every store. And WaitTask's loop lives in the engine."""

from __future__ import annotations

import json

from pynenc_sidecar.core.tasks import SUCCESS, TaskState, WorkflowRef
from pynenc_sidecar.engine import WorkflowEngine
from pynenc_sidecar.server import Stores
from pynenc_sidecar.state_backend_engine import StateBackendEngine
from pynenc_sidecar.storage.interface import LeaseRequest

NOW_US = 1_764_580_000_123_456


def test_history_without_a_time_is_stored_at_the_engines_clock(stores: Stores, run, app: str) -> None:
    engine = StateBackendEngine(stores.state_backend, clock=lambda: NOW_US)
    run(engine.add_history(app, ["i1", "i2"], None, lambda at_us: json.dumps({"at": at_us})))
    run(engine.add_history(app, ["i1"], 7, lambda at_us: json.dumps({"at": at_us})))
    history = run(engine.history(app, "i1", None, None))
    assert [(r.timestamp_us, json.loads(r.payload)["at"]) for r in history] == [(7, 7), (NOW_US, NOW_US)]
    assert [r.timestamp_us for r in run(engine.history(app, "i2", None, None))] == [NOW_US]


def test_a_run_is_first_stored_at_the_engines_clock(stores: Stores, run, app: str) -> None:
    engine = StateBackendEngine(stores.state_backend, clock=lambda: NOW_US)
    workflow = WorkflowRef("wf", "mod.flow")
    run(engine.store_workflow_run(app, workflow))
    assert run(stores.store.run_started(app, workflow)) == NOW_US


def test_wait_task_returns_the_outcome_once_finished_and_does_not_take_a_live_lease(
        stores: Stores, run, app: str) -> None:
    engine = WorkflowEngine(stores.store)
    task = TaskState("t1", "mod.step", "{}", WorkflowRef("wf", "mod.flow"))
    run(stores.store.ensure_task(app, task, LeaseRequest("held", 60_000_000, "r-1"), NOW_US))
    waited = run(engine.wait_task(app, "t1", "r-2", 1_000_000, 0.02))
    assert (waited.state.finished, waited.lease, waited.state.lease_id) == (False, None, "held")
    run(stores.store.complete_task(app, "t1", "held", SUCCESS, '"done"', None, NOW_US))
    waited = run(engine.wait_task(app, "t1", "r-2", 1_000_000, 60.0))  # returns at once: finished
    assert (waited.state.status, waited.state.result_json, waited.lease) == (SUCCESS, '"done"', None)
