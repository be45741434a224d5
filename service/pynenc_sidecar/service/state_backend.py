"""StateBackendService: Pynenc's BaseStateBackend over gRPC. A thin servicer: it validates a
request, encodes its payloads and calls StateBackendEngine (state_backend_engine.py: the use
cases, on a StateBackendStore, storage/interface.py); errors map to statuses in service/errors.py.

Messages are stored as their proto JSON (unknown fields ignored on read), so a field added
to a message later reads back from older entries with its default. Payloads (results, data,
deterministic values, exception details, arguments) are SerializedValues: service/serialized_values.py
says how they are checked and kept; service/paging.py how the list RPCs page.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Protocol, TypeVar, cast

import grpc
from google.protobuf import json_format, timestamp_pb2

from pynenc_sidecar import security
from pynenc_sidecar.core.derivations import parse_json
from pynenc_sidecar.core.errors import InvalidArgument
from pynenc_sidecar.core.masking import mask_config_json
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.service import convert
from pynenc_sidecar.service import serialized_values as values
from pynenc_sidecar.service.bulk import BulkReads
from pynenc_sidecar.service.errors import handle_errors, handle_stream_errors
from pynenc_sidecar.service.history_json import load_history
from pynenc_sidecar.service.paging import (
    REPLY_BUDGET_BYTES,
    bounded,
    decode_token,
    decoded,
    encode_token,
    filled,
    is_ints,
    is_text,
    page_size,
)
from pynenc_sidecar.service.validation import Limits, optional_id, require_id, require_json, require_name
from pynenc_sidecar.state_backend_engine import StateBackendEngine
from pynenc_sidecar.storage.interface import InvocationRecord
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc

T = TypeVar("T")

SERVICE_NAME = sb.DESCRIPTOR.services_by_name["StateBackendService"].full_name

MAX_BATCH = 1000
MAX_ARGUMENTS = 1000  # arguments of one invocation (a call's parameters)
# Runs keep their earlier default; every other list defaults to its maximum, so that an older
# client that sends no page_size still gets lists of up to 1000 items whole.
RUNS_PAGE_DEFAULT, PAGE_MAX = 100, 1000
LIST_PAGE_DEFAULT = PAGE_MAX
STREAM_BATCH_DEFAULT, STREAM_BATCH_MAX = 100, 10_000
# A streamed batch is cut short past this many payload bytes, so that batch_size times a
# large execution context cannot come near what a client accepts in one message.
STREAM_MESSAGE_BUDGET = REPLY_BUDGET_BYTES
# google.protobuf.Timestamp's valid range: 0001-01-01 .. 9999-12-31.
TIMESTAMP_MIN_S, TIMESTAMP_MAX_S = -62_135_596_800, 253_402_300_799


class BulkPages(Protocol):
    """Builds GetHistory replies and history streams elsewhere (bulk_reader.BulkReader): their
    bytes, or None when it cannot now (the servicer builds them itself)."""

    async def get_history(self, request: sb.GetHistoryRequest, timeout: float | None) -> bytes | None: ...

    def stream_history(self, request: sb.StreamHistoryInTimeRangeRequest,
                       timeout: float | None) -> AsyncGenerator[bytes, None] | None: ...


def register_state_backend(server, engine: StateBackendEngine, limits: Limits,
                           bulk_reads: BulkReads | None = None, bulk_pages: BulkPages | None = None) -> list[str]:
    servicer = StateBackendServicer(engine, limits, bulk_reads, bulk_pages)
    # The generated function uses only the two registration methods _PreSerialized has.
    registrar = cast(grpc.aio.Server, _PreSerialized(server, {"GetHistory", "StreamHistoryInTimeRange"}))
    sb_grpc.add_StateBackendServiceServicer_to_server(servicer, registrar)
    return [SERVICE_NAME]


class _PreSerialized:
    """What the generated add_..._to_server registers, on `server`, with the methods in `names`
    also allowed to return their reply already serialized (bytes another process built, sent
    as they are). The generated code registers the same handlers twice, as a generic handler
    and as registered methods; both are rebuilt from the latter."""

    def __init__(self, server, names: set[str]) -> None:
        self._server, self._names = server, names

    def add_generic_rpc_handlers(self, generic_handlers) -> None:
        pass  # the same handlers come next, by name

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        handlers = {name: handler._replace(response_serializer=_bytes_or(handler.response_serializer))
                    if name in self._names else handler for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        self._server.add_registered_method_handlers(service, handlers)


def _bytes_or(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serialized(reply: Any) -> bytes:
        return reply if type(reply) is bytes else serialize(reply)
    return serialized


# --- encoding --------------------------------------------------------------------
def _dump(message) -> str:
    return json_format.MessageToJson(message, indent=None)


def _load(text: str, cls):
    return json_format.Parse(text, cls(), ignore_unknown_fields=True)


def _load_app_info(text: str) -> sb.AppInfo:
    return _load(text, sb.AppInfo)


def _load_runner_context(text: str) -> sb.RunnerContext:
    return _load(text, sb.RunnerContext)


def _chunks(items: list[T], size: Callable[[T], int], budget: int) -> Iterator[list[T]]:
    """`items` in runs of at most `budget` bytes (at least one item each)."""
    chunk: list[T] = []
    total = 0
    for item in items:
        if chunk and total + size(item) > budget:
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += size(item)
    yield chunk


def _is_run_cursor(cursor) -> bool:
    return (isinstance(cursor, list) and len(cursor) == 2 and isinstance(cursor[0], (int, float))
            and not isinstance(cursor[0], bool) and abs(cursor[0]) < 2**63 and isinstance(cursor[1], str))


async def _id_page(request, rpc: str, scope: tuple[str, ...], fetch) -> tuple[list[str], str]:
    """One page of a sorted id list: `fetch(limit, after)` reads one more than the page, to
    know whether another follows."""
    size = page_size(request.page_size, LIST_PAGE_DEFAULT, PAGE_MAX)
    after = decode_token(request.page_token, rpc, scope, is_text)
    ids, more = bounded(await fetch(size + 1, after), len, size)
    return ids, encode_token(rpc, scope, ids[-1]) if more else ""


class StateBackendServicer(sb_grpc.StateBackendServiceServicer):
    def __init__(self, engine: StateBackendEngine, limits: Limits, bulk_reads: BulkReads | None = None,
                 bulk_pages: BulkPages | None = None) -> None:
        self.engine = engine
        self.limits = limits
        # Pages that can be large are read and decoded one (or a few) at a time (service/bulk.py).
        self.bulk = bulk_reads or BulkReads()
        self.bulk_pages = bulk_pages

    # --- request parsing -------------------------------------------------------
    def _id(self, value: str, field: str) -> str:
        return require_id(value, field, self.limits)

    def _opt(self, value: str, field: str) -> str:
        return optional_id(value, field, self.limits)

    def _text(self, value: str, field: str) -> str:
        """Free text (messages, paths, serialized values): only its size is bounded."""
        size = len(value.encode("utf-8"))
        if size > self.limits.max_value_bytes:
            raise InvalidArgument(field, f"is {size} bytes; at most {self.limits.max_value_bytes} are allowed")
        return value

    def _opt_json(self, value: str, field: str, *, object_only: bool = False) -> str:
        if not value:
            return ""
        require_json(value, field, self.limits)
        if object_only and not isinstance(parse_json(value), dict):
            raise InvalidArgument(field, "must be a JSON object")
        return value

    def _workflow(self, wf: common_pb2.WorkflowIdentity, field: str, *, type_required: bool) -> WorkflowRef:
        check_type = self._id if type_required else self._opt
        return WorkflowRef(
            self._id(wf.workflow_id, f"{field}.workflow_id"),
            check_type(wf.workflow_type, f"{field}.workflow_type"),
            self._opt(wf.parent_workflow_id, f"{field}.parent_workflow_id"),
        )

    def _invocation(self, inv: sb.Invocation, field: str) -> InvocationRecord:
        invocation_id = self._id(inv.invocation_id, f"{field}.invocation_id")
        self._id(inv.task_id, f"{field}.task_id")
        self._opt(inv.call_id, f"{field}.call_id")
        parent = self._opt(inv.parent_invocation_id, f"{field}.parent_invocation_id")
        event = self._opt(inv.parent_event_id, f"{field}.parent_event_id")
        subject = f"invocation {invocation_id!r}"
        if inv.serialized_arguments and inv.arguments:
            raise InvalidArgument(f"{field}.arguments", "set serialized_arguments or arguments, not both")
        self._count(inv.arguments, f"{field}.arguments", 0, MAX_ARGUMENTS)
        self._count(inv.serialized_arguments, f"{field}.serialized_arguments", 0, MAX_ARGUMENTS)
        stored = sb.Invocation()
        stored.CopyFrom(inv)
        stored.ClearField("serialized_arguments")  # kept once, in `arguments`
        for name, text in inv.serialized_arguments.items():
            require_name(name, f"{field}.serialized_arguments", self.limits)
            values.check_size(text, f"{field}.serialized_arguments[{name}]", subject, self.limits)
            stored.arguments[name].opaque = text
        for name, value in inv.arguments.items():
            require_name(name, f"{field}.arguments", self.limits)
            values.from_message(value, f"{field}.arguments[{name}]", subject, self.limits)
        workflow = WorkflowRef("")
        if inv.HasField("workflow"):
            workflow = self._workflow(inv.workflow, f"{field}.workflow", type_required=False)
        return InvocationRecord(invocation_id, _dump(stored), workflow.workflow_id, workflow.workflow_type, parent,
                                event)

    @staticmethod
    def _stored_invocation(payload: str) -> sb.Invocation:
        inv = _load(payload, sb.Invocation)
        for name, text in inv.serialized_arguments.items():  # stored before `arguments` existed
            inv.arguments[name].opaque = text
        for name, value in inv.arguments.items():
            inv.serialized_arguments[name] = getattr(value, value.WhichOneof("kind") or "opaque")
        return inv

    def _timestamp_us(self, ts: timestamp_pb2.Timestamp, field: str) -> int:
        if not TIMESTAMP_MIN_S <= ts.seconds <= TIMESTAMP_MAX_S or not 0 <= ts.nanos <= 999_999_999:
            raise InvalidArgument(field, "is outside google.protobuf.Timestamp's valid range")
        return ts.seconds * 1_000_000 + ts.nanos // 1000

    def _time_range(self, request) -> tuple[str, int, int, int]:
        app_id = self._id(request.app_id, "app_id")
        for field in ("start_time", "end_time"):
            if not request.HasField(field):
                raise InvalidArgument(field, "is required")
        start = self._timestamp_us(request.start_time, "start_time")
        end = self._timestamp_us(request.end_time, "end_time")
        if end < start:
            raise InvalidArgument("end_time", "must not be before start_time")
        batch = self._size(request.batch_size, "batch_size", STREAM_BATCH_DEFAULT, STREAM_BATCH_MAX)
        return app_id, start, end, batch

    @staticmethod
    def _size(value: int, field: str, default: int, high: int) -> int:
        return page_size(value, default, high, field)

    @staticmethod
    def _count(items, field: str, low: int, high: int) -> None:
        if not low <= len(items) <= high:
            raise InvalidArgument(field, f"must hold {low}..{high} items, got {len(items)}")

    # --- app ---------------------------------------------------------------------
    @handle_errors
    async def PurgeApp(self, request, context):
        await self.engine.purge_app(self._id(request.app_id, "app_id"), keep_app_info=not request.delete_app_info)
        return sb.PurgeAppResponse()

    @handle_errors
    async def StoreAppInfo(self, request, context):
        if not request.HasField("app_info"):
            raise InvalidArgument("app_info", "is required")
        info = request.app_info
        app_id = self._id(info.app_id, "app_info.app_id")
        self._id(info.module, "app_info.module")
        self._opt_json(info.config_values_json, "app_info.config_values_json", object_only=True)
        self._text(info.config_filepath, "app_info.config_filepath")
        self._text(info.module_filepath, "app_info.module_filepath")
        self._opt(info.app_variable, "app_info.app_variable")
        await self.engine.store_app_info(app_id, _dump(info))
        return sb.StoreAppInfoResponse()

    @handle_errors
    async def GetAppInfo(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        payload = await self.engine.app_info(app_id)
        return sb.GetAppInfoResponse(app_info=_load(payload, sb.AppInfo))

    @handle_errors
    async def DiscoverAppInfos(self, request, context):
        # Only the apps the caller's token may use, and never a secret-looking config value:
        # a listing is readable by more callers than any one app's GetAppInfo.
        allowed = security.caller_apps()
        size = page_size(request.page_size, LIST_PAGE_DEFAULT, PAGE_MAX)
        scope = ("",) if allowed is None else tuple(sorted(allowed))
        after = decode_token(request.page_token, "DiscoverAppInfos", scope, is_text)

        async def fetch(limit: int, last: tuple[str, str] | None) -> list[tuple[str, str]]:
            return await self.engine.app_infos_page(allowed, after if last is None else last[0], limit)

        async with self.bulk.slot():
            page, more = await filled(fetch, lambda item: len(item[1]), size)
            infos = await decoded([p for _, p in page], _load_app_info)
        reply = sb.DiscoverAppInfosResponse()
        for app_id, info in zip([app_id for app_id, _ in page], infos):
            info.config_values_json = mask_config_json(info.config_values_json)
            reply.app_infos[app_id].CopyFrom(info)
        if more:
            reply.next_page_token = encode_token("DiscoverAppInfos", scope, page[-1][0])
        return reply

    # --- invocations -------------------------------------------------------------
    @handle_errors
    async def UpsertInvocations(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        self._count(request.invocations, "invocations", 1, MAX_BATCH)
        records = [self._invocation(inv, f"invocations[{i}]") for i, inv in enumerate(request.invocations)]
        await self.engine.upsert_invocations(app_id, records)
        return sb.UpsertInvocationsResponse()

    @handle_errors
    async def GetInvocation(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        invocation_id = self._id(request.invocation_id, "invocation_id")
        record = await self.engine.invocation(app_id, invocation_id)
        return sb.GetInvocationResponse(invocation=self._stored_invocation(record.payload))

    @handle_errors
    async def ListChildInvocations(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        parent = self._id(request.parent_invocation_id, "parent_invocation_id")
        ids, token = await _id_page(request, "ListChildInvocations", (app_id, parent),
                                    lambda limit, after: self.engine.child_invocations(app_id, parent, limit, after))
        return sb.ListChildInvocationsResponse(invocation_ids=ids, next_page_token=token)

    @handle_errors
    async def ListInvocationsByParentEvent(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        event = self._id(request.parent_event_id, "parent_event_id")
        ids, token = await _id_page(
            request, "ListInvocationsByParentEvent", (app_id, event),
            lambda limit, after: self.engine.invocations_by_parent_event(app_id, event, limit, after))
        return sb.ListInvocationsByParentEventResponse(invocation_ids=ids, next_page_token=token)

    @handle_errors
    async def ListInvocationIdsByWorkflow(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        workflow_id = self._opt(request.workflow_id, "workflow_id")
        workflow_type = self._opt(request.workflow_type, "workflow_type")
        if not workflow_id and not workflow_type:
            raise InvalidArgument("workflow_id", "set workflow_id, workflow_type or both")
        ids, token = await _id_page(
            request, "ListInvocationIdsByWorkflow", (app_id, workflow_id, workflow_type),
            lambda limit, after: self.engine.invocation_ids_by_workflow(app_id, workflow_id, workflow_type, limit,
                                                                       after))
        return sb.ListInvocationIdsByWorkflowResponse(invocation_ids=ids, next_page_token=token)

    # --- history -----------------------------------------------------------------
    @handle_errors
    async def AddHistory(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        self._count(request.invocation_ids, "invocation_ids", 1, MAX_BATCH)
        ids = [self._id(i, f"invocation_ids[{n}]") for n, i in enumerate(request.invocation_ids)]
        if not request.HasField("history"):
            raise InvalidArgument("history", "is required")
        entry = sb.InvocationHistory()
        entry.CopyFrom(request.history)
        # Which invocations it belongs to is given by invocation_ids; read fills it in.
        entry.ClearField("invocation_id")
        timestamp_us = self._timestamp_us(entry.timestamp, "history.timestamp") if entry.HasField("timestamp") \
            else None
        if entry.status not in common_pb2.InvocationStatus.values():
            raise InvalidArgument("history.status", f"is not an InvocationStatus value: {entry.status}")
        if entry.HasField("status_timestamp"):
            self._timestamp_us(entry.status_timestamp, "history.status_timestamp")
        self._opt(entry.runner_id, "history.runner_id")
        self._opt(entry.status_runner_id, "history.status_runner_id")
        self._opt(entry.registered_by_invocation_id, "history.registered_by_invocation_id")
        self._opt_json(entry.execution_context_json, "history.execution_context_json")

        def stamped(at_us: int) -> str:
            """The entry as stored: at the time the engine chose when it had none."""
            if not entry.HasField("timestamp"):
                entry.timestamp.CopyFrom(convert.timestamp(at_us))
            if not entry.HasField("status_timestamp"):
                entry.status_timestamp.CopyFrom(entry.timestamp)
            return _dump(entry)

        await self.engine.add_history(app_id, ids, timestamp_us, stamped)
        return sb.AddHistoryResponse()

    @staticmethod
    def _history(record) -> sb.InvocationHistory:
        entry = load_history(record.payload)
        entry.invocation_id = record.invocation_id
        return entry

    @handle_errors
    async def GetHistory(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        invocation_id = self._id(request.invocation_id, "invocation_id")
        size = page_size(request.page_size, LIST_PAGE_DEFAULT, PAGE_MAX)
        scope = (app_id, invocation_id)
        after = decode_token(request.page_token, "GetHistory", scope, is_ints(3))
        start = None if after is None else tuple(after)
        if after is not None and self.bulk_pages is not None:
            # A read past its first page: its pages are built off this event loop when they can be.
            reply = await self.bulk_pages.get_history(request, context.time_remaining())
            if reply is not None:
                return reply

        async def fetch(limit: int, last):
            return await self.engine.history(app_id, invocation_id, limit, start if last is None else last.cursor)

        async with self.bulk.slot():
            page, more = await filled(fetch, lambda r: len(r.payload), size)
            history = await decoded(page, self._history)
        token = encode_token("GetHistory", scope, list(page[-1].cursor)) if more else ""
        return sb.GetHistoryResponse(history=history, next_page_token=token)

    @handle_stream_errors
    async def StreamInvocationsInTimeRange(self, request, context):
        app_id, start, end, batch = self._time_range(request)
        async for ids in self.bulk.batches(self.engine.invocations_in_range(app_id, start, end, batch)):
            yield sb.StreamInvocationsInTimeRangeResponse(invocation_ids=ids)

    @handle_stream_errors
    async def StreamHistoryInTimeRange(self, request, context):
        app_id, start, end, batch = self._time_range(request)
        forwarded = None if self.bulk_pages is None else self.bulk_pages.stream_history(
            request, context.time_remaining())
        if forwarded is not None:  # built off this event loop (bulk_reader.py)
            try:
                async for message in forwarded:
                    yield message
            finally:  # here, not later in another task: a caller gone stops the child's stream now
                await forwarded.aclose()
            return
        async for records in self.bulk.batches(self.engine.history_in_range(app_id, start, end, batch)):
            # A batch may hold 10,000 entries: it goes out in messages within the budget, each
            # decoded in slices while holding a bulk-read slot, released before it is sent.
            for chunk in _chunks(records, lambda record: len(record.payload), STREAM_MESSAGE_BUDGET):
                async with self.bulk.slot(admitted=True):
                    history = await decoded(chunk, self._history)
                yield sb.StreamHistoryInTimeRangeResponse(history=history)

    # --- results -----------------------------------------------------------------
    @handle_errors
    async def SetResult(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        invocation_id = self._id(request.invocation_id, "invocation_id")
        result = values.from_request(request, "result_json", "result", f"invocation {invocation_id!r}", self.limits)
        await self.engine.set_result(app_id, invocation_id, result)
        return sb.SetResultResponse()

    @handle_errors
    async def GetResult(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        invocation_id = self._id(request.invocation_id, "invocation_id")
        result = await self.engine.result(app_id, invocation_id)
        return sb.GetResultResponse(result_json=values.json_text(result), result=values.to_message(result))

    @handle_errors
    async def SetException(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        invocation_id = self._id(request.invocation_id, "invocation_id")
        if not request.HasField("exception"):
            raise InvalidArgument("exception", "is required")
        error = common_pb2.TaskError()
        error.CopyFrom(request.exception)
        require_name(error.type, "exception.type", self.limits)
        self._text(error.message, "exception.message")
        subject = f"invocation {invocation_id!r}"
        if request.HasField("detail"):
            if error.detail_json:
                raise InvalidArgument("detail", "set exception.detail_json or detail, not both")
            # Kept in detail_json in its stored form: JSON as is, opaque text in its envelope.
            error.detail_json = values.from_message(request.detail, "detail", subject, self.limits)
        elif error.detail_json:
            values.check("json", error.detail_json, "exception.detail_json", subject, self.limits)
        await self.engine.set_exception(app_id, invocation_id, _dump(error))
        return sb.SetExceptionResponse()

    @handle_errors
    async def GetException(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        invocation_id = self._id(request.invocation_id, "invocation_id")
        payload = await self.engine.exception(app_id, invocation_id)
        error = _load(payload, common_pb2.TaskError)
        reply = sb.GetExceptionResponse()
        if error.detail_json:
            reply.detail.CopyFrom(values.to_message(error.detail_json))
            error.detail_json = values.json_text(error.detail_json)
        reply.exception.CopyFrom(error)
        return reply

    # --- workflow data and deterministic values ----------------------------------
    def _workflow_key(self, request) -> tuple[str, str, str]:
        return (self._id(request.app_id, "app_id"), self._id(request.workflow_id, "workflow_id"),
                self._id(request.key, "key"))

    @staticmethod
    def _data_subject(workflow_id: str, key: str) -> str:
        return f"workflow {workflow_id!r} key {key!r}"

    @handle_errors
    async def GetWorkflowData(self, request, context):
        value = await self.engine.workflow_data(*self._workflow_key(request))
        if value is None:
            return sb.GetWorkflowDataResponse(found=False)
        return sb.GetWorkflowDataResponse(
            found=True, value_json=values.json_text(value), value=values.to_message(value)
        )

    @handle_errors
    async def SetWorkflowData(self, request, context):
        app_id, workflow_id, key = self._workflow_key(request)
        value = values.from_request(request, "value_json", "value", self._data_subject(workflow_id, key), self.limits)
        await self.engine.set_workflow_data(app_id, workflow_id, key, value)
        return sb.SetWorkflowDataResponse()

    @handle_errors
    async def GetWorkflowDeterministicValue(self, request, context):
        value = await self.engine.deterministic_value(*self._workflow_key(request))
        if value is None:
            return sb.GetWorkflowDeterministicValueResponse(found=False)
        return sb.GetWorkflowDeterministicValueResponse(found=True, value_json=values.json_text(value),
                                                        value=values.to_message(value))

    @handle_errors
    async def SetWorkflowDeterministicValue(self, request, context):
        app_id, workflow_id, key = self._workflow_key(request)
        value = values.from_request(request, "value_json", "value", self._data_subject(workflow_id, key), self.limits)
        stored, replayed = await self.engine.set_deterministic_value(app_id, workflow_id, key, value)
        return sb.SetWorkflowDeterministicValueResponse(value_json=values.json_text(stored), replayed=replayed,
                                                        value=values.to_message(stored))

    # --- workflow runs -----------------------------------------------------------
    @handle_errors
    async def StoreWorkflowRun(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        if not request.HasField("workflow"):
            raise InvalidArgument("workflow", "is required")
        workflow = self._workflow(request.workflow, "workflow", type_required=True)
        await self.engine.store_workflow_run(app_id, workflow)
        return sb.StoreWorkflowRunResponse()

    @handle_errors
    async def ListWorkflowTypes(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        types, token = await _id_page(request, "ListWorkflowTypes", (app_id,),
                                      lambda limit, after: self.engine.workflow_types(app_id, limit, after))
        return sb.ListWorkflowTypesResponse(workflow_types=types, next_page_token=token)

    @handle_errors
    async def ListWorkflowRuns(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        workflow_type = self._opt(request.workflow_type, "workflow_type")
        size = page_size(request.page_size, RUNS_PAGE_DEFAULT, PAGE_MAX)
        scope = (app_id, workflow_type)
        after = decode_token(request.page_token, "ListWorkflowRuns", scope, _is_run_cursor)
        runs, cursor = await self.engine.workflow_runs(app_id, workflow_type, size,
                                                      None if after is None else (float(after[0]), after[1]))
        token = "" if cursor is None else encode_token("ListWorkflowRuns", scope, list(cursor))
        return sb.ListWorkflowRunsResponse(workflows=[convert.workflow_identity(r) for r in runs],
                                           next_page_token=token)

    @handle_errors
    async def StoreWorkflowSubInvocation(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        workflow_id = self._id(request.parent_workflow_id, "parent_workflow_id")
        invocation_id = self._id(request.sub_invocation_id, "sub_invocation_id")
        await self.engine.store_sub_invocation(app_id, workflow_id, invocation_id)
        return sb.StoreWorkflowSubInvocationResponse()

    @handle_errors
    async def ListWorkflowSubInvocations(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        workflow_id = self._id(request.workflow_id, "workflow_id")
        ids, token = await _id_page(request, "ListWorkflowSubInvocations", (app_id, workflow_id),
                                    lambda limit, after: self.engine.sub_invocations(app_id, workflow_id, limit, after))
        return sb.ListWorkflowSubInvocationsResponse(invocation_ids=ids, next_page_token=token)

    # --- runner contexts ---------------------------------------------------------
    @handle_errors
    async def StoreRunnerContext(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        if not request.HasField("runner_context"):
            raise InvalidArgument("runner_context", "is required")
        ctx = request.runner_context
        runner_id = self._id(ctx.runner_id, "runner_context.runner_id")
        for field in ("runner_cls", "parent_runner_id", "hostname"):
            self._opt(getattr(ctx, field), f"runner_context.{field}")
        await self.engine.store_runner_context(app_id, runner_id, _dump(ctx))
        return sb.StoreRunnerContextResponse()

    @handle_errors
    async def GetRunnerContext(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        runner_id = self._id(request.runner_id, "runner_id")
        payload = await self.engine.runner_context(app_id, runner_id)
        return sb.GetRunnerContextResponse(runner_context=_load(payload, sb.RunnerContext))

    @handle_errors
    async def BatchGetRunnerContexts(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        self._count(request.runner_ids, "runner_ids", 0, MAX_BATCH)
        ids = [self._id(i, f"runner_ids[{n}]") for n, i in enumerate(request.runner_ids)]
        async with self.bulk.slot():
            found = await self.engine.runner_contexts(app_id, ids)
            contexts = await decoded(found, _load_runner_context)
        return sb.BatchGetRunnerContextsResponse(runner_contexts=contexts)

    @handle_errors
    async def SearchRunnerContexts(self, request, context):
        app_id = self._id(request.app_id, "app_id")
        partial_id = self._id(request.partial_id, "partial_id")
        size = page_size(request.page_size, LIST_PAGE_DEFAULT, PAGE_MAX)
        scope = (app_id, partial_id)
        after = decode_token(request.page_token, "SearchRunnerContexts", scope, is_text)
        async with self.bulk.slot():
            found, resume = await self.engine.search_runner_contexts(app_id, partial_id, size + 1, after)
            page, cut = bounded(found, lambda item: len(item[1]), size)
            contexts = await decoded([p for _, p in page], _load_runner_context)
        resume = page[-1][0] if cut else resume
        token = "" if resume is None else encode_token("SearchRunnerContexts", scope, resume)
        return sb.SearchRunnerContextsResponse(runner_contexts=contexts, next_page_token=token)
