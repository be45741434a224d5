"""SidecarDeterministicExecutor: Pynenc 0.4.0's DeterministicExecutor whose values are the
sidecar's positions (DeterministicExecutorService), recorded first-writer-wins.

Pynenc's own executor records with get-then-set on workflow data: two runs racing through
the same step each store and return their own value. Here every operation is one atomic
record at (workflow id, scope = the workflow's main invocation, operation, sequence), the
sequence counted by Pynenc's own per-run counters, and every caller returns the recorded
value. The values are the sidecar's (SHA-256 random, UUIDv5, real UTC time), not Pynenc's
derivations, and show in `pynenc-sidecar inspect` and GetWorkflowLog.

Installed by replacing the name DeterministicExecutor where Pynenc 0.4.0 looks it up:
`pynenc.workflow.workflow_deterministic` (DistributedInvocation._get_deterministic_runtime
imports it from there at each first use) and the `pynenc.workflow` package. Constructing
it for an app whose state backend is not SidecarStateBackend gives Pynenc's own executor,
so other apps of the process are unaffected. Other Pynenc versions are left alone (warning).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, TypeVar

import pynenc.workflow
import pynenc.workflow.workflow_deterministic as pynenc_deterministic
from pynenc.arguments import Arguments
from pynenc.call import Call

from pynenc_sidecar_plugin import codec
from pynenc_sidecar_plugin.executor_rpc import ExecutorRpc

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable

    from pynenc.app import Pynenc
    from pynenc.invocation.dist_invocation import DistributedInvocation
    from pynenc.task import Task
    from pynenc.workflow.workflow_identity import WorkflowIdentity

T = TypeVar("T")
PINNED_PYNENC = "0.4.0"
PYNENC_EXECUTOR = pynenc_deterministic.DeterministicExecutor
MAX_OPERATION_NAME = 256  # the sidecar's limit on a custom operation's name (bytes)
# A custom value that is not JSON is recorded as {"$pynenc": <the app serializer's text>}.
SERIALIZED_KEY = "$pynenc"


def _on_sidecar(app: Pynenc) -> bool:
    from pynenc_sidecar_plugin.state_backend import SidecarStateBackend

    return isinstance(app.state_backend, SidecarStateBackend)


class SidecarDeterministicExecutor(PYNENC_EXECUTOR):
    def __new__(cls, workflow_identity: WorkflowIdentity, app: Pynenc) -> Any:
        if not _on_sidecar(app):
            executor = object.__new__(PYNENC_EXECUTOR)
            executor.__init__(workflow_identity, app)
            return executor
        return super().__new__(cls)

    def __init__(self, workflow_identity: WorkflowIdentity, app: Pynenc) -> None:
        super().__init__(workflow_identity, app)
        self.rpc = ExecutorRpc(app.state_backend.rpc.settings, app.app_id, codec.workflow_to_proto(workflow_identity))

    def _mirror(self, replayed: bool, key: str, value: Any) -> None:
        """The first recorder also writes Pynenc's workflow-data key for the value ("random:1",
        "workflow:base_time", "task_invocation:<call id>"...), for tools reading Pynenc's
        layout. Never read back: the position is the record."""
        if not replayed:
            self.app.state_backend.set_workflow_data(self.workflow_identity, key, value)

    def random(self) -> float:
        sequence = self._get_next_sequence("random")
        value, replayed = self.rpc.random(sequence)
        self._mirror(replayed, f"random:{sequence}", value)
        return value

    def utc_now(self) -> datetime.datetime:
        sequence = self._get_next_sequence("time")
        moment, replayed = self.rpc.utc_now(sequence)
        self._mirror(replayed, f"time:{sequence}", moment.isoformat())
        return moment

    def uuid(self) -> str:
        sequence = self._get_next_sequence("uuid")
        value, replayed = self.rpc.uuid(sequence)
        self._mirror(replayed, f"uuid:{sequence}", value)
        return value

    def get_base_time(self) -> datetime.datetime:
        moment, replayed = self.rpc.base_time()
        self._mirror(replayed, "workflow:base_time", moment.isoformat())
        return moment

    def _deterministic_operation(self, operation: str, generator: Callable[[], T]) -> T:
        """A custom operation: the generator runs only when nothing is recorded at the position,
        and a racing run's value, recorded first, wins over its result."""
        sequence = self._get_next_sequence(operation)
        name = _operation_name(operation)
        recorded = self.rpc.get_recorded(name, sequence)
        replayed = True
        if recorded is None:
            recorded, replayed = self.rpc.record(name, sequence, self._to_json(generator()))
        value = self._from_json(recorded)
        self._mirror(replayed, f"{operation}:{sequence}", value)
        return value

    def execute_task(self, task: Task, *args: Any, **kwargs: Any) -> DistributedInvocation:
        """Pynenc's key, the call id (one invocation per distinct call in a workflow), as the
        custom operation "task_invocation:<call id>" at sequence 1, holding the invocation id."""
        call: Call = Call(task=task, arguments=Arguments.from_call(task.func, *args, **kwargs))
        key = f"task_invocation:{call.call_id}"
        name = _operation_name(key)
        recorded = self.rpc.get_recorded(name, 1)
        if recorded is None:
            invocation = task(*args, **kwargs)
            recorded, replayed = self.rpc.record(name, 1, json.dumps(
                {"invocation_id": invocation.invocation_id, "call_id": str(call.call_id)}))
            if not replayed:
                self._mirror(False, key, invocation.invocation_id)
                return invocation  # type: ignore[return-value]
            # Another run recorded its invocation first: that one is the workflow's (ours was
            # already routed and runs too, see docs/pynenc-plugin.md).
        return self.app.state_backend.get_invocation(json.loads(recorded)["invocation_id"])

    def _to_json(self, value: Any) -> str:
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            text = None
        if text is None or _is_serialized_form(json.loads(text)):
            text = json.dumps({SERIALIZED_KEY: self.app.serializer.serialize(value)})
        return text

    def _from_json(self, text: str) -> Any:
        value = json.loads(text)
        return self.app.serializer.deserialize(value[SERIALIZED_KEY]) if _is_serialized_form(value) else value


def _is_serialized_form(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SERIALIZED_KEY), str)


def _operation_name(operation: str) -> str:
    """Names past the sidecar's limit are shortened to a prefix and their SHA-256."""
    if len(operation.encode()) <= MAX_OPERATION_NAME:
        return operation
    digest = hashlib.sha256(operation.encode()).hexdigest()
    return f"{operation.encode()[:MAX_OPERATION_NAME - 72].decode(errors='ignore')}~sha256:{digest}"


def install() -> bool:
    """Put SidecarDeterministicExecutor where Pynenc looks DeterministicExecutor up; True
    when done (Pynenc 0.4.0), False (with a warning) on any other version."""
    installed = version("pynenc")
    if installed != PINNED_PYNENC:
        warnings.warn(f"pynenc-sidecar-plugin: Pynenc {installed} is not {PINNED_PYNENC}; its own "
                      "DeterministicExecutor is kept (workflow values stay get-then-set, not sidecar positions)",
                      stacklevel=2)
        return False
    pynenc_deterministic.DeterministicExecutor = SidecarDeterministicExecutor
    pynenc.workflow.DeterministicExecutor = SidecarDeterministicExecutor
    return True
