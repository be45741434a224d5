"""StateBackendService calls: one function per RPC, protos in and out, errors translated.

With codec.py, the only module that knows StateBackendService's wire. Every list is read
page by page (AIP-158, PAGE_SIZE items a page) as the caller iterates, so a list of any
length is held one page at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc

from pynenc_sidecar_plugin import channel
from pynenc_sidecar_plugin.conf import ConnectionSettings
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc

# Stay under the server's per-request limits: 1..1000 items (UpsertInvocations, AddHistory,
# BatchGetRunnerContexts) and gRPC's default 4 MiB per received message.
MAX_BATCH = 1000
MAX_REQUEST_BYTES = 3 * 1024 * 1024
PAGE_SIZE = 1000


class SidecarUnavailableError(ConnectionError):
    """The sidecar could not be reached within the deadline (retries included)."""


class SidecarRequestError(ValueError):
    """The sidecar refused a request as invalid; the message names the field."""


class SidecarReplayError(RuntimeError):
    """The sidecar refused a recorded step (FAILED_PRECONDITION): a replay diverged from the
    record, or reached a new position of a finished invocation; the message names it."""


def _translate(error: grpc.RpcError, method: str, address: str) -> Exception:
    code, details = error.code(), error.details()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return SidecarUnavailableError(
            f"sidecar at {address} did not answer {method} ({code.name}: {details}); check that it runs there "
            f"or set sidecar_address / PYNENC_SIDECAR_ADDRESS")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return SidecarRequestError(f"sidecar refused {method}: {details}")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return SidecarReplayError(f"sidecar refused {method}: {details}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return PermissionError(f"sidecar at {address} refused {method} ({code.name}: {details}); "
                               f"check sidecar_token and the TLS settings")
    return RuntimeError(f"sidecar {method} failed ({code.name}: {details})")


def _batches(messages: list) -> Iterator[list]:
    """Consecutive runs of at most MAX_BATCH messages and MAX_REQUEST_BYTES (a message larger
    than that travels alone, for the server to accept or refuse by its own limit)."""
    batch: list = []
    size = 0
    for message in messages:
        message_size = message.ByteSize()
        if batch and (len(batch) == MAX_BATCH or size + message_size > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message_size
    if batch:
        yield batch


class ServiceRpc:
    """Calls of one app to one sidecar service (app_id scopes every request but
    DiscoverAppInfos): the gate, the deadline, error translation, paging."""

    stub_class: Callable[[grpc.Channel], object]

    def __init__(self, settings: ConnectionSettings, app_id: str) -> None:
        self.settings = settings
        self.app_id = app_id

    @property
    def _stub(self):
        # Looked up per call so that a forked child gets its own channel (channel.py).
        return self.stub_class(channel.channel_for(self.settings))

    def _call(self, method: str, request, *, not_found: bool = False):
        """The reply; None on NOT_FOUND when the caller expects absence."""
        try:
            with channel.gate.call():
                return getattr(self._stub, method)(request, timeout=self.settings.timeout_sec)
        except grpc.RpcError as error:
            if not_found and error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _translate(error, method, self.settings.address) from None

    def _pages(self, method: str, request, items: str) -> Iterator:
        """The items of every page, fetched as the caller iterates."""
        request.page_size = PAGE_SIZE
        while True:
            reply = self._call(method, request)
            yield from getattr(reply, items)
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    def _stream(self, method: str, request) -> Iterator:
        """The replies; each wait for the next one passes the gate (an idle open stream is not
        inside gRPC, a thread waiting for a reply is)."""
        try:
            with channel.gate.call():
                replies = getattr(self._stub, method)(request, timeout=self.settings.timeout_sec)
            while True:
                with channel.gate.call():
                    reply = next(replies, None)
                if reply is None:
                    return
                yield reply
        except grpc.RpcError as error:
            raise _translate(error, method, self.settings.address) from None



class StateBackendRpc(ServiceRpc):
    stub_class = sb_grpc.StateBackendServiceStub

    # --- app -------------------------------------------------------------------------
    def purge_app(self, delete_app_info: bool = False) -> None:
        self._call("PurgeApp", sb.PurgeAppRequest(app_id=self.app_id, delete_app_info=delete_app_info))

    def store_app_info(self, info: sb.AppInfo) -> None:
        self._call("StoreAppInfo", sb.StoreAppInfoRequest(app_info=info))

    def get_app_info(self) -> sb.AppInfo | None:
        reply = self._call("GetAppInfo", sb.GetAppInfoRequest(app_id=self.app_id), not_found=True)
        return reply.app_info if reply else None

    def discover_app_infos(self) -> dict[str, sb.AppInfo]:
        request = sb.DiscoverAppInfosRequest()
        found: dict[str, sb.AppInfo] = {}
        while True:
            reply = self._call("DiscoverAppInfos", request)
            found.update(reply.app_infos)
            if not reply.next_page_token:
                return found
            request.page_token = reply.next_page_token

    # --- invocations -----------------------------------------------------------------
    def upsert_invocations(self, invocations: list[sb.Invocation]) -> None:
        for batch in _batches(invocations):
            self._call("UpsertInvocations", sb.UpsertInvocationsRequest(app_id=self.app_id, invocations=batch))

    def get_invocation(self, invocation_id: str) -> sb.Invocation | None:
        reply = self._call("GetInvocation", sb.GetInvocationRequest(app_id=self.app_id, invocation_id=invocation_id),
                           not_found=True)
        return reply.invocation if reply else None

    def list_child_invocations(self, parent_invocation_id: str) -> Iterator[str]:
        return self._pages("ListChildInvocations", sb.ListChildInvocationsRequest(
            app_id=self.app_id, parent_invocation_id=parent_invocation_id), "invocation_ids")

    def list_invocation_ids_by_workflow(self, workflow_id: str, workflow_type: str) -> Iterator[str]:
        return self._pages("ListInvocationIdsByWorkflow", sb.ListInvocationIdsByWorkflowRequest(
            app_id=self.app_id, workflow_id=workflow_id, workflow_type=workflow_type), "invocation_ids")

    def list_invocations_by_parent_event(self, parent_event_id: str) -> Iterator[str]:
        return self._pages("ListInvocationsByParentEvent", sb.ListInvocationsByParentEventRequest(
            app_id=self.app_id, parent_event_id=parent_event_id), "invocation_ids")

    # --- history ---------------------------------------------------------------------
    def add_history(self, invocation_ids: list[str], entry: sb.InvocationHistory) -> None:
        for start in range(0, len(invocation_ids), MAX_BATCH):
            self._call("AddHistory", sb.AddHistoryRequest(
                app_id=self.app_id, invocation_ids=invocation_ids[start:start + MAX_BATCH], history=entry))

    def get_history(self, invocation_id: str) -> Iterator[sb.InvocationHistory]:
        return self._pages("GetHistory", sb.GetHistoryRequest(app_id=self.app_id, invocation_id=invocation_id),
                           "history")

    def stream_invocations_in_time_range(self, start, end, batch_size: int) -> Iterator[list[str]]:
        request = sb.StreamInvocationsInTimeRangeRequest(app_id=self.app_id, batch_size=batch_size)
        request.start_time.FromDatetime(start)
        request.end_time.FromDatetime(end)
        for reply in self._stream("StreamInvocationsInTimeRange", request):
            yield list(reply.invocation_ids)

    def stream_history_in_time_range(self, start, end, batch_size: int) -> Iterator[list[sb.InvocationHistory]]:
        request = sb.StreamHistoryInTimeRangeRequest(app_id=self.app_id, batch_size=batch_size)
        request.start_time.FromDatetime(start)
        request.end_time.FromDatetime(end)
        for reply in self._stream("StreamHistoryInTimeRange", request):
            yield list(reply.history)

    # --- results and exceptions ------------------------------------------------------
    def set_result(self, invocation_id: str, result: sb.SerializedValue) -> None:
        self._call("SetResult", sb.SetResultRequest(app_id=self.app_id, invocation_id=invocation_id, result=result))

    def get_result(self, invocation_id: str) -> sb.SerializedValue | None:
        reply = self._call("GetResult", sb.GetResultRequest(app_id=self.app_id, invocation_id=invocation_id),
                           not_found=True)
        return reply.result if reply else None

    def set_exception(self, invocation_id: str, error: common_pb2.TaskError, detail: sb.SerializedValue) -> None:
        self._call("SetException", sb.SetExceptionRequest(app_id=self.app_id, invocation_id=invocation_id,
                                                          exception=error, detail=detail))

    def get_exception_detail(self, invocation_id: str) -> sb.SerializedValue | None:
        reply = self._call("GetException", sb.GetExceptionRequest(app_id=self.app_id, invocation_id=invocation_id),
                           not_found=True)
        return reply.detail if reply else None

    # --- workflow data ---------------------------------------------------------------
    def get_workflow_data(self, workflow_id: str, key: str) -> sb.SerializedValue | None:
        reply = self._call("GetWorkflowData", sb.GetWorkflowDataRequest(app_id=self.app_id, workflow_id=workflow_id,
                                                                        key=key))
        return reply.value if reply.found else None

    def set_workflow_data(self, workflow_id: str, key: str, value: sb.SerializedValue) -> None:
        self._call("SetWorkflowData", sb.SetWorkflowDataRequest(app_id=self.app_id, workflow_id=workflow_id,
                                                                key=key, value=value))

    # --- workflow runs ---------------------------------------------------------------
    def store_workflow_run(self, workflow: common_pb2.WorkflowIdentity) -> None:
        self._call("StoreWorkflowRun", sb.StoreWorkflowRunRequest(app_id=self.app_id, workflow=workflow))

    def list_workflow_types(self) -> Iterator[str]:
        return self._pages("ListWorkflowTypes", sb.ListWorkflowTypesRequest(app_id=self.app_id), "workflow_types")

    def list_workflow_runs(self, workflow_type: str = "") -> Iterator[common_pb2.WorkflowIdentity]:
        return self._pages("ListWorkflowRuns", sb.ListWorkflowRunsRequest(
            app_id=self.app_id, workflow_type=workflow_type), "workflows")

    def store_workflow_sub_invocation(self, parent_workflow_id: str, sub_invocation_id: str) -> None:
        self._call("StoreWorkflowSubInvocation", sb.StoreWorkflowSubInvocationRequest(
            app_id=self.app_id, parent_workflow_id=parent_workflow_id, sub_invocation_id=sub_invocation_id))

    def list_workflow_sub_invocations(self, workflow_id: str) -> Iterator[str]:
        return self._pages("ListWorkflowSubInvocations", sb.ListWorkflowSubInvocationsRequest(
            app_id=self.app_id, workflow_id=workflow_id), "invocation_ids")

    # --- runner contexts -------------------------------------------------------------
    def store_runner_context(self, context: sb.RunnerContext) -> None:
        self._call("StoreRunnerContext", sb.StoreRunnerContextRequest(app_id=self.app_id, runner_context=context))

    def batch_get_runner_contexts(self, runner_ids: list[str]) -> list[sb.RunnerContext]:
        found: list[sb.RunnerContext] = []
        for start in range(0, len(runner_ids), MAX_BATCH):
            found.extend(self._call("BatchGetRunnerContexts", sb.BatchGetRunnerContextsRequest(
                app_id=self.app_id, runner_ids=runner_ids[start:start + MAX_BATCH])).runner_contexts)
        return found

    def search_runner_contexts(self, partial_id: str) -> Iterator[sb.RunnerContext]:
        return self._pages("SearchRunnerContexts", sb.SearchRunnerContextsRequest(
            app_id=self.app_id, partial_id=partial_id), "runner_contexts")
