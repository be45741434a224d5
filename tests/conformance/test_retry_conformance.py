"""Conformance of `Store.retry_failed`, the store step of RetryWorkflow, on every store."""

from __future__ import annotations

from conformance.test_store_conformance import Run, lease, task
from pynenc_sidecar.core.tasks import FAILED, RETRY, RUNNING, SUCCESS
from pynenc_sidecar.storage.interface import Store

ERROR = '{"type":"ValueError","message":"bad","detail_json":"","traceback":"Traceback ..."}'


async def finished(store: Store, app: str, invocation_id: str, status: int, now_us: int = 10) -> None:
    await store.ensure_task(app, task(invocation_id), lease(invocation_id, 1_000), 0)
    result, error = ("1", None) if status == SUCCESS else (None, ERROR)
    await store.complete_task(app, invocation_id, f"lease-{invocation_id}", status, result, error, now_us)


def test_retry_failed_resets_only_failed_tasks_and_keeps_their_definition(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await finished(store, app, "failed-child", FAILED)
        await finished(store, app, "done-child", SUCCESS)
        await store.ensure_task(app, task("running-child"), lease("r", 1_000_000), 0)
        await finished(store, app, "main", FAILED)
        before = await store.get_task(app, "failed-child")

        reset = await store.retry_failed(app, ["failed-child", "done-child", "running-child", "missing", "main"])

        assert [s.invocation_id for s in reset] == ["failed-child", "main"]
        for state in reset:
            assert (state.status, state.error_json, state.result_json) == (RETRY, None, None)
            assert (state.lease_id, state.lease_expire_us, state.finished_us) == ("", 0, 0)
            assert not state.finished
            assert await store.get_task(app, state.invocation_id) == state
        assert (reset[0].task_id, reset[0].arguments_json, reset[0].workflow) == (
            before.task_id, before.arguments_json, before.workflow)
        # Finished and running tasks are kept as they were; nothing was created.
        assert (await store.get_task(app, "done-child")).status == SUCCESS
        assert (await store.get_task(app, "running-child")).status == RUNNING
        assert await store.get_task(app, "missing") is None

    run(body())


def test_a_retried_task_is_leased_run_and_completed_again(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await finished(store, app, "inv", FAILED)
        await store.retry_failed(app, ["inv"])
        # Leased as a registered task is, by ensure_task (StartWorkflow/ExecuteTask) and by
        # acquire_lease (WaitTask).
        state, granted, created = await store.ensure_task(app, task("inv"), lease("again", 1_000), 100)
        assert (granted, created, state.status) == (True, False, RUNNING)
        state, accepted = await store.complete_task(app, "inv", "lease-again", SUCCESS, '"fixed"', None, 200)
        assert accepted and (state.status, state.result_json, state.error_json, state.finished_us) == (
            SUCCESS, '"fixed"', None, 200)

        await finished(store, app, "other", FAILED)
        await store.retry_failed(app, ["other"])
        state, granted = await store.acquire_lease(app, "other", lease("w"), 300)
        assert granted and state.status == RUNNING

    run(body())


def test_retry_failed_twice_resets_once(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await finished(store, app, "inv", FAILED)
        assert [s.invocation_id for s in await store.retry_failed(app, ["inv"])] == ["inv"]
        assert await store.retry_failed(app, ["inv"]) == []
        assert await store.retry_failed(app, []) == []

    run(body())


def test_retry_failed_stays_inside_its_app(store: Store, run: Run, app: str) -> None:
    async def body() -> None:
        await finished(store, app, "inv", FAILED)
        await finished(store, app + "-other", "inv", FAILED)
        await store.retry_failed(app, ["inv"])
        assert (await store.get_task(app + "-other", "inv")).status == FAILED

    run(body())
