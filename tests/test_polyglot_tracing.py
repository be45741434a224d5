"""Go and TypeScript workers continue their traces into the sidecar, with real processes only.

A real OTLP/gRPC receiver (tests/otlp_receiver.py) collects the spans of a traced sidecar
(OTEL_EXPORTER_OTLP_ENDPOINT) and of two small worker programs — sdk/go/internal/tracedemo and
sdk/ts/tools/tracedemo.ts — that install an OTel SDK TracerProvider exporting OTLP/gRPC to
the same receiver and run a workflow through the wf helpers: random, uuid, a child task that
draws a random of its own. The tests check that the sidecar's SERVER spans are in the
worker's trace, children of the worker's CLIENT spans, themselves children of the worker's
operation spans (pynenc.random, pynenc.uuid, pynenc.execute_task ...) with the pynenc.*
attributes, under one "pynenc.workflow" run span — or under the program's own span when it
has one — and that a replay says so (pynenc.replayed): a value a Go or Java free context serves
from the log links its span to the sidecar span that recorded it (pynenc.link=recorded_by).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import ROOT, RedisServer, SidecarServer
from test_java_client import java_jar  # noqa: F401  (fixture)
from test_tracing import SPAN_KIND_CLIENT, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, OtlpReceiver, otel_env
from toolchains import require

GO_DIR = ROOT / "sdk" / "go"
TS_DIR = ROOT / "sdk" / "ts"
SERVICE = "pynenc.sidecar.v1.DeterministicExecutorService"
JAVA_DIR = ROOT / "sdk" / "java"
SCOPES = {"go": "github.com/pynenc/pynenc-sidecar/sdk/go/wf", "ts": "@pynenc/sidecar", "java": "org.pynenc.sidecar.wf"}
TIMEOUT = 180


def _run(cmd: list[str], cwd: Path, timeout: float = TIMEOUT, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced_sidecar(redis_server: RedisServer, receiver: OtlpReceiver) -> Iterator[SidecarServer]:
    server = SidecarServer(redis_server.url, env=otel_env(receiver)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def go_demo(tmp_path_factory) -> list[str]:
    require("go")
    out = tmp_path_factory.mktemp("go-tracedemo") / "tracedemo"
    _run(["go", "build", "-o", str(out), "./internal/tracedemo"], GO_DIR, timeout=600)
    return [str(out)]


@pytest.fixture(scope="module")
def ts_demo() -> list[str]:
    require("node", "npm")
    if not (TS_DIR / "node_modules" / ".bin" / "tsc").exists():
        _run(["npm", "ci", "--no-audit", "--no-fund"], TS_DIR, timeout=600)
    _run([str(TS_DIR / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], TS_DIR, timeout=600)
    return ["node", str(TS_DIR / "dist" / "tools" / "tracedemo.js")]


@pytest.fixture(scope="module")
def java_demo(java_jar) -> list[str]:
    """org.pynenc.sidecar.xlang.TraceDemo, from the jar tests/test_java_client.py builds."""
    return ["java", "-cp", str(java_jar), "org.pynenc.sidecar.xlang.TraceDemo"]


@pytest.fixture()
def demo(request, receiver, traced_sidecar):
    def run(lang: str, app: str, workflow: str, parent: bool = False, *extra: str) -> dict:
        command = request.getfixturevalue(f"{lang}_demo")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(otel_env(receiver))
        args = ["--address", traced_sidecar.address, "--app", app, "--workflow", workflow] + (
            ["--parent"] if parent else []
        ) + list(extra)
        out = _run([*command, *args], {"go": GO_DIR, "java": JAVA_DIR}.get(lang, TS_DIR), env=env)
        return json.loads(out.strip().splitlines()[-1])

    return run


def fresh(prefix: str) -> tuple[str, str]:
    return f"{prefix}-app-{uuid.uuid4().hex[:8]}", f"{prefix}-wf-{uuid.uuid4().hex[:8]}"


def collect(receiver: OtlpReceiver, trace_id: str, workflow: str) -> list[dict]:
    """The trace's spans, once the sidecar's and the worker's are all in."""

    def complete(spans: list[dict]) -> bool:
        mine = [s for s in spans if s["trace_id"] == trace_id]
        server = [s["attributes"].get("rpc.method") for s in mine if s["kind"] == SPAN_KIND_SERVER]
        return server.count("CompleteTask") >= 2 and any(s["name"].startswith("pynenc.execute_task") for s in mine)

    receiver.wait_for(complete, f"the spans of workflow {workflow}")
    return receiver.trace(trace_id)


# Languages whose leased runs buffer random and uuid (docs/client-contract.md, "One round trip
# per blocking point"): those operations are spans of their own with no call under them.
BUFFERING = {"go", "ts"}


def check_chain(spans: list[dict], scope: str, buffered: bool = False) -> dict[str, dict]:
    """Every SERVER span is a child of a worker CLIENT span for the same method; returns the
    worker's operation span above each operation RPC, by method and invocation (a buffered
    run's random and uuid spans by name, since no call is made for them)."""
    by_id = {s["span_id"]: s for s in spans}
    server = [s for s in spans if s["kind"] == SPAN_KIND_SERVER and s["service"] == "pynenc-sidecar"]
    methods = {s["attributes"]["rpc.method"] for s in server}
    assert methods >= {"StartWorkflow", "ExecuteTask", "CompleteTask"} | (set() if buffered else {"Random", "Uuid"})
    if buffered:
        assert not methods & {"Random", "Uuid"}, methods
    operations: dict[str, dict] = {}
    if buffered:
        for span in spans:
            method = {"pynenc.random": "Random", "pynenc.uuid": "Uuid"}.get(span["name"])
            if method:
                assert span["kind"] == SPAN_KIND_INTERNAL and span["scope"] == scope
                assert not [s for s in spans if s["parent_span_id"] == span["span_id"]]  # no call under it
                operations[f"{method}:{span['attributes']['pynenc.invocation.id']}"] = span
    for span in server:
        client = by_id[span["parent_span_id"]]
        assert client["kind"] == SPAN_KIND_CLIENT and client["scope"] == scope
        assert client["name"] == f"/{SERVICE}/{span['attributes']['rpc.method']}" == span["name"]
        method = span["attributes"]["rpc.method"]
        if method in {"Random", "Uuid", "ExecuteTask"}:
            operation = by_id[client["parent_span_id"]]
            assert operation["kind"] == SPAN_KIND_INTERNAL and operation["scope"] == scope
            operations[f"{method}:{operation['attributes']['pynenc.invocation.id']}"] = operation
    return operations


@pytest.mark.parametrize("lang", ["go", "ts"])
def test_worker_trace_continues_into_the_sidecar(demo, receiver, lang):
    app, workflow = fresh(f"ptrace-{lang}")
    out = demo(lang, app, workflow)
    assert out["ran"] is True and out["replayed"] is False and set(out["result"]) == {"random", "uuid", "child"}
    trace_id = out["trace_id"]
    assert len(trace_id) == 32 and trace_id != "0" * 32
    spans = collect(receiver, trace_id, workflow)
    scope = SCOPES[lang]
    by_id = {s["span_id"]: s for s in spans}

    # One run span, the trace's root, and every worker span under it.
    run = [s for s in spans if s["name"] == "pynenc.workflow tracedemo.main"]
    assert len(run) == 1 and run[0]["parent_span_id"] == "" and run[0]["scope"] == scope
    assert run[0]["attributes"]["pynenc.workflow.id"] == workflow and run[0]["attributes"]["pynenc.app_id"] == app
    assert run[0]["attributes"]["pynenc.replayed"] is False
    assert [s for s in spans if s["parent_span_id"] == ""] == run

    operations = check_chain(spans, scope, lang in BUFFERING)
    random_op, uuid_op, task_op = (operations[f"{m}:{workflow}"] for m in ("Random", "Uuid", "ExecuteTask"))
    assert random_op["name"] == "pynenc.random" and uuid_op["name"] == "pynenc.uuid"
    assert task_op["name"] == "pynenc.execute_task tracedemo.child"
    for op, kind in ((random_op, "random"), (uuid_op, "uuid"), (task_op, "task")):
        attributes = op["attributes"]
        assert attributes["pynenc.operation"] == kind and attributes["pynenc.sequence"] == 1
        assert attributes["pynenc.workflow.id"] == workflow and attributes["pynenc.replayed"] is False
        assert op["parent_span_id"] == run[0]["span_id"]
    assert task_op["attributes"]["pynenc.task.id"] == "tracedemo.child"

    # The child task's own random nests inside the execute_task span.
    child_random = [op for key, op in operations.items() if key.startswith("Random:") and key != f"Random:{workflow}"]
    assert len(child_random) == 1
    assert child_random[0]["parent_span_id"] == task_op["span_id"]
    assert child_random[0]["attributes"]["pynenc.workflow.id"] == workflow

    # The sidecar's spans of this workflow are all in the worker's trace.
    others = [
        s
        for s in receiver.spans()
        if s["attributes"].get("pynenc.workflow.id") == workflow and s["trace_id"] != trace_id
    ]
    assert others == []
    if lang in BUFFERING:
        return
    server_random = next(s for s in spans if s["kind"] == SPAN_KIND_SERVER and s["parent_span_id"]
                         and by_id[s["parent_span_id"]]["parent_span_id"] == random_op["span_id"])
    assert server_random["attributes"]["pynenc.replayed"] is False


@pytest.mark.parametrize("lang", ["go", "ts", "java"])
def test_a_span_of_the_callers_is_the_parent_and_a_replay_is_marked(demo, receiver, lang):
    app, workflow = fresh(f"ptrace-{lang}-p")
    first = demo(lang, app, workflow)
    out = demo(lang, app, workflow, parent=True)
    assert out["replayed"] is True and out["ran"] is False and out["result"] == first["result"]
    trace_id = out["trace_id"]
    assert trace_id != first["trace_id"]

    def arrived(spans: list[dict]) -> bool:
        return any(s["trace_id"] == trace_id and s["name"] == "tracedemo.main" for s in spans) and any(
            s["trace_id"] == trace_id and s["kind"] == SPAN_KIND_SERVER for s in spans)

    receiver.wait_for(arrived, "the replay's spans")
    spans = receiver.trace(trace_id)
    # No run span of the SDK's: the program's own span is the root and StartWorkflow's parent.
    assert not [s for s in spans if s["name"].startswith("pynenc.workflow")]
    root = next(s for s in spans if s["name"] == "tracedemo.main")
    assert root["span_id"] == out["parent_span_id"] and root["parent_span_id"] == ""
    client = next(s for s in spans if s["kind"] == SPAN_KIND_CLIENT and s["name"] == f"/{SERVICE}/StartWorkflow")
    assert client["parent_span_id"] == root["span_id"] and client["scope"] == SCOPES[lang]
    server = next(
        s for s in spans if s["kind"] == SPAN_KIND_SERVER and s["attributes"].get("rpc.method") == "StartWorkflow"
    )
    assert server["parent_span_id"] == client["span_id"]
    assert server["attributes"]["pynenc.replayed"] is True and server["attributes"]["pynenc.workflow.id"] == workflow


@pytest.mark.parametrize("lang", ["go", "java"])
def test_values_served_from_the_log_are_marked_replayed_and_linked_to_their_recording(demo, receiver, lang):
    # A free context (one call per new operation), so the sidecar's Random and Uuid SERVER
    # spans are what recorded the values; the second run serves both from the log.
    app, workflow = fresh(f"ptrace-{lang}-log")
    first = demo(lang, app, workflow, False, "--context")
    again = demo(lang, app, workflow, False, "--context")  # served from the log: no Random/Uuid call
    assert again["result"] == first["result"]

    def arrived(spans: list[dict]) -> bool:
        return sum(1 for s in spans if s["trace_id"] in (first["trace_id"], again["trace_id"])
                   and s["name"] in ("pynenc.random", "pynenc.uuid")) == 4

    receiver.wait_for(arrived, "both runs' operation spans")
    recorded = receiver.trace(first["trace_id"])
    replayed = receiver.trace(again["trace_id"])
    methods = [s["attributes"].get("rpc.method") for s in replayed if s["kind"] == SPAN_KIND_SERVER]
    assert methods == ["GetWorkflowLog"]
    for name, method in (("pynenc.random", "Random"), ("pynenc.uuid", "Uuid")):
        origin = next(s for s in recorded if s["kind"] == SPAN_KIND_SERVER and s["attributes"]["rpc.method"] == method)
        op = next(s for s in replayed if s["name"] == name)
        assert op["scope"] == SCOPES[lang] and op["attributes"]["pynenc.replayed"] is True
        assert op["attributes"]["pynenc.sequence"] == 1 and op["attributes"]["pynenc.workflow.id"] == workflow
        links = [(link["trace_id"], link["span_id"]) for link in op["links"]]
        assert links == [(origin["trace_id"], origin["span_id"])]
        assert op["links"][0]["attributes"] == {"pynenc.link": "recorded_by"}


def test_java_trace_of_buffered_operations_continues_into_the_sidecar(demo, receiver):
    # Java buffers random and uuid (docs/client-contract.md, "One round trip per blocking
    # point"): their spans have no RPC under them; ExecuteTask carries them to the sidecar.
    app, workflow = fresh("ptrace-java-b")
    out = demo("java", app, workflow)
    assert out["ran"] is True and out["replayed"] is False and set(out["result"]) == {"random", "uuid", "child"}
    trace_id = out["trace_id"]
    scope = SCOPES["java"]

    def complete(spans: list[dict]) -> bool:
        mine = [s for s in spans if s["trace_id"] == trace_id]
        return [s["attributes"].get("rpc.method") for s in mine if s["kind"] == SPAN_KIND_SERVER].count(
            "CompleteTask") >= 2 and any(s["name"] == "pynenc.workflow tracedemo.main" for s in mine)

    receiver.wait_for(complete, f"the spans of workflow {workflow}")
    spans = receiver.trace(trace_id)
    by_id = {s["span_id"]: s for s in spans}
    run = [s for s in spans if s["parent_span_id"] == ""]
    assert [s["name"] for s in run] == ["pynenc.workflow tracedemo.main"] and run[0]["scope"] == scope
    assert run[0]["attributes"]["pynenc.workflow.id"] == workflow and run[0]["attributes"]["pynenc.app_id"] == app
    server = [s for s in spans if s["kind"] == SPAN_KIND_SERVER and s["service"] == "pynenc-sidecar"]
    assert sorted(s["attributes"]["rpc.method"] for s in server) == ["CompleteTask", "CompleteTask", "ExecuteTask",
                                                                      "StartWorkflow"]
    for span in server:  # each a child of the worker's CLIENT span of the same method
        client = by_id[span["parent_span_id"]]
        assert client["kind"] == SPAN_KIND_CLIENT and client["scope"] == scope and client["name"] == span["name"]
    ops = {s["name"]: s for s in spans if s["kind"] == SPAN_KIND_INTERNAL and s["scope"] == scope
           and s["attributes"].get("pynenc.invocation.id") == workflow}
    for name, kind in (("pynenc.random", "random"), ("pynenc.uuid", "uuid"),
                       ("pynenc.execute_task tracedemo.child", "task")):
        attributes = ops[name]["attributes"]
        assert ops[name]["parent_span_id"] == run[0]["span_id"]
        assert attributes["pynenc.operation"] == kind and attributes["pynenc.sequence"] == 1
        assert attributes["pynenc.workflow.id"] == workflow and attributes["pynenc.replayed"] is False
    task_op = ops["pynenc.execute_task tracedemo.child"]
    assert task_op["attributes"]["pynenc.task.id"] == "tracedemo.child"
    execute = next(s for s in server if s["attributes"]["rpc.method"] == "ExecuteTask")
    assert by_id[execute["parent_span_id"]]["parent_span_id"] == task_op["span_id"]
    main_random = ops["pynenc.random"]["span_id"]
    child_random = [s for s in spans if s["name"] == "pynenc.random" and s["span_id"] != main_random]
    assert len(child_random) == 1 and child_random[0]["parent_span_id"] == task_op["span_id"]
