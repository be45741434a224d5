"""The plugin's executor (deterministic.py): Pynenc's deterministic values recorded as the
sidecar's positions, first writer wins, readable through DeterministicExecutorService."""

from __future__ import annotations

import json
import os
import uuid

import grpc
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.workflow import WorkflowIdentity

from pynenc_sidecar_plugin import deterministic
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as dx
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as dx_grpc

ADDRESS = os.environ["PYNENC_SIDECAR_ADDRESS"]


def _app() -> Pynenc:
    return PynencBuilder().memory().app_id(f"psc.executor.{uuid.uuid4().hex[:8]}").sidecar(address=ADDRESS).build()


def _workflow() -> WorkflowIdentity:
    return WorkflowIdentity(workflow_id=InvocationId(f"wf-{uuid.uuid4().hex[:8]}"), workflow_type=TaskId("m", "wf"))


def _executor(app: Pynenc, workflow: WorkflowIdentity):
    # The name Pynenc's DistributedInvocation looks up at its first deterministic operation.
    from pynenc.workflow.workflow_deterministic import DeterministicExecutor

    return DeterministicExecutor(workflow, app)


def _log(app: Pynenc, workflow: WorkflowIdentity) -> dict[tuple[int, str, int], dx.RecordedOperation]:
    with grpc.insecure_channel(ADDRESS) as channel:
        batches = dx_grpc.DeterministicExecutorServiceStub(channel).GetWorkflowLog(
            dx.GetWorkflowLogRequest(app_id=app.app_id, workflow_id=workflow.workflow_id), timeout=10)
        return {(op.kind, op.custom_name, op.sequence): op for batch in batches for op in batch.operations}


def test_sidecar_apps_get_the_sidecar_executor_and_other_apps_pynencs(monkeypatch) -> None:
    workflow = _workflow()
    assert type(_executor(_app(), workflow)) is deterministic.SidecarDeterministicExecutor
    monkeypatch.delenv("PYNENC__STATE_BACKEND_CLS")  # the run's default (conftest.py)
    mem_app = PynencBuilder().memory().app_id("psc.executor.mem").build()
    assert type(mem_app.state_backend).__name__ == "MemStateBackend"
    assert type(_executor(mem_app, workflow)) is deterministic.PYNENC_EXECUTOR


def test_values_are_recorded_positions_that_a_new_run_replays() -> None:
    app, workflow = _app(), _workflow()
    first = _executor(app, workflow)
    values = (first.random(), first.uuid(), first.utc_now(), first._deterministic_operation("draw", lambda: [1, "a"]),
              first.random())
    log = _log(app, workflow)
    assert log[(dx.OPERATION_KIND_RANDOM, "", 1)].random_value == values[0]
    assert log[(dx.OPERATION_KIND_UUID, "", 1)].uuid_value == values[1]
    assert log[(dx.OPERATION_KIND_TIME, "", 1)].time_value.ToDatetime(tzinfo=values[2].tzinfo) == values[2]
    assert json.loads(log[(dx.OPERATION_KIND_CUSTOM, "draw", 1)].json_value) == [1, "a"]
    assert log[(dx.OPERATION_KIND_RANDOM, "", 2)].random_value == values[4]
    assert {op.scope for op in log.values()} == {workflow.workflow_id}

    replay = _executor(app, workflow)
    assert (replay.random(), replay.uuid(), replay.utc_now(),
            replay._deterministic_operation("draw", lambda: pytest_fail()), replay.random()) == values
    # Pynenc's own workflow-data keys are written too, by the first recorder.
    assert app.state_backend.get_workflow_data(workflow, "random:1") == values[0]
    assert app.state_backend.get_workflow_data(workflow, "draw:1") == [1, "a"]


def pytest_fail() -> None:
    raise AssertionError("a recorded position ran its generator again")


def test_a_value_another_run_recorded_between_read_and_record_wins() -> None:
    """The get-then-set interleaving that makes Pynenc's own executor diverge: the other run
    records while this one generates."""
    app, workflow = _app(), _workflow()
    executor = _executor(app, workflow)

    def generate_while_another_run_records() -> str:
        executor.rpc.record("draw", 1, json.dumps("the other run's"))
        return "this run's"

    assert executor._deterministic_operation("draw", generate_while_another_run_records) == "the other run's"
    assert app.state_backend.get_workflow_data(workflow, "draw:1") is None  # the winner writes Pynenc's key


def test_a_value_that_is_not_json_is_kept_with_the_apps_serializer() -> None:
    app, workflow = _app(), _workflow()
    value = _executor(app, workflow)._deterministic_operation("ids", lambda: {1, 2})
    assert _executor(app, workflow)._deterministic_operation("ids", pytest_fail) == value == {1, 2}
    stored = json.loads(_log(app, workflow)[(dx.OPERATION_KIND_CUSTOM, "ids", 1)].json_value)
    assert set(stored) == {deterministic.SERIALIZED_KEY}


def test_an_operation_name_past_the_sidecar_limit_is_shortened() -> None:
    app, workflow = _app(), _workflow()
    long_name = "x" * 400
    assert _executor(app, workflow)._deterministic_operation(long_name, lambda: 5) == 5
    (name,) = [n for (_, n, _) in _log(app, workflow)]
    assert len(name.encode()) <= deterministic.MAX_OPERATION_NAME and name.startswith("xxx")


def test_a_task_position_replays_the_recorded_invocation() -> None:
    app, workflow = _app(), _workflow()
    task = app.task(_add)
    invocation = _executor(app, workflow).execute_task(task, 1, 2)
    again = _executor(app, workflow).execute_task(task, 1, 2)
    assert again.invocation_id == invocation.invocation_id
    (op,) = [op for (kind, _, _), op in _log(app, workflow).items() if kind == dx.OPERATION_KIND_CUSTOM]
    assert op.custom_name.startswith("task_invocation:")
    assert json.loads(op.json_value)["invocation_id"] == invocation.invocation_id


def _add(a: int, b: int) -> int:
    return a + b



