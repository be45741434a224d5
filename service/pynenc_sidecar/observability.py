"""OpenTelemetry for the server: traces that show replays, and metrics.

Off unless configured, and then it costs one module-level flag check per recorded value:
no interceptor is installed, Redis is not instrumented, no origin is stored.

Tracing is on when the standard variables ask for it (``tracing_requested``):
``OTEL_TRACES_EXPORTER`` names ``otlp`` (or ``console``), or it is unset and
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set; never with
``OTEL_SDK_DISABLED=true``. Everything else is the OTel SDK's own reading of ``OTEL_*``:
``OTEL_SERVICE_NAME`` (default ``pynenc-sidecar``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_EXPORTER_OTLP_*`` (OTLP over gRPC), ``OTEL_BSP_*``,
``OTEL_PROPAGATORS``.

When on:
  * every RPC gets a SERVER span (opentelemetry-instrumentation-grpc) continuing the caller's
    W3C trace context, with ``pynenc.*`` attributes read from the request and response;
  * every Redis command is a CLIENT child span (opentelemetry-instrumentation-redis);
  * a value recorded for the first time is stored with its *origin*, the trace and span id
    of the span that recorded it (``#s:<field>`` beside the value, 48 hex characters); a
    replayed value's span gets ``pynenc.replayed=true`` and a Link to that origin, and
    ``GetWorkflowLog``/``GetRecorded`` hand the origin to workers (``origin_span``).

Metrics are on with ``--metrics-port`` (a Prometheus scrape endpoint) and/or
``OTEL_METRICS_EXPORTER=otlp``: RPC durations, recorded and replayed operations, task leases
taken over, store errors, calls refused by the token check.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from pynenc_sidecar.core.positions import Kind

log = logging.getLogger("pynenc_sidecar.observability")
T = TypeVar("T")

# Read on hot paths; set only by configure(). With both False nothing here does any work.
TRACING = False
METRICS = False

DEFAULT_SERVICE_NAME = "pynenc-sidecar"
INSTRUMENTATION_NAME = "pynenc_sidecar"
ORIGIN_LINK_ATTRIBUTE = "pynenc.link"  # on a replay's Link: "recorded_by"

# Attribute names (also used by the SDK and the docs).
APP_ID = "pynenc.app_id"
WORKFLOW_ID = "pynenc.workflow.id"
WORKFLOW_TYPE = "pynenc.workflow.type"
PARENT_WORKFLOW_ID = "pynenc.workflow.parent_id"
INVOCATION_ID = "pynenc.invocation.id"
OPERATION = "pynenc.operation"
OPERATION_NAME = "pynenc.operation.name"
SEQUENCE = "pynenc.sequence"
TASK_ID = "pynenc.task.id"
REPLAYED = "pynenc.replayed"
RUNNER_ID = "pynenc.runner.id"
LEASE_GRANTED = "pynenc.lease.granted"
LOG_OPERATIONS = "pynenc.log.operations"

OPERATION_NAMES = {Kind.RANDOM: "random", Kind.TIME: "time", Kind.UUID: "uuid", Kind.TASK: "task",
                   Kind.CUSTOM: "custom",
                   Kind.DATA_READ: "data_read", Kind.DATA_WRITE: "data_write"}

# Latency buckets in seconds: most calls take well under a millisecond.
DURATION_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                      1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Status codes that make a SERVER span an error (OTel semantic conventions for gRPC): the
# client's mistakes (INVALID_ARGUMENT, NOT_FOUND, ...) are not the server's errors.
_SERVER_ERROR_CODES = frozenset({
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})
# RPCs whose spans would be noise (probes every few seconds, tool discovery).
_UNTRACED_SERVICES = ("grpc.health.v1.", "grpc.reflection.")


def _truthy(name: str, environ: Mapping[str, str]) -> bool:
    return environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _exporters(name: str, environ: Mapping[str, str]) -> list[str]:
    return [e.strip().lower() for e in environ.get(name, "").split(",") if e.strip()]


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces (see the module docstring)."""
    if _truthy("OTEL_SDK_DISABLED", environ):
        return False
    exporters = _exporters("OTEL_TRACES_EXPORTER", environ)
    if exporters:
        return any(e in {"otlp", "console"} for e in exporters)
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def otlp_metrics_requested(environ: Mapping[str, str] = os.environ) -> bool:
    return not _truthy("OTEL_SDK_DISABLED", environ) and "otlp" in _exporters("OTEL_METRICS_EXPORTER", environ)


# --- origins: the span context stored beside a first-recorded value ------------------------
def origin() -> str | None:
    """The current span's context as stored beside a value it records first: 32 hex digits of
    trace id then 16 of span id. None when tracing is off or the span is not sampled (its
    span is never exported, so a link to it would lead nowhere)."""
    if not TRACING:
        return None
    context = _trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return f"{context.trace_id:032x}{context.span_id:016x}"


def split_origin(text: str) -> tuple[str, str] | None:
    """(trace id hex, span id hex) of a stored origin, None if it is not one."""
    if len(text) != 48:
        return None
    try:
        int(text, 16)
    except ValueError:
        return None
    return text[:32], text[32:]


def _link_context(text: str) -> Any:
    parts = split_origin(text)
    if parts is None:
        return None
    return _trace.SpanContext(int(parts[0], 16), int(parts[1], 16), is_remote=True,
                              trace_flags=_trace.TraceFlags(_trace.TraceFlags.SAMPLED))


# --- what the engine reports -----------------------------------------------------------------
def recorded(kind: Kind, replayed: bool, origin_text: str = "") -> None:
    """A value was recorded (replayed=False) or served from the record (replayed=True).

    On the current (server) span: pynenc.replayed, and for a replay a Link to the span that
    first recorded the value. Counted in pynenc.operations.recorded / .replayed."""
    if TRACING:
        span = _trace.get_current_span()
        if not span.is_recording():
            return _count(kind, replayed)
        span.set_attribute(REPLAYED, replayed)
        if replayed and origin_text:
            context = _link_context(origin_text)
            if context is not None:
                span.add_link(context, {ORIGIN_LINK_ATTRIBUTE: "recorded_by"})
    _count(kind, replayed)


def _count(kind: Kind, replayed: bool) -> None:
    if METRICS:
        counter = _instruments.replayed if replayed else _instruments.recorded
        counter.add(1, {OPERATION: OPERATION_NAMES[kind]})


def lease_taken_over() -> None:
    """A task's lease was granted on an existing invocation: its previous holder's lapsed."""
    if METRICS:
        _instruments.takeovers.add(1)
    if TRACING:
        _trace.get_current_span().add_event("pynenc.lease.taken_over")


class _EngineObserver:
    """The engine's EngineObserver (engine.py): this module's origin, recorded and
    lease_taken_over, so the engine reports to tracing and metrics without importing them."""

    origin = staticmethod(origin)
    recorded = staticmethod(recorded)
    lease_taken_over = staticmethod(lease_taken_over)


ENGINE_OBSERVER = _EngineObserver()


def auth_rejected(reason: str, method: str) -> None:
    """A call refused by the token check: UNAUTHENTICATED, APP_NOT_AUTHORIZED or METHOD_NOT_AUTHORIZED."""
    if METRICS:
        _instruments.auth_rejected.add(1, {"reason": reason, "rpc.method": method.rpartition("/")[2]})


def untraced(call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """`call` with instrumentation suppressed while tracing is on: for background chores such
    as the readiness ping, whose spans would only be noise. Unchanged when tracing is off."""
    if not TRACING:
        return call

    async def quiet(*args: Any, **kwargs: Any) -> T:
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        with suppress_instrumentation():
            return await call(*args, **kwargs)

    return quiet


# --- gRPC server interceptors -------------------------------------------------------------
def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Interceptors for grpc.aio.server(interceptors=...): none when everything is off."""
    if not (TRACING or METRICS):
        return []
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if TRACING:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.append(aio_server_interceptor(tracer_provider=_state.tracer_provider, filter_=_traced_rpc))
    interceptors.append(_RequestInterceptor(_state.store_system))
    return interceptors


def _traced_rpc(details: grpc.HandlerCallDetails) -> bool:
    return not details.method.lstrip("/").startswith(_UNTRACED_SERVICES)


class _RequestInterceptor(grpc.aio.ServerInterceptor):
    """Inside the SERVER span: pynenc.* attributes from the request and response, the real
    status code of calls that abort with a status (the gRPC instrumentation misses
    abort_with_status), and the RPC metrics."""

    def __init__(self, store_system: str) -> None:
        self.store_system = store_system

    async def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or not (handler.unary_unary or handler.unary_stream):
            return handler
        service, _, method = details.method.lstrip("/").rpartition("/")
        traced = TRACING and _traced_rpc(details)
        base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                recording = traced and _trace.get_current_span().is_recording()  # False when not sampled
                if not (recording or METRICS):
                    return await behavior(request, context)
                start = time.perf_counter()
                if recording:
                    _annotate_request(method, request)
                code = grpc.StatusCode.OK
                try:
                    response = await behavior(request, context)
                    if recording:
                        _annotate_response(response)
                    return response
                except BaseException:
                    code = _code_of(context)
                    raise
                finally:
                    self._finish(base, code, start, recording)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer)

        stream_behavior = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            recording = traced and _trace.get_current_span().is_recording()
            start = time.perf_counter()
            if recording:
                _annotate_request(method, request)
            code = grpc.StatusCode.OK
            operations = 0
            try:
                async for response in stream_behavior(request, context):
                    operations += len(getattr(response, "operations", ()))
                    yield response
                if recording:
                    _trace.get_current_span().set_attribute(LOG_OPERATIONS, operations)
            except BaseException:
                code = _code_of(context)
                raise
            finally:
                self._finish(base, code, start, recording)

        return grpc.unary_stream_rpc_method_handler(
            stream, handler.request_deserializer, handler.response_serializer)

    def _finish(self, base: dict[str, str], code: grpc.StatusCode, start: float, traced: bool) -> None:
        span = _trace.get_current_span() if traced and code != grpc.StatusCode.OK else None
        if span is not None and span.is_recording():  # not once a cancelled stream's span ended
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in _SERVER_ERROR_CODES:
                span.set_status(_trace.Status(_trace.StatusCode.ERROR, code.name))
        if METRICS:
            attributes = {**base, "rpc.grpc.status_code": code.value[0]}
            _instruments.duration.record(time.perf_counter() - start, attributes)
            if code == grpc.StatusCode.UNAVAILABLE:  # only the store makes the sidecar unavailable
                _instruments.store_errors.add(1, {"db.system": self.store_system, "rpc.method": base["rpc.method"]})


def _code_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    try:
        code = context.code()
    except Exception:  # pragma: no cover - older grpc
        code = None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # grpc.aio may report the raw cygrpc status
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    return grpc.StatusCode.UNKNOWN


_REQUEST_OPERATIONS = {"Random": "random", "UtcNow": "time", "Uuid": "uuid", "Record": "custom", "ExecuteTask": "task",
                       "GetData": "data_read", "SetData": "data_write"}


def _annotate_request(method: str, request: Any) -> None:
    """Set what a request says about its workflow on the current span (best effort: the
    servicer validates; attributes are only what the caller sent)."""
    attributes: dict[str, Any] = {}
    fields = request.DESCRIPTOR.fields_by_name
    position = request.position if "position" in fields and request.HasField("position") else None
    if position is not None:
        _workflow_attributes(attributes, position.app_id, position.workflow)
        if position.invocation_id:
            attributes[INVOCATION_ID] = position.invocation_id
        attributes[SEQUENCE] = position.sequence
        if method in _REQUEST_OPERATIONS:
            attributes[OPERATION] = _REQUEST_OPERATIONS[method]
        elif "kind" in fields and request.kind in Kind.__members__.values():
            attributes[OPERATION] = OPERATION_NAMES[Kind(request.kind)]
    else:
        if "app_id" in fields and request.app_id:
            attributes[APP_ID] = request.app_id
        if "workflow" in fields and request.HasField("workflow"):
            _workflow_attributes(attributes, "", request.workflow)
            attributes[TASK_ID] = request.workflow.workflow_type
        if "workflow_id" in fields and request.workflow_id:
            attributes[WORKFLOW_ID] = request.workflow_id
        if "invocation_id" in fields and request.invocation_id:
            attributes[INVOCATION_ID] = request.invocation_id
    if method == "Record" or (method == "GetRecorded" and request.custom_name):
        attributes[OPERATION_NAME] = request.operation if method == "Record" else request.custom_name
    elif position is not None and method in ("GetData", "SetData") and request.key:
        attributes[OPERATION_NAME] = request.key
    if "task_id" in fields and request.task_id:
        attributes[TASK_ID] = request.task_id
    if "runner_id" in fields and request.runner_id:
        attributes[RUNNER_ID] = request.runner_id
    if attributes:
        _trace.get_current_span().set_attributes(attributes)


def _workflow_attributes(attributes: dict[str, Any], app_id: str, workflow: Any) -> None:
    if app_id:
        attributes[APP_ID] = app_id
    if workflow.workflow_id:
        attributes[WORKFLOW_ID] = workflow.workflow_id
    if workflow.workflow_type:
        attributes[WORKFLOW_TYPE] = workflow.workflow_type
    if workflow.parent_workflow_id:
        attributes[PARENT_WORKFLOW_ID] = workflow.parent_workflow_id


def _annotate_response(response: Any) -> None:
    if isinstance(response, bytes):  # a page the bulk read process serialized: it has none of these
        return
    fields = response.DESCRIPTOR.fields_by_name
    span = _trace.get_current_span()
    if "replayed" in fields:
        span.set_attribute(REPLAYED, response.replayed)
    if "found" in fields and "operation" in fields:  # GetRecorded: a found value is a replay
        span.set_attribute(REPLAYED, response.found)
    if "invocation" in fields and response.HasField("invocation"):
        span.set_attribute(INVOCATION_ID, response.invocation.invocation_id)
        if "lease" in fields:
            span.set_attribute(LEASE_GRANTED, response.HasField("lease"))
    if "log" in fields and response.HasField("log"):  # StartWorkflow(include_log) on a replay
        span.set_attribute(LOG_OPERATIONS, sum(len(batch.operations) for batch in response.log.batches))


# --- setup ---------------------------------------------------------------------------------
@dataclass
class _Instruments:
    duration: Any = None
    recorded: Any = None
    replayed: Any = None
    takeovers: Any = None
    store_errors: Any = None
    auth_rejected: Any = None


@dataclass
class _State:
    tracer_provider: Any = None
    meter_provider: Any = None
    metrics_server: Any = None
    store_system: str = "redis"
    shutdowns: list[Callable[[], Any]] = field(default_factory=list)


_instruments = _Instruments()
_state = _State()
_trace: Any = None  # the opentelemetry.trace module, imported only when tracing is on


@dataclass
class Telemetry:
    """What configure() turned on; shutdown() flushes and stops it."""

    tracing: bool
    metrics: bool
    metrics_port: int | None = None

    def shutdown(self) -> None:
        shutdown()


def configure(*, store_system: str = "redis", metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
              environ: Mapping[str, str] = os.environ) -> Telemetry:
    """Turn tracing and metrics on as the environment and flags ask. Call before the
    stores and the gRPC server are built (Redis is instrumented here)."""
    global TRACING, METRICS, _trace
    shutdown()
    _state.store_system = store_system
    want_traces = tracing_requested(environ)
    want_metrics = metrics_port is not None or otlp_metrics_requested(environ)
    if not (want_traces or want_metrics):
        return Telemetry(False, False)
    from opentelemetry import trace

    _trace = trace
    resource = _resource()
    if want_traces:
        _configure_tracing(resource, environ)
        TRACING = True
    bound_port = None
    if want_metrics:
        bound_port = _configure_metrics(resource, metrics_port, metrics_host, environ)
        METRICS = True
    log.info("telemetry: tracing %s, metrics %s", "on" if TRACING else "off",
             f"on (prometheus on {metrics_host}:{bound_port})" if bound_port else ("on" if METRICS else "off"))
    return Telemetry(TRACING, METRICS, bound_port)


def _resource() -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    from pynenc_sidecar import __version__

    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _configure_tracing(resource: Any, environ: Mapping[str, str]) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    exporters = _exporters("OTEL_TRACES_EXPORTER", environ) or ["otlp"]
    if "otlp" in exporters:
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
        )
        if protocol != "grpc":
            log.warning("OTLP protocol %r is not supported: exporting traces with OTLP over gRPC", protocol)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in exporters:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    _state.tracer_provider = provider
    # Only this provider: an application embedding the server keeps its global one.
    # A call cancelled before it started has no peer: not worth a warning per call.
    logging.getLogger("opentelemetry.instrumentation.grpc._server").addFilter(
        lambda record: not record.getMessage().startswith("Failed to parse peer address"))
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    _state.shutdowns.append(instrumentor.uninstrument)
    _state.shutdowns.append(provider.shutdown)
    _set_global_provider(provider)


def _set_global_provider(provider: Any) -> None:
    """The SERVER span must be what trace.get_current_span() sees, which holds whatever the
    global provider is; set ours unless the process already has one."""
    current = _trace.get_tracer_provider()
    if isinstance(current, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)):
        _trace.set_tracer_provider(provider)


def _configure_metrics(resource: Any, port: int | None, host: str, environ: Mapping[str, str]) -> int | None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    readers: list[MetricReader] = []
    bound_port = None
    if port is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        readers.append(PrometheusMetricReader())
        server, _thread = start_http_server(port, addr=host)
        _state.metrics_server = server
        bound_port = server.server_port
        _state.shutdowns.append(server.shutdown)
    if otlp_metrics_requested(environ):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    provider = MeterProvider(
        resource=resource, metric_readers=readers,
        views=[View(instrument_name="rpc.server.call.duration",
                    aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S))],
    )
    meter = provider.get_meter(INSTRUMENTATION_NAME)
    _instruments.duration = meter.create_histogram(
        "rpc.server.call.duration", unit="s", description="Duration of incoming RPCs, by method and status.")
    _instruments.recorded = meter.create_counter(
        "pynenc.operations.recorded", unit="{operation}", description="Values recorded for the first time.")
    _instruments.replayed = meter.create_counter(
        "pynenc.operations.replayed", unit="{operation}", description="Values served from the record (replays).")
    _instruments.takeovers = meter.create_counter(
        "pynenc.task.lease_takeovers", unit="{lease}",
        description="Task leases granted on a task whose previous holder's lease had lapsed.")
    _instruments.store_errors = meter.create_counter(
        "pynenc.store.errors", unit="{error}", description="Calls that failed because the store was unreachable.")
    _instruments.auth_rejected = meter.create_counter(
        "pynenc.auth.rejected", unit="{call}",
        description="Calls refused by the token check, by reason "
                    "(UNAUTHENTICATED, APP_NOT_AUTHORIZED, METHOD_NOT_AUTHORIZED).")
    _state.meter_provider = provider
    _state.shutdowns.insert(0, provider.shutdown)
    return bound_port


def shutdown() -> None:
    """Flush pending spans and metrics and stop exporting (idempotent)."""
    global TRACING, METRICS
    TRACING = METRICS = False
    while _state.shutdowns:
        step = _state.shutdowns.pop()
        try:
            step()
        except Exception:  # never let telemetry stop a shutdown
            log.warning("telemetry shutdown step failed", exc_info=True)
    _state.tracer_provider = _state.meter_provider = _state.metrics_server = None
