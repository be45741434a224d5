"""Every task outcome is recorded, and a failed workflow is retried from its failed step
(issue 11, cases 3 and 4): the Python SDK, the RPCs and the CLI, on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pynenc_sidecar.core.outcomes import VALUE_LIMIT_SETTING
from pynenc_sidecar.settings import OPTIONS
from pynenc_sidecar_proto.v1 import common_pb2 as common
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk import Pynenc, SidecarError, TaskFailedError
from support import SidecarServer

FAILED, SUCCESS, RETRY = (common.INVOCATION_STATUS_FAILED, common.INVOCATION_STATUS_SUCCESS,
                          common.INVOCATION_STATUS_RETRY)


@pytest.fixture(params=["redis", "sqlite"])
def target(request):
    """A running server and the store flags that point the CLI at its store."""
    if request.param == "sqlite":
        server = request.getfixturevalue("sqlite_sidecar")
        return server, ["--data-file", server.data_file]
    server = request.getfixturevalue("sidecar")
    return server, ["--redis-url", server.redis_url]


@pytest.fixture
def app(target):
    app = Pynenc(app_id=f"or-{uuid.uuid4().hex}", address=target[0].address, lease_ttl=5)
    yield app
    app.client.close()


@pytest.fixture
def stub(target):
    with target[0].channel() as channel:
        yield de_grpc.DeterministicExecutorServiceStub(channel)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    return subprocess.run([sys.executable, "-m", "pynenc_sidecar", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def inspect_json(target, app: Pynenc, workflow_id: str) -> dict:
    result = cli("inspect", workflow_id, "--app-id", app.app_id, *target[1], "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def reason(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    return "", {}


def test_the_value_limit_setting_named_in_messages_is_the_real_one():
    option = OPTIONS["max_value_bytes"]
    assert VALUE_LIMIT_SETTING == f"{option.flag} / {option.env}"


# --- case 3: an outcome the store refuses is the task's recorded failure -----------------------
@pytest.mark.parametrize("size, setting", [(2_000_000, "--max-value-bytes"), (22_000_000, "--max-message-bytes")],
                         ids=["above-value-limit", "above-grpc-message-limit"])
def test_a_result_too_large_is_the_childs_recorded_failure_and_replays(target, app, size, setting):
    ran: list[str] = []

    @app.task
    def big() -> str:
        ran.append("big")
        return "x" * size

    @app.task
    def parent() -> str:
        return big().result

    workflow_id = f"big-{uuid.uuid4().hex}"
    with pytest.raises(TaskFailedError) as failure:
        parent.run_workflow(workflow_id).result
    error = failure.value
    # The parent's recorded error is the child's: type and message kept.
    assert error.error_type == "ResultTooLarge"
    assert big.task_id in error.error_message and setting in error.error_message
    assert str(size + 2) in error.error_message  # the JSON string's size, quotes included
    report = inspect_json(target, app, workflow_id)
    (child,) = [t for t in report["tasks"] if t["task_id"] == big.task_id]
    assert child["status"] == "FAILED" and child["finished_at"]
    assert child["error"]["type"] == "ResultTooLarge" and child["invocation_id"] in child["error"]["message"]
    assert report["status"] == "FAILED"
    assert ran == ["big"]

    # A replay returns the recorded failure and does not run the child again.
    with pytest.raises(TaskFailedError) as again:
        parent.run_workflow(workflow_id).result
    assert (again.value.error_type, again.value.error_message) == (error.error_type, error.error_message)
    assert ran == ["big"]


def test_the_message_names_the_size_and_the_limit(target, app):
    @app.task
    def big() -> str:
        return "y" * 2_000_000

    with pytest.raises(TaskFailedError) as failure:
        big.run_workflow(f"big-{uuid.uuid4().hex}").result
    message = failure.value.error_message
    assert "2000002 bytes" in message and "1048576" in message
    assert "--max-value-bytes / PYNENC_SIDECAR_MAX_VALUE_BYTES" in message


def _leased_main(stub, app_id: str) -> tuple[str, str]:
    workflow_id = f"raw-{uuid.uuid4().hex}"
    reply = stub.StartWorkflow(de.StartWorkflowRequest(
        app_id=app_id, workflow=common.WorkflowIdentity(workflow_id=workflow_id, workflow_type="raw.flow"),
        arguments_json="{}"))
    return workflow_id, reply.lease.lease_id


@pytest.mark.parametrize("bad, kind", [("{nope", "ResultNotJson"), ("", "ResultNotJson"),
                                       ('"' + "z" * 1_100_000 + '"', "ResultTooLarge")])
def test_complete_task_records_a_refused_result_as_a_failure(stub, bad, kind):
    app_id = f"raw-{uuid.uuid4().hex}"
    workflow_id, lease_id = _leased_main(stub, app_id)
    reply = stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=workflow_id, lease_id=lease_id,
                                                     result_json=bad))
    assert reply.accepted
    invocation = reply.invocation
    assert invocation.status == FAILED and not invocation.result_json
    assert invocation.error.type == kind
    assert "raw.flow" in invocation.error.message and workflow_id in invocation.error.message
    # Recorded: a replay gets the failure, and no lease.
    again = stub.StartWorkflow(de.StartWorkflowRequest(
        app_id=app_id, workflow=common.WorkflowIdentity(workflow_id=workflow_id, workflow_type="raw.flow"),
        arguments_json="{}"))
    assert (again.invocation.status, again.invocation.error.type, again.HasField("lease")) == (FAILED, kind, False)


def test_an_oversized_error_message_and_traceback_are_cut_and_the_rest_kept(stub):
    app_id = f"raw-{uuid.uuid4().hex}"
    workflow_id, lease_id = _leased_main(stub, app_id)
    error = common.TaskError(type="HugeError", message="m" * 1_500_000, traceback="t" * 1_200_000,
                             detail_json='{"k":1}')
    reply = stub.CompleteTask(de.CompleteTaskRequest(app_id=app_id, invocation_id=workflow_id, lease_id=lease_id,
                                                     error=error))
    stored = reply.invocation.error
    assert reply.invocation.status == FAILED
    assert (stored.type, stored.detail_json) == ("HugeError", '{"k":1}')
    assert stored.message.startswith("m" * 1000) and "[cut: 1500000 bytes" in stored.message
    assert len(stored.message.encode()) < 1_048_576 + 200
    assert stored.traceback.startswith("t" * 1000) and "[cut: 1200000 bytes" in stored.traceback


# --- case 4: a failed workflow is retried from its failed step -------------------------------
def test_a_failed_workflow_is_retried_from_its_failed_step(target, app):
    ran: list[str] = []
    broken = {"on": True}

    @app.task
    def first() -> float:
        ran.append("first")
        return first.wf.random()

    @app.task
    def second(x: int) -> int:
        ran.append("second")
        if broken["on"]:
            raise ValueError(f"bad input {x}")
        return x * 2

    @app.task
    def flow() -> dict:
        a = first().result
        return {"a": a, "b": second(21).result, "r": flow.wf.random()}

    workflow_id = f"retry-{uuid.uuid4().hex}"
    with pytest.raises(TaskFailedError) as failure:
        flow.run_workflow(workflow_id).result
    # The main task's recorded error keeps the original type, message and traceback.
    assert (failure.value.error_type, failure.value.error_message) == ("ValueError", "bad input 21")
    assert "raise ValueError" in failure.value.traceback and "in second" in failure.value.traceback
    report = inspect_json(target, app, workflow_id)
    main = next(t for t in report["tasks"] if t["invocation_id"] == workflow_id)
    assert main["error"]["type"] == "ValueError" and main["error"]["message"] == "bad input 21"
    assert "Traceback" in main["error"]["traceback"]
    text = cli("inspect", workflow_id, "--app-id", app.app_id, *target[1])
    assert text.returncode == 0, text.stderr
    assert "Errors (2)" in text.stdout and "ValueError: bad input 21" in text.stdout
    assert "raise ValueError" in text.stdout
    first_random = next(t for t in report["tasks"] if t["task_id"] == first.task_id)["result"]
    assert ran == ["first", "second"]

    broken["on"] = False  # the code is fixed
    result = flow.retry_workflow(workflow_id).result
    assert ran == ["first", "second", "second"]  # the first task did not run again
    assert result["a"] == first_random and result["b"] == 42
    report = inspect_json(target, app, workflow_id)
    assert report["status"] == "SUCCESS"
    assert {t["task_id"]: t["status"] for t in report["tasks"]} == {
        flow.task_id: "SUCCESS", first.task_id: "SUCCESS", second.task_id: "SUCCESS"}
    # A finished retry replays like any finished workflow.
    assert flow.run_workflow(workflow_id).result == result
    assert ran == ["first", "second", "second"]


def test_retry_workflow_refuses_a_workflow_that_is_not_failed_or_unknown(target, app, stub):
    @app.task
    def fine() -> int:
        return 1

    workflow_id = f"ok-{uuid.uuid4().hex}"
    assert fine.run_workflow(workflow_id).result == 1
    with pytest.raises(SidecarError) as refused:
        fine.retry_workflow(workflow_id)
    assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "WORKFLOW_NOT_FAILED")
    assert "SUCCESS" in str(refused.value) and refused.value.metadata["status"] == "SUCCESS"
    with pytest.raises(grpc.RpcError) as unknown:
        stub.RetryWorkflow(de.RetryWorkflowRequest(app_id=app.app_id, workflow_id="no-such-workflow"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and reason(unknown.value)[0] == "WORKFLOW_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as missing:
        stub.RetryWorkflow(de.RetryWorkflowRequest(app_id=app.app_id))
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "workflow_id" in missing.value.details()

    result = cli("retry", workflow_id, "--app-id", app.app_id, *target[1])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "SUCCESS, not FAILED" in result.stderr
    result = cli("retry", "no-such-workflow", "--app-id", app.app_id, *target[1])
    assert result.returncode == 2 and "not found" in result.stderr and result.stderr.count("\n") == 1


def test_cli_retry_resets_a_failed_workflow_and_the_next_run_finishes_it(target, app):
    ran: list[str] = []
    broken = {"on": True}

    @app.task
    def step(n: int) -> int:
        ran.append(f"step{n}")
        if n == 2 and broken["on"]:
            raise RuntimeError("flaky")
        return n

    @app.task
    def flow() -> int:
        return step(1).result + step(2).result

    workflow_id = f"cli-{uuid.uuid4().hex}"
    with pytest.raises(TaskFailedError):
        flow.run_workflow(workflow_id).result
    result = cli("retry", workflow_id, "--app-id", app.app_id, *target[1], "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(r["task_id"], r["status"]) for r in report["reset"]] == [(step.task_id, "RETRY"), (flow.task_id, "RETRY")]
    assert report["reset"][0]["cleared_error"]["type"] == "RuntimeError"
    assert inspect_json(target, app, workflow_id)["status"] == "RETRY"
    broken["on"] = False
    assert flow.run_workflow(workflow_id).result == 3
    assert ran == ["step1", "step2", "step2"]

    # The text form: a table of what it reset.
    broken["on"] = True
    other = f"cli-{uuid.uuid4().hex}"
    with pytest.raises(TaskFailedError):
        flow.run_workflow(other).result
    text = cli("retry", other, "--app-id", app.app_id, *target[1])
    assert text.returncode == 0, text.stderr
    assert "reset 2 failed invocation(s)" in text.stdout and "RuntimeError: flaky" in text.stdout
    assert (
        "CLEARED ERROR" in text.stdout and text.stdout.count(other) == 4
    )  # title; main row (id, workflow); step row (workflow)


def test_retry_resets_a_failed_child_workflow_too(target, app):
    ran: list[str] = []
    broken = {"on": True}

    @app.task
    def leaf() -> str:
        ran.append("leaf")
        if broken["on"]:
            raise KeyError("missing")
        return "leaf-ok"

    @app.task(force_new_workflow=True)
    def child() -> str:
        ran.append("child")
        return leaf().result

    @app.task
    def before() -> str:
        ran.append("before")
        return "before-ok"

    @app.task
    def parent() -> list:
        return [before().result, child().result]

    workflow_id = f"nested-{uuid.uuid4().hex}"
    with pytest.raises(TaskFailedError) as failure:
        parent.run_workflow(workflow_id).result
    assert failure.value.error_type == "KeyError"
    app_retry = app.retry_workflow(workflow_id)
    assert [i.task_id for i in app_retry] == [leaf.task_id, child.task_id, parent.task_id]
    assert all(i.status == "retry" for i in app_retry)
    broken["on"] = False
    assert parent.run_workflow(workflow_id).result == ["before-ok", "leaf-ok"]
    assert ran == ["before", "child", "leaf", "child", "leaf"]
    child_id = app_retry[1].invocation_id
    assert inspect_json(target, app, child_id)["status"] == "SUCCESS"


# --- the README's retry walk-through, as written -----------------------------------------------
def test_the_readme_retry_example_works_as_written(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    script = readme.split("```python\n# flaky.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "flaky.py").write_text(script)
    server = SidecarServer(None, cwd=str(tmp_path)).start()  # the default data file, in its directory
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
        env["PYNENC_SIDECAR_ADDRESS"] = server.address

        def run(*command: str, **extra: str) -> str:
            done = subprocess.run(list(command), cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                  env=env | extra)
            assert done.returncode == 0, done.stderr
            return done.stdout

        python, tool = sys.executable, [sys.executable, "-m", "pynenc_sidecar"]
        assert run(python, "flaky.py", BROKEN="1") == "reserving book\nfailed: ValueError: no address for book\n"
        assert run(python, "flaky.py") == "failed: ValueError: no address for book\n"
        shown = run(*tool, "inspect", "delivery-1")
        assert "FAILED" in shown and "Errors (2)" in shown and 'raise ValueError(f"no address for {item}")' in shown
        reset = run(*tool, "retry", "delivery-1")
        assert "reset 2 failed invocation(s)" in reset and "flaky.ship" in reset and "flaky.deliver" in reset
        assert run(python, "flaky.py") == "{'reservation': 'R-book', 'shipping': 'shipped book'}\n"
    finally:
        server.stop()


def test_retry_resets_a_caught_failure_and_leaves_a_successful_child_workflow(target, app):
    ran: list[str] = []
    broken = {"on": True}

    @app.task
    def optional() -> str:
        ran.append("optional")
        raise LookupError("optional step failed")

    @app.task(force_new_workflow=True)
    def tolerant() -> str:  # its own workflow: catches a failure inside and succeeds
        ran.append("tolerant")
        try:
            return optional().result
        except TaskFailedError:
            return "tolerated"

    @app.task
    def caught() -> str:
        ran.append("caught")
        if broken["on"]:
            raise RuntimeError("caught by the main task")
        return "fixed"

    @app.task
    def last() -> str:
        ran.append("last")
        if broken["on"]:
            raise ValueError("last step failed")
        return "done"

    @app.task
    def main() -> list:
        try:
            first = caught().result
        except TaskFailedError:
            first = "fallback"
        return [tolerant().result, first, last().result]

    workflow_id = f"caught-{uuid.uuid4().hex}"
    with pytest.raises(TaskFailedError):
        main.run_workflow(workflow_id).result
    reset = app.retry_workflow(workflow_id)
    # The caught failure and the failed step are reset; the child workflow that succeeded is
    # not, nor the failure inside it.
    assert [i.task_id for i in reset] == [caught.task_id, last.task_id, main.task_id]
    broken["on"] = False
    ran.clear()
    assert main.run_workflow(workflow_id).result == ["tolerated", "fixed", "done"]
    assert ran == ["caught", "last"]
