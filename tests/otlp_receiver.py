"""A real OTLP/gRPC trace receiver for the tests: `python otlp_receiver.py PORT OUT_FILE`.

Serves opentelemetry.proto's TraceService and MetricsService on 127.0.0.1:PORT. Appends every
span it receives to OUT_FILE as one JSON line: ids in lowercase hex, attributes flattened to
plain values, links with their attributes, and the sending resource's service.name. Appends
the name and service of every metric it receives to OUT_FILE.metrics. Stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def _attributes(attributes: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in attributes}


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out_path: str) -> None:
        self.out_path = out_path
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 - the proto's name
        lines = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "service": resource.get("service.name"),
                        "scope": scope_spans.scope.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": span.kind,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": _attributes(span.attributes),
                        "links": [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                                   "attributes": _attributes(link.attributes)} for link in span.links],
                        "status": span.status.code,
                        "events": [event.name for event in span.events],
                    }, sort_keys=True))
        with self.lock, open(self.out_path, "a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, out_path: str) -> None:
        self.out_path = out_path
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802
        lines = []
        for resource_metrics in request.resource_metrics:
            service = _attributes(resource_metrics.resource.attributes).get("service.name")
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    lines.append(json.dumps({"service": service, "name": metric.name, "unit": metric.unit}))
        with self.lock, open(self.out_path, "a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main() -> int:
    port, out_path = int(sys.argv[1]), sys.argv[2]
    open(out_path, "a").close()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(out_path), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(out_path + ".metrics"), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
