"""The Python worker SDK: Pynenc's workflow API, with state kept by pynenc-sidecar.

Change `from pynenc import Pynenc` to `from pynenc_sidecar_sdk import Pynenc` and the seed
workflows run against the sidecar.
"""

from pynenc_sidecar_sdk.app import Pynenc, Task
from pynenc_sidecar_sdk.context import WorkflowIdentity
from pynenc_sidecar_sdk.dispatch import Dispatch, RemoteTask
from pynenc_sidecar_sdk.errors import (
    LeaseNotHeldError,
    NondeterministicReplayError,
    OperationInGeneratorError,
    SidecarError,
    TaskFailedError,
    WorkflowAccessError,
)
from pynenc_sidecar_sdk.invocation import Invocation
from pynenc_sidecar_sdk.worker import Worker

__all__ = [
    "Dispatch",
    "Invocation",
    "LeaseNotHeldError",
    "NondeterministicReplayError",
    "OperationInGeneratorError",
    "Pynenc",
    "RemoteTask",
    "SidecarError",
    "Task",
    "TaskFailedError",
    "Worker",
    "WorkflowAccessError",
    "WorkflowIdentity",
]
