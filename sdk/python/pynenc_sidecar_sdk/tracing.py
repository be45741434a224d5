"""OpenTelemetry for workers: one trace per workflow run, replays linked to where they began.

Tracing is on when the process has an OpenTelemetry SDK tracer provider — set by the
application as usual, or installed here at first use when the standard variables ask for
one: ``OTEL_TRACES_EXPORTER`` names ``otlp`` (or ``console``), or it is unset and
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (never with
``OTEL_SDK_DISABLED=true``). Off, every hook here is one cheap check and no span exists.

On, a run is one trace::

    pynenc.workflow <type>                    INTERNAL, the run of the workflow's main task
      pynenc.random / utc_now / uuid          INTERNAL, one per operation (pynenc.* attributes)
        /pynenc.sidecar.v1...Service/Random   CLIENT (opentelemetry-instrumentation-grpc), sends traceparent
          (the sidecar's SERVER span, its Redis spans)
      pynenc.execute_task <task id>           the child task's own operations nest inside
      ...

A value served from the workflow's log without an RPC still gets its operation span, with
``pynenc.replayed=true`` and a Link to the span that first recorded the value (the log
carries it as ``origin_span``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # OpenTelemetry comes with the [tracing] extra, imported only when tracing is on
    import grpc
    from opentelemetry import trace
    from opentelemetry.util.types import AttributeValue

    from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
    from pynenc_sidecar_sdk.context import RunContext, WorkflowIdentity

    Attributes = dict[str, AttributeValue]

INSTRUMENTATION_NAME = "pynenc_sidecar_sdk"
DEFAULT_SERVICE_NAME = "pynenc-worker"

# The attribute names the sidecar uses on its SERVER spans too.
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
ORIGIN_LINK_ATTRIBUTE = "pynenc.link"

_env_setup_done = False
_env_setup_lock = threading.Lock()
_cached: tuple[trace.TracerProvider, trace.Tracer] | None = None
_env_requested: bool | None = None
_missing_reported = False  # asked for by the variables, but the [tracing] extra is not installed


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces (the sidecar uses the same rule)."""
    if _truthy(environ.get("OTEL_SDK_DISABLED", "")):
        return False
    exporters = [e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if exporters:
        return any(e in {"otlp", "console"} for e in exporters)
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracer() -> trace.Tracer | None:
    """The SDK's tracer, or None when tracing is off."""
    global _cached, _env_requested
    if _env_requested is None:  # read the environment once: this runs on every operation
        _env_requested = tracing_requested()
    if "opentelemetry.trace" not in sys.modules and not (_env_setup_done or _env_requested):
        return None  # nothing in this process can have set a provider: the cheap "off"
    if _missing_reported:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        _report_missing()
        return None

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider) and not _env_setup_done:
        _setup_from_env()
        provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    if _cached is None or _cached[0] is not provider:
        _cached = (provider, provider.get_tracer(INSTRUMENTATION_NAME, _version()))
    return _cached[1]


def _report_missing() -> None:
    """The variables ask for traces but the [tracing] extra is not installed: say so once and
    run untraced (a pod's OTEL_* variables often reach every container, traced or not)."""
    global _missing_reported
    _missing_reported = True
    logging.getLogger(__name__).warning(
        "OTEL_* variables ask for traces, but OpenTelemetry is not installed: this worker runs untraced. "
        "Install pynenc-sidecar-sdk[tracing] to trace it, or unset OTEL_TRACES_EXPORTER and "
        "OTEL_EXPORTER_OTLP_ENDPOINT to silence this.")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pynenc-sidecar-sdk")
    except metadata.PackageNotFoundError:
        return ""


def _setup_from_env() -> None:
    """Install an OTLP-over-gRPC tracer provider as the global one, once, if the variables ask."""
    global _env_setup_done
    with _env_setup_lock:
        if _env_setup_done:
            return
        _env_setup_done = True
        if tracing_requested():
            _install_provider()


def _install_provider() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the application set its own meanwhile
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # flushes at exit; sampler from OTEL_TRACES_SAMPLER
    exporters = [e.strip().lower() for e in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    if "otlp" in exporters:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in exporters:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """The channel with OpenTelemetry's gRPC client interceptor: a CLIENT span per call that
    sends the caller's context as ``traceparent``."""
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    traced: grpc.Channel = intercept_channel(channel, client_interceptor())
    return traced


# --- spans -------------------------------------------------------------------------------
class _NoSpan:
    """What the hooks return when tracing is off: does nothing, costs nothing."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False

    def replayed(self, flag: bool, origin: de.SpanReference | None = None) -> None:
        pass


NO_SPAN = _NoSpan()


class _Span:
    def __init__(self, tracer_: trace.Tracer, name: str, attributes: Attributes, links: list[trace.Link]) -> None:
        self._manager = tracer_.start_as_current_span(name, attributes=attributes, links=links)
        self.span: trace.Span | None = None

    def __enter__(self) -> _Span:
        self.span = self._manager.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._manager.__exit__(kind, error, traceback)

    def replayed(self, flag: bool, origin: de.SpanReference | None = None) -> None:
        """Mark the operation replayed (or recorded now); link to the origin if known."""
        assert self.span is not None, "replayed() is called inside the span's `with`"
        self.span.set_attribute(REPLAYED, bool(flag))
        link = _origin_context(origin) if flag else None
        if link is not None:
            self.span.add_link(link, {ORIGIN_LINK_ATTRIBUTE: "recorded_by"})


SpanHook = _Span | _NoSpan  # what the hooks return: a span when tracing is on, NO_SPAN when off


def _origin_context(origin: de.SpanReference | None) -> trace.SpanContext | None:
    """A SpanContext for a RecordedOperation.origin_span (None if unset or malformed)."""
    if origin is None or not origin.trace_id or not origin.span_id:
        return None
    from opentelemetry import trace

    try:
        trace_id, span_id = int(origin.trace_id, 16), int(origin.span_id, 16)
    except ValueError:
        return None
    context = trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    return context if context.is_valid else None


def _workflow_attributes(app_id: str, workflow: WorkflowIdentity) -> Attributes:
    attributes: Attributes = {APP_ID: app_id, WORKFLOW_ID: workflow.workflow_id}
    if workflow.workflow_type:
        attributes[WORKFLOW_TYPE] = workflow.workflow_type
    if workflow.parent_workflow_id:
        attributes[PARENT_WORKFLOW_ID] = workflow.parent_workflow_id
    return attributes


def workflow_span(app_id: str, workflow: WorkflowIdentity) -> SpanHook:
    """The span of one run of a workflow's main task (the root of the run's trace)."""
    tracer_ = tracer()
    if tracer_ is None:
        return NO_SPAN
    attributes = _workflow_attributes(app_id, workflow)
    attributes[TASK_ID] = workflow.workflow_type
    return _Span(tracer_, f"pynenc.workflow {workflow.workflow_type}", attributes, [])


_SPAN_NAMES = {"random": "pynenc.random", "time": "pynenc.utc_now", "uuid": "pynenc.uuid",
               "task": "pynenc.execute_task", "custom": "pynenc.deterministic",
               "data_read": "pynenc.get_data", "data_write": "pynenc.set_data"}


def operation_span(run: RunContext, operation: str, sequence: int, *, name: str = "", task_id: str = "",
                   recorded: de.RecordedOperation | None = None) -> SpanHook:
    """The span of one deterministic operation. `recorded`: the RecordedOperation the log
    already holds at this position — the operation is then a replay served locally, and
    the span links to the span that recorded it."""
    tracer_ = tracer()
    if tracer_ is None:
        return NO_SPAN
    attributes = _workflow_attributes(run.app.app_id, run.workflow)
    attributes.update({INVOCATION_ID: run.invocation_id, OPERATION: operation, SEQUENCE: sequence})
    if name:
        attributes[OPERATION_NAME] = name
    if task_id:
        attributes[TASK_ID] = task_id
    links: list[trace.Link] = []
    if recorded is not None:
        attributes[REPLAYED] = True
        link = _origin_context(recorded.origin_span if recorded.HasField("origin_span") else None)
        if link is not None:
            from opentelemetry.trace import Link

            links.append(Link(link, {ORIGIN_LINK_ATTRIBUTE: "recorded_by"}))
    span_name = _SPAN_NAMES[operation]
    if name or task_id:
        span_name = f"{span_name} {name or task_id}"
    return _Span(tracer_, span_name, attributes, links)
