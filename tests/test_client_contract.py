"""The client contract (docs/client-contract.md) holds in all four SDKs.

Each language runs the same scenarios through its driver (sdk/go/internal/xlang,
sdk/ts/tools/xlang.ts, sdk/java/.../xlang/Xlang.java; Python through its SDK in this
process): an operation called inside a custom operation's generator (which deadlocked in Go
and never settled in TypeScript) is refused alike and takes no position, and the workflow
recorded by any language replays from every other;
calls refused with UNAVAILABLE, retried; and the Python SDK's constants against
tests/vectors/client_contract.json (the other SDKs check it in their own suites, run by
test_cross_language.py and test_java_client.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest

from pynenc_sidecar.core import derivations
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk import Pynenc
from pynenc_sidecar_sdk import client as py_client
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


def _run_python(address: str, command: str, app: str, workflow: str) -> dict:
    assert command == "nested"
    py_app = Pynenc(app, address=address)
    try:
        task = py_app.task(_nested_main)
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
    # Each of these refused as often as the policy allows short of giving up.
    refuse = {"Random": CONTRACT["retry"]["max_attempts"] - 1, "Record": 1, "GetRecorded": 2}
    with RefusingProxy(sidecar.address, refuse) as proxy:
        out = run_in(lang, proxy.address, "nested", app=app, workflow=workflow)
    assert proxy.refused == refuse, proxy.refused
    assert out["sequences"] == NESTED_SEQUENCES
    assert out["outer"] == {"r": derivations.random_value(workflow, 1), "lang": lang}
    assert out["after"] == derivations.random_value(workflow, 2)
    # Retried at the same positions: the record replays identically without the proxy.
    assert _recorded(run_in(lang, sidecar.address, "nested", app=app, workflow=workflow)) == _recorded(out)


def test_python_constants_are_the_contracts():
    assert set(py_errors._BY_REASON) <= set(CONTRACT["reasons"])
    assert py_client.ENV == CONTRACT["env"]
    assert py_client.RETRY == CONTRACT["retry"]
    config = json.loads(py_client.RETRY_SERVICE_CONFIG)["methodConfig"][0]["retryPolicy"]
    assert config["maxAttempts"] == CONTRACT["retry"]["max_attempts"]
    assert config["retryableStatusCodes"] == CONTRACT["retry"]["retryable_codes"]
    defaults = CONTRACT["defaults"]
    assert py_runner.WAIT_SLICE_S * 1000 == defaults["wait_slice_ms"]
    assert py_runner.DEFAULT_LEASE_TTL_S * 1000 == defaults["lease_ttl_ms"]
    assert py_runner.RENEW_FRACTION == defaults["renew_every_fraction_of_ttl"]


# Local replay (issue 14 item 3): a replay reads the workflow's log once and serves every
# recorded position from it. The languages that do so through their drivers' free-context
# commands (`run`, `diverge` read the log first).
LOCAL_REPLAY_LANGS = ["ts"]


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


@pytest.mark.parametrize("lang", LOCAL_REPLAY_LANGS)
def test_bench_replay_prints_record_and_replay_times(request, sidecar, lang):
    cmd, cwd = _driver_cmd(request, lang, "bench-replay", sidecar.address, ops="20")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"record_ms", "replay_ms"}
    assert all(isinstance(v, (int, float)) and v > 0 for v in out.values()), out
