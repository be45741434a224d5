"""The Java client (sdk/java) against a real sidecar and Redis, beside the Python twin.

sdk/java is built once per session with Maven (grpc-java code generated from protos/, the
JUnit derivation test against tests/vectors run by the build); its xlang program
(org.pynenc.sidecar.xlang.Xlang, the twin of sdk/go/internal/xlang) performs the shared
scenario of tests/test_cross_language.py. A workflow recorded by the Python twin replays in
Java with identical values and the same task invocation ids, and the other way round (and
with the Go and TypeScript programs, when Go / Node are installed); a
task leased in one language is completed or taken over in the other; the ErrorInfo reasons
read in Java are the ones every language reads.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import grpc
import pytest

from pynenc_sidecar.core import derivations
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from refusing_proxy import RefusingProxy
from test_cross_language import (  # noqa: F401  (fixtures, for run_lang)  # noqa: F401  (fixtures, for the Go/TS drivers)
    any_sidecar,
    check_failed_then_retried,
    check_oversize,
    comparable,
    driver,
    fresh,
    go_bin,
    py_lease,
    py_scenario,
    py_takeover,
    run_lang,
    stub,
    ts_dist,
)
from toolchains import require

ROOT = Path(__file__).resolve().parent.parent
JAVA_DIR = ROOT / "sdk" / "java"
JAR = JAVA_DIR / "target" / "pynenc-sidecar-client.jar"
MVN = ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(JAVA_DIR / "pom.xml")]


def _run(cmd: list[str], timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=JAVA_DIR, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


@pytest.fixture(scope="session")
def java_jar() -> Path:
    """`mvn package` once: generate, compile, run the JUnit tests, jar + target/lib."""
    require("java", "mvn")
    _run([*MVN, "package"], timeout=900)
    assert JAR.is_file()
    return JAR


@pytest.fixture(scope="session")
def java_stub(sidecar):
    channel = grpc.insecure_channel(sidecar.address)
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


@pytest.fixture
def java(java_jar, sidecar):
    """java(command, **flags) -> the JSON the Java xlang program printed."""

    def run(command: str, **flags: str) -> dict:
        args = ["--address", sidecar.address]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        return json.loads(_run(["java", "-jar", str(java_jar), command, *args], timeout=120))

    return run


@pytest.fixture
def java_on(java_jar, any_sidecar):
    """java_on(command, **flags) -> the Java program's JSON, against any_sidecar (both stores)."""

    def run(command: str, **flags: str) -> dict:
        args = ["--address", any_sidecar.address]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        return json.loads(_run(["java", "-jar", str(java_jar), command, *args], timeout=120))

    return run


def test_junit_derivations_ran_and_passed(java_jar):
    reports = list((JAVA_DIR / "target" / "surefire-reports").glob("TEST-*.xml"))
    assert reports, "the Maven build ran no JUnit test"
    suites = [ET.parse(report).getroot() for report in reports]
    assert any(s.get("name") == "org.pynenc.sidecar.wf.DerivationsTest" for s in suites)
    for suite in suites:
        assert int(suite.get("tests")) > 0 and suite.get("failures") == "0" and suite.get("errors") == "0", suite.attrib
        assert suite.get("skipped") == "0", suite.attrib


def test_python_recorded_workflow_replays_in_java(java, java_stub):
    app, workflow = fresh("java-app"), fresh("java-wf")
    recorded = py_scenario(java_stub, app, workflow)
    replayed = java("run", app=app, workflow=workflow)
    assert replayed["lang"] == "java"
    assert comparable(replayed) == comparable(recorded)
    assert [t["invocation_id"] for t in replayed["tasks"]] == [t["invocation_id"] for t in recorded["tasks"]]
    assert all(not t["ran"] and t["replayed"] for t in replayed["tasks"])
    assert replayed["pick"]["lang"] == "python" and replayed["tasks"][0]["result"]["lang"] == "python"


def test_java_recorded_workflow_replays_in_python_and_java(java, java_stub):
    app, workflow = fresh("java-app"), fresh("java-wf")
    recorded = java("run", app=app, workflow=workflow)
    assert recorded["random"] == [derivations.random_value(workflow, 1), derivations.random_value(workflow, 2)]
    assert recorded["uuid"] == [derivations.uuid_value(workflow, 1)]
    assert recorded["time_us"][0] < recorded["time_us"][1]
    assert recorded["pick"]["lang"] == "java"
    assert all(t["ran"] and not t["replayed"] for t in recorded["tasks"])
    double = recorded["tasks"][0]
    assert double["arguments_json"] == '{"label":"ünï","x":21}'
    assert double["status"] == "INVOCATION_STATUS_SUCCESS"
    assert double["result"]["lang"] == "java" and double["result"]["y"] == 42
    assert double["result"]["r"] == derivations.random_value(double["invocation_id"], 1)
    assert double["result"]["u"] == derivations.uuid_value(double["invocation_id"], 1)
    assert recorded["data"] == {"r1": recorded["random"][0], "uuid": recorded["uuid"][0]}

    by_python = py_scenario(java_stub, app, workflow)
    assert comparable(by_python) == comparable(recorded)
    by_java = java("run", app=app, workflow=workflow)
    assert comparable(by_java) == comparable(recorded)
    assert all(not t["ran"] and t["replayed"] for t in by_java["tasks"] + by_python["tasks"])


@pytest.mark.parametrize("other", ["go", "ts"])
def test_java_and_another_sdk_replay_each_other(java, run_lang, other):
    app, workflow = fresh("java-app"), fresh("java-wf")
    recorded = java("run", app=app, workflow=workflow)
    assert comparable(run_lang(other, "run", app=app, workflow=workflow)) == comparable(recorded)
    app, workflow = fresh("java-app"), fresh("java-wf")
    recorded = run_lang(other, "run", app=app, workflow=workflow)
    replayed = java("run", app=app, workflow=workflow)
    assert comparable(replayed) == comparable(recorded) and replayed["pick"]["lang"] == other


def test_task_leases_cross_between_python_and_java(java, java_stub):
    # Python takes the lease, Java completes it; both then replay the outcome.
    app, workflow = fresh("java-app"), fresh("java-wf")
    leased = py_lease(java_stub, app, workflow, "30000")
    done = java("complete", app=app, invocation=leased["invocation_id"], lease=leased["lease_id"])
    assert done == {"accepted": True, "status": "INVOCATION_STATUS_SUCCESS", "result": {"completed_by": "java"}}
    for replay in (java("takeover", app=app, workflow=workflow), py_takeover(java_stub, app, workflow)):
        assert replay["invocation_id"] == leased["invocation_id"]
        assert replay["result"] == {"completed_by": "java"} and not replay["ran"]

    # Java takes a 1 s lease and exits without completing: Python takes the task over;
    # and the other way round, Java takes over a lease Python let lapse.
    app, workflow = fresh("java-app"), fresh("java-wf")
    leased = java("lease", app=app, workflow=workflow, ttl_ms="1000")
    assert leased["granted"]
    taken = py_takeover(java_stub, app, workflow)
    assert taken["invocation_id"] == leased["invocation_id"] and taken["ran"]
    assert taken["result"] == {"completed_by": "python"}

    app, workflow = fresh("java-app"), fresh("java-wf")
    leased = py_lease(java_stub, app, workflow, "1000")
    taken = java("takeover", app=app, workflow=workflow)
    assert taken["invocation_id"] == leased["invocation_id"] and taken["ran"]
    assert taken["result"] == {"completed_by": "java"}


def test_error_reasons_read_in_java(java):
    expected = {
        "nondeterministic": {"code": 9, "reason": "NONDETERMINISTIC_REPLAY"},
        "access_denied": {"code": 7, "reason": "WORKFLOW_ACCESS_DENIED"},
        "not_found": {"code": 5, "reason": "INVOCATION_NOT_FOUND"},
        "lease_not_held": {"code": 9, "reason": "LEASE_NOT_HELD"},
        "invalid_argument": {"code": 3, "reason": "INVALID_ARGUMENT", "field": "position.workflow.workflow_id"},
    }
    for entry in expected.values():
        entry["domain"] = "sidecar.pynenc.org"
    assert java("errors", app=fresh("java-app"), workflow=fresh("java-wf")) == expected


def test_java_waiting_for_a_dead_holders_lease_says_so(request, java_jar, sidecar, java_stub):
    from test_cross_language import assert_says_it_waits, successor_command

    app, workflow = fresh("java-app"), fresh("java-wf")
    command, cwd = successor_command("java", request, sidecar, app, workflow)  # built before the lease starts
    leased = py_lease(java_stub, app, workflow, "8000")  # the holder then "dies"; 8 s outlasts a JVM start under load
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ran"]
    assert_says_it_waits(proc.stderr, workflow, leased)


def test_a_workflow_failed_in_java_is_retried_from_its_failed_step(java_on):
    check_failed_then_retried(java_on, java_on, "java", "java")


@pytest.mark.parametrize("other", ["go", "ts"])
def test_a_workflow_failed_in_java_is_retried_in_another_sdk_and_back(java_on, driver, other):
    check_failed_then_retried(java_on, lambda *a, **f: driver(other, *a, **f), "java", other)
    check_failed_then_retried(lambda *a, **f: driver(other, *a, **f), java_on, other, "java")


@pytest.mark.parametrize(("size", "setting"), [(2_000_000, "--max-value-bytes"), (22_000_000, "--max-message-bytes")],
                         ids=["above-value-limit", "above-grpc-message-limit"])
def test_a_result_too_large_is_recorded_as_the_task_failure_in_java(java_on, size, setting):
    check_oversize(java_on, size, setting)


# --- local replay (issue 14 item 3): one GetWorkflowLog serves every recorded value -----
def _java_at(java_jar: Path, address: str, command: str, **flags: str) -> dict:
    args = ["--address", address]
    for key, value in flags.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return json.loads(_run(["java", "-jar", str(java_jar), command, *args], timeout=120))


def _counted(java_jar: Path, sidecar, command: str, **flags: str) -> tuple[dict, dict]:
    """Runs a Java command through a proxy that counts its calls: (its JSON, calls by method)."""
    with RefusingProxy(sidecar.address, {}) as proxy:
        out = _java_at(java_jar, proxy.address, command, **flags)
    return out, dict(proxy.calls)


def test_java_replays_a_whole_workflow_from_one_log_call(java_jar, any_sidecar):
    # Randoms, uuid, times, a custom op, two tasks (finished), a data write and a read.
    app, workflow = fresh("java-app"), fresh("java-wf")
    recorded, first_calls = _counted(java_jar, any_sidecar, "run", app=app, workflow=workflow)
    # It did record: the bare Context's randoms one call each (the child task's is buffered).
    assert first_calls["Random"] == 2 and first_calls["ExecuteTask"] == 2, first_calls
    replayed, calls = _counted(java_jar, any_sidecar, "run", app=app, workflow=workflow)
    assert calls == {"GetWorkflowLog": 1}
    assert comparable(replayed) == comparable(recorded)
    assert all(t["replayed"] and not t["ran"] for t in replayed["tasks"])


def test_java_local_replay_of_data_still_detects_divergence(java_jar, any_sidecar):
    app, workflow = fresh("java-app"), fresh("java-wf")
    assert _java_at(java_jar, any_sidecar.address, "visits", app=app, workflow=workflow) == {"n": 1}
    assert _counted(java_jar, any_sidecar, "visits", app=app, workflow=workflow) == ({"n": 1}, {"GetWorkflowLog": 1})

    assert _java_at(java_jar, any_sidecar.address, "diverge", app=app, workflow=workflow, value="1")["error"] is None
    # The same JSON value, spelled otherwise: served from the log, nothing sent.
    same, calls = _counted(java_jar, any_sidecar, "diverge", app=app, workflow=workflow, value="1.0")
    assert (same["error"], calls) == (None, {"GetWorkflowLog": 1})
    # Another value: not served; the sidecar judges it and refuses it.
    other, calls = _counted(java_jar, any_sidecar, "diverge", app=app, workflow=workflow, value='{"n":2}')
    assert other["error"] == "NONDETERMINISTIC_REPLAY" and "written 1" in other["message"], other
    assert calls == {"GetWorkflowLog": 1, "SetData": 1}


def test_java_task_divergence_is_still_refused_after_a_local_replay(java_jar, any_sidecar):
    # `errors` replays task #1 from the log, then calls another task there: the sidecar refuses it.
    out, calls = _counted(java_jar, any_sidecar, "errors", app=fresh("java-app"), workflow=fresh("java-wf"))
    assert out["nondeterministic"]["reason"] == "NONDETERMINISTIC_REPLAY"
    assert calls["ExecuteTask"] == 2, calls  # the first recording and the divergent call; the replays none


def test_java_retried_workflow_replays_from_the_log_start_workflow_brings(java_jar, any_sidecar):
    app, workflow = fresh("java-app"), fresh("java-wf")
    failed = _java_at(java_jar, any_sidecar.address, "flow", app=app, workflow=workflow, fixed="false")
    assert failed["ran"] == ["first", "second"]
    retried, calls = _counted(java_jar, any_sidecar, "retry", app=app, workflow=workflow, fixed="true")
    assert retried["ran"] == ["second"] and retried["result"]["first"]["lang"] == "java"
    # The finished first task came from StartWorkflow's log (include_log): no GetWorkflowLog,
    # and ExecuteTask only for the reset second task.
    assert "GetWorkflowLog" not in calls and calls["ExecuteTask"] == 1, calls


def test_java_bench_replay_prints_both_timings(java_jar, sidecar):
    out = _java_at(java_jar, sidecar.address, "bench-replay", ops="50")
    assert set(out) == {"record_ms", "replay_ms", "first_op_ms", "log_call_ms"}
    assert all(isinstance(v, float) and v > 0 for v in out.values()), out
    assert out["first_op_ms"] <= out["replay_ms"], out


# One round trip per blocking point (issue 14 item 2): Java runs the contract's buffered
# operations, losing commit and lost lease in tests/test_client_contract.py with the others.
