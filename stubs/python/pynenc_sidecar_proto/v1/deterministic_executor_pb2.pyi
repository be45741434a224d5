import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pynenc_sidecar_proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_KIND_UNSPECIFIED: _ClassVar[OperationKind]
    OPERATION_KIND_RANDOM: _ClassVar[OperationKind]
    OPERATION_KIND_TIME: _ClassVar[OperationKind]
    OPERATION_KIND_UUID: _ClassVar[OperationKind]
    OPERATION_KIND_TASK: _ClassVar[OperationKind]
    OPERATION_KIND_CUSTOM: _ClassVar[OperationKind]
    OPERATION_KIND_DATA_READ: _ClassVar[OperationKind]
    OPERATION_KIND_DATA_WRITE: _ClassVar[OperationKind]
OPERATION_KIND_UNSPECIFIED: OperationKind
OPERATION_KIND_RANDOM: OperationKind
OPERATION_KIND_TIME: OperationKind
OPERATION_KIND_UUID: OperationKind
OPERATION_KIND_TASK: OperationKind
OPERATION_KIND_CUSTOM: OperationKind
OPERATION_KIND_DATA_READ: OperationKind
OPERATION_KIND_DATA_WRITE: OperationKind

class OperationPosition(_message.Message):
    __slots__ = ("app_id", "workflow", "invocation_id", "sequence")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow: _common_pb2.WorkflowIdentity
    invocation_id: str
    sequence: int
    def __init__(self, app_id: _Optional[str] = ..., workflow: _Optional[_Union[_common_pb2.WorkflowIdentity, _Mapping]] = ..., invocation_id: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class RandomRequest(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: OperationPosition
    def __init__(self, position: _Optional[_Union[OperationPosition, _Mapping]] = ...) -> None: ...

class RandomResponse(_message.Message):
    __slots__ = ("value", "replayed")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    value: float
    replayed: bool
    def __init__(self, value: _Optional[float] = ..., replayed: _Optional[bool] = ...) -> None: ...

class UtcNowRequest(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: OperationPosition
    def __init__(self, position: _Optional[_Union[OperationPosition, _Mapping]] = ...) -> None: ...

class UtcNowResponse(_message.Message):
    __slots__ = ("time", "replayed")
    TIME_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class UuidRequest(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: OperationPosition
    def __init__(self, position: _Optional[_Union[OperationPosition, _Mapping]] = ...) -> None: ...

class UuidResponse(_message.Message):
    __slots__ = ("uuid", "replayed")
    UUID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    replayed: bool
    def __init__(self, uuid: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class RecordRequest(_message.Message):
    __slots__ = ("position", "operation", "value_json")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    position: OperationPosition
    operation: str
    value_json: str
    def __init__(self, position: _Optional[_Union[OperationPosition, _Mapping]] = ..., operation: _Optional[str] = ..., value_json: _Optional[str] = ...) -> None: ...

class RecordResponse(_message.Message):
    __slots__ = ("value_json", "replayed")
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    value_json: str
    replayed: bool
    def __init__(self, value_json: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetRecordedRequest(_message.Message):
    __slots__ = ("position", "kind", "custom_name")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_NAME_FIELD_NUMBER: _ClassVar[int]
    position: OperationPosition
    kind: OperationKind
    custom_name: str
    def __init__(self, position: _Optional[_Union[OperationPosition, _Mapping]] = ..., kind: _Optional[_Union[OperationKind, str]] = ..., custom_name: _Optional[str] = ...) -> None: ...

class GetRecordedResponse(_message.Message):
    __slots__ = ("found", "operation")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    found: bool
    operation: RecordedOperation
    def __init__(self, found: _Optional[bool] = ..., operation: _Optional[_Union[RecordedOperation, _Mapping]] = ...) -> None: ...

class RecordedOperation(_message.Message):
    __slots__ = ("scope", "kind", "custom_name", "sequence", "random_value", "time_value", "uuid_value", "json_value", "task_value", "data_value", "origin_span")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RANDOM_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_VALUE_FIELD_NUMBER: _ClassVar[int]
    UUID_VALUE_FIELD_NUMBER: _ClassVar[int]
    JSON_VALUE_FIELD_NUMBER: _ClassVar[int]
    TASK_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATA_VALUE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_SPAN_FIELD_NUMBER: _ClassVar[int]
    scope: str
    kind: OperationKind
    custom_name: str
    sequence: int
    random_value: float
    time_value: _timestamp_pb2.Timestamp
    uuid_value: str
    json_value: str
    task_value: TaskCall
    data_value: DataValue
    origin_span: SpanReference
    def __init__(self, scope: _Optional[str] = ..., kind: _Optional[_Union[OperationKind, str]] = ..., custom_name: _Optional[str] = ..., sequence: _Optional[int] = ..., random_value: _Optional[float] = ..., time_value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uuid_value: _Optional[str] = ..., json_value: _Optional[str] = ..., task_value: _Optional[_Union[TaskCall, _Mapping]] = ..., data_value: _Optional[_Union[DataValue, _Mapping]] = ..., origin_span: _Optional[_Union[SpanReference, _Mapping]] = ...) -> None: ...

class DataValue(_message.Message):
    __slots__ = ("found", "value_json")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value_json: str
    def __init__(self, found: _Optional[bool] = ..., value_json: _Optional[str] = ...) -> None: ...

class SpanReference(_message.Message):
    __slots__ = ("trace_id", "span_id")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ...) -> None: ...

class TaskCall(_message.Message):
    __slots__ = ("invocation_id", "task_id", "arguments_json")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    task_id: str
    arguments_json: str
    def __init__(self, invocation_id: _Optional[str] = ..., task_id: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class TaskInvocation(_message.Message):
    __slots__ = ("invocation_id", "task_id", "arguments_json", "status", "workflow", "parent_invocation_id", "result_json", "error", "lease_runner_id", "lease_expire_time", "dispatched", "attempt", "queue_time", "last_error")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PARENT_INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEASE_RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    task_id: str
    arguments_json: str
    status: _common_pb2.InvocationStatus
    workflow: _common_pb2.WorkflowIdentity
    parent_invocation_id: str
    result_json: str
    error: _common_pb2.TaskError
    lease_runner_id: str
    lease_expire_time: _timestamp_pb2.Timestamp
    dispatched: bool
    attempt: int
    queue_time: _timestamp_pb2.Timestamp
    last_error: _common_pb2.TaskError
    def __init__(self, invocation_id: _Optional[str] = ..., task_id: _Optional[str] = ..., arguments_json: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.InvocationStatus, str]] = ..., workflow: _Optional[_Union[_common_pb2.WorkflowIdentity, _Mapping]] = ..., parent_invocation_id: _Optional[str] = ..., result_json: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ..., lease_runner_id: _Optional[str] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dispatched: _Optional[bool] = ..., attempt: _Optional[int] = ..., queue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ...) -> None: ...

class TaskLease(_message.Message):
    __slots__ = ("lease_id", "expire_time")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, lease_id: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExecuteTaskRequest(_message.Message):
    __slots__ = ("position", "task_id", "arguments_json", "force_new_workflow", "runner_id", "lease_ttl", "commit", "dispatch")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    FORCE_NEW_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_FIELD_NUMBER: _ClassVar[int]
    position: OperationPosition
    task_id: str
    arguments_json: str
    force_new_workflow: bool
    runner_id: str
    lease_ttl: _duration_pb2.Duration
    commit: OperationCommit
    dispatch: TaskDispatch
    def __init__(self, position: _Optional[_Union[OperationPosition, _Mapping]] = ..., task_id: _Optional[str] = ..., arguments_json: _Optional[str] = ..., force_new_workflow: _Optional[bool] = ..., runner_id: _Optional[str] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., commit: _Optional[_Union[OperationCommit, _Mapping]] = ..., dispatch: _Optional[_Union[TaskDispatch, _Mapping]] = ...) -> None: ...

class OperationCommit(_message.Message):
    __slots__ = ("lease_id", "operations", "workflow_id")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    operations: _containers.RepeatedCompositeFieldContainer[BufferedOperation]
    workflow_id: str
    def __init__(self, lease_id: _Optional[str] = ..., operations: _Optional[_Iterable[_Union[BufferedOperation, _Mapping]]] = ..., workflow_id: _Optional[str] = ...) -> None: ...

class BufferedOperation(_message.Message):
    __slots__ = ("kind", "custom_name", "sequence", "random_value", "uuid_value", "time_value", "json_value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RANDOM_VALUE_FIELD_NUMBER: _ClassVar[int]
    UUID_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_VALUE_FIELD_NUMBER: _ClassVar[int]
    JSON_VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: OperationKind
    custom_name: str
    sequence: int
    random_value: float
    uuid_value: str
    time_value: _timestamp_pb2.Timestamp
    json_value: str
    def __init__(self, kind: _Optional[_Union[OperationKind, str]] = ..., custom_name: _Optional[str] = ..., sequence: _Optional[int] = ..., random_value: _Optional[float] = ..., uuid_value: _Optional[str] = ..., time_value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., json_value: _Optional[str] = ...) -> None: ...

class CommitOperationsRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "invocation_id", "commit")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    invocation_id: str
    commit: OperationCommit
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., commit: _Optional[_Union[OperationCommit, _Mapping]] = ...) -> None: ...

class CommitOperationsResponse(_message.Message):
    __slots__ = ("recorded_count",)
    RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    recorded_count: int
    def __init__(self, recorded_count: _Optional[int] = ...) -> None: ...

class TaskDispatch(_message.Message):
    __slots__ = ("retry_policy", "start_to_close_timeout", "schedule_to_start_timeout")
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    START_TO_CLOSE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TO_START_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    retry_policy: RetryPolicy
    start_to_close_timeout: _duration_pb2.Duration
    schedule_to_start_timeout: _duration_pb2.Duration
    def __init__(self, retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., start_to_close_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., schedule_to_start_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "initial_backoff", "backoff_multiplier", "max_backoff", "retryable_error_types", "non_retryable_error_types")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_ERROR_TYPES_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_ERROR_TYPES_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    initial_backoff: _duration_pb2.Duration
    backoff_multiplier: float
    max_backoff: _duration_pb2.Duration
    retryable_error_types: _containers.RepeatedScalarFieldContainer[str]
    non_retryable_error_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_attempts: _Optional[int] = ..., initial_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backoff_multiplier: _Optional[float] = ..., max_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retryable_error_types: _Optional[_Iterable[str]] = ..., non_retryable_error_types: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecuteTaskResponse(_message.Message):
    __slots__ = ("invocation", "replayed", "lease")
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    invocation: TaskInvocation
    replayed: bool
    lease: TaskLease
    def __init__(self, invocation: _Optional[_Union[TaskInvocation, _Mapping]] = ..., replayed: _Optional[bool] = ..., lease: _Optional[_Union[TaskLease, _Mapping]] = ...) -> None: ...

class StartWorkflowRequest(_message.Message):
    __slots__ = ("app_id", "workflow", "arguments_json", "runner_id", "lease_ttl", "include_log")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_LOG_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow: _common_pb2.WorkflowIdentity
    arguments_json: str
    runner_id: str
    lease_ttl: _duration_pb2.Duration
    include_log: bool
    def __init__(self, app_id: _Optional[str] = ..., workflow: _Optional[_Union[_common_pb2.WorkflowIdentity, _Mapping]] = ..., arguments_json: _Optional[str] = ..., runner_id: _Optional[str] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., include_log: _Optional[bool] = ...) -> None: ...

class StartWorkflowResponse(_message.Message):
    __slots__ = ("invocation", "replayed", "lease", "log")
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    invocation: TaskInvocation
    replayed: bool
    lease: TaskLease
    log: WorkflowLog
    def __init__(self, invocation: _Optional[_Union[TaskInvocation, _Mapping]] = ..., replayed: _Optional[bool] = ..., lease: _Optional[_Union[TaskLease, _Mapping]] = ..., log: _Optional[_Union[WorkflowLog, _Mapping]] = ...) -> None: ...

class WorkflowLog(_message.Message):
    __slots__ = ("batches",)
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[GetWorkflowLogResponse]
    def __init__(self, batches: _Optional[_Iterable[_Union[GetWorkflowLogResponse, _Mapping]]] = ...) -> None: ...

class RenewTaskLeaseRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "lease_id", "lease_ttl")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    lease_id: str
    lease_ttl: _duration_pb2.Duration
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RenewTaskLeaseResponse(_message.Message):
    __slots__ = ("lease",)
    LEASE_FIELD_NUMBER: _ClassVar[int]
    lease: TaskLease
    def __init__(self, lease: _Optional[_Union[TaskLease, _Mapping]] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "lease_id", "result_json", "error", "commit")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    lease_id: str
    result_json: str
    error: _common_pb2.TaskError
    commit: OperationCommit
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., result_json: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ..., commit: _Optional[_Union[OperationCommit, _Mapping]] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ("invocation", "accepted")
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    invocation: TaskInvocation
    accepted: bool
    def __init__(self, invocation: _Optional[_Union[TaskInvocation, _Mapping]] = ..., accepted: _Optional[bool] = ...) -> None: ...

class WaitTaskRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "runner_id", "timeout", "lease_ttl")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    runner_id: str
    timeout: _duration_pb2.Duration
    lease_ttl: _duration_pb2.Duration
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., runner_id: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WaitTaskResponse(_message.Message):
    __slots__ = ("invocation", "lease")
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    invocation: TaskInvocation
    lease: TaskLease
    def __init__(self, invocation: _Optional[_Union[TaskInvocation, _Mapping]] = ..., lease: _Optional[_Union[TaskLease, _Mapping]] = ...) -> None: ...

class GetDataRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "key", "position", "commit")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    key: str
    position: OperationPosition
    commit: OperationCommit
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., key: _Optional[str] = ..., position: _Optional[_Union[OperationPosition, _Mapping]] = ..., commit: _Optional[_Union[OperationCommit, _Mapping]] = ...) -> None: ...

class GetDataResponse(_message.Message):
    __slots__ = ("found", "value_json", "replayed")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value_json: str
    replayed: bool
    def __init__(self, found: _Optional[bool] = ..., value_json: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class SetDataRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "invocation_id", "key", "value_json", "position")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    invocation_id: str
    key: str
    value_json: str
    position: OperationPosition
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., key: _Optional[str] = ..., value_json: _Optional[str] = ..., position: _Optional[_Union[OperationPosition, _Mapping]] = ...) -> None: ...

class SetDataResponse(_message.Message):
    __slots__ = ("replayed",)
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    replayed: bool
    def __init__(self, replayed: _Optional[bool] = ...) -> None: ...

class GetBaseTimeRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ...) -> None: ...

class GetBaseTimeResponse(_message.Message):
    __slots__ = ("base_time", "replayed")
    BASE_TIME_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    base_time: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, base_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetOperationCountRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "invocation_id", "kind", "custom_name")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_NAME_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    invocation_id: str
    kind: OperationKind
    custom_name: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., kind: _Optional[_Union[OperationKind, str]] = ..., custom_name: _Optional[str] = ...) -> None: ...

class GetOperationCountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class GetWorkflowLogRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ...) -> None: ...

class GetWorkflowLogResponse(_message.Message):
    __slots__ = ("operations", "tasks", "base_time")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    BASE_TIME_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[RecordedOperation]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInvocation]
    base_time: _timestamp_pb2.Timestamp
    def __init__(self, operations: _Optional[_Iterable[_Union[RecordedOperation, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[TaskInvocation, _Mapping]]] = ..., base_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RetryWorkflowRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ...) -> None: ...

class RetryWorkflowResponse(_message.Message):
    __slots__ = ("invocations",)
    INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    invocations: _containers.RepeatedCompositeFieldContainer[TaskInvocation]
    def __init__(self, invocations: _Optional[_Iterable[_Union[TaskInvocation, _Mapping]]] = ...) -> None: ...

class PollTasksRequest(_message.Message):
    __slots__ = ("app_id", "task_ids", "worker_id", "max_tasks", "lease_ttl", "timeout")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    worker_id: str
    max_tasks: int
    lease_ttl: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    def __init__(self, app_id: _Optional[str] = ..., task_ids: _Optional[_Iterable[str]] = ..., worker_id: _Optional[str] = ..., max_tasks: _Optional[int] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class PollTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[DispatchedTask]
    def __init__(self, tasks: _Optional[_Iterable[_Union[DispatchedTask, _Mapping]]] = ...) -> None: ...

class DispatchedTask(_message.Message):
    __slots__ = ("invocation", "lease", "deadline")
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    invocation: TaskInvocation
    lease: TaskLease
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, invocation: _Optional[_Union[TaskInvocation, _Mapping]] = ..., lease: _Optional[_Union[TaskLease, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReleaseTaskRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "lease_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    lease_id: str
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class ReleaseTaskResponse(_message.Message):
    __slots__ = ("invocation",)
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    invocation: TaskInvocation
    def __init__(self, invocation: _Optional[_Union[TaskInvocation, _Mapping]] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "reason")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    reason: str
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("invocation", "cancelled")
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    invocation: TaskInvocation
    cancelled: bool
    def __init__(self, invocation: _Optional[_Union[TaskInvocation, _Mapping]] = ..., cancelled: _Optional[bool] = ...) -> None: ...
