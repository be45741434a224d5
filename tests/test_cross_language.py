"""Go, TypeScript and Python workers share one workflow through a real sidecar and Redis.

The Go program (sdk/go/internal/xlang), the TypeScript program (sdk/ts/tools/xlang.ts) and a
Python twin written here on the raw generated stubs (pynenc_sidecar_proto) perform the same
scenario: random x2, uuid, utc_now x2, a custom recorded op, two tasks (one using the
workflow context inside the task), workflow data. A workflow recorded by any of them replays
from every other with identical values and the same task invocation ids; a task leased by
one language is completed or taken over by another; error reasons read from
google.rpc.ErrorInfo are the same everywhere; and the seed's order workflow runs its payment
step in Go and its shipping step in TypeScript.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pynenc_sidecar.core import derivations
from pynenc_sidecar_proto.v1 import common_pb2 as common
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from toolchains import require

ROOT = Path(__file__).resolve().parent.parent
GO_DIR = ROOT / "sdk" / "go"
TS_DIR = ROOT / "sdk" / "ts"
LANGS = ["go", "ts", "python"]
TIMEOUT = 180


def _run(cmd: list[str], cwd: Path, timeout: float = TIMEOUT) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


@pytest.fixture(scope="session")
def go_bin(tmp_path_factory) -> Path:
    require("go")
    out = tmp_path_factory.mktemp("go-bin")
    _run(["go", "build", "-o", str(out / "xlang"), "./internal/xlang"], GO_DIR, timeout=600)
    _run(["go", "build", "-o", str(out / "order_payment"), "./examples/order_payment"], GO_DIR, timeout=600)
    return out


@pytest.fixture(scope="session")
def ts_dist() -> Path:
    require("node", "npm")
    if not (TS_DIR / "node_modules" / ".bin" / "tsc").exists():
        _run(["npm", "ci", "--no-audit", "--no-fund"], TS_DIR, timeout=600)
    _run([str(TS_DIR / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], TS_DIR, timeout=600)
    return TS_DIR / "dist"


@pytest.fixture(scope="session")
def stub(sidecar):
    channel = grpc.insecure_channel(sidecar.address)
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


@pytest.fixture
def run_lang(request, sidecar, stub):
    """run_lang(lang, command, **flags) -> the JSON the language's program printed."""

    def run(lang: str, command: str, **flags: str) -> dict:
        if lang == "python":
            return PY_COMMANDS[command](stub, **flags)
        args = ["--address", sidecar.address]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        if lang == "go":
            out = _run([str(request.getfixturevalue("go_bin") / "xlang"), command, *args], GO_DIR)
        else:
            dist = request.getfixturevalue("ts_dist")
            out = _run(["node", str(dist / "tools" / "xlang.js"), command, *args], TS_DIR)
        return json.loads(out)

    return run


@pytest.fixture(params=["redis", "sqlite"])
def any_sidecar(request):
    """The Redis sidecar, then the SQLite one."""
    return request.getfixturevalue("sidecar" if request.param == "redis" else "sqlite_sidecar")


@pytest.fixture
def driver(request, any_sidecar):
    """driver(lang, command, **flags) -> the JSON the go/ts program printed, against any_sidecar."""

    def run(lang: str, command: str, **flags: str) -> dict:
        args = ["--address", any_sidecar.address]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        if lang == "go":
            return json.loads(_run([str(request.getfixturevalue("go_bin") / "xlang"), command, *args], GO_DIR))
        dist = request.getfixturevalue("ts_dist")
        return json.loads(_run(["node", str(dist / "tools" / "xlang.js"), command, *args], TS_DIR))

    return run


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- the Python twin, on the raw generated stubs ---------------------------------------
class PyRun:
    """Pynenc's per-run sequences, by hand: one counter per (scope, kind)."""

    def __init__(self, stub, app: str, workflow_id: str) -> None:
        self.stub, self.app, self.workflow_id = stub, app, workflow_id
        self.seqs: Counter = Counter()

    def pos(self, kind: str, scope: str = "") -> de.OperationPosition:
        self.seqs[(scope, kind)] += 1
        return de.OperationPosition(app_id=self.app, workflow=common.WorkflowIdentity(workflow_id=self.workflow_id),
                                    invocation_id=scope, sequence=self.seqs[(scope, kind)])

    def execute(self, task_id: str, args: dict, fn) -> dict:
        resp = self.stub.ExecuteTask(de.ExecuteTaskRequest(position=self.pos("task"), task_id=task_id,
                                                           arguments_json=json.dumps(args), runner_id="xlang-python"))
        inv, lease, ran = resp.invocation, resp.lease if resp.HasField("lease") else None, False
        while inv.status not in (common.INVOCATION_STATUS_SUCCESS, common.INVOCATION_STATUS_FAILED):
            if lease is not None:
                ran = True
                done = self.stub.CompleteTask(de.CompleteTaskRequest(
                    app_id=self.app, invocation_id=inv.invocation_id, lease_id=lease.lease_id,
                    result_json=json.dumps(fn(inv.invocation_id)), ))
                inv = done.invocation
                break
            waited = self.stub.WaitTask(de.WaitTaskRequest(app_id=self.app, invocation_id=inv.invocation_id))
            inv, lease = waited.invocation, waited.lease if waited.HasField("lease") else None
        return task_summary(inv, ran, resp.replayed)


def task_summary(inv: de.TaskInvocation, ran: bool, replayed: bool) -> dict:
    return {
        "invocation_id": inv.invocation_id, "task_id": inv.task_id, "arguments_json": inv.arguments_json,
        "status": common.InvocationStatus.Name(inv.status),
        "result": json.loads(inv.result_json) if inv.result_json else None, "ran": ran, "replayed": replayed,
    }


def micros(ts) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def py_scenario(stub, app: str, workflow: str) -> dict:
    run = PyRun(stub, app, workflow)
    randoms = [stub.Random(de.RandomRequest(position=run.pos("random"))).value for _ in range(2)]
    uuids = [stub.Uuid(de.UuidRequest(position=run.pos("uuid"))).uuid]
    times = [micros(stub.UtcNow(de.UtcNowRequest(position=run.pos("time"))).time) for _ in range(2)]
    position = run.pos("custom:pick")
    got = stub.GetRecorded(de.GetRecordedRequest(position=position, kind=de.OPERATION_KIND_CUSTOM, custom_name="pick"))
    if got.found:
        pick = json.loads(got.operation.json_value)
    else:
        value = json.dumps({"lang": "python", "n": random.randrange(1_000_000)})
        pick = json.loads(
            stub.Record(de.RecordRequest(position=position, operation="pick", value_json=value)).value_json
        )

    def double(scope: str) -> dict:
        r = stub.Random(de.RandomRequest(position=run.pos("random", scope))).value
        u = stub.Uuid(de.UuidRequest(position=run.pos("uuid", scope))).uuid
        return {"y": 42, "r": r, "u": u, "lang": "python"}

    tasks = [
        run.execute("xlang.double", {"x": 21.0, "label": "ünï"}, double),
        run.execute("xlang.greet", {"name": "wörld"}, lambda scope: {"greeting": "hello wörld", "lang": "python"}),
    ]
    stub.SetData(de.SetDataRequest(app_id=app, workflow_id=workflow, key="summary",
                                   value_json=json.dumps({"r1": randoms[0], "uuid": uuids[0]})))
    data = stub.GetData(de.GetDataRequest(app_id=app, workflow_id=workflow, key="summary"))
    return {"lang": "python", "random": randoms, "uuid": uuids, "time_us": times, "pick": pick, "tasks": tasks,
            "data": json.loads(data.value_json)}


def py_lease(stub, app: str, workflow: str, ttl_ms: str) -> dict:
    ttl = int(ttl_ms)
    resp = stub.ExecuteTask(de.ExecuteTaskRequest(
        position=de.OperationPosition(app_id=app, workflow=common.WorkflowIdentity(workflow_id=workflow), sequence=1),
        task_id="xlang.handoff", arguments_json='{"k":1}', runner_id="xlang-python",
        lease_ttl={"seconds": ttl // 1000, "nanos": ttl % 1000 * 1_000_000}))
    return {"invocation_id": resp.invocation.invocation_id, "granted": resp.HasField("lease"),
            "lease_id": resp.lease.lease_id,
            # to the millisecond, as the SDKs print it
            "expires_at": resp.lease.expire_time.ToDatetime().isoformat(timespec="milliseconds") + "Z"}


def py_complete(stub, app: str, invocation: str, lease: str) -> dict:
    resp = stub.CompleteTask(de.CompleteTaskRequest(app_id=app, invocation_id=invocation, lease_id=lease,
                                                    result_json='{"completed_by":"python"}'))
    return {"accepted": resp.accepted, "status": common.InvocationStatus.Name(resp.invocation.status),
            "result": json.loads(resp.invocation.result_json)}


def py_takeover(stub, app: str, workflow: str) -> dict:
    return PyRun(stub, app, workflow).execute("xlang.handoff", {"k": 1}, lambda scope: {"completed_by": "python"})


PY_COMMANDS = {"run": py_scenario, "lease": py_lease, "complete": py_complete, "takeover": py_takeover}


def comparable(result: dict) -> dict:
    """What must be identical whoever replays: everything but who ran what."""
    out = {k: v for k, v in result.items() if k != "lang"}
    out["tasks"] = [{k: v for k, v in t.items() if k not in ("ran", "replayed")} for t in result["tasks"]]
    return out


# --- the tests --------------------------------------------------------------------------
@pytest.mark.parametrize("recorder", LANGS)
def test_workflow_recorded_in_one_language_replays_in_all(run_lang, recorder):
    app, workflow = fresh("xl-app"), fresh("xl-wf")
    recorded = run_lang(recorder, "run", app=app, workflow=workflow)
    assert recorded["random"] == [derivations.random_value(workflow, 1), derivations.random_value(workflow, 2)]
    assert recorded["uuid"] == [derivations.uuid_value(workflow, 1)]
    assert recorded["time_us"][0] < recorded["time_us"][1]
    assert recorded["pick"]["lang"] == recorder
    assert all(t["ran"] and not t["replayed"] for t in recorded["tasks"])
    double = recorded["tasks"][0]
    assert double["arguments_json"] == '{"label":"ünï","x":21}'
    assert double["result"]["lang"] == recorder
    assert double["result"]["r"] == derivations.random_value(double["invocation_id"], 1)
    assert double["result"]["u"] == derivations.uuid_value(double["invocation_id"], 1)

    for replayer in LANGS:
        replayed = run_lang(replayer, "run", app=app, workflow=workflow)
        assert comparable(replayed) == comparable(recorded), f"{replayer} replaying {recorder}"
        assert all(not t["ran"] and t["replayed"] for t in replayed["tasks"]), replayer


@pytest.mark.parametrize(("starter", "completer"), [("go", "ts"), ("ts", "go"), ("python", "go"), ("ts", "python")])
def test_task_leased_in_one_language_is_completed_by_another(run_lang, starter, completer):
    app, workflow = fresh("xl-app"), fresh("xl-wf")
    leased = run_lang(starter, "lease", app=app, workflow=workflow, ttl_ms="30000")
    assert leased["granted"] and leased["lease_id"]
    done = run_lang(completer, "complete", app=app, invocation=leased["invocation_id"], lease=leased["lease_id"])
    assert done == {"accepted": True, "status": "INVOCATION_STATUS_SUCCESS", "result": {"completed_by": completer}}
    # every language now replays the finished task without running it
    for lang in LANGS:
        replay = run_lang(lang, "takeover", app=app, workflow=workflow)
        assert replay["invocation_id"] == leased["invocation_id"]
        assert replay["result"] == {"completed_by": completer} and not replay["ran"], lang


@pytest.mark.parametrize(("holder", "successor"), [("go", "ts"), ("ts", "go"), ("python", "ts")])
def test_task_whose_holder_died_is_taken_over_by_another_language(run_lang, holder, successor):
    app, workflow = fresh("xl-app"), fresh("xl-wf")
    leased = run_lang(holder, "lease", app=app, workflow=workflow, ttl_ms="1000")
    assert leased["granted"]
    taken = run_lang(successor, "takeover", app=app, workflow=workflow)
    assert taken["invocation_id"] == leased["invocation_id"]
    assert taken["ran"] and taken["result"] == {"completed_by": successor}


def _python_reasons(stub, app: str, workflow: str) -> dict:
    def note(call) -> dict | None:
        try:
            call()
        except grpc.RpcError as err:
            status = rpc_status.from_call(err)
            entry: dict = {"code": status.code}
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    entry.update(reason=info.reason, domain=info.domain)
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    entry["field"] = bad.field_violations[0].field
            return entry
        return None

    PyRun(stub, app, workflow).execute("xlang.first", {}, lambda scope: 1)
    first = PyRun(stub, app, workflow).execute("xlang.first", {}, lambda scope: 1)
    return {
        "nondeterministic": note(lambda: PyRun(stub, app, workflow).execute("xlang.second", {}, lambda s: 1)),
        "access_denied": note(lambda: stub.SetData(de.SetDataRequest(app_id=app, workflow_id=workflow,
                                                                     invocation_id="some-task", key="k",
                                                                     value_json="1"))),
        "not_found": note(lambda: stub.RenewTaskLease(de.RenewTaskLeaseRequest(app_id=app,
                                                                               invocation_id="no-such-invocation",
                                                                               lease_id="x"))),
        "lease_not_held": note(lambda: stub.RenewTaskLease(de.RenewTaskLeaseRequest(
            app_id=app, invocation_id=first["invocation_id"], lease_id="not-mine"))),
        "invalid_argument": note(lambda: stub.Random(de.RandomRequest(position=de.OperationPosition(
            app_id=app, workflow=common.WorkflowIdentity(), sequence=1)))),
    }


def test_error_reasons_are_read_alike_in_every_language(run_lang, stub):
    expected = {
        "nondeterministic": {"code": 9, "reason": "NONDETERMINISTIC_REPLAY"},
        "access_denied": {"code": 7, "reason": "WORKFLOW_ACCESS_DENIED"},
        "not_found": {"code": 5, "reason": "INVOCATION_NOT_FOUND"},
        "lease_not_held": {"code": 9, "reason": "LEASE_NOT_HELD"},
        "invalid_argument": {"code": 3, "reason": "INVALID_ARGUMENT", "field": "position.workflow.workflow_id"},
    }
    for name in expected:
        expected[name]["domain"] = "sidecar.pynenc.org"
    results = {
        "go": run_lang("go", "errors", app=fresh("xl-app"), workflow=fresh("xl-wf")),
        "ts": run_lang("ts", "errors", app=fresh("xl-app"), workflow=fresh("xl-wf")),
        "python": _python_reasons(stub, fresh("xl-app"), fresh("xl-wf")),
    }
    for lang, got in results.items():
        assert got == expected, lang


def test_order_workflow_payment_in_go_shipping_in_typescript(go_bin, ts_dist, sidecar, stub):
    app, workflow = fresh("shop"), fresh("order")
    flags = ["--address", sidecar.address, "--app", app, "--workflow", workflow]
    go_out = json.loads(_run([str(go_bin / "order_payment"), *flags], GO_DIR))
    assert go_out["handed_off"] is True
    payment = go_out["payment"]
    assert payment["status"] in ("completed", "failed")
    assert payment["payment_id"] == derivations.uuid_value(_task_invocation(stub, app, workflow, 2), 1)

    ts_out = json.loads(_run(["node", str(ts_dist / "examples" / "order_shipping.js"), *flags], TS_DIR))
    result = ts_out["workflow_result"]
    assert ts_out["ran"] is True
    assert result["status"] == "completed"
    assert result["payment_id"] == payment["payment_id"], "the Go payment replays in TypeScript"
    shipping_id = _task_invocation(stub, app, workflow, 4)
    suffix = int(derivations.random_value(shipping_id, 1) * 100000)
    assert result["tracking_number"] == f"TRK-{workflow}-{suffix:05d}"

    def data(key: str):
        return json.loads(stub.GetData(de.GetDataRequest(app_id=app, workflow_id=workflow, key=key)).value_json)

    assert data("status") == "completed"
    assert data("payment_id") == payment["payment_id"]
    assert data("reservation_id") == result["reservation_id"]
    # running either worker again replays the finished workflow
    again = json.loads(_run(["node", str(ts_dist / "examples" / "order_shipping.js"), *flags], TS_DIR))
    assert again["ran"] is False and again["workflow_result"] == result
    go_again = json.loads(_run([str(go_bin / "order_payment"), *flags], GO_DIR))
    assert go_again["handed_off"] is False and go_again["workflow_result"] == result


def _task_invocation(stub, app: str, workflow: str, sequence: int) -> str:
    got = stub.GetRecorded(de.GetRecordedRequest(
        position=de.OperationPosition(app_id=app, workflow=common.WorkflowIdentity(workflow_id=workflow),
                                      sequence=sequence),
        kind=de.OPERATION_KIND_TASK))
    assert got.found
    return got.operation.task_value.invocation_id


# --- outcomes the store refuses, and retrying a failed workflow (issue 11, cases 3-4) ----
FAILED, SUCCESS = "INVOCATION_STATUS_FAILED", "INVOCATION_STATUS_SUCCESS"


def check_failed_then_retried(fail, retry, failer: str, retrier: str) -> None:
    """fail(command, **flags) / retry(...) run a driver; the flow fails in `failer`'s second
    task, then `retrier` retries it: only the second task runs again."""
    app, workflow = fresh("xl-app"), fresh("xl-retry")
    failed = fail("flow", app=app, workflow=workflow, fixed="false")
    assert (failed["status"], failed["ran"]) == (FAILED, ["first", "second"])
    # The main task's recorded error is the failed task's: original type, message, traceback.
    assert failed["error"]["type"] == "XlangBroken" and failed["error"]["message"] == f"broken in {failer}"
    assert f"broken in {failer}" in failed["error"]["traceback"]
    # Without a retry the failure is final: the recorded outcome, no code run.
    again = retry("flow", app=app, workflow=workflow, fixed="true")
    assert (again["status"], again["ran"], again["error"]) == (FAILED, [], failed["error"])

    retried = retry("retry", app=app, workflow=workflow, fixed="true")
    assert retried["reset"] == ["xlang.second:INVOCATION_STATUS_RETRY", "xlang.retry_flow:INVOCATION_STATUS_RETRY"]
    assert (retried["status"], retried["ran"], retried["error"]) == (SUCCESS, ["second"], None)
    assert retried["result"]["first"]["lang"] == failer  # recorded in the first run, replayed
    assert retried["result"]["second"] == {"fixed_by": retrier}


def check_oversize(run, size: int, setting: str) -> None:
    app, workflow = fresh("xl-app"), fresh("xl-big")
    out = run("oversize", app=app, workflow=workflow, bytes=str(size))
    assert (out["status"], out["ran"], out["child"]["status"]) == (FAILED, ["big"], FAILED)
    child_error = out["child"]["error"]
    assert child_error["type"] == "ResultTooLarge"
    assert "xlang.big" in child_error["message"] and setting in child_error["message"], child_error
    assert (out["error"]["type"], out["error"]["message"]) == ("ResultTooLarge", child_error["message"])
    replay = run("oversize", app=app, workflow=workflow, bytes=str(size))
    assert (replay["status"], replay["ran"], replay["error"]) == (FAILED, [], out["error"])


@pytest.mark.parametrize(("failer", "retrier"), [("go", "go"), ("ts", "ts"), ("go", "ts"), ("ts", "go")])
def test_a_workflow_failed_in_one_sdk_is_retried_from_its_failed_step(driver, failer, retrier):
    check_failed_then_retried(lambda *a, **f: driver(failer, *a, **f), lambda *a, **f: driver(retrier, *a, **f),
                              failer, retrier)


@pytest.mark.parametrize("lang", ["go", "ts"])
@pytest.mark.parametrize(("size", "setting"), [(2_000_000, "--max-value-bytes"), (22_000_000, "--max-message-bytes")],
                         ids=["above-value-limit", "above-grpc-message-limit"])
def test_a_result_too_large_is_recorded_as_the_task_failure_in_every_sdk(driver, lang, size, setting):
    check_oversize(lambda *a, **f: driver(lang, *a, **f), size, setting)


# --- the SDKs' own suites, with their server tests enabled ------------------------------
def test_go_sdk_suite_against_the_sidecar(sidecar):
    require("go")
    proc = subprocess.run(["go", "test", "-count=1", "-v", "./..."], cwd=GO_DIR, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYNENC_SIDECAR_ADDRESS": sidecar.address})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--- SKIP" not in proc.stdout and "--- PASS: TestExecuteTaskReplay" in proc.stdout, proc.stdout


def test_ts_sdk_suite_against_the_sidecar(sidecar, ts_dist):
    proc = subprocess.run(["node", "--test", *sorted(str(p) for p in (ts_dist / "test").glob("*.test.js"))], cwd=TS_DIR,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYNENC_SIDECAR_ADDRESS": sidecar.address})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# fail 0" in proc.stdout and "ok 4 - executeTask runs once, replays" in proc.stdout, proc.stdout


def successor_command(lang: str, request, sidecar, app: str, workflow: str) -> tuple[list[str], Path]:
    flags = ["--address", sidecar.address, "--app", app, "--workflow", workflow]
    if lang == "go":
        return [str(request.getfixturevalue("go_bin") / "xlang"), "takeover", *flags], GO_DIR
    if lang == "ts":
        return ["node", str(request.getfixturevalue("ts_dist") / "tools" / "xlang.js"), "takeover", *flags], TS_DIR
    return ["java", "-jar", str(request.getfixturevalue("java_jar")), "takeover", *flags], ROOT / "sdk" / "java"


def assert_says_it_waits(stderr: str, workflow: str, leased: dict) -> None:
    """The successor said, on stderr, what it waited for and until when (the dead holder's lease)."""
    lines = [line[line.index("waiting for task "):] for line in stderr.splitlines() if "waiting for task " in line]
    assert lines, stderr
    assert lines[0].startswith(f"waiting for task xlang.handoff (invocation {leased['invocation_id']}, workflow "
                               f"{workflow}) held by runner \"xlang-python\": its lease expires at "
                               f"{leased['expires_at']} ("), (leased, lines[0])
    assert " s left); this run takes the task over then unless the holder renews it" in lines[0], lines[0]


@pytest.mark.parametrize("successor", ["go", "ts"])
def test_a_successor_waiting_for_a_dead_holders_lease_says_so(request, sidecar, stub, successor):
    app, workflow = fresh("xl-app"), fresh("xl-wf")
    command, cwd = successor_command(successor, request, sidecar, app, workflow)  # built before the lease starts
    leased = py_lease(stub, app, workflow, "4000")  # the holder then "dies": it never renews
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    taken = json.loads(proc.stdout)
    assert taken["ran"] and taken["invocation_id"] == leased["invocation_id"]
    assert_says_it_waits(proc.stderr, workflow, leased)
