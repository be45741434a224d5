"""OpenTelemetry, end to end, with real processes only.

A real OTLP/gRPC receiver (tests/otlp_receiver.py, opentelemetry-proto's TraceService) runs as
a subprocess and writes every span it receives to a file; the sidecar exports to it because
OTEL_EXPORTER_OTLP_ENDPOINT says so; workers are real processes (examples/run_seed.py) or raw
stubs sending a W3C `traceparent`. The tests read the spans back and check attributes, the
parent/child chain worker -> sidecar -> Redis, that a workflow run is one trace, and that a
replay links to the span that first recorded its value. Metrics are scraped from the real
Prometheus endpoint (--metrics-port).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
from google.protobuf import duration_pb2

from executor_client import position
from pynenc_sidecar import observability
from pynenc_sidecar.storage.redis.keys import workflow_tag
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_sdk import tracing as sdk_tracing
from support import ROOT, RedisServer, SidecarServer, free_port, wait_until

SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 1, 2, 3
STATUS_ERROR = 2
SERVICE = "pynenc.sidecar.v1.DeterministicExecutorService"


# --- the receiver ----------------------------------------------------------------------------
@dataclass
class OtlpReceiver:
    port: int = field(default_factory=free_port)
    out: str = field(default_factory=lambda: tempfile.mktemp(prefix="psc-spans-", suffix=".jsonl"))
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "otlp_receiver.py"), str(self.port), self.out],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"
        return self

    def spans(self) -> list[dict]:
        text = Path(self.out).read_text(encoding="utf-8")
        # Only whole lines: the receiver may be writing the last one right now.
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]

    def wait_for(self, predicate: Callable[[list[dict]], bool], what: str, timeout: float = 15) -> list[dict]:
        found: list[dict] = []

        def check() -> bool:
            nonlocal found
            found = self.spans()
            return predicate(found)

        wait_until(check, timeout, what)
        return found

    def trace(self, trace_id: str, at_least: int = 1, settle: float = 0.3) -> list[dict]:
        """The spans of one trace, once at least `at_least` arrived and no more came for `settle` s."""
        self.wait_for(lambda spans: sum(s["trace_id"] == trace_id for s in spans) >= at_least, f"trace {trace_id}")
        count = -1
        while True:
            spans = [s for s in self.spans() if s["trace_id"] == trace_id]
            if len(spans) == count:
                return spans
            count = len(spans)
            time.sleep(settle)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        Path(self.out).unlink(missing_ok=True)
        Path(self.out + ".metrics").unlink(missing_ok=True)


def otel_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50", **extra}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced_sidecar(redis_server: RedisServer, receiver: OtlpReceiver) -> Iterator[SidecarServer]:
    server = SidecarServer(
        redis_server.url, env=otel_env(receiver), extra_args=["--metrics-port", str(free_port())]
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stub(traced_sidecar: SidecarServer) -> Iterator[de_grpc.DeterministicExecutorServiceStub]:
    channel = grpc.insecure_channel(traced_sidecar.address)
    yield de_grpc.DeterministicExecutorServiceStub(channel)
    channel.close()


@pytest.fixture()
def app_id() -> str:
    return f"trace-{uuid.uuid4().hex[:12]}"


class Caller:
    """A client span of our own: a fresh trace id and span id sent as W3C traceparent."""

    def __init__(self) -> None:
        self.trace_id = secrets.token_hex(16)
        self.span_id = secrets.token_hex(8)

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("traceparent", f"00-{self.trace_id}-{self.span_id}-01")]


def server_span(receiver: OtlpReceiver, caller: Caller, method: str, at_least: int = 2) -> tuple[dict, list[dict]]:
    """The SERVER span a call made as `caller` produced, and every span of its trace."""
    spans = receiver.trace(caller.trace_id, at_least)
    matches = [s for s in spans if s["kind"] == SPAN_KIND_SERVER and s["attributes"].get("rpc.method") == method]
    assert len(matches) == 1, [s["name"] for s in spans]
    return matches[0], spans


def children(spans: list[dict], parent: dict) -> list[dict]:
    return [s for s in spans if s["parent_span_id"] == parent["span_id"]]


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(value * 1e9))
    return message


# --- server spans ------------------------------------------------------------------------------
def test_rpc_server_span_continues_the_callers_trace_with_semconv_and_pynenc_attributes(stub, receiver, app_id):
    caller = Caller()
    wf = common_pb2.WorkflowIdentity(workflow_id="w-attrs", workflow_type="shop.order")
    reply = stub.Random(de.RandomRequest(position=de.OperationPosition(app_id=app_id, workflow=wf, sequence=1)),
                        metadata=caller.metadata)
    assert not reply.replayed
    span, spans = server_span(receiver, caller, "Random")
    assert span["parent_span_id"] == caller.span_id  # the caller's trace goes on
    assert span["service"] == "pynenc-sidecar" and span["name"] == f"/{SERVICE}/Random"
    attributes = span["attributes"]
    assert {k: attributes[k] for k in ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code")} == {
        "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Random", "rpc.grpc.status_code": 0}
    assert {k: v for k, v in attributes.items() if k.startswith("pynenc.")} == {
        "pynenc.app_id": app_id, "pynenc.workflow.id": "w-attrs", "pynenc.workflow.type": "shop.order",
        "pynenc.operation": "random", "pynenc.sequence": 1, "pynenc.replayed": False,
    }
    assert span["links"] == []
    redis_spans = children(spans, span)
    assert redis_spans and all(s["kind"] == SPAN_KIND_CLIENT and s["attributes"]["db.system"] == "redis"
                               for s in redis_spans)
    assert any(s["name"] == "EVALSHA" for s in redis_spans)
    assert all("?" in s["attributes"]["db.statement"] or " " not in s["attributes"]["db.statement"]
               for s in redis_spans)  # values never reach the spans: statements are sanitized


def test_a_replayed_operation_links_to_the_span_that_recorded_it(stub, receiver, app_id):
    first, again = Caller(), Caller()
    request = de.RandomRequest(position=position(app_id, "w-link", 4))
    assert not stub.Random(request, metadata=first.metadata).replayed
    assert stub.Random(request, metadata=again.metadata).replayed
    original, _ = server_span(receiver, first, "Random")
    replay, _ = server_span(receiver, again, "Random")
    assert original["attributes"]["pynenc.replayed"] is False and original["links"] == []
    assert replay["attributes"]["pynenc.replayed"] is True
    assert replay["links"] == [{"trace_id": first.trace_id, "span_id": original["span_id"],
                                "attributes": {"pynenc.link": "recorded_by"}}]


@pytest.mark.parametrize("kind", ["time", "uuid", "custom", "task"])
def test_every_recorded_kind_links_its_replays(stub, receiver, app_id, kind):
    pos = position(app_id, f"w-{kind}", 1)
    calls = {
        "time": ("UtcNow", lambda md: stub.UtcNow(de.UtcNowRequest(position=pos), metadata=md)),
        "uuid": ("Uuid", lambda md: stub.Uuid(de.UuidRequest(position=pos), metadata=md)),
        "custom": ("Record", lambda md: stub.Record(de.RecordRequest(position=pos, operation="charge",
                                                                     value_json='{"ok":1}'),
                                                    metadata=md)),
        "task": ("ExecuteTask", lambda md: stub.ExecuteTask(de.ExecuteTaskRequest(
            position=pos, task_id="shop.charge", arguments_json='{"order":"A-1"}', runner_id="r1"), metadata=md)),
    }
    method, call = calls[kind]
    first, again = Caller(), Caller()
    assert not call(first.metadata).replayed
    assert call(again.metadata).replayed
    original, _ = server_span(receiver, first, method)
    replay, _ = server_span(receiver, again, method)
    assert replay["attributes"]["pynenc.operation"] == kind and replay["attributes"]["pynenc.replayed"] is True
    assert replay["links"][0]["span_id"] == original["span_id"] and replay["links"][0]["trace_id"] == first.trace_id
    if kind == "custom":
        assert replay["attributes"]["pynenc.operation.name"] == "charge"
    if kind == "task":
        assert replay["attributes"]["pynenc.task.id"] == "shop.charge"


def test_the_log_and_get_recorded_carry_each_values_origin(stub, receiver, app_id):
    recorder = Caller()
    stub.Random(de.RandomRequest(position=position(app_id, "w-log", 1)), metadata=recorder.metadata)
    stub.Record(de.RecordRequest(position=position(app_id, "w-log", 1), operation="op", value_json="7"),
                metadata=Caller().metadata)
    stub.Uuid(de.UuidRequest(position=position(app_id, "w-log", 1)))  # untraced caller: still a root span here
    original, _ = server_span(receiver, recorder, "Random")
    log = [op for batch in stub.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="w-log"))
           for op in batch.operations]
    by_kind = {op.kind: op for op in log}
    assert by_kind[de.OPERATION_KIND_RANDOM].origin_span.trace_id == recorder.trace_id
    assert by_kind[de.OPERATION_KIND_RANDOM].origin_span.span_id == original["span_id"]
    assert all(len(op.origin_span.trace_id) == 32 and len(op.origin_span.span_id) == 16 for op in log)
    looker = Caller()
    found = stub.GetRecorded(
        de.GetRecordedRequest(position=position(app_id, "w-log", 1), kind=de.OPERATION_KIND_RANDOM),
        metadata=looker.metadata,
    )
    assert found.found and found.operation.origin_span.span_id == original["span_id"]
    get_span, _ = server_span(receiver, looker, "GetRecorded")
    assert get_span["attributes"]["pynenc.replayed"] is True
    assert get_span["links"][0]["span_id"] == original["span_id"]


def test_origins_are_stored_compactly_beside_the_values(stub, redis_server, app_id):
    stub.Random(de.RandomRequest(position=position(app_id, "w-compact", 1)), metadata=Caller().metadata)
    ops = redis.Redis.from_url(redis_server.url, decode_responses=True).hgetall(
        workflow_tag(app_id, "w-compact") + ":ops"
    )
    origin = ops.pop("#s:r:1")
    assert len(origin) == 48 and int(origin, 16) >= 0  # trace id + span id, hex, in the workflow's one hash
    assert set(ops) == {"r:1", "#n:r"}


def test_client_mistakes_are_not_server_errors_but_outages_are(stub, receiver, app_id):
    bad = Caller()
    with pytest.raises(grpc.RpcError) as error:
        stub.Random(de.RandomRequest(position=position(app_id, "w", 0)), metadata=bad.metadata)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    span, _ = server_span(receiver, bad, "Random", at_least=1)
    assert span["attributes"]["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert span["status"] != STATUS_ERROR


def test_health_checks_and_readiness_pings_make_no_spans(traced_sidecar, receiver):
    before = len(receiver.spans())
    for _ in range(3):
        assert traced_sidecar.serving()
    time.sleep(1.5)  # the store is pinged every second for readiness
    new = receiver.spans()[before:]
    assert not [s for s in new if "grpc.health" in s["name"]]
    assert not [s for s in new if s["service"] == "pynenc-sidecar" and not s["parent_span_id"]
                and s["kind"] == SPAN_KIND_CLIENT]  # no one-span Redis traces


# --- a workflow run is one trace ----------------------------------------------------------------
def run_seed(sidecar: SidecarServer, receiver: OtlpReceiver, workflow_id: str, *extra: str, exit_code: int = 0,
             lease_ttl: str = "30") -> dict:
    env = {
        **os.environ,
        **otel_env(receiver, OTEL_SERVICE_NAME="order-worker"),
        "PYNENC_SIDECAR_ADDRESS": sidecar.address,
        "PYNENC_SIDECAR_LEASE_TTL": lease_ttl,
    }
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "run_seed.py"), "process_order_workflow",
                             workflow_id,
                             *extra], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_code, result.stderr
    return json.loads(result.stdout)


def workflow_trace(receiver: OtlpReceiver, workflow_id: str, replayed: bool) -> list[dict]:
    def root(spans: list[dict]) -> list[dict]:
        return [s for s in spans if s["name"] == "pynenc.workflow seed_workflows.process_order_workflow"
                and s["attributes"]["pynenc.workflow.id"] == workflow_id
                and s["attributes"].get("pynenc.replayed") is replayed]

    spans = receiver.wait_for(lambda found: len(root(found)) == 1, f"the workflow span of {workflow_id}")
    return receiver.trace(root(spans)[0]["trace_id"])


def chain(spans: list[dict], span: dict) -> list[dict]:
    """span, its parent, ..., up to the root of its trace."""
    by_id = {s["span_id"]: s for s in spans}
    out = [span]
    while out[-1]["parent_span_id"] in by_id:
        out.append(by_id[out[-1]["parent_span_id"]])
    return out


def test_a_workflow_run_is_one_trace_from_worker_to_redis_and_its_replay_links_back(traced_sidecar, receiver):
    workflow_id = f"order-{uuid.uuid4().hex[:8]}"
    # The first run records every step, then its worker dies before the outcome is recorded.
    first = run_seed(traced_sidecar, receiver, workflow_id, "--crash-before-outcome", exit_code=3, lease_ttl="1")
    assert first["crashed"] is True
    spans = workflow_trace(receiver, workflow_id, replayed=False)
    roots = [s for s in spans if not s["parent_span_id"]]
    assert len(roots) == 1 and roots[0]["service"] == "order-worker"  # one trace, one root: the workflow span
    assert {s["service"] for s in spans} == {"order-worker", "pynenc-sidecar"}

    # The run's random() is a span of its own with no call: its value is derived in the worker
    # and buffered (docs/client-contract.md, "One round trip per blocking point").
    operation = next(s for s in spans if s["name"] == "pynenc.random")
    assert chain(spans, operation)[1:] == roots and not children(spans, operation)
    assert {k: v for k, v in operation["attributes"].items() if k.startswith("pynenc.")} == {
        "pynenc.app_id": "pynenc", "pynenc.workflow.id": workflow_id,
        "pynenc.workflow.type": "seed_workflows.process_order_workflow", "pynenc.invocation.id": workflow_id,
        "pynenc.operation": "random", "pynenc.sequence": 1, "pynenc.replayed": False}
    # It is committed with the next blocking call, ExecuteTask:
    # workflow -> execute_task -> client RPC -> server RPC -> Redis.
    random_server = next(
        s for s in spans if s["kind"] == SPAN_KIND_SERVER and s["attributes"]["rpc.method"] == "ExecuteTask"
    )
    evalsha = next(s for s in children(spans, random_server) if s["name"] == "EVALSHA")
    path = chain(spans, evalsha)
    assert [(s["service"], s["kind"]) for s in path] == [
        ("pynenc-sidecar", SPAN_KIND_CLIENT), ("pynenc-sidecar", SPAN_KIND_SERVER), ("order-worker", SPAN_KIND_CLIENT),
        ("order-worker", SPAN_KIND_INTERNAL), ("order-worker", SPAN_KIND_INTERNAL)]
    assert [s["name"] for s in path[2:]] == [f"/{SERVICE}/ExecuteTask",
                                              "pynenc.execute_task seed_workflows.process_payment",
                                              "pynenc.workflow seed_workflows.process_order_workflow"]
    # The child task's operations nest inside its execute_task span, in the same trace.
    execute = next(s for s in spans if s["name"] == "pynenc.execute_task seed_workflows.process_payment")
    uuid_op = next(s for s in spans if s["name"] == "pynenc.uuid")
    assert chain(spans, uuid_op)[1] is execute
    recorded_by_server = {s["attributes"]["pynenc.operation"]: s for s in spans
                          if s["kind"] == SPAN_KIND_SERVER and "pynenc.operation" in s["attributes"]}

    # The resumed run replays: a new trace whose operations are served from the log, no RPC,
    # linked back.
    time.sleep(1.5)  # the crashed worker's 1 s lease lapses
    second = run_seed(traced_sidecar, receiver, workflow_id)
    assert second["replayed"] is True and second["result"]["tracking_number"].startswith("TRK-A-1-")
    replay = workflow_trace(receiver, workflow_id, replayed=True)
    assert replay[0]["trace_id"] != spans[0]["trace_id"]
    assert not [s for s in replay if s["attributes"].get("rpc.method") in {"Random", "Uuid", "UtcNow", "ExecuteTask"}]
    random_replay = next(s for s in replay if s["name"] == "pynenc.random")
    assert random_replay["attributes"]["pynenc.replayed"] is True
    assert random_replay["links"] == [{"trace_id": spans[0]["trace_id"], "span_id": random_server["span_id"],
                                       "attributes": {"pynenc.link": "recorded_by"}}]
    task_replay = next(s for s in replay if s["name"] == "pynenc.execute_task seed_workflows.process_payment")
    assert task_replay["links"][0]["span_id"] == recorded_by_server["task"]["span_id"]
    # The log came in StartWorkflow's reply (include_log), in the replay's trace: no GetWorkflowLog.
    assert any(s["name"] == f"/{SERVICE}/StartWorkflow" and s["kind"] == SPAN_KIND_SERVER for s in replay)
    assert not any(s["name"] == f"/{SERVICE}/GetWorkflowLog" for s in replay)
    # Its data writes came after its last blocking point: buffered for the outcome the crash
    # never sent, so the resumed run makes (and records) them anew.
    assert all(s["attributes"]["pynenc.replayed"] is False for s in replay if s["name"].startswith("pynenc.set_data"))
    assert any(s["name"] == "pynenc.set_data tracking_number" for s in replay)

    # The workflow has finished now: a third run returns its outcome and runs no code.
    third = run_seed(traced_sidecar, receiver, workflow_id)
    assert third["replayed"] is True and third["result"] == second["result"]
    finished = receiver.wait_for(lambda found: len([s for s in found if s["name"].startswith("pynenc.workflow")
                                                    and s["attributes"]["pynenc.workflow.id"] == workflow_id]) == 3,
                                 "the third run's workflow span")
    root = next(s for s in finished if s["name"].startswith("pynenc.workflow")
                and s["attributes"]["pynenc.workflow.id"] == workflow_id and s["trace_id"] not in
                {spans[0]["trace_id"], replay[0]["trace_id"]})
    assert not [s for s in receiver.trace(root["trace_id"]) if s["name"].startswith("pynenc.")
                and not s["name"].startswith("pynenc.workflow")]


def test_an_untraced_worker_still_gets_a_server_trace(traced_sidecar, receiver):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYNENC_SIDECAR_ADDRESS"] = traced_sidecar.address
    workflow_id = f"order-{uuid.uuid4().hex[:8]}"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "run_seed.py"), "process_order_workflow",
                             workflow_id],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    spans = receiver.wait_for(lambda found: any(s["attributes"].get("pynenc.workflow.id") == workflow_id
                                                and s["attributes"].get("rpc.method") == "StartWorkflow"
                                                for s in found),
                              "the untraced worker's StartWorkflow")
    start = next(s for s in spans if s["attributes"].get("pynenc.workflow.id") == workflow_id
                 and s["attributes"].get("rpc.method") == "StartWorkflow")
    assert start["parent_span_id"] == "" and not [s for s in spans if s["service"] != "pynenc-sidecar"
                                                   and s["attributes"].get("pynenc.workflow.id") == workflow_id]


# --- off, unsampled, and the embedded store -----------------------------------------------------
def test_tracing_is_off_by_default_and_then_stores_no_origin(sidecar, redis_server, app_id):
    channel = grpc.insecure_channel(sidecar.address)  # the suite's sidecar: no OTEL_* variables
    executor = de_grpc.DeterministicExecutorServiceStub(channel)
    executor.Random(de.RandomRequest(position=position(app_id, "w-off", 1)), metadata=Caller().metadata)
    log = list(executor.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="w-off")))
    channel.close()
    assert not log[0].operations[0].HasField("origin_span")
    fields = redis.Redis.from_url(redis_server.url, decode_responses=True).hkeys(workflow_tag(app_id, "w-off") + ":ops")
    assert sorted(fields) == ["#n:r", "r:1"]
    assert "telemetry" not in sidecar.log()


def test_unsampled_calls_store_no_origin(redis_server, receiver, app_id):
    server = SidecarServer(redis_server.url, env=otel_env(receiver, OTEL_TRACES_SAMPLER="always_off")).start()
    try:
        channel = grpc.insecure_channel(server.address)
        de_grpc.DeterministicExecutorServiceStub(channel).Random(
            de.RandomRequest(position=position(app_id, "w-uns", 1))
        )
        channel.close()
    finally:
        server.stop()
    fields = redis.Redis.from_url(redis_server.url, decode_responses=True).hkeys(workflow_tag(app_id, "w-uns") + ":ops")
    assert sorted(fields) == ["#n:r", "r:1"]
    assert not [s for s in receiver.spans() if s["attributes"].get("pynenc.workflow.id") == "w-uns"]


def test_the_embedded_store_keeps_origins_too(receiver, tmp_path, app_id):
    server = SidecarServer(None, data_file=str(tmp_path / "traced.db"), env=otel_env(receiver)).start()
    try:
        channel = grpc.insecure_channel(server.address)
        executor = de_grpc.DeterministicExecutorServiceStub(channel)
        first, again = Caller(), Caller()
        executor.Uuid(de.UuidRequest(position=position(app_id, "w-sql", 1)), metadata=first.metadata)
        assert executor.Uuid(de.UuidRequest(position=position(app_id, "w-sql", 1)), metadata=again.metadata).replayed
        log = list(executor.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=app_id, workflow_id="w-sql")))
        channel.close()
    finally:
        server.stop()
    original, _ = server_span(receiver, first, "Uuid", at_least=1)
    replay, _ = server_span(receiver, again, "Uuid", at_least=1)
    assert replay["links"][0]["span_id"] == original["span_id"]
    assert log[0].operations[0].origin_span.span_id == original["span_id"]


def test_which_environments_turn_tracing_on():
    for requested in (observability.tracing_requested, sdk_tracing.tracing_requested):
        assert not requested({})
        assert requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
        assert requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})
        assert requested({"OTEL_TRACES_EXPORTER": "otlp"})
        assert requested({"OTEL_TRACES_EXPORTER": "console"})
        assert not requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
        assert not requested({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})


# --- metrics ---------------------------------------------------------------------------------------
def scrape(sidecar: SidecarServer) -> dict[str, float]:
    port = int(sidecar.extra_args[sidecar.extra_args.index("--metrics-port") + 1])
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in samples.items():
        metric_name, _, rest = key.partition("{")
        if metric_name == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def test_prometheus_endpoint_counts_rpcs_operations_and_takeovers(stub, traced_sidecar, app_id):
    before = scrape(traced_sidecar)
    stub.Random(de.RandomRequest(position=position(app_id, "w-m", 1)))
    stub.Random(de.RandomRequest(position=position(app_id, "w-m", 1)))
    stub.Uuid(de.UuidRequest(position=position(app_id, "w-m", 1)))
    # A task whose holder "dies": its 1 s lease lapses and another runner takes it over.
    reply = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(app_id, "w-m", 1), task_id="t.x",
                                                   arguments_json="{}", runner_id="dead", lease_ttl=seconds(1)))
    assert reply.HasField("lease")
    time.sleep(1.1)
    waited = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=reply.invocation.invocation_id,
                                              runner_id="alive", timeout=seconds(5)))
    assert waited.HasField("lease")
    after = scrape(traced_sidecar)

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("rpc_server_call_duration_seconds_count", rpc_method="Random", rpc_grpc_status_code="0") == 2
    assert grew("rpc_server_call_duration_seconds_bucket", rpc_method="Random", le="+Inf") == 2
    assert grew("pynenc_operations_recorded_total", pynenc_operation="random") == 1
    assert grew("pynenc_operations_replayed_total", pynenc_operation="random") == 1
    assert grew("pynenc_operations_recorded_total", pynenc_operation="uuid") == 1
    assert grew("pynenc_operations_recorded_total", pynenc_operation="task") == 1
    assert grew("pynenc_task_lease_takeovers_total") == 1


def test_store_errors_are_counted():
    own_redis = RedisServer().start()
    server = SidecarServer(own_redis.url, extra_args=["--metrics-port", str(free_port())]).start()
    try:
        own_redis.stop()  # the store goes away under a running sidecar
        channel = grpc.insecure_channel(server.address)
        with pytest.raises(grpc.RpcError) as error:
            de_grpc.DeterministicExecutorServiceStub(channel).Random(de.RandomRequest(position=position("a", "w", 1)),
                                                                     timeout=10)
        channel.close()
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        samples = scrape(server)
    finally:
        server.stop()
        own_redis.cleanup()
    assert metric(samples, "pynenc_store_errors_total", db_system="redis", rpc_method="Random") == 1
    assert metric(samples, "rpc_server_call_duration_seconds_count", rpc_method="Random",
                  rpc_grpc_status_code=str(grpc.StatusCode.UNAVAILABLE.value[0])) == 1


def test_metrics_can_be_pushed_over_otlp_from_the_embedded_store(receiver, tmp_path):
    env = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
           "OTEL_TRACES_EXPORTER": "none", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    server = SidecarServer(None, data_file=str(tmp_path / "m.db"), env=env).start()
    try:
        channel = grpc.insecure_channel(server.address)
        de_grpc.DeterministicExecutorServiceStub(channel).Random(de.RandomRequest(position=position("m", "w", 1)))
        channel.close()

        def pushed() -> set[str]:
            path = Path(receiver.out + ".metrics")
            lines = path.read_text().split("\n")[:-1] if path.exists() else []
            return {json.loads(line)["name"] for line in lines if json.loads(line)["service"] == "pynenc-sidecar"}

        wait_until(lambda: {"rpc.server.call.duration", "pynenc.operations.recorded"} <= pushed(), 15, "OTLP metrics")
    finally:
        server.stop()
    assert "tracing off, metrics on" in server.log()


def test_metrics_port_is_off_by_default(sidecar):
    assert "--metrics-port" not in sidecar.extra_args and "prometheus" not in sidecar.log()
