"""StateBackendService's use cases: Pynenc's BaseStateBackend on a StateBackendStore.

The servicer (service/state_backend.py) validates a request, encodes its payloads and calls
one method here; this module applies the rules that need the store (what is not found, which
time a write records, which apps a caller sees) and knows nothing of gRPC or protobuf.
Payloads are opaque text here, as in the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection

from pynenc_sidecar.clock import Clock, wall_clock_us
from pynenc_sidecar.core.errors import INVOCATION_NOT_FOUND, NotFound
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.storage.interface import (
    Cursor,
    HistoryCursor,
    HistoryRecord,
    InvocationRecord,
    StateBackendStore,
)

RESULT_NOT_FOUND = "RESULT_NOT_FOUND"
EXCEPTION_NOT_FOUND = "EXCEPTION_NOT_FOUND"
APP_NOT_FOUND = "APP_NOT_FOUND"
RUNNER_CONTEXT_NOT_FOUND = "RUNNER_CONTEXT_NOT_FOUND"


def _not_found(kind: str, reason: str, **metadata: str) -> NotFound:
    ids = ", ".join(f"{k}={v!r}" for k, v in metadata.items())
    return NotFound(f"{kind} not found ({ids})", reason=reason, metadata=metadata)


class StateBackendEngine:
    def __init__(self, store: StateBackendStore, clock: Clock = wall_clock_us) -> None:
        self.store = store
        self.clock = clock

    # --- app -------------------------------------------------------------------------
    async def purge_app(self, app_id: str, *, keep_app_info: bool) -> None:
        await self.store.purge_app(app_id, keep_app_info=keep_app_info)

    async def store_app_info(self, app_id: str, payload: str) -> None:
        await self.store.store_app_info(app_id, payload)

    async def app_info(self, app_id: str) -> str:
        payload = await self.store.get_app_info(app_id)
        if payload is None:
            raise _not_found("app info", APP_NOT_FOUND, app_id=app_id)
        return payload

    async def app_infos_page(self, allowed: Collection[str] | None, after: str | None, limit: int
                             ) -> list[tuple[str, str]]:
        """Up to `limit` (app id, info payload) after `after`, by app id: of every app, or only
        of the allowed ones (a token's) when given."""
        if allowed is None:
            return await self.store.app_infos_page(after, limit)
        mine = [app_id for app_id in sorted(allowed) if after is None or app_id > after][:limit]
        found = [(app_id, await self.store.get_app_info(app_id)) for app_id in mine]
        return [(app_id, payload) for app_id, payload in found if payload is not None]

    # --- invocations -----------------------------------------------------------------
    async def upsert_invocations(self, app_id: str, records: list[InvocationRecord]) -> None:
        await self.store.upsert_invocations(app_id, records)

    async def invocation(self, app_id: str, invocation_id: str) -> InvocationRecord:
        record = await self.store.get_invocation(app_id, invocation_id)
        if record is None:
            raise _not_found("invocation", INVOCATION_NOT_FOUND, invocation_id=invocation_id)
        return record

    async def child_invocations(self, app_id: str, parent_invocation_id: str, limit: int | None,
                                after: str | None) -> list[str]:
        return await self.store.child_invocations(app_id, parent_invocation_id, limit, after)

    async def invocations_by_parent_event(self, app_id: str, parent_event_id: str, limit: int | None,
                                          after: str | None) -> list[str]:
        return await self.store.invocations_by_parent_event(app_id, parent_event_id, limit, after)

    async def invocation_ids_by_workflow(self, app_id: str, workflow_id: str, workflow_type: str,
                                         limit: int | None, after: str | None) -> list[str]:
        return await self.store.invocation_ids_by_workflow(app_id, workflow_id, workflow_type, limit, after)

    # --- history ---------------------------------------------------------------------
    async def add_history(self, app_id: str, invocation_ids: list[str], timestamp_us: int | None,
                          payload_at: Callable[[int], str]) -> None:
        """One entry for the invocations at timestamp_us (now when None); payload_at(time)
        is the entry's payload, stamped with the time it is stored at."""
        at_us = self.clock() if timestamp_us is None else timestamp_us
        await self.store.add_history(app_id, invocation_ids, at_us, payload_at(at_us))

    async def history(self, app_id: str, invocation_id: str, limit: int | None,
                      after: HistoryCursor | None) -> list[HistoryRecord]:
        return await self.store.get_history(app_id, invocation_id, limit, after)

    def invocations_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                             ) -> AsyncIterator[list[str]]:
        return self.store.invocations_in_range(app_id, start_us, end_us, batch_size)

    def history_in_range(self, app_id: str, start_us: int, end_us: int, batch_size: int
                         ) -> AsyncIterator[list[HistoryRecord]]:
        return self.store.history_in_range(app_id, start_us, end_us, batch_size)

    # --- results ---------------------------------------------------------------------
    async def set_result(self, app_id: str, invocation_id: str, result_json: str) -> None:
        await self.store.set_result(app_id, invocation_id, result_json)

    async def result(self, app_id: str, invocation_id: str) -> str:
        result = await self.store.get_result(app_id, invocation_id)
        if result is None:
            raise _not_found("result", RESULT_NOT_FOUND, invocation_id=invocation_id)
        return result

    async def set_exception(self, app_id: str, invocation_id: str, payload: str) -> None:
        await self.store.set_exception(app_id, invocation_id, payload)

    async def exception(self, app_id: str, invocation_id: str) -> str:
        payload = await self.store.get_exception(app_id, invocation_id)
        if payload is None:
            raise _not_found("exception", EXCEPTION_NOT_FOUND, invocation_id=invocation_id)
        return payload

    # --- workflow data and deterministic values --------------------------------------
    async def workflow_data(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.store.get_workflow_data(app_id, workflow_id, key)

    async def set_workflow_data(self, app_id: str, workflow_id: str, key: str, value: str) -> None:
        await self.store.set_workflow_data(app_id, workflow_id, key, value)

    async def deterministic_value(self, app_id: str, workflow_id: str, key: str) -> str | None:
        return await self.store.get_deterministic_value(app_id, workflow_id, key)

    async def set_deterministic_value(self, app_id: str, workflow_id: str, key: str, value: str
                                      ) -> tuple[str, bool]:
        """First writer wins: (stored value, replayed)."""
        return await self.store.set_deterministic_value(app_id, workflow_id, key, value)

    # --- workflow runs ---------------------------------------------------------------
    async def store_workflow_run(self, app_id: str, workflow: WorkflowRef) -> None:
        """Indexed as first stored now (a run stored again keeps its first time)."""
        await self.store.store_workflow_run(app_id, workflow, self.clock())

    async def workflow_types(self, app_id: str, limit: int | None, after: str | None) -> list[str]:
        return await self.store.workflow_types(app_id, limit, after)

    async def workflow_runs(self, app_id: str, workflow_type: str, page_size: int, after: Cursor | None
                            ) -> tuple[list[WorkflowRef], Cursor | None]:
        return await self.store.workflow_runs(app_id, workflow_type, page_size, after)

    async def store_sub_invocation(self, app_id: str, workflow_id: str, invocation_id: str) -> None:
        await self.store.store_sub_invocation(app_id, workflow_id, invocation_id)

    async def sub_invocations(self, app_id: str, workflow_id: str, limit: int | None, after: str | None
                              ) -> list[str]:
        return await self.store.sub_invocations(app_id, workflow_id, limit, after)

    # --- runner contexts -------------------------------------------------------------
    async def store_runner_context(self, app_id: str, runner_id: str, payload: str) -> None:
        await self.store.store_runner_context(app_id, runner_id, payload)

    async def runner_context(self, app_id: str, runner_id: str) -> str:
        (payload,) = await self.store.get_runner_contexts(app_id, [runner_id])
        if payload is None:
            raise _not_found("runner context", RUNNER_CONTEXT_NOT_FOUND, runner_id=runner_id)
        return payload

    async def runner_contexts(self, app_id: str, runner_ids: list[str]) -> list[str]:
        """The payloads of the runners that have one, in the order asked."""
        return [p for p in await self.store.get_runner_contexts(app_id, runner_ids) if p is not None]

    async def search_runner_contexts(self, app_id: str, partial_id: str, limit: int, after: str | None
                                     ) -> tuple[list[tuple[str, str]], str | None]:
        return await self.store.search_runner_contexts(app_id, partial_id, limit, after)
