from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class InvocationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOCATION_STATUS_UNSPECIFIED: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_REGISTERED: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_CONCURRENCY_CONTROLLED: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_CONCURRENCY_CONTROLLED_FINAL: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_REROUTED: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_PENDING: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_PENDING_RECOVERY: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_RUNNING: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_RUNNING_RECOVERY: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_PAUSED: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_KILLED: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_SUCCESS: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_FAILED: _ClassVar[InvocationStatus]
    INVOCATION_STATUS_RETRY: _ClassVar[InvocationStatus]
INVOCATION_STATUS_UNSPECIFIED: InvocationStatus
INVOCATION_STATUS_REGISTERED: InvocationStatus
INVOCATION_STATUS_CONCURRENCY_CONTROLLED: InvocationStatus
INVOCATION_STATUS_CONCURRENCY_CONTROLLED_FINAL: InvocationStatus
INVOCATION_STATUS_REROUTED: InvocationStatus
INVOCATION_STATUS_PENDING: InvocationStatus
INVOCATION_STATUS_PENDING_RECOVERY: InvocationStatus
INVOCATION_STATUS_RUNNING: InvocationStatus
INVOCATION_STATUS_RUNNING_RECOVERY: InvocationStatus
INVOCATION_STATUS_PAUSED: InvocationStatus
INVOCATION_STATUS_KILLED: InvocationStatus
INVOCATION_STATUS_SUCCESS: InvocationStatus
INVOCATION_STATUS_FAILED: InvocationStatus
INVOCATION_STATUS_RETRY: InvocationStatus

class WorkflowIdentity(_message.Message):
    __slots__ = ("workflow_id", "workflow_type", "parent_workflow_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARENT_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    workflow_type: str
    parent_workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., parent_workflow_id: _Optional[str] = ...) -> None: ...

class TaskError(_message.Message):
    __slots__ = ("type", "message", "detail_json", "traceback")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    detail_json: str
    traceback: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., detail_json: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...
