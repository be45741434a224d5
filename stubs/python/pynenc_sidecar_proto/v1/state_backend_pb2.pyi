import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pynenc_sidecar_proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SerializedValue(_message.Message):
    __slots__ = ("json", "opaque")
    JSON_FIELD_NUMBER: _ClassVar[int]
    OPAQUE_FIELD_NUMBER: _ClassVar[int]
    json: str
    opaque: str
    def __init__(self, json: _Optional[str] = ..., opaque: _Optional[str] = ...) -> None: ...

class Invocation(_message.Message):
    __slots__ = ("invocation_id", "task_id", "call_id", "serialized_arguments", "workflow", "parent_invocation_id", "parent_event_id", "arguments")
    class SerializedArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SerializedValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SERIALIZED_ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PARENT_INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    task_id: str
    call_id: str
    serialized_arguments: _containers.ScalarMap[str, str]
    workflow: _common_pb2.WorkflowIdentity
    parent_invocation_id: str
    parent_event_id: str
    arguments: _containers.MessageMap[str, SerializedValue]
    def __init__(self, invocation_id: _Optional[str] = ..., task_id: _Optional[str] = ..., call_id: _Optional[str] = ..., serialized_arguments: _Optional[_Mapping[str, str]] = ..., workflow: _Optional[_Union[_common_pb2.WorkflowIdentity, _Mapping]] = ..., parent_invocation_id: _Optional[str] = ..., parent_event_id: _Optional[str] = ..., arguments: _Optional[_Mapping[str, SerializedValue]] = ...) -> None: ...

class InvocationHistory(_message.Message):
    __slots__ = ("invocation_id", "timestamp", "status", "runner_id", "execution_context_json", "status_runner_id", "status_timestamp", "registered_by_invocation_id")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    timestamp: _timestamp_pb2.Timestamp
    status: _common_pb2.InvocationStatus
    runner_id: str
    execution_context_json: str
    status_runner_id: str
    status_timestamp: _timestamp_pb2.Timestamp
    registered_by_invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[_common_pb2.InvocationStatus, str]] = ..., runner_id: _Optional[str] = ..., execution_context_json: _Optional[str] = ..., status_runner_id: _Optional[str] = ..., status_timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., registered_by_invocation_id: _Optional[str] = ...) -> None: ...

class AppInfo(_message.Message):
    __slots__ = ("app_id", "module", "config_values_json", "config_filepath", "module_filepath", "app_variable")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VALUES_JSON_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FILEPATH_FIELD_NUMBER: _ClassVar[int]
    MODULE_FILEPATH_FIELD_NUMBER: _ClassVar[int]
    APP_VARIABLE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    module: str
    config_values_json: str
    config_filepath: str
    module_filepath: str
    app_variable: str
    def __init__(self, app_id: _Optional[str] = ..., module: _Optional[str] = ..., config_values_json: _Optional[str] = ..., config_filepath: _Optional[str] = ..., module_filepath: _Optional[str] = ..., app_variable: _Optional[str] = ...) -> None: ...

class RunnerContext(_message.Message):
    __slots__ = ("runner_id", "runner_cls", "parent_runner_id", "pid", "hostname", "thread_id")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_CLS_FIELD_NUMBER: _ClassVar[int]
    PARENT_RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    runner_cls: str
    parent_runner_id: str
    pid: int
    hostname: str
    thread_id: int
    def __init__(self, runner_id: _Optional[str] = ..., runner_cls: _Optional[str] = ..., parent_runner_id: _Optional[str] = ..., pid: _Optional[int] = ..., hostname: _Optional[str] = ..., thread_id: _Optional[int] = ...) -> None: ...

class PurgeAppRequest(_message.Message):
    __slots__ = ("app_id", "delete_app_info")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    DELETE_APP_INFO_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    delete_app_info: bool
    def __init__(self, app_id: _Optional[str] = ..., delete_app_info: _Optional[bool] = ...) -> None: ...

class PurgeAppResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpsertInvocationsRequest(_message.Message):
    __slots__ = ("app_id", "invocations")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocations: _containers.RepeatedCompositeFieldContainer[Invocation]
    def __init__(self, app_id: _Optional[str] = ..., invocations: _Optional[_Iterable[_Union[Invocation, _Mapping]]] = ...) -> None: ...

class UpsertInvocationsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInvocationRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ...) -> None: ...

class GetInvocationResponse(_message.Message):
    __slots__ = ("invocation",)
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    invocation: Invocation
    def __init__(self, invocation: _Optional[_Union[Invocation, _Mapping]] = ...) -> None: ...

class AddHistoryRequest(_message.Message):
    __slots__ = ("app_id", "invocation_ids", "history")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    history: InvocationHistory
    def __init__(self, app_id: _Optional[str] = ..., invocation_ids: _Optional[_Iterable[str]] = ..., history: _Optional[_Union[InvocationHistory, _Mapping]] = ...) -> None: ...

class AddHistoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("history", "next_page_token")
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    history: _containers.RepeatedCompositeFieldContainer[InvocationHistory]
    next_page_token: str
    def __init__(self, history: _Optional[_Iterable[_Union[InvocationHistory, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetResultRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "result_json", "result")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    result_json: str
    result: SerializedValue
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., result_json: _Optional[str] = ..., result: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class SetResultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetResultRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ...) -> None: ...

class GetResultResponse(_message.Message):
    __slots__ = ("result_json", "result")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    result: SerializedValue
    def __init__(self, result_json: _Optional[str] = ..., result: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class SetExceptionRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id", "exception", "detail")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    exception: _common_pb2.TaskError
    detail: SerializedValue
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ..., exception: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ..., detail: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class SetExceptionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetExceptionRequest(_message.Message):
    __slots__ = ("app_id", "invocation_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    invocation_id: str
    def __init__(self, app_id: _Optional[str] = ..., invocation_id: _Optional[str] = ...) -> None: ...

class GetExceptionResponse(_message.Message):
    __slots__ = ("exception", "detail")
    EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    exception: _common_pb2.TaskError
    detail: SerializedValue
    def __init__(self, exception: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ..., detail: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class GetWorkflowDataRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "key")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    key: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetWorkflowDataResponse(_message.Message):
    __slots__ = ("found", "value_json", "value")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value_json: str
    value: SerializedValue
    def __init__(self, found: _Optional[bool] = ..., value_json: _Optional[str] = ..., value: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class SetWorkflowDataRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "key", "value_json", "value")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    key: str
    value_json: str
    value: SerializedValue
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., key: _Optional[str] = ..., value_json: _Optional[str] = ..., value: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class SetWorkflowDataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetWorkflowDeterministicValueRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "key")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    key: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetWorkflowDeterministicValueResponse(_message.Message):
    __slots__ = ("found", "value_json", "value")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value_json: str
    value: SerializedValue
    def __init__(self, found: _Optional[bool] = ..., value_json: _Optional[str] = ..., value: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class SetWorkflowDeterministicValueRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "key", "value_json", "value")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    key: str
    value_json: str
    value: SerializedValue
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., key: _Optional[str] = ..., value_json: _Optional[str] = ..., value: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class SetWorkflowDeterministicValueResponse(_message.Message):
    __slots__ = ("value_json", "replayed", "value")
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value_json: str
    replayed: bool
    value: SerializedValue
    def __init__(self, value_json: _Optional[str] = ..., replayed: _Optional[bool] = ..., value: _Optional[_Union[SerializedValue, _Mapping]] = ...) -> None: ...

class StoreAppInfoRequest(_message.Message):
    __slots__ = ("app_info",)
    APP_INFO_FIELD_NUMBER: _ClassVar[int]
    app_info: AppInfo
    def __init__(self, app_info: _Optional[_Union[AppInfo, _Mapping]] = ...) -> None: ...

class StoreAppInfoResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAppInfoRequest(_message.Message):
    __slots__ = ("app_id",)
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    def __init__(self, app_id: _Optional[str] = ...) -> None: ...

class GetAppInfoResponse(_message.Message):
    __slots__ = ("app_info",)
    APP_INFO_FIELD_NUMBER: _ClassVar[int]
    app_info: AppInfo
    def __init__(self, app_info: _Optional[_Union[AppInfo, _Mapping]] = ...) -> None: ...

class DiscoverAppInfosRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class DiscoverAppInfosResponse(_message.Message):
    __slots__ = ("app_infos", "next_page_token")
    class AppInfosEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AppInfo
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AppInfo, _Mapping]] = ...) -> None: ...
    APP_INFOS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_infos: _containers.MessageMap[str, AppInfo]
    next_page_token: str
    def __init__(self, app_infos: _Optional[_Mapping[str, AppInfo]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StoreWorkflowRunRequest(_message.Message):
    __slots__ = ("app_id", "workflow")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow: _common_pb2.WorkflowIdentity
    def __init__(self, app_id: _Optional[str] = ..., workflow: _Optional[_Union[_common_pb2.WorkflowIdentity, _Mapping]] = ...) -> None: ...

class StoreWorkflowRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkflowTypesRequest(_message.Message):
    __slots__ = ("app_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowTypesResponse(_message.Message):
    __slots__ = ("workflow_types", "next_page_token")
    WORKFLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflow_types: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, workflow_types: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowRunsRequest(_message.Message):
    __slots__ = ("app_id", "workflow_type", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_type: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowRunsResponse(_message.Message):
    __slots__ = ("workflows", "next_page_token")
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[_common_pb2.WorkflowIdentity]
    next_page_token: str
    def __init__(self, workflows: _Optional[_Iterable[_Union[_common_pb2.WorkflowIdentity, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StoreWorkflowSubInvocationRequest(_message.Message):
    __slots__ = ("app_id", "parent_workflow_id", "sub_invocation_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    SUB_INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    parent_workflow_id: str
    sub_invocation_id: str
    def __init__(self, app_id: _Optional[str] = ..., parent_workflow_id: _Optional[str] = ..., sub_invocation_id: _Optional[str] = ...) -> None: ...

class StoreWorkflowSubInvocationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkflowSubInvocationsRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowSubInvocationsResponse(_message.Message):
    __slots__ = ("invocation_ids", "next_page_token")
    INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, invocation_ids: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamInvocationsInTimeRangeRequest(_message.Message):
    __slots__ = ("app_id", "start_time", "end_time", "batch_size")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    batch_size: int
    def __init__(self, app_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., batch_size: _Optional[int] = ...) -> None: ...

class StreamInvocationsInTimeRangeResponse(_message.Message):
    __slots__ = ("invocation_ids",)
    INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, invocation_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamHistoryInTimeRangeRequest(_message.Message):
    __slots__ = ("app_id", "start_time", "end_time", "batch_size")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    batch_size: int
    def __init__(self, app_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., batch_size: _Optional[int] = ...) -> None: ...

class StreamHistoryInTimeRangeResponse(_message.Message):
    __slots__ = ("history",)
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    history: _containers.RepeatedCompositeFieldContainer[InvocationHistory]
    def __init__(self, history: _Optional[_Iterable[_Union[InvocationHistory, _Mapping]]] = ...) -> None: ...

class StoreRunnerContextRequest(_message.Message):
    __slots__ = ("app_id", "runner_context")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    runner_context: RunnerContext
    def __init__(self, app_id: _Optional[str] = ..., runner_context: _Optional[_Union[RunnerContext, _Mapping]] = ...) -> None: ...

class StoreRunnerContextResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRunnerContextRequest(_message.Message):
    __slots__ = ("app_id", "runner_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    runner_id: str
    def __init__(self, app_id: _Optional[str] = ..., runner_id: _Optional[str] = ...) -> None: ...

class GetRunnerContextResponse(_message.Message):
    __slots__ = ("runner_context",)
    RUNNER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    runner_context: RunnerContext
    def __init__(self, runner_context: _Optional[_Union[RunnerContext, _Mapping]] = ...) -> None: ...

class BatchGetRunnerContextsRequest(_message.Message):
    __slots__ = ("app_id", "runner_ids")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_IDS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    runner_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app_id: _Optional[str] = ..., runner_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetRunnerContextsResponse(_message.Message):
    __slots__ = ("runner_contexts",)
    RUNNER_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    runner_contexts: _containers.RepeatedCompositeFieldContainer[RunnerContext]
    def __init__(self, runner_contexts: _Optional[_Iterable[_Union[RunnerContext, _Mapping]]] = ...) -> None: ...

class SearchRunnerContextsRequest(_message.Message):
    __slots__ = ("app_id", "partial_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    partial_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., partial_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchRunnerContextsResponse(_message.Message):
    __slots__ = ("runner_contexts", "next_page_token")
    RUNNER_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runner_contexts: _containers.RepeatedCompositeFieldContainer[RunnerContext]
    next_page_token: str
    def __init__(self, runner_contexts: _Optional[_Iterable[_Union[RunnerContext, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListChildInvocationsRequest(_message.Message):
    __slots__ = ("app_id", "parent_invocation_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    parent_invocation_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., parent_invocation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChildInvocationsResponse(_message.Message):
    __slots__ = ("invocation_ids", "next_page_token")
    INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, invocation_ids: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListInvocationIdsByWorkflowRequest(_message.Message):
    __slots__ = ("app_id", "workflow_id", "workflow_type", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workflow_id: str
    workflow_type: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInvocationIdsByWorkflowResponse(_message.Message):
    __slots__ = ("invocation_ids", "next_page_token")
    INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, invocation_ids: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListInvocationsByParentEventRequest(_message.Message):
    __slots__ = ("app_id", "parent_event_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    parent_event_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., parent_event_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInvocationsByParentEventResponse(_message.Message):
    __slots__ = ("invocation_ids", "next_page_token")
    INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, invocation_ids: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
