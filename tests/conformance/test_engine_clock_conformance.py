"""The engines read the clock, not the servicers or the stores' callers: what a write records
as "now" is the engine's clock, on every store. And WaitTask's loops (a task run inline, a
dispatched one) live in the engine."""

from __future__ import annotations

import json

from pynenc_sidecar.clock import wall_clock_us
from pynenc_sidecar.core.dispatch import DispatchPolicy
from pynenc_sidecar.core.tasks import REGISTERED, SUCCESS, TaskState, WorkflowRef
from pynenc_sidecar.dispatcher import dispatch_store_for
from pynenc_sidecar.engine import WorkflowEngine
from pynenc_sidecar.server import Stores
from pynenc_sidecar.state_backend_engine import StateBackendEngine
from pynenc_sidecar.storage.interface import LeaseRequest

NOW_US = 1_764_580_000_123_456
POLICY = DispatchPolicy(max_attempts=2)


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


def test_wait_task_on_a_dispatched_task_never_leases_it_and_ends_on_the_engines_clock(
        stores: Stores, run, app: str) -> None:
    ticks = iter(range(0, 10_000, 30))  # 30 s pass per look at the monotonic clock: a wait of 60 s is 2 looks
    engine = WorkflowEngine(stores.store, monotonic=lambda: float(next(ticks)))
    dispatch = dispatch_store_for(stores.store)
    queued_us = wall_clock_us()  # the dispatcher fails a task queued past its schedule-to-start deadline
    run(dispatch.register(app, TaskState("d1", "mod.step", "{}", WorkflowRef("wf", "mod.flow")), POLICY, queued_us))
    waited = run(engine.wait_task(app, "d1", "r-2", 1_000_000, 60.0))  # on the wall clock: at once
    assert (waited.state.status, waited.lease, waited.dispatch is not None) == (REGISTERED, None, True)
    assert next(ticks) == 120  # deadline, first look, the pause, second look: the engine's clock ended it
    claimed = run(dispatch.claim(app, "d1", LeaseRequest("worker", 60_000_000, "w-1"), queued_us))
    run(stores.store.complete_task(app, "d1", "worker", SUCCESS, '"done"', None, queued_us))
    assert claimed.dispatch is not None
    waited = run(WorkflowEngine(stores.store).wait_task(app, "d1", "r-2", 1_000_000, 60.0))  # finished: at once
    assert (waited.state.status, waited.lease, waited.dispatch.attempt) == (SUCCESS, None, 1)


def test_a_poll_for_dispatched_tasks_ends_on_the_engines_clock(stores: Stores, run, app: str) -> None:
    ticks = iter(range(0, 10_000, 30))  # 30 s per look: a poll of 60 s on an empty queue is 2 looks
    engine = WorkflowEngine(stores.store, monotonic=lambda: float(next(ticks)))
    assert run(engine.dispatcher.poll(app, ["mod.step"], "w-1", 1, 1_000_000, 60.0)) == []  # on the wall clock: at once
    assert next(ticks) == 90  # deadline, first look, second look
