"""The client contract (docs/client-contract.md) holds in all four SDKs.

Each language runs the same scenarios through its driver (sdk/go/internal/xlang,
sdk/ts/tools/xlang.ts, sdk/java/.../xlang/Xlang.java; Python through its SDK in this
process): an operation called inside a custom operation's generator (which deadlocked in Go
and never settled in TypeScript) is refused alike and takes no position, and the workflow
recorded by any language replays from every other;
calls refused with UNAVAILABLE, retried; a lost lease and a dead holder's takeover; a losing
commit and a lost lease of buffered runs; buffered operations, one round trip per blocking
point (`batch-flow`, `batch-race`, `batch-stall`); and the Python SDK's constants against
tests/vectors/client_contract.json (the other SDKs check it in their own suites, run by
test_cross_language.py and test_java_client.py).
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from pynenc_sidecar.core import derivations
from pynenc_sidecar_proto.v1 import common_pb2 as common
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk import Pynenc
from pynenc_sidecar_sdk import client as py_client
from pynenc_sidecar_sdk import context as py_context
from pynenc_sidecar_sdk import errors as py_errors
from pynenc_sidecar_sdk import runner as py_runner
from pynenc_sidecar_sdk.context import require_run
from refusing_proxy import RefusingProxy
from test_cross_language import GO_DIR, TS_DIR, any_sidecar, fresh, go_bin, ts_dist  # noqa: F401  (fixtures)
from test_java_client import JAVA_DIR, java_jar  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = json.loads((ROOT / "tests" / "vectors" / "client_contract.json").read_text())
LANGS = ["go", "ts", "java", "python"]
NESTED_SEQUENCES = {"random": 2, "custom:outer": 1, "custom:refused": 0}
# The languages whose `nested` runs as a workflow's main task (type contract.nested), so its
# operations are buffered; the others run it in a free context, one call per operation.
NESTED_IN_MAIN_TASK = {"go", "python"}


def _nested_main() -> dict[str, Any]:
    """The Python twin of the drivers' `nested` command."""
    run = require_run()
    wf = nested_main.wf
    try:
        wf.deterministic._deterministic_operation("refused", wf.random)
    except py_errors.OperationInGeneratorError as refused:
        reason = refused.reason
    else:
        raise AssertionError("an operation inside a generator was not refused")
    r = wf.random()
    value = wf.deterministic._deterministic_operation("outer", lambda: {"r": r, "lang": "python"})
    after = wf.random()
    sequences = {"random": run.count(de.OPERATION_KIND_RANDOM),
                 "custom:outer": run.count(de.OPERATION_KIND_CUSTOM, "outer"),
                 "custom:refused": run.count(de.OPERATION_KIND_CUSTOM, "refused")}
    return {"refused": reason, "outer": value, "after": after, "sequences": sequences, "lang": "python"}


_app = Pynenc("contract-placeholder")
nested_main = _app.task(_nested_main)


def _micros(at: Any) -> int:
    return int(at.timestamp()) * 1_000_000 + at.microsecond


def _python_batch_flow(address: str, app: str, workflow: str) -> dict:
    """The Python twin of the drivers' `batch-flow` command."""
    py_app = Pynenc(app, address=address)

    def batch_child(n: int) -> list:
        wf = child.wf
        return [wf.random() for _ in range(3)] + [n]

    def batch_flow() -> dict:
        wf = task.wf
        random = [wf.random() for _ in range(5)]
        uuid = [wf.uuid() for _ in range(3)]
        time_us = [_micros(wf.utc_now()) for _ in range(3)]
        custom = wf.deterministic._deterministic_operation("pick", lambda: {"k": [1, 2]})
        wf.set_data("stage", "before-child")
        result = child(7).result
        wf.set_data("stage", "after-child")
        late = [wf.random(), _micros(wf.utc_now())]
        return {"random": random, "uuid": uuid, "time_us": time_us, "custom": custom, "child": result, "late": late}

    task, child = py_app.task(batch_flow), py_app.task(batch_child)
    task.task_id, child.task_id = "contract.batch_flow", "contract.batch_child"
    try:
        inv = task.run_workflow(workflow)
        return {"status": "INVOCATION_STATUS_" + inv.status.upper(), "result": inv.result, "lang": "python"}
    finally:
        py_app.client.close()


def _run_python(address: str, command: str, app: str, workflow: str) -> dict:
    if command == "batch-flow":
        return _python_batch_flow(address, app, workflow)
    assert command == "nested"
    py_app = Pynenc(app, address=address)
    try:
        task = py_app.task(_nested_main)
        task.task_id = "contract.nested"  # the workflow type the Go driver's `nested` starts
        nested_main.app, nested_main.wf = py_app, task.wf  # the module-level name the body uses
        out = task.run_workflow(workflow).result
    finally:
        py_app.client.close()
    out["lang"] = "python"  # the runner's language (the recorded values keep the recorder's)
    return out


@pytest.fixture
def run_in(request):
    """run_in(lang, address, command, **flags) -> the JSON the language's driver printed."""

    def run(lang: str, address: str, command: str, **flags: str) -> dict:
        if lang == "python":
            return _run_python(address, command, flags["app"], flags["workflow"])
        args = ["--address", address]
        for key, value in flags.items():
            args += [f"--{key}", str(value)]
        if lang == "go":
            cmd, cwd = [str(request.getfixturevalue("go_bin") / "xlang"), command, *args], GO_DIR
        elif lang == "ts":
            cmd, cwd = ["node", str(request.getfixturevalue("ts_dist") / "tools" / "xlang.js"), command, *args], TS_DIR
        else:
            cmd, cwd = ["java", "-jar", str(request.getfixturevalue("java_jar")), command, *args], JAVA_DIR
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{lang} {command} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return json.loads(proc.stdout)

    return run


def _recorded(out: dict) -> dict:
    return {key: out[key] for key in ("outer", "after", "sequences")}


@pytest.mark.parametrize("recorder", LANGS)
def test_an_operation_inside_a_generator_is_refused_alike_and_takes_no_position(run_in, any_sidecar, recorder):
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    first = run_in(recorder, any_sidecar.address, "nested", app=app, workflow=workflow)
    # Refused, not deadlocked or left pending: the refused custom op and the op inside it gave
    # their positions back, so the value computed before the custom op is random #1.
    assert first["refused"] == "OPERATION_IN_GENERATOR"
    assert first["sequences"] == NESTED_SEQUENCES
    assert first["outer"] == {"r": derivations.random_value(workflow, 1), "lang": recorder}
    assert first["after"] == derivations.random_value(workflow, 2)
    for lang in LANGS:
        again = run_in(lang, any_sidecar.address, "nested", app=app, workflow=workflow)
        assert again["refused"] == "OPERATION_IN_GENERATOR", lang
        assert _recorded(again) == _recorded(first), lang


@pytest.mark.parametrize("lang", LANGS)
def test_calls_refused_with_unavailable_are_retried(run_in, sidecar, lang):
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    # Each of these refused as often as the policy allows short of giving up. A buffered run
    # makes no per-operation call: its calls are the start and the commit-carrying completion
    # (docs/client-contract.md, "One round trip per blocking point").
    refuse = {"Random": CONTRACT["retry"]["max_attempts"] - 1, "Record": 1, "GetRecorded": 2}
    if lang in NESTED_IN_MAIN_TASK:
        refuse = {"StartWorkflow": CONTRACT["retry"]["max_attempts"] - 1, "CompleteTask": 2}
    with RefusingProxy(sidecar.address, refuse) as proxy:
        out = run_in(lang, proxy.address, "nested", app=app, workflow=workflow)
    assert proxy.refused == refuse, proxy.refused
    assert out["sequences"] == NESTED_SEQUENCES
    assert out["outer"] == {"r": derivations.random_value(workflow, 1), "lang": lang}
    assert out["after"] == derivations.random_value(workflow, 2)
    # Retried at the same positions: the record replays identically without the proxy.
    assert _recorded(run_in(lang, sidecar.address, "nested", app=app, workflow=workflow)) == _recorded(out)


def test_python_constants_are_the_contracts():
    assert set(py_errors._BY_REASON) <= set(CONTRACT["reasons"]) | set(CONTRACT["commit"]["reasons"])
    assert py_client.ENV == CONTRACT["env"]
    assert py_client.RETRY == CONTRACT["retry"]
    config = json.loads(py_client.RETRY_SERVICE_CONFIG)["methodConfig"][0]["retryPolicy"]
    assert config["maxAttempts"] == CONTRACT["retry"]["max_attempts"]
    assert config["retryableStatusCodes"] == CONTRACT["retry"]["retryable_codes"]
    defaults = CONTRACT["defaults"]
    assert py_runner.WAIT_SLICE_S * 1000 == defaults["wait_slice_ms"]
    assert py_runner.DEFAULT_LEASE_TTL_S * 1000 == defaults["lease_ttl_ms"]
    assert py_runner.RENEW_FRACTION == defaults["renew_every_fraction_of_ttl"]
    commit = CONTRACT["commit"]
    assert py_context.FLUSH_AT_OPERATIONS == commit["flush_at_operations"]
    assert py_runner.CONFLICT_RERUNS == commit["conflict_reruns"]
    assert py_errors._BY_REASON["COMMIT_CONFLICT"] is py_errors.CommitConflictError
    # the server's side of the same constants
    from pynenc_sidecar.core import commits
    from pynenc_sidecar.core.errors import COMMIT_CONFLICT
    assert commits.MAX_OPERATIONS == commit["max_operations"] and COMMIT_CONFLICT in commit["reasons"]


# Local replay (issue 14 item 3): a replay reads the workflow's log once and serves every
# recorded position from it. The languages that do so through their drivers' free-context
# commands (`run`, `diverge` read the log first).
LOCAL_REPLAY_LANGS = ["go", "ts"]


def _driver_cmd(request, lang: str, command: str, address: str, **flags: str) -> tuple[list[str], Path]:
    args = [command, "--address", address]
    for key, value in flags.items():
        args += [f"--{key}", str(value)]
    if lang == "go":
        return [str(request.getfixturevalue("go_bin") / "xlang"), *args], GO_DIR
    if lang == "ts":
        return ["node", str(request.getfixturevalue("ts_dist") / "tools" / "xlang.js"), *args], TS_DIR
    return ["java", "-jar", str(request.getfixturevalue("java_jar")), *args], JAVA_DIR


@pytest.mark.parametrize("lang", LOCAL_REPLAY_LANGS)
def test_a_replay_makes_one_call_and_serves_every_recorded_value_locally(run_in, any_sidecar, lang):
    """random, uuid, utc_now, a custom op, two finished tasks, a data write and read: the
    replay through a counting proxy makes one GetWorkflowLog call and nothing else."""
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    first = run_in(lang, any_sidecar.address, "run", app=app, workflow=workflow)
    assert [task["ran"] for task in first["tasks"]] == [True, True]
    with RefusingProxy(any_sidecar.address, {}) as proxy:
        again = run_in(lang, proxy.address, "run", app=app, workflow=workflow)
    assert dict(proxy.calls) == {"GetWorkflowLog": 1}, proxy.calls
    for task in again["tasks"]:
        assert (task["ran"], task["replayed"]) == (False, True), task
        task["ran"], task["replayed"] = True, False
    assert again == first


@pytest.mark.parametrize("lang", LOCAL_REPLAY_LANGS)
def test_a_local_replay_still_detects_divergence(run_in, any_sidecar, lang):
    """The same value written again is served from the log; another one reaches the sidecar,
    which refuses it: NONDETERMINISTIC_REPLAY, and the recorded value stays."""
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    assert run_in(lang, any_sidecar.address, "diverge", app=app, workflow=workflow, value="1") == {"error": None}
    with RefusingProxy(any_sidecar.address, {}) as proxy:
        assert run_in(lang, proxy.address, "diverge", app=app, workflow=workflow, value="1.0") == {"error": None}
        assert dict(proxy.calls) == {"GetWorkflowLog": 1}, proxy.calls
        out = run_in(lang, proxy.address, "diverge", app=app, workflow=workflow, value="2")
        assert dict(proxy.calls) == {"GetWorkflowLog": 2, "SetData": 1}, proxy.calls
    assert out["error"] == "NONDETERMINISTIC_REPLAY", out
    channel = grpc.insecure_channel(any_sidecar.address)
    try:
        stored = de_grpc.DeterministicExecutorServiceStub(channel).GetData(
            de.GetDataRequest(app_id=app, workflow_id=workflow, key="counter"))
    finally:
        channel.close()
    assert json.loads(stored.value_json) == 1


@pytest.mark.parametrize("lang", ["go", "ts", "java"])
def test_bench_replay_prints_record_and_replay_times(request, sidecar, lang):
    cmd, cwd = _driver_cmd(request, lang, "bench-replay", sidecar.address, ops="20")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # Medians of whole replays, of their first operation (the log read, decoded and indexed) and
    # of a bare GetWorkflowLog stream: BENCHMARKS.md's per-component breakdown.
    assert set(out) == {"record_ms", "replay_ms", "first_op_ms", "log_call_ms"}
    assert all(isinstance(v, (int, float)) and v > 0 for v in out.values()), out
    assert out["first_op_ms"] <= out["replay_ms"], out


# --- lease loss and takeover (docs/client-contract.md, "Run, renew, complete, wait, take over") --
SCENARIO_LANGS = ["go", "ts", "java", "python"]
THIEF, DEAD_HOLDER = "contract-thief", "contract-dead-holder"
FOREVER = 10**6
# The dead holder's lease must outlast the driver's start, or the driver is granted the lapsed
# lease at once and never waits: a JVM with grpc-java takes longer than 1 s to start on a loaded
# machine, and node or a Go binary did too at load 30-60.
DEAD_HOLDER_LEASE_S = {"java": 6}
DEAD_HOLDER_LEASE_DEFAULT_S = 4


class Started:
    """A driver command running in the background: a subprocess, or a thread for Python."""

    def __init__(self, target: Any = None, proc: subprocess.Popen | None = None) -> None:
        self.proc, self.value, self.error = proc, None, None
        self.thread = None
        if target is not None:
            self.thread = threading.Thread(target=self._run, args=(target,), daemon=True)
            self.thread.start()

    def _run(self, target: Any) -> None:
        try:
            self.value = target()
        except BaseException as error:  # reported by result()
            self.error = error

    def result(self, timeout: float = 90) -> tuple[dict, str]:
        """(the JSON it printed, its stderr); Python's stderr is ""."""
        if self.thread is not None:
            self.thread.join(timeout)
            assert not self.thread.is_alive(), "the Python run did not finish"
            if self.error is not None:
                raise self.error
            return self.value, ""
        assert self.proc is not None
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the driver did not finish\n{out}\n{err}") from None
        assert self.proc.returncode == 0, f"driver exited {self.proc.returncode}\n{out}\n{err}"
        return json.loads(out), err


def _python_lease_loss(address: str, app: str, workflow: str, ttl_s: float) -> dict:
    """The Python twin of the drivers' `lease-loss` command."""
    py_app = Pynenc(app, address=address, lease_ttl=ttl_s)
    stopped: dict[str, Any] = {"by": "", "signalled": False}

    def lease_loss() -> dict:
        run = require_run()
        for _ in range(1200):  # at most a minute
            try:
                task.wf.random()
            except py_errors.LeaseNotHeldError as lost:
                stopped.update(by=lost.reason, signalled=run.lease_lost.is_set())
                raise
            time.sleep(0.05)
        return {"completed_by": "python"}

    task = py_app.task(lease_loss)
    task.task_id = "contract.lease_loss"
    try:
        inv = task.run_workflow(workflow)
        return {"status": "INVOCATION_STATUS_" + inv.status.upper(), "result": inv.result, "ran": True,
                "stopped_by": stopped["by"], "signalled": stopped["signalled"], "lang": "python"}
    finally:
        py_app.client.close()


def _python_takeover(address: str, app: str, workflow: str) -> dict:
    """The Python twin of the drivers' `takeover-scenario` command."""
    py_app = Pynenc(app, address=address)
    ran = []

    def takeover() -> dict:
        ran.append(True)
        wf = task.wf
        first = wf.deterministic._deterministic_operation("pick", lambda: {"by": "python"})
        at = wf.utc_now()
        r = wf.random()
        second = wf.deterministic._deterministic_operation("pick", lambda: {"by": "python"})
        time_us = int(at.timestamp()) * 1_000_000 + at.microsecond
        return {"picks": [first, second], "time_us": time_us, "r": r, "lang": "python"}

    task = py_app.task(takeover)
    task.task_id = "contract.takeover"
    try:
        inv = task.run_workflow(workflow)
        return {"status": "INVOCATION_STATUS_" + inv.status.upper(), "result": inv.result, "ran": bool(ran),
                "lang": "python"}
    finally:
        py_app.client.close()


def _ready_then_go(directory: Path) -> None:
    """What the drivers' batch commands do at their blocking point: say ready, wait for go."""
    (directory / "ready").touch()
    deadline = time.monotonic() + 60
    while not (directory / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _python_batch_race(address: str, app: str, workflow: str, directory: Path, ttl_s: float) -> dict:
    """The Python twin of the drivers' `batch-race` command."""
    py_app = Pynenc(app, address=address, lease_ttl=ttl_s)
    generated: list[str] = []
    runs = []

    def batch_race() -> dict:
        runs.append(True)
        wf = task.wf

        def generate() -> dict:
            generated.append("gen")
            return {"by": "python"}

        pick = wf.deterministic._deterministic_operation("pick", generate)
        wf.set_data("by", "python")
        _ready_then_go(directory)
        wf.get_data("k")  # the blocking point: the buffer travels with it
        return {"pick": pick, "lang": "python"}

    task = py_app.task(batch_race)
    task.task_id = "contract.batch_race"
    try:
        inv = task.run_workflow(workflow)
        return {"status": "INVOCATION_STATUS_" + inv.status.upper(), "result": inv.result, "ran": bool(runs),
                "generated": generated, "runs": len(runs), "lang": "python"}
    finally:
        py_app.client.close()


def _python_batch_stall(address: str, app: str, workflow: str, directory: Path, ttl_s: float) -> dict:
    """The Python twin of the drivers' `batch-stall` command."""
    py_app = Pynenc(app, address=address, lease_ttl=ttl_s)
    stopped = {"by": "", "ran": False}

    def batch_step() -> int:
        return 1

    def batch_stall() -> dict:
        stopped["ran"] = True
        wf = task.wf
        wf.deterministic._deterministic_operation("first", lambda: {"by": "python"})
        wf.set_data("by", "python")
        step()
        wf.deterministic._deterministic_operation("second", lambda: {"by": "python"})
        wf.set_data("late", "python")
        _ready_then_go(directory)
        try:
            wf.get_data("by")
        except py_errors.SidecarError as refused:
            stopped["by"] = refused.reason
            raise
        return {"completed_by": "python"}

    task, step = py_app.task(batch_stall), py_app.task(batch_step)
    task.task_id, step.task_id = "contract.batch_stall", "contract.batch_step"
    try:
        inv = task.run_workflow(workflow)
        return {"status": "INVOCATION_STATUS_" + inv.status.upper(), "result": inv.result, "ran": stopped["ran"],
                "stopped_by": stopped["by"], "lang": "python"}
    finally:
        py_app.client.close()


@pytest.fixture
def start_in(request):
    """start_in(lang, address, command, **flags) -> Started: the command running meanwhile."""

    def start(lang: str, address: str, command: str, **flags: str) -> Started:
        if lang == "python":
            if command == "lease-loss":
                return Started(lambda: _python_lease_loss(address, flags["app"], flags["workflow"],
                                                          int(flags["ttl-ms"]) / 1000))
            if command in ("batch-race", "batch-stall"):
                twin = _python_batch_race if command == "batch-race" else _python_batch_stall
                return Started(lambda: twin(address, flags["app"], flags["workflow"], Path(flags["dir"]),
                                            int(flags["ttl-ms"]) / 1000))
            assert command == "takeover-scenario"
            return Started(lambda: _python_takeover(address, flags["app"], flags["workflow"]))
        args = ["--address", address]
        for key, value in flags.items():
            args += [f"--{key}", str(value)]
        program, cwd = prepare(lang)
        return Started(proc=subprocess.Popen([*program, command, *args], cwd=cwd, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True))

    def prepare(lang: str) -> tuple[list[str], Path]:
        """The driver's program (built first, if need be) and its directory."""
        if lang == "go":
            return [str(request.getfixturevalue("go_bin") / "xlang")], GO_DIR
        if lang == "ts":
            return ["node", str(request.getfixturevalue("ts_dist") / "tools" / "xlang.js")], TS_DIR
        if lang == "java":
            return ["java", "-jar", str(request.getfixturevalue("java_jar"))], JAVA_DIR
        return [], ROOT

    start.prepare = prepare  # type: ignore[attr-defined]
    return start


def _executor(address: str) -> tuple[grpc.Channel, de_grpc.DeterministicExecutorServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, de_grpc.DeterministicExecutorServiceStub(channel)


def _take_over(stub: de_grpc.DeterministicExecutorServiceStub, app: str, invocation_id: str) -> str:
    """Wait for the invocation (it may not exist yet) until its holder's lease lapses; take it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            reply = stub.WaitTask(de.WaitTaskRequest(
                app_id=app, invocation_id=invocation_id, runner_id=THIEF,
                timeout=Duration(seconds=1), lease_ttl=Duration(seconds=30)), timeout=30)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error
            time.sleep(0.05)
            continue
        assert reply.invocation.status not in (common.INVOCATION_STATUS_SUCCESS, common.INVOCATION_STATUS_FAILED), reply
        if reply.HasField("lease"):
            return reply.lease.lease_id
    raise AssertionError(f"the lease on {invocation_id} never lapsed")


def _wait_for_call(proxy: RefusingProxy, method: str) -> None:
    deadline = time.monotonic() + 60
    while proxy.calls[method] == 0:
        assert time.monotonic() < deadline, f"the run never called {method}: {proxy.calls}"
        time.sleep(0.02)


@pytest.mark.parametrize("lang", SCENARIO_LANGS)
def test_a_run_whose_lease_was_taken_over_stops_and_cannot_complete(start_in, any_sidecar, lang):
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    # The proxy refuses every renewal, so the run's 1 s lease lapses while it runs; this test
    # then takes the main task over and lets renewals through: the next one is LEASE_NOT_HELD.
    with RefusingProxy(any_sidecar.address, {"RenewTaskLease": FOREVER}) as proxy:
        started = start_in(lang, proxy.address, "lease-loss", app=app, workflow=workflow, **{"ttl-ms": "1000"})
        channel, stub = _executor(any_sidecar.address)
        try:
            lease_id = _take_over(stub, app, workflow)
            proxy.allow("RenewTaskLease")
            # Stopped, a run waits for the new holder's outcome: complete only then (an operation
            # at a new position of a finished task would be refused as divergence instead).
            _wait_for_call(proxy, "WaitTask")
            done = stub.CompleteTask(de.CompleteTaskRequest(
                app_id=app, invocation_id=workflow, lease_id=lease_id, result_json=json.dumps({"completed_by": THIEF})))
            assert done.accepted
            out, _ = started.result()
        finally:
            channel.close()
    assert proxy.refused["RenewTaskLease"] >= 1
    # It stopped at its next operation, was told in its language's idiom, and its completion
    # did not count: the outcome it reports is the new holder's.
    assert out["stopped_by"] == "LEASE_NOT_HELD", out
    assert out["signalled"] is True, out
    assert out["ran"] is True
    assert (out["status"], out["result"]) == ("INVOCATION_STATUS_SUCCESS", {"completed_by": THIEF}), out


@pytest.mark.parametrize("lang", SCENARIO_LANGS)
def test_a_dead_holders_task_is_taken_over_and_replays_its_record(start_in, any_sidecar, lang, caplog):
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    start_in.prepare(lang)  # a driver built while the holder's lease runs might find it lapsed
    channel, stub = _executor(any_sidecar.address)
    try:
        # The "dead holder": starts the workflow with a short lease, records a pick and a time, dies.
        first = stub.StartWorkflow(de.StartWorkflowRequest(
            app_id=app, workflow=common.WorkflowIdentity(workflow_id=workflow, workflow_type="contract.takeover"),
            arguments_json="{}", runner_id=DEAD_HOLDER,
            lease_ttl=Duration(seconds=DEAD_HOLDER_LEASE_S.get(lang, DEAD_HOLDER_LEASE_DEFAULT_S))))
        assert first.HasField("lease")
        position = de.OperationPosition(app_id=app, workflow=common.WorkflowIdentity(workflow_id=workflow), sequence=1)
        stub.Record(de.RecordRequest(position=position, operation="pick", value_json=json.dumps({"by": DEAD_HOLDER})))
        recorded_at = stub.UtcNow(de.UtcNowRequest(position=position)).time.ToDatetime(tzinfo=UTC)
        # Its lease runs 6 s from now: the driver must find it held, however slowly it starts (a
        # JVM, node or a Go binary took over 3 s at load 30-60).
        stub.RenewTaskLease(de.RenewTaskLeaseRequest(app_id=app, invocation_id=workflow,
                                                     lease_id=first.lease.lease_id, lease_ttl=Duration(seconds=6)))
        with caplog.at_level(logging.INFO):
            out, stderr = start_in(lang, any_sidecar.address, "takeover-scenario", app=app, workflow=workflow).result()
        # The dead holder's late completion does not count: the taker's outcome stays.
        late = stub.CompleteTask(de.CompleteTaskRequest(app_id=app, invocation_id=workflow,
                                                        lease_id=first.lease.lease_id, result_json="1"))
        assert not late.accepted
        assert json.loads(late.invocation.result_json) == out["result"]
    finally:
        channel.close()
    # The run waited for the holder (and said so), then ran the task from the top: the recorded
    # pick and time replay, the operations after them record anew.
    said = stderr if lang != "python" else caplog.text
    assert f'held by runner "{DEAD_HOLDER}"' in said, said
    assert (out["status"], out["ran"]) == ("INVOCATION_STATUS_SUCCESS", True), out
    recorded_us = int(recorded_at.timestamp()) * 1_000_000 + recorded_at.microsecond
    assert out["result"] == {"picks": [{"by": DEAD_HOLDER}, {"by": lang}], "time_us": recorded_us,
                             "r": derivations.random_value(workflow, 1), "lang": lang}, out




# --- buffered operations (docs/client-contract.md, "One round trip per blocking point") ------
BATCH_LANGS = ["go", "ts", "java", "python"]


def _log_ops(address: str, app: str, workflow: str) -> dict:
    channel, stub = _executor(address)
    try:
        return {(op.scope, op.kind, op.custom_name, op.sequence): op
                for batch in stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app, workflow_id=workflow))
                for op in batch.operations}
    finally:
        channel.close()


def _stored(address: str, app: str, workflow: str, key: str) -> Any:
    channel, stub = _executor(address)
    try:
        reply = stub.GetData(de.GetDataRequest(app_id=app, workflow_id=workflow, key=key))
    finally:
        channel.close()
    return json.loads(reply.value_json) if reply.found else None


@pytest.mark.parametrize("lang", BATCH_LANGS)
def test_buffered_operations_travel_with_the_next_blocking_call(run_in, any_sidecar, lang):
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    with RefusingProxy(any_sidecar.address, {}) as proxy:
        out = run_in(lang, proxy.address, "batch-flow", app=app, workflow=workflow)
    # 19 operations: the main task's first 13 with ExecuteTask, the child's 3 with its
    # CompleteTask, the main task's last 3 with its own: four calls in all.
    assert dict(proxy.calls) == {"StartWorkflow": 1, "ExecuteTask": 1, "CompleteTask": 2}, proxy.calls
    assert out["status"] == "INVOCATION_STATUS_SUCCESS", out
    first = out["result"]
    ops = _log_ops(any_sidecar.address, app, workflow)
    R, T, U, C = de.OPERATION_KIND_RANDOM, de.OPERATION_KIND_TIME, de.OPERATION_KIND_UUID, de.OPERATION_KIND_CUSTOM
    assert [ops[workflow, R, "", i].random_value for i in range(1, 7)] == first["random"] + [first["late"][0]]
    assert first["random"] == [derivations.random_value(workflow, i) for i in range(1, 6)]
    assert [ops[workflow, U, "", i].uuid_value for i in range(1, 4)] == first["uuid"]
    times = [ops[workflow, T, "", i].time_value for i in range(1, 5)]
    times_us = [t.seconds * 1_000_000 + t.nanos // 1000 for t in times]
    assert times_us == first["time_us"] + [first["late"][1]]  # what the code got is what is recorded
    assert times_us == sorted(set(times_us))  # strictly later each time
    assert json.loads(ops[workflow, C, "pick", 1].json_value) == {"k": [1, 2]}
    assert _stored(any_sidecar.address, app, workflow, "stage") == "after-child"
    child_scope = next(scope for scope, kind, _, _ in ops if scope != workflow)
    assert [ops[child_scope, R, "", i].random_value for i in range(1, 4)] == first["child"][:3]
    with RefusingProxy(any_sidecar.address, {}) as proxy:
        again = run_in(lang, proxy.address, "batch-flow", app=app, workflow=workflow)
    assert dict(proxy.calls) == {"StartWorkflow": 1}, proxy.calls  # finished: its recorded outcome
    assert again["result"] == first


@pytest.mark.parametrize("lang", BATCH_LANGS)
def test_a_losing_commit_is_refused_and_the_run_replays_the_winners_record(start_in, any_sidecar, lang, tmp_path):
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    with RefusingProxy(any_sidecar.address, {}) as proxy:
        started = start_in(lang, proxy.address, "batch-race", app=app, workflow=workflow, dir=str(tmp_path),
                           **{"ttl-ms": "30000"})
        wait_ready(tmp_path)
        # Another run records the buffered position first, with another value.
        channel, stub = _executor(any_sidecar.address)
        try:
            stub.Record(de.RecordRequest(position=de.OperationPosition(
                app_id=app, workflow=common.WorkflowIdentity(workflow_id=workflow), sequence=1),
                operation="pick", value_json=json.dumps({"by": "the-winner"})))
        finally:
            channel.close()
        (tmp_path / "go").touch()
        out, _ = started.result()
    # Refused once (COMMIT_CONFLICT), the log read again, the code run again: it replays the
    # winner's pick without running its generator again, and its data write is committed then.
    assert proxy.calls["GetData"] == 2 and proxy.calls["GetWorkflowLog"] == 1, proxy.calls
    assert (out["status"], out["runs"], out["generated"]) == ("INVOCATION_STATUS_SUCCESS", 2, ["gen"]), out
    assert out["result"]["pick"] == {"by": "the-winner"}, out
    ops = _log_ops(any_sidecar.address, app, workflow)
    assert json.loads(ops[workflow, de.OPERATION_KIND_CUSTOM, "pick", 1].json_value) == {"by": "the-winner"}
    assert _stored(any_sidecar.address, app, workflow, "by") == lang


@pytest.mark.parametrize("lang", BATCH_LANGS)
def test_a_run_that_lost_its_lease_cannot_commit(start_in, any_sidecar, lang, tmp_path):
    app, workflow = fresh("contract-app"), fresh("contract-wf")
    C = de.OPERATION_KIND_CUSTOM
    # Renewals refused throughout: the run does not learn it lost the lease; its commit is
    # what the sidecar refuses (the lease fence), and nothing of it is written.
    with RefusingProxy(any_sidecar.address, {"RenewTaskLease": FOREVER}) as proxy:
        started = start_in(lang, proxy.address, "batch-stall", app=app, workflow=workflow, dir=str(tmp_path),
                           **{"ttl-ms": "1000"})
        wait_ready(tmp_path)
        channel, stub = _executor(any_sidecar.address)
        try:
            lease_id = _take_over(stub, app, workflow)
            (tmp_path / "go").touch()
            _wait_for_call(proxy, "WaitTask")  # refused, it waits for the new holder
            assert (workflow, C, "second", 1) not in _log_ops(any_sidecar.address, app, workflow)
            assert _stored(any_sidecar.address, app, workflow, "late") is None
            done = stub.CompleteTask(de.CompleteTaskRequest(
                app_id=app, invocation_id=workflow, lease_id=lease_id, result_json=json.dumps({"completed_by": THIEF})))
            assert done.accepted
            out, _ = started.result()
        finally:
            channel.close()
    assert proxy.calls["GetData"] == 1, proxy.calls
    assert out["stopped_by"] == "LEASE_NOT_HELD", out
    assert (out["status"], out["result"]) == ("INVOCATION_STATUS_SUCCESS", {"completed_by": THIEF}), out
    # What it committed with its task call stands; nothing it buffered after that was written.
    ops = _log_ops(any_sidecar.address, app, workflow)
    assert json.loads(ops[workflow, C, "first", 1].json_value) == {"by": lang}
    assert (workflow, C, "second", 1) not in ops
    assert _stored(any_sidecar.address, app, workflow, "by") == lang
    assert _stored(any_sidecar.address, app, workflow, "late") is None


def wait_ready(directory: Path) -> None:
    deadline = time.monotonic() + 60
    while not (directory / "ready").exists():
        assert time.monotonic() < deadline, "the driver never reached its blocking point"
        time.sleep(0.02)
