"""DeterministicExecutorService: validate, call the engine, build the reply."""

from __future__ import annotations

from pynenc_sidecar.core import outcomes
from pynenc_sidecar.core.errors import InvalidArgument
from pynenc_sidecar.core.positions import NAMED_KINDS, Kind, Position
from pynenc_sidecar.core.tasks import WorkflowRef
from pynenc_sidecar.engine import WorkflowEngine
from pynenc_sidecar.service import convert
from pynenc_sidecar.service.commit_request import parse_commit
from pynenc_sidecar.service.dispatch_rpcs import DispatchRpcs, dispatch_policy, invocation
from pynenc_sidecar.service.errors import handle_errors, handle_stream_errors
from pynenc_sidecar.service.validation import (
    Limits,
    duration_us,
    optional_id,
    require_id,
    require_json,
    require_json_object,
    require_name,
    require_sequence,
)
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc

LEASE_DEFAULT_S, LEASE_MIN_S, LEASE_MAX_S = 30.0, 1.0, 3600.0
WAIT_DEFAULT_S, WAIT_MAX_S = 10.0, 60.0
# StartWorkflow(include_log) puts a replayed workflow's log in its reply up to these sizes
# (record fields, serialized bytes); larger logs are read with GetWorkflowLog.
INLINE_LOG_FIELDS = 4096
INLINE_LOG_BYTES = 1 << 20


class DeterministicExecutorServicer(DispatchRpcs, de_grpc.DeterministicExecutorServiceServicer):
    def __init__(self, engine: WorkflowEngine, limits: Limits) -> None:
        self.engine = engine
        self.limits = limits

    # --- request parsing -------------------------------------------------------
    def _position(
        self, request, kind: Kind, name: str = "", field: str = "position"
    ) -> tuple[str, WorkflowRef, Position]:
        """The request's `position`, validated: (app id, caller's workflow, position)."""
        if not request.HasField(field):
            raise InvalidArgument(field, "is required")
        request_position = getattr(request, field)
        limits = self.limits
        app_id = require_id(request_position.app_id, f"{field}.app_id", limits)
        if not request_position.HasField("workflow"):
            raise InvalidArgument(f"{field}.workflow", "is required")
        wf = request_position.workflow
        workflow = WorkflowRef(
            require_id(wf.workflow_id, f"{field}.workflow.workflow_id", limits),
            optional_id(wf.workflow_type, f"{field}.workflow.workflow_type", limits),
            optional_id(wf.parent_workflow_id, f"{field}.workflow.parent_workflow_id", limits),
        )
        scope = optional_id(request_position.invocation_id, f"{field}.invocation_id", limits) or workflow.workflow_id
        sequence = require_sequence(request_position.sequence, f"{field}.sequence")
        return app_id, workflow, Position(workflow.workflow_id, scope, kind, name, sequence)

    def _kind(self, kind: int, custom_name: str) -> tuple[Kind, str]:
        if kind not in Kind.__members__.values():
            raise InvalidArgument("kind", "is required (RANDOM, TIME, UUID, TASK, CUSTOM, DATA_READ or DATA_WRITE)")
        if Kind(kind) is Kind.CUSTOM:
            return Kind.CUSTOM, require_name(custom_name, "custom_name", self.limits)
        if Kind(kind) in NAMED_KINDS:  # the data key
            return Kind(kind), require_id(custom_name, "custom_name", self.limits)
        if custom_name:
            raise InvalidArgument("custom_name", "is only allowed when kind is CUSTOM, DATA_READ or DATA_WRITE")
        return Kind(kind), ""

    def _data_position(self, request, kind: Kind, key: str) -> tuple[str, Position]:
        """A GetData/SetData request's position: the request's own app_id, workflow_id (and
        invocation_id) may be empty, else they must agree with it."""
        app_id, _, pos = self._position(request, kind, key)
        given = {"app_id": (request.app_id, app_id), "workflow_id": (request.workflow_id, pos.workflow_id)}
        if "invocation_id" in request.DESCRIPTOR.fields_by_name:
            given["invocation_id"] = (request.invocation_id, pos.scope)
        for field, (value, expected) in given.items():
            if value and value != expected:
                raise InvalidArgument(field, f"is {value!r} but position says {expected!r}: leave it empty when "
                                             "position is set, or make them equal")
        return app_id, pos

    def _lease_ttl(self, request, field: str = "lease_ttl") -> int:
        return duration_us(
            getattr(request, field), request.HasField(field), field, LEASE_DEFAULT_S, LEASE_MIN_S, LEASE_MAX_S
        )

    # --- values ----------------------------------------------------------------
    @handle_errors
    async def Random(self, request, context):
        app_id, _, pos = self._position(request, Kind.RANDOM)
        value, replayed = await self.engine.random(app_id, pos)
        return de.RandomResponse(value=value, replayed=replayed)

    @handle_errors
    async def UtcNow(self, request, context):
        app_id, _, pos = self._position(request, Kind.TIME)
        us, replayed = await self.engine.utc_now(app_id, pos)
        return de.UtcNowResponse(time=convert.timestamp(us), replayed=replayed)

    @handle_errors
    async def Uuid(self, request, context):
        app_id, _, pos = self._position(request, Kind.UUID)
        value, replayed = await self.engine.uuid(app_id, pos)
        return de.UuidResponse(uuid=value, replayed=replayed)

    @handle_errors
    async def Record(self, request, context):
        name = require_name(request.operation, "operation", self.limits)
        app_id, _, pos = self._position(request, Kind.CUSTOM, name)
        value = require_json(request.value_json, "value_json", self.limits)
        stored, replayed = await self.engine.record(app_id, pos, value)
        return de.RecordResponse(value_json=stored, replayed=replayed)

    @handle_errors
    async def GetRecorded(self, request, context):
        kind, name = self._kind(request.kind, request.custom_name)
        app_id, _, pos = self._position(request, kind, name)
        value, origin = await self.engine.get_recorded_with_origin(app_id, pos)
        if value is None:
            return de.GetRecordedResponse(found=False)
        return de.GetRecordedResponse(found=True, operation=convert.recorded_operation(pos, value, origin))

    @handle_errors
    async def GetBaseTime(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        workflow_id = require_id(request.workflow_id, "workflow_id", self.limits)
        us, replayed = await self.engine.base_time(app_id, workflow_id)
        return de.GetBaseTimeResponse(base_time=convert.timestamp(us), replayed=replayed)

    @handle_errors
    async def GetOperationCount(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        workflow_id = require_id(request.workflow_id, "workflow_id", self.limits)
        scope = optional_id(request.invocation_id, "invocation_id", self.limits) or workflow_id
        kind, name = self._kind(request.kind, request.custom_name)
        count = await self.engine.operation_count(app_id, Position(workflow_id, scope, kind, name, 1))
        return de.GetOperationCountResponse(count=count)

    # --- data ------------------------------------------------------------------
    @handle_errors
    async def GetData(self, request, context):
        if request.HasField("position"):
            key = require_id(request.key, "key", self.limits)
            app_id, pos = self._data_position(request, Kind.DATA_READ, key)
            await self._commit(request, app_id, pos.workflow_id, pos.scope)
            value, replayed = await self.engine.get_data_at(app_id, pos)
            if value is None:
                return de.GetDataResponse(found=False, replayed=replayed)
            return de.GetDataResponse(found=True, value_json=value, replayed=replayed)
        if request.commit.operations:
            raise InvalidArgument("commit", "is only allowed with position (a recorded read)")
        app_id = require_id(request.app_id, "app_id", self.limits)
        workflow_id = require_id(request.workflow_id, "workflow_id", self.limits)
        key = require_id(request.key, "key", self.limits)
        value = await self.engine.get_data(app_id, workflow_id, key)
        if value is None:
            return de.GetDataResponse(found=False)
        return de.GetDataResponse(found=True, value_json=value)

    @handle_errors
    async def SetData(self, request, context):
        if request.HasField("position"):
            key = require_id(request.key, "key", self.limits)
            value = require_json(request.value_json, "value_json", self.limits)
            app_id, pos = self._data_position(request, Kind.DATA_WRITE, key)
            return de.SetDataResponse(replayed=await self.engine.set_data_at(app_id, pos, value))
        app_id = require_id(request.app_id, "app_id", self.limits)
        workflow_id = require_id(request.workflow_id, "workflow_id", self.limits)
        invocation_id = optional_id(request.invocation_id, "invocation_id", self.limits)
        key = require_id(request.key, "key", self.limits)
        value = require_json(request.value_json, "value_json", self.limits)
        await self.engine.set_data(app_id, workflow_id, invocation_id, key, value)
        return de.SetDataResponse()

    # --- buffered operations ---------------------------------------------------
    async def _commit(self, request, app_id: str, workflow_id: str, scope: str) -> None:
        """Commit the request's buffered operations (its `commit`) before its own work."""
        if request.commit.operations:
            lease_id, operations = parse_commit(request.commit, workflow_id, scope, self.limits)
            await self.engine.commit(app_id, workflow_id, scope, lease_id, operations)

    @handle_errors
    async def CommitOperations(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        workflow_id = require_id(request.workflow_id, "workflow_id", self.limits)
        scope = optional_id(request.invocation_id, "invocation_id", self.limits) or workflow_id
        if not request.HasField("commit"):
            raise InvalidArgument("commit", "is required")
        lease_id, operations = parse_commit(request.commit, workflow_id, scope, self.limits)
        recorded = await self.engine.commit(app_id, workflow_id, scope, lease_id, operations)
        return de.CommitOperationsResponse(recorded_count=recorded)

    # --- tasks -----------------------------------------------------------------
    def _task_reply(self, cls, outcome):
        reply = cls(invocation=invocation(outcome.state, outcome.dispatch), replayed=outcome.replayed)
        lease = convert.task_lease(outcome.lease, outcome.lease_expire_us)
        if lease is not None:
            reply.lease.CopyFrom(lease)
        return reply

    @handle_errors
    async def ExecuteTask(self, request, context):
        app_id, caller, pos = self._position(request, Kind.TASK)
        task_id = require_id(request.task_id, "task_id", self.limits)
        arguments = require_json_object(request.arguments_json, "arguments_json", self.limits)
        runner_id = optional_id(request.runner_id, "runner_id", self.limits)
        await self._commit(request, app_id, pos.workflow_id, pos.scope)
        outcome = await self.engine.execute_task(
            app_id, caller, pos, task_id, arguments, request.force_new_workflow, runner_id, self._lease_ttl(request),
            dispatch_policy(request, self.limits),
        )
        return self._task_reply(de.ExecuteTaskResponse, outcome)

    @handle_errors
    async def StartWorkflow(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        if not request.HasField("workflow"):
            raise InvalidArgument("workflow", "is required")
        wf = request.workflow
        workflow = WorkflowRef(
            require_id(wf.workflow_id, "workflow.workflow_id", self.limits),
            require_id(wf.workflow_type, "workflow.workflow_type", self.limits),
            optional_id(wf.parent_workflow_id, "workflow.parent_workflow_id", self.limits),
        )
        arguments = require_json_object(request.arguments_json, "arguments_json", self.limits)
        runner_id = optional_id(request.runner_id, "runner_id", self.limits)
        outcome = await self.engine.start_workflow(app_id, workflow, arguments, runner_id, self._lease_ttl(request))
        reply = self._task_reply(de.StartWorkflowResponse, outcome)
        if request.include_log and outcome.replayed:
            await self._inline_log(reply, app_id, workflow.workflow_id)
        return reply

    async def _inline_log(self, reply: de.StartWorkflowResponse, app_id: str, workflow_id: str) -> None:
        """Put the workflow's log in the reply if it is small (else leave it unset)."""
        batches = await self.engine.small_log(app_id, workflow_id, INLINE_LOG_FIELDS)
        if batches is None:
            return
        log = reply.log  # present once a batch is added: small_log gives at least one
        size = 0
        for batch in batches:
            size += log.batches.add(**convert.workflow_log_fields(batch)).ByteSize()
            if size > INLINE_LOG_BYTES:
                reply.ClearField("log")
                return

    @handle_errors
    async def RenewTaskLease(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        invocation_id = require_id(request.invocation_id, "invocation_id", self.limits)
        lease_id = require_id(request.lease_id, "lease_id", self.limits)
        expire_us = await self.engine.renew_lease(app_id, invocation_id, lease_id, self._lease_ttl(request))
        return de.RenewTaskLeaseResponse(
            lease=de.TaskLease(lease_id=lease_id, expire_time=convert.timestamp(expire_us))
        )

    @handle_errors
    async def CompleteTask(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        invocation_id = require_id(request.invocation_id, "invocation_id", self.limits)
        lease_id = require_id(request.lease_id, "lease_id", self.limits)
        outcome = request.WhichOneof("outcome")
        if outcome is None:
            raise InvalidArgument("outcome", "is required: set result_json or error")
        if request.commit.operations:
            workflow_id = require_id(request.commit.workflow_id, "commit.workflow_id", self.limits)
            _, operations = parse_commit(request.commit, workflow_id, invocation_id, self.limits, lease_id=lease_id)
            await self.engine.commit(app_id, workflow_id, invocation_id, lease_id, operations)
        limit = self.limits.max_value_bytes
        if outcome == "result_json":
            refused = outcomes.refused_result(request.result_json, limit)
            if refused is not None:  # the task's outcome all the same: recorded as its failure
                state, accepted = await self.engine.refuse_result(app_id, invocation_id, lease_id, *refused)
                return de.CompleteTaskResponse(invocation=convert.task_invocation(state), accepted=accepted)
            state, accepted = await self.engine.complete_task(
                app_id, invocation_id, lease_id, request.result_json, None
            )
        else:
            detail = request.error.detail_json
            if detail and len(detail.encode("utf-8")) <= limit:
                require_json(detail, "error.detail_json", self.limits)
            error = outcomes.bounded_error(require_name(request.error.type, "error.type", self.limits),
                                           request.error.message, detail, request.error.traceback, limit)
            state, accepted = await self.engine.complete_task(app_id, invocation_id, lease_id, None, error)
        return de.CompleteTaskResponse(invocation=convert.task_invocation(state), accepted=accepted)

    @handle_errors
    async def RetryWorkflow(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        workflow_id = require_id(request.workflow_id, "workflow_id", self.limits)
        reset = await self.engine.retry_workflow(app_id, workflow_id)
        return de.RetryWorkflowResponse(invocations=[convert.task_invocation(state) for state, _ in reset])

    @handle_errors
    async def WaitTask(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        invocation_id = require_id(request.invocation_id, "invocation_id", self.limits)
        runner_id = optional_id(request.runner_id, "runner_id", self.limits)
        timeout_us = duration_us(
            request.timeout, request.HasField("timeout"), "timeout", WAIT_DEFAULT_S, 0.0, WAIT_MAX_S
        )
        ttl_us = self._lease_ttl(request)
        wait_s = timeout_us / 1e6
        if context.time_remaining() is not None:  # answer before the caller's deadline
            wait_s = min(wait_s, max(context.time_remaining() - 0.05, 0))
        outcome = await self.engine.wait_task(app_id, invocation_id, runner_id, ttl_us, wait_s)
        reply = de.WaitTaskResponse(invocation=invocation(outcome.state, outcome.dispatch))
        lease = convert.task_lease(outcome.lease, outcome.lease_expire_us)
        if lease is not None:
            reply.lease.CopyFrom(lease)
        return reply

    # --- log -------------------------------------------------------------------
    @handle_stream_errors
    async def GetWorkflowLog(self, request, context):
        app_id = require_id(request.app_id, "app_id", self.limits)
        workflow_id = require_id(request.workflow_id, "workflow_id", self.limits)
        async for batch in self.engine.workflow_log(app_id, workflow_id):
            yield convert.workflow_log_response(batch)
