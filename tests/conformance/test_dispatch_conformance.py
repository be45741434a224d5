"""The dispatch store's conformance: every store behind storage.interface's DispatchStore passes it
(Redis and SQLite, the `store` fixture's params). Timeouts move by passing now_us; leases are
on the store's clock (a lapsing lease of 1 us, then `lapsed`)."""

from __future__ import annotations

import pytest

from conformance.test_store_conformance import LAPSING_US, TRICKY_IDS, Run, lapsed, lease, task
from pynenc_sidecar.core.dispatch import DispatchPolicy
from pynenc_sidecar.core.tasks import FAILED, REGISTERED, RETRY, RUNNING
from pynenc_sidecar.dispatcher import dispatch_store_for
from pynenc_sidecar.storage.interface import (
    EXPIRED,
    FINISHED,
    GRANTED,
    LEASED,
    MISSING,
    NOT_DISPATCHED,
    RELEASED_LEASE,
    LeaseNotHeld,
    TaskNotFound,
)

POLICY = DispatchPolicy(max_attempts=3, schedule_to_start_us=10_000_000)
NOW = 1_000_000_000_000


@pytest.fixture
def dispatch(store):
    return dispatch_store_for(store)


def test_register_keeps_the_first_policy_and_queue_time(run: Run, dispatch, app):
    state, first = run(dispatch.register(app, task("i1"), POLICY, NOW))
    assert state.status == REGISTERED and first.policy == POLICY and first.attempt == 0 and first.queued_us == NOW
    _, again = run(dispatch.register(app, task("i1"), DispatchPolicy(max_attempts=9), NOW + 5))
    assert again.policy == POLICY and again.queued_us == NOW
    found = run(dispatch.get(app, "i1"))
    assert found is not None and found[1] == first
    assert run(dispatch.get(app, "nope")) is None


def test_an_inline_task_has_no_dispatch_state_and_is_never_claimed(run: Run, store, dispatch, app):
    run(store.ensure_task(app, task("inline"), None, NOW))
    assert run(dispatch.get(app, "inline"))[1] is None
    assert run(dispatch.claim(app, "inline", lease("w"), NOW)).code == NOT_DISPATCHED
    assert run(dispatch.claim(app, "missing", lease("w"), NOW)).code == MISSING


def test_one_claim_wins_and_counts_an_attempt(run: Run, dispatch, app):
    run(dispatch.register(app, task("i2"), POLICY, NOW))
    won = run(dispatch.claim(app, "i2", lease("a"), NOW + 1))
    assert won.code == GRANTED and won.state.status == RUNNING and won.dispatch.attempt == 1
    assert won.dispatch.started_us == NOW + 1 and won.dispatch.queued_us == 0
    assert run(dispatch.claim(app, "i2", lease("b"), NOW + 2)).code == LEASED


def test_a_lapsed_lease_is_redelivered_as_the_same_attempt(run: Run, dispatch, app):
    run(dispatch.register(app, task("i3"), POLICY, NOW))
    run(dispatch.claim(app, "i3", lease("dies", LAPSING_US), NOW))
    run(lapsed(dispatch.store, app, "i3"))
    again = run(dispatch.claim(app, "i3", lease("next"), NOW + 10))
    assert again.code == GRANTED and again.dispatch.attempt == 1 and again.state.lease_id == "lease-next"


def test_schedule_to_start_expires_only_an_unstarted_invocation(run: Run, dispatch, app):
    run(dispatch.register(app, task("i4"), POLICY, NOW))
    late = NOW + POLICY.schedule_to_start_us + 1
    assert run(dispatch.claim(app, "i4", lease("w"), late)).code == EXPIRED
    assert run(dispatch.claim(app, "i4", lease("w"), late - 2)).code == GRANTED
    # Started, it never expires: a redelivery after a lapsed lease is not a start.
    run(dispatch.register(app, task("i4b"), POLICY, NOW))
    run(dispatch.claim(app, "i4b", lease("dies", LAPSING_US), NOW))
    run(lapsed(dispatch.store, app, "i4b"))
    assert run(dispatch.claim(app, "i4b", lease("next"), late)).code == GRANTED


def test_requeue_as_retry_or_hand_back_is_fenced(run: Run, dispatch, app):
    run(dispatch.register(app, task("i5"), POLICY, NOW))
    run(dispatch.claim(app, "i5", lease("a"), NOW))
    with pytest.raises(LeaseNotHeld):
        run(dispatch.requeue(app, "i5", "lease-other", NOW, None))
    state, retried = run(dispatch.requeue(app, "i5", "lease-a", NOW + 100, '{"type":"Declined"}'))
    assert state.status == RETRY and state.lease_id == RELEASED_LEASE
    assert retried.attempt == 1 and retried.queued_us == NOW + 100 and retried.last_error_json
    second = run(dispatch.claim(app, "i5", lease("b"), NOW + 200))
    assert second.code == GRANTED and second.dispatch.attempt == 2
    state, handed = run(dispatch.requeue(app, "i5", "lease-b", NOW + 300, None))
    assert state.status == REGISTERED and handed.attempt == 1  # a hand-back is not an attempt
    with pytest.raises(TaskNotFound):
        run(dispatch.requeue(app, "nope", "x", NOW, None))


def test_a_finished_invocation_is_neither_claimed_nor_requeued(run: Run, store, dispatch, app):
    run(dispatch.register(app, task("i6"), POLICY, NOW))
    run(dispatch.claim(app, "i6", lease("a"), NOW))
    state, accepted = run(store.complete_task(app, "i6", "lease-a", FAILED, None, '{"type":"X"}', NOW))
    assert accepted and state.status == FAILED
    assert run(dispatch.claim(app, "i6", lease("b"), NOW)).code == FINISHED
    assert run(dispatch.requeue(app, "i6", "lease-a", NOW, None)) is None


def test_a_handed_back_lease_is_fenced_for_its_old_holder(run: Run, store, dispatch, app):
    run(dispatch.register(app, task("i7"), POLICY, NOW))
    run(dispatch.claim(app, "i7", lease("a"), NOW))
    run(dispatch.requeue(app, "i7", "lease-a", NOW, None))
    with pytest.raises(LeaseNotHeld):
        run(store.complete_task(app, "i7", "lease-a", FAILED, None, "{}", NOW))
    with pytest.raises(LeaseNotHeld):
        run(store.renew_lease(app, "i7", "lease-a", 1_000_000, NOW))


@pytest.mark.parametrize("task_id", TRICKY_IDS[:-1])
def test_queues_are_ordered_by_availability_and_apart_per_task_id(run: Run, dispatch, app, task_id):
    other = task_id + "x"
    run(dispatch.queue_push(app, task_id, "late", NOW + 50, keep_existing=True))
    run(dispatch.queue_push(app, task_id, "early", NOW, keep_existing=True))
    run(dispatch.queue_push(app, other, "elsewhere", NOW, keep_existing=True))
    assert run(dispatch.queue_ready(app, task_id, NOW + 100, 10)) == ["early", "late"]
    assert run(dispatch.queue_ready(app, task_id, NOW + 10, 10)) == ["early"]
    run(dispatch.queue_push(app, task_id, "early", NOW + 500, keep_existing=True))  # kept as it was
    assert run(dispatch.queue_ready(app, task_id, NOW + 10, 10)) == ["early"]
    run(dispatch.queue_push(app, task_id, "early", NOW + 500, keep_existing=False))
    run(dispatch.queue_defer(app, task_id, "absent", NOW))  # nothing to defer: nothing added
    assert run(dispatch.queue_ready(app, task_id, NOW + 100, 10)) == ["late"]
    run(dispatch.queue_remove(app, task_id, "late"))
    entries = run(dispatch.queued(app))
    assert [(e.task_id, e.invocation_id, e.available_us) for e in entries if e.task_id == task_id] == [
        (task_id, "early", NOW + 500)]
    assert any(e.task_id == other and e.invocation_id == "elsewhere" for e in entries)
