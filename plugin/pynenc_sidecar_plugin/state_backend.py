"""SidecarStateBackend: Pynenc 0.4.0's BaseStateBackend kept in a pynenc-sidecar.

Select it with state_backend_cls="SidecarStateBackend" (config values, YAML/TOML or
PYNENC__STATE_BACKEND_CLS) or PynencBuilder().sidecar(...). The other components (broker,
orchestrator, client data store, trigger) stay whatever the app configures.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.state_backend.base_state_backend import BaseStateBackend, InvocationHistory

from pynenc_sidecar_plugin import codec, deterministic, foreign_tasks
from pynenc_sidecar_plugin.conf import ConfigSidecar, ConnectionSettings
from pynenc_sidecar_plugin.rpc import StateBackendRpc

if TYPE_CHECKING:
    from pynenc.app_info import AppInfo
    from pynenc.models.call_dto import CallDTO
    from pynenc.models.invocation_dto import InvocationDTO
    from pynenc.runner.runner_context import RunnerContext
    from pynenc.workflow import WorkflowIdentity


# Pynenc's workflow operations record through the sidecar's positions for apps on this
# backend (deterministic.py); other apps in the process keep Pynenc's own executor.
deterministic.install()


class SidecarStateBackend(BaseStateBackend):
    """Every call is one StateBackendService RPC (or a few, for batches and pages)."""

    @cached_property
    def conf(self) -> ConfigSidecar:
        return ConfigSidecar(config_values=self.app.config_values, config_filepath=self.app.config_filepath)

    @cached_property
    def rpc(self) -> StateBackendRpc:
        return StateBackendRpc(ConnectionSettings.from_conf(self.conf), self.app.app_id)

    # --- app -------------------------------------------------------------------------
    def purge(self) -> None:
        self.rpc.purge_app()  # the app info stays, as in Pynenc's backends
        self._runner_context_cache.clear()

    def store_app_info(self, app_info: AppInfo) -> None:
        self.rpc.store_app_info(codec.app_info_to_proto(app_info))

    def get_app_info(self) -> AppInfo:
        info = self.rpc.get_app_info()
        if info is None:
            raise ValueError(f"No app info found for app_id '{self.app.app_id}'")
        return codec.app_info_from_proto(info)

    @staticmethod
    def discover_app_infos() -> dict[str, AppInfo]:
        """Every app on the sidecar that the environment's settings reach (Pynenc calls this
        without an app: sidecar_* come from PYNENC__SIDECAR_* or PYNENC_SIDECAR_*)."""
        rpc = StateBackendRpc(ConnectionSettings.from_conf(ConfigSidecar()), app_id="")
        return {app_id: codec.app_info_from_proto(info) for app_id, info in rpc.discover_app_infos().items()}

    # --- invocations -----------------------------------------------------------------
    def _upsert_invocations(self, entries: list[tuple[InvocationDTO, CallDTO]]) -> None:
        if entries:
            self.rpc.upsert_invocations([codec.invocation_to_proto(inv, call) for inv, call in entries])

    def _get_invocation(self, invocation_id: InvocationId) -> tuple[InvocationDTO, CallDTO] | None:
        message = self.rpc.get_invocation(invocation_id)
        if message is None:
            return None
        invocation, call = codec.invocation_from_proto(message)
        # A task an SDK worker ran is no Pynenc task here: without a stand-in, rebuilding
        # its call (get_invocation) fails and Pynenc's tools cannot show it.
        workflow = invocation.workflow
        foreign_tasks.ensure_task(self.app, call.call_id.task_id, defines_workflow=workflow is not None and (
            workflow.workflow_id == invocation.invocation_id))
        return invocation, call

    def get_child_invocations(self, parent_invocation_id: InvocationId) -> Iterator[InvocationId]:
        return (InvocationId(i) for i in self.rpc.list_child_invocations(parent_invocation_id))

    def get_invocations_by_parent_event(self, parent_event_id: str) -> Iterator[InvocationId]:
        return (InvocationId(i) for i in self.rpc.list_invocations_by_parent_event(parent_event_id))

    def get_invocation_ids_by_workflow(self, workflow_id: str | None = None,
                                       workflow_type_key: str | None = None) -> Iterator[InvocationId]:
        if not workflow_id and not workflow_type_key:
            return iter([])  # Pynenc's backends answer "nothing"; the RPC calls it INVALID_ARGUMENT
        ids = self.rpc.list_invocation_ids_by_workflow(workflow_id or "", workflow_type_key or "")
        return (InvocationId(i) for i in ids)

    # --- history ---------------------------------------------------------------------
    def _add_histories(self, invocation_ids: list[InvocationId], invocation_history: InvocationHistory) -> None:
        if invocation_ids:
            self.rpc.add_history(list(invocation_ids), codec.history_to_proto(invocation_history))

    def _get_history(self, invocation_id: InvocationId) -> list[InvocationHistory]:
        return [codec.history_from_proto(entry) for entry in self.rpc.get_history(invocation_id)]

    def iter_invocations_in_timerange(self, start_time: datetime, end_time: datetime,
                                      batch_size: int = 100) -> Iterator[list[InvocationId]]:
        for ids in self.rpc.stream_invocations_in_time_range(start_time, end_time, batch_size):
            if ids:
                yield [InvocationId(i) for i in ids]

    def iter_history_in_timerange(self, start_time: datetime, end_time: datetime,
                                  batch_size: int = 100) -> Iterator[list[InvocationHistory]]:
        for entries in self.rpc.stream_history_in_time_range(start_time, end_time, batch_size):
            if entries:
                yield [codec.history_from_proto(entry) for entry in entries]

    # --- results and exceptions ------------------------------------------------------
    def _set_result(self, invocation_id: InvocationId, serialized_result: str) -> None:
        self.rpc.set_result(invocation_id, codec.payload(serialized_result))

    def _get_result(self, invocation_id: InvocationId) -> str:
        stored = self.rpc.get_result(invocation_id)
        if stored is None:
            raise KeyError(f"Result for invocation {invocation_id} not found")
        return codec.from_payload(stored)

    def set_exception(self, invocation_id: InvocationId, exception: Exception) -> None:
        # Overridden to send the error's message too, so that readers in other languages see
        # the type and message without Pynenc's serializer.
        self._send_exception(invocation_id, self.serialize_exception(exception), str(exception))

    def _set_exception(self, invocation_id: InvocationId, serialized_exception: str) -> None:
        self._send_exception(invocation_id, serialized_exception, "")

    def _send_exception(self, invocation_id: InvocationId, serialized_exception: str, message: str) -> None:
        self.rpc.set_exception(invocation_id, *codec.task_error(serialized_exception, message))

    def _get_exception(self, invocation_id: InvocationId) -> str:
        detail = self.rpc.get_exception_detail(invocation_id)
        if detail is None:
            raise KeyError(f"Exception for invocation {invocation_id} not found")
        return codec.from_payload(detail)

    # --- workflow data ---------------------------------------------------------------
    def set_workflow_data(self, workflow_identity: WorkflowIdentity, key: str, value: Any) -> None:
        self.rpc.set_workflow_data(workflow_identity.workflow_id, key,
                                   codec.payload(self.app.serializer.serialize(value)))

    def get_workflow_data(self, workflow_identity: WorkflowIdentity, key: str, default: Any = None) -> Any:
        stored = self.rpc.get_workflow_data(workflow_identity.workflow_id, key)
        if stored is None:
            return default
        return self.app.serializer.deserialize(codec.from_payload(stored))

    # --- workflow runs ---------------------------------------------------------------
    def store_workflow_run(self, workflow_identity: WorkflowIdentity) -> None:
        self.rpc.store_workflow_run(codec.workflow_to_proto(workflow_identity))

    def get_all_workflow_types(self) -> Iterator[TaskId]:
        return (TaskId.from_key(key) for key in self.rpc.list_workflow_types())

    def get_all_workflow_runs(self) -> Iterator[WorkflowIdentity]:
        return (codec.workflow_from_proto(w) for w in self.rpc.list_workflow_runs())

    def get_workflow_runs(self, workflow_type: TaskId) -> Iterator[WorkflowIdentity]:
        return (codec.workflow_from_proto(w) for w in self.rpc.list_workflow_runs(workflow_type.key))

    def store_workflow_sub_invocation(self, parent_workflow_id: InvocationId, sub_invocation_id: InvocationId) -> None:
        self.rpc.store_workflow_sub_invocation(parent_workflow_id, sub_invocation_id)

    def get_workflow_sub_invocations(self, workflow_id: InvocationId) -> Iterator[InvocationId]:
        return (InvocationId(i) for i in self.rpc.list_workflow_sub_invocations(workflow_id))

    # --- runner contexts -------------------------------------------------------------
    def _store_runner_context(self, runner_context: RunnerContext) -> None:
        self.rpc.store_runner_context(codec.runner_context_to_proto(runner_context))

    def _get_runner_context(self, runner_id: str) -> RunnerContext | None:
        found = self._get_runner_contexts([runner_id])
        return found[0] if found else None

    def _get_runner_contexts(self, runner_ids: list[str]) -> list[RunnerContext]:
        return self._with_parents(self.rpc.batch_get_runner_contexts(runner_ids))

    def get_matching_runner_contexts(self, partial_id: str) -> Iterator[RunnerContext]:
        return iter(self._with_parents(list(self.rpc.search_runner_contexts(partial_id))))

    def _with_parents(self, messages) -> list[RunnerContext]:
        """Rebuild each context's parent chain (the wire carries the parent's id only; Pynenc
        stores every parent before its child, see BaseStateBackend.store_runner_context)."""
        known = {m.runner_id: m for m in messages}
        missing = {m.parent_runner_id for m in messages if m.parent_runner_id and m.parent_runner_id not in known}
        while missing:
            fetched = self.rpc.batch_get_runner_contexts(sorted(missing))
            known.update({m.runner_id: m for m in fetched})
            missing = {m.parent_runner_id for m in fetched if m.parent_runner_id and m.parent_runner_id not in known}

        built: dict[str, RunnerContext] = {}

        def build(runner_id: str) -> RunnerContext | None:
            if runner_id not in built:
                message = known.get(runner_id)
                if message is None:
                    return None
                parent = build(message.parent_runner_id) if message.parent_runner_id else None
                built[runner_id] = codec.runner_context_from_proto(message, parent)
            return built[runner_id]

        return [ctx for m in messages if (ctx := build(m.runner_id)) is not None]

