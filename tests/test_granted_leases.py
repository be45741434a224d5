"""storage/redis/granted.py: the leased states a replica keeps for its outcomes' one-script step."""

from __future__ import annotations

from pynenc_sidecar.core.tasks import RUNNING, TaskState, WorkflowRef
from pynenc_sidecar.storage.redis.granted import GrantedLeases


def leased(invocation_id: str, lease_id: str, arguments_json: str = "{}") -> TaskState:
    return TaskState(invocation_id, "mod.task", arguments_json, WorkflowRef("wf", "mod.flow"), "wf", RUNNING,
                     lease_id=lease_id, runner_id="r")


def test_a_state_is_taken_once_and_only_for_its_own_grant() -> None:
    kept = GrantedLeases()
    kept.keep("app", leased("a", "lease-2"))
    assert kept.take("app", "a", "lease-1") is None  # an old holder's late outcome
    assert kept.take("other-app", "a", "lease-2") is None
    assert kept.take("app", "a", "") is None
    assert kept.take("app", "a", "lease-2") == leased("a", "lease-2")  # still there for the holder
    assert kept.take("app", "a", "lease-2") is None


def test_a_new_grant_replaces_the_state_of_the_previous_one() -> None:
    kept = GrantedLeases()
    kept.keep("app", leased("a", "lease-1"))
    kept.keep("app", leased("a", "lease-2"))
    assert len(kept) == 1
    assert kept.take("app", "a", "lease-1") is None
    assert kept.take("app", "a", "lease-2") is not None


def test_the_least_recently_granted_go_first_beyond_the_budget_and_large_states_are_not_kept() -> None:
    kept = GrantedLeases(budget_bytes=3 * 1300, largest_bytes=2000)
    for n in range(5):
        kept.keep("app", leased(f"t{n}", f"l{n}", "x" * 1000))
    assert [kept.take("app", f"t{n}", f"l{n}") is not None for n in range(5)] == [False, False, True, True, True]
    kept.keep("app", leased("big", "l", "x" * 5000))
    assert len(kept) == 0
