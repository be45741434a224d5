"""The seed order workflow, traced into a real Jaeger v2 and checked through Jaeger's query API.

The first run records every step and its worker dies right before the outcome
(--crash-before-outcome); the second resumes it and replays every step from the log. Jaeger
(tests/jaeger.py: built by scripts/jaeger.sh, cached) receives OTLP from the worker and the
sidecar; its query API must then show one trace per run, the replayed operations marked
pynenc.replayed=true with links that resolve to spans of the first run's trace, and the
sidecar's Redis calls as child spans of its RPC spans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jaeger import Jaeger, jaeger_binary
from support import ROOT, RedisServer, SidecarServer

WORKFLOW_SPAN = "pynenc.workflow seed_workflows.process_order_workflow"
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3  # OTLP's numbering
# A cold build of Jaeger takes 10-20 minutes on 2 cores; scripts/test builds it before pytest.
pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory) -> Iterator[Jaeger]:
    server = Jaeger(jaeger_binary(), tmp_path_factory.mktemp("jaeger")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced_sidecar(redis_server: RedisServer, jaeger: Jaeger) -> Iterator[SidecarServer]:
    server = SidecarServer(redis_server.url, env={"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
                                                  "OTEL_BSP_SCHEDULE_DELAY": "50"}).start()
    yield server
    server.stop()


def run_seed(sidecar: SidecarServer, jaeger: Jaeger, workflow_id: str, *extra: str, exit_code: int = 0) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
           "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50",
           "OTEL_SERVICE_NAME": "order-worker", "PYNENC_SIDECAR_ADDRESS": sidecar.address,
           "PYNENC_SIDECAR_LEASE_TTL": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "run_seed.py"), "process_order_workflow",
                             workflow_id, *extra], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == exit_code, result.stderr
    return json.loads(result.stdout)


def _value(value: dict):
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in value:
            return value[kind]
    return int(value["intValue"]) if "intValue" in value else value


def _attributes(items: list[dict]) -> dict:
    return {item["key"]: _value(item["value"]) for item in items or ()}


def trace_spans(jaeger: Jaeger, trace_id: str) -> list[dict]:
    """One trace from the v3 query API (OTLP JSON), flattened: a dict per span."""
    spans = []
    for resource in jaeger.get(f"/api/v3/traces/{trace_id}")["result"]["resourceSpans"]:
        service = _attributes(resource["resource"]["attributes"])["service.name"]
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                spans.append({"service": service, "name": span["name"], "kind": span["kind"],
                              "trace_id": span["traceId"], "span_id": span["spanId"],
                              "parent": span.get("parentSpanId", ""), "attributes": _attributes(span.get("attributes")),
                              "links": [{"trace_id": link["traceId"], "span_id": link["spanId"],
                                         "attributes": _attributes(link.get("attributes"))}
                                        for link in span.get("links", ())]})
    return spans


def workflow_traces(jaeger: Jaeger, workflow_id: str) -> dict[bool, list[dict]]:
    """The workflow's traces found by Jaeger's search (service and tag), keyed by whether the run's
    root span says it replayed."""
    tags = urllib.parse.quote(json.dumps({"pynenc.workflow.id": workflow_id}))
    found = jaeger.get(f"/api/traces?service=order-worker&tags={tags}&limit=20")["data"]
    traces: dict[bool, list[dict]] = {}
    for trace_id in sorted({t["traceID"] for t in found}):
        spans = trace_spans(jaeger, trace_id)
        roots = [s for s in spans if s["name"] == WORKFLOW_SPAN]
        traces[bool(roots and roots[0]["attributes"].get("pynenc.replayed"))] = spans
    return traces if len(found) == len(traces) else {}


# docs/client-contract.md, "One round trip per blocking point": these values are computed by the
# SDK and recorded by the blocking call that carries them.
BUFFERED = {"random", "uuid", "time", "custom", "data_write"}
BLOCKING_CALLS = set(json.loads((Path(__file__).parent / "vectors" / "client_contract.json").read_text())
                     ["commit"]["blocking_calls"])


def test_two_runs_are_two_traces_with_replays_linked_to_the_first_and_redis_children(traced_sidecar, jaeger):
    workflow_id = f"order-{uuid.uuid4().hex[:8]}"
    assert run_seed(traced_sidecar, jaeger, workflow_id, "--crash-before-outcome", exit_code=3)["crashed"]
    time.sleep(1.5)  # the crashed worker's 1 s lease lapses
    assert run_seed(traced_sidecar, jaeger, workflow_id)["replayed"] is True

    def complete(traces: dict[bool, list[dict]]) -> bool:  # both runs, and the sidecar's spans of each
        return set(traces) == {False, True} and all(
            {"order-worker", "pynenc-sidecar"} <= {s["service"] for s in spans} for spans in traces.values())

    traces = jaeger.wait_for(lambda: workflow_traces(jaeger, workflow_id), complete, "both runs' traces")
    time.sleep(1)  # the last batches of either process
    traces = workflow_traces(jaeger, workflow_id)
    first, replay = traces[False], traces[True]

    # One trace per run: each has a single root, the run's workflow span, from the worker.
    for spans in (first, replay):
        roots = [s for s in spans if not s["parent"]]
        assert [(r["name"], r["service"]) for r in roots] == [(WORKFLOW_SPAN, "order-worker")], roots
        assert len({s["trace_id"] for s in spans}) == 1
        by_id = {s["span_id"] for s in spans}
        assert all(s["parent"] in by_id for s in spans if s["parent"])  # no span hangs off another trace
    assert first[0]["trace_id"] != replay[0]["trace_id"]

    # Replayed operations say so, and link to spans that exist in the first run's trace (the child
    # task finished in the first run: its uuid() is not replayed, its execute_task is).
    first_ids = {s["span_id"]: s for s in first}
    replayed = [s for s in replay if s["name"].startswith("pynenc.") and s["name"] != WORKFLOW_SPAN
                and s["attributes"].get("pynenc.replayed") is True]
    assert {s["attributes"]["pynenc.operation"] for s in replayed} >= {"random", "task"}, replayed
    # The main task's utc_now() came after its last blocking call: buffered, it was to be committed
    # with the outcome the crash never sent (client contract, "what is durable when"), so the
    # second run records it anew instead of replaying it.
    times = [s for s in replay if s["attributes"].get("pynenc.operation") == "time"]
    assert times and not any(s["attributes"].get("pynenc.replayed") for s in times), times
    for span in replayed:
        assert span["links"], f"{span['name']} replayed without a link to where it was recorded"
        for link in span["links"]:
            assert link["trace_id"] == first[0]["trace_id"] and link["span_id"] in first_ids, (span["name"], link)
            assert link["attributes"] == {"pynenc.link": "recorded_by"}
            recorder = first_ids[link["span_id"]]
            assert recorder["service"] == "pynenc-sidecar" and recorder["kind"] == SPAN_KIND_SERVER
            operation = span["attributes"]["pynenc.operation"]
            if operation in BUFFERED:  # committed with the run's next blocking call: that call's span
                assert recorder["attributes"].get("rpc.method") in BLOCKING_CALLS, (operation, recorder["name"])
            else:
                assert recorder["attributes"]["pynenc.operation"] == operation

    # The sidecar's Redis calls are children of its RPC (SERVER) spans, in the worker's trace.
    servers = {s["span_id"] for s in first if s["service"] == "pynenc-sidecar" and s["kind"] == SPAN_KIND_SERVER}
    redis_calls = [s for s in first if s["attributes"].get("db.system") == "redis"]
    assert redis_calls and all(s["kind"] == SPAN_KIND_CLIENT and s["parent"] in servers for s in redis_calls)
    assert any(s["name"] == "EVALSHA" for s in redis_calls)
