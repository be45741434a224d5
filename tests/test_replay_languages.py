"""Issue 11 cases 1 and 2 from the Go, TypeScript and Java SDKs, on both stores, through their
xlang programs (sdk/go/internal/xlang, sdk/ts/tools/xlang.ts, sdk/java/.../xlang/Xlang.java):
workflow data read and written at positions replays without re-reading or re-applying (in
any language, whoever recorded it), a replay writing another value is NONDETERMINISTIC_REPLAY,
and a finished workflow returns its recorded result while a newer step never runs."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from test_cross_language import GO_DIR, TS_DIR, _run, go_bin, ts_dist  # noqa: F401  (fixtures)
from test_java_client import _run as _run_java
from test_java_client import java_jar  # noqa: F401  (fixture)

LANGS = ["go", "ts", "java"]


@pytest.fixture(params=["redis", "sqlite"])
def server(request):
    return request.getfixturevalue("sidecar" if request.param == "redis" else "sqlite_sidecar")


@pytest.fixture
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


@pytest.fixture
def xlang(request, server):
    """xlang(lang, command, **flags) -> the JSON that language's xlang program printed."""

    def run(lang: str, command: str, **flags: str) -> dict:
        args = [command, "--address", server.address]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        if lang == "go":
            out = _run([str(request.getfixturevalue("go_bin") / "xlang"), *args], GO_DIR)
        elif lang == "ts":
            out = _run(["node", str(request.getfixturevalue("ts_dist") / "tools" / "xlang.js"), *args], TS_DIR)
        else:
            out = _run_java(["java", "-jar", str(request.getfixturevalue("java_jar")), *args], timeout=120)
        return json.loads(out)

    return run


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stored(stub, app: str, workflow_id: str, key: str):
    reply = stub.GetData(de.GetDataRequest(app_id=app, workflow_id=workflow_id, key=key))
    return json.loads(reply.value_json) if reply.found else None


def operations(stub, app: str, workflow_id: str) -> list[de.RecordedOperation]:
    return [op for batch in stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app, workflow_id=workflow_id))
            for op in batch.operations]


@pytest.mark.parametrize("recorder", LANGS)
def test_data_read_modify_write_replays_in_every_language_without_applying_again(xlang, stub, recorder):
    app, workflow_id = fresh("xr-app"), fresh("xr-wf")
    assert xlang(recorder, "visits", app=app, workflow=workflow_id) == {"n": 1}
    for replayer in [recorder, *LANGS]:
        assert xlang(replayer, "visits", app=app, workflow=workflow_id) == {"n": 1}, replayer
    assert stored(stub, app, workflow_id, "visits") == 1
    recorded = {(op.kind, op.custom_name, op.sequence): op.data_value for op in operations(stub, app, workflow_id)}
    assert recorded == {(de.OPERATION_KIND_DATA_READ, "visits", 1): de.DataValue(found=False),
                        (de.OPERATION_KIND_DATA_WRITE, "visits", 1): de.DataValue(found=True, value_json="1")}


@pytest.mark.parametrize("lang", LANGS)
def test_a_replay_writing_another_value_is_nondeterministic(xlang, stub, lang):
    app, workflow_id = fresh("xr-app"), fresh("xr-wf")
    assert xlang(lang, "diverge", app=app, workflow=workflow_id, value="1")["error"] is None
    assert xlang(lang, "diverge", app=app, workflow=workflow_id, value="1.0")["error"] is None  # the same JSON value
    diverged = xlang(lang, "diverge", app=app, workflow=workflow_id, value='{"n":2}')
    assert diverged["error"] == "NONDETERMINISTIC_REPLAY"
    assert "'counter'" in diverged["message"] and "written 1" in diverged["message"], diverged
    assert stored(stub, app, workflow_id, "counter") == 1


@pytest.mark.parametrize("lang", LANGS)
def test_a_finished_workflow_returns_its_result_and_a_new_step_never_runs(xlang, stub, lang):
    app, workflow_id = fresh("xr-app"), fresh("xr-wf")
    first = xlang(lang, "notify", app=app, workflow=workflow_id)
    assert first == {"result": 42, "ran": ["flow", "step"], "replayed": False}
    again = xlang(lang, "notify", app=app, workflow=workflow_id, notify="yes")
    assert again == {"result": 42, "ran": [], "replayed": True}
    tasks = [op.task_value.task_id for op in operations(stub, app, workflow_id) if op.kind == de.OPERATION_KIND_TASK]
    assert tasks == ["xlang.step"]
