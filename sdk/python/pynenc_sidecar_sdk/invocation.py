"""The handle `execute_task` and task calls return, as in Pynenc."""

from __future__ import annotations

import json
from typing import Any

from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_sdk.context import WorkflowIdentity
from pynenc_sidecar_sdk.errors import TaskFailedError


class Invocation:
    """A finished task invocation: `.result` returns its value or raises its error."""

    def __init__(self, message: de.TaskInvocation, replayed: bool = False) -> None:
        self._message = message
        self.replayed = replayed

    @property
    def invocation_id(self) -> str:
        return self._message.invocation_id

    @property
    def task_id(self) -> str:
        return self._message.task_id

    @property
    def status(self) -> str:
        return common_pb2.InvocationStatus.Name(self._message.status).removeprefix("INVOCATION_STATUS_").lower()

    @property
    def workflow(self) -> WorkflowIdentity:
        return WorkflowIdentity.from_proto(self._message.workflow)

    @property
    def result(self) -> Any:
        if self._message.status == common_pb2.INVOCATION_STATUS_FAILED:
            error = self._message.error
            raise TaskFailedError(error.type, error.message, self.invocation_id, error.traceback)
        if self._message.status != common_pb2.INVOCATION_STATUS_SUCCESS:
            raise RuntimeError(f"{self!r} has not finished")
        return json.loads(self._message.result_json)

    def __repr__(self) -> str:
        return f"Invocation({self.task_id}, id={self.invocation_id}, status={self.status})"
