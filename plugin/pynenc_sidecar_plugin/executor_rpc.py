"""The DeterministicExecutorService calls the plugin's executor makes (deterministic.py):
values at positions of the workflow's main task, first writer wins."""

from __future__ import annotations

from datetime import UTC, datetime

from pynenc_sidecar_plugin.rpc import ServiceRpc
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as dx
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as dx_grpc


class ExecutorRpc(ServiceRpc):
    """Every position's scope is the workflow's main task (invocation id == workflow id): in
    Pynenc 0.4.0 only the workflow-defining task performs deterministic operations."""

    stub_class = dx_grpc.DeterministicExecutorServiceStub

    def __init__(self, settings, app_id: str, workflow: common_pb2.WorkflowIdentity) -> None:
        super().__init__(settings, app_id)
        self.workflow = workflow

    def _at(self, sequence: int) -> dx.OperationPosition:
        return dx.OperationPosition(app_id=self.app_id, workflow=self.workflow,
                                    invocation_id=self.workflow.workflow_id, sequence=sequence)

    def random(self, sequence: int) -> tuple[float, bool]:
        reply = self._call("Random", dx.RandomRequest(position=self._at(sequence)))
        return reply.value, reply.replayed

    def utc_now(self, sequence: int) -> tuple[datetime, bool]:
        reply = self._call("UtcNow", dx.UtcNowRequest(position=self._at(sequence)))
        return reply.time.ToDatetime(tzinfo=UTC), reply.replayed

    def uuid(self, sequence: int) -> tuple[str, bool]:
        reply = self._call("Uuid", dx.UuidRequest(position=self._at(sequence)))
        return reply.uuid, reply.replayed

    def base_time(self) -> tuple[datetime, bool]:
        reply = self._call("GetBaseTime", dx.GetBaseTimeRequest(app_id=self.app_id,
                                                                workflow_id=self.workflow.workflow_id))
        return reply.base_time.ToDatetime(tzinfo=UTC), reply.replayed

    def get_recorded(self, operation: str, sequence: int) -> str | None:
        """The JSON text recorded for a custom operation, None if nothing is."""
        reply = self._call("GetRecorded", dx.GetRecordedRequest(
            position=self._at(sequence), kind=dx.OPERATION_KIND_CUSTOM, custom_name=operation))
        return reply.operation.json_value if reply.found else None

    def record(self, operation: str, sequence: int, value_json: str) -> tuple[str, bool]:
        """The recorded JSON text (this caller's or the first writer's) and whether it existed."""
        reply = self._call("Record", dx.RecordRequest(position=self._at(sequence), operation=operation,
                                                      value_json=value_json))
        return reply.value_json, reply.replayed
