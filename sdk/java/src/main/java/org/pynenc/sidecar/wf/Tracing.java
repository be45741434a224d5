package org.pynenc.sidecar.wf;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall.SimpleForwardingClientCall;
import io.grpc.ForwardingClientCallListener.SimpleForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.opentelemetry.api.GlobalOpenTelemetry;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanBuilder;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.propagation.TextMapPropagator;
import io.opentelemetry.context.propagation.TextMapSetter;
import java.util.Map;
import pynenc.sidecar.v1.DeterministicExecutor.RecordedOperation;

/**
 * OpenTelemetry tracing through {@link GlobalOpenTelemetry}: a no-op unless the application
 * installs an OpenTelemetry SDK, so there is nothing to configure. On, a run is one trace, with
 * the span names and attributes of the other SDKs (tests/vectors/client_contract.json):
 *
 * <pre>
 * pynenc.workflow &lt;type&gt;                  INTERNAL: startWorkflow's run when no span is current
 *   pynenc.random / utc_now / uuid        INTERNAL: one per operation (pynenc.* attributes)
 *     /pynenc.sidecar.v1...Service/Random CLIENT: sends W3C traceparent to the sidecar
 *   pynenc.execute_task &lt;task id&gt;         the child task's own operations nest inside
 * </pre>
 *
 * A value served from the workflow's log gets its operation span too, with pynenc.replayed=true
 * and a link to the span that recorded it (the log's origin_span). A call made with no current
 * span (the lease renewals of a task's background thread) gets no CLIENT span of its own, so it
 * starts no trace.
 */
public final class Tracing {
  /** The tracer (instrumentation scope) name of the helper's spans. */
  public static final String INSTRUMENTATION_NAME = "org.pynenc.sidecar.wf";

  static final AttributeKey<String> APP_ID = AttributeKey.stringKey("pynenc.app_id");
  static final AttributeKey<String> WORKFLOW_ID = AttributeKey.stringKey("pynenc.workflow.id");
  static final AttributeKey<String> WORKFLOW_TYPE = AttributeKey.stringKey("pynenc.workflow.type");
  static final AttributeKey<String> PARENT_WORKFLOW_ID = AttributeKey.stringKey("pynenc.workflow.parent_id");
  static final AttributeKey<String> INVOCATION_ID = AttributeKey.stringKey("pynenc.invocation.id");
  static final AttributeKey<String> OPERATION = AttributeKey.stringKey("pynenc.operation");
  static final AttributeKey<String> OPERATION_NAME = AttributeKey.stringKey("pynenc.operation.name");
  static final AttributeKey<Long> SEQUENCE = AttributeKey.longKey("pynenc.sequence");
  static final AttributeKey<String> TASK_ID = AttributeKey.stringKey("pynenc.task.id");
  static final AttributeKey<Boolean> REPLAYED = AttributeKey.booleanKey("pynenc.replayed");
  static final AttributeKey<String> LINK = AttributeKey.stringKey("pynenc.link");

  /** Span names by operation kind (client_contract.json span_names). */
  static final Map<String, String> SPAN_NAMES = Map.of("random", "pynenc.random", "time", "pynenc.utc_now",
      "uuid", "pynenc.uuid", "task", "pynenc.execute_task", "custom", "pynenc.deterministic",
      "data_read", "pynenc.get_data", "data_write", "pynenc.set_data", "workflow", "pynenc.workflow");

  private Tracing() {}

  static Tracer tracer() {
    return GlobalOpenTelemetry.getTracer(INSTRUMENTATION_NAME);
  }

  private static SpanBuilder withWorkflow(SpanBuilder builder, String appId, Identity workflow) {
    builder.setAttribute(APP_ID, appId).setAttribute(WORKFLOW_ID, workflow.workflowId());
    if (!workflow.workflowType().isEmpty()) {
      builder.setAttribute(WORKFLOW_TYPE, workflow.workflowType());
    }
    if (workflow.parentWorkflowId() != null && !workflow.parentWorkflowId().isEmpty()) {
      builder.setAttribute(PARENT_WORKFLOW_ID, workflow.parentWorkflowId());
    }
    return builder;
  }

  /** The span of a workflow run, or null when a span is current (the caller's is then the parent). */
  static Span run(String appId, Identity workflow) {
    if (Span.current().getSpanContext().isValid()) {
      return null;
    }
    return withWorkflow(tracer().spanBuilder(SPAN_NAMES.get("workflow") + " " + workflow.workflowType()), appId,
        workflow).setSpanKind(SpanKind.INTERNAL).setAttribute(TASK_ID, workflow.workflowType()).startSpan();
  }

  /**
   * The span of one operation. {@code seqKind}: the Context's sequence kind ("random",
   * "custom:NAME", "data_read:KEY", ...); {@code taskId}: the task's id for "task".
   */
  static Span operation(Context run, String seqKind, long seq, String taskId) {
    int colon = seqKind.indexOf(':');
    String kind = colon < 0 ? seqKind : seqKind.substring(0, colon);
    String name = colon < 0 ? "" : seqKind.substring(colon + 1);
    String label = taskId != null ? taskId : name;
    SpanBuilder builder = withWorkflow(tracer().spanBuilder(
        label.isEmpty() ? SPAN_NAMES.get(kind) : SPAN_NAMES.get(kind) + " " + label), run.appId(), run.workflow())
        .setSpanKind(SpanKind.INTERNAL).setAttribute(INVOCATION_ID, run.invocationId()).setAttribute(OPERATION, kind)
        .setAttribute(SEQUENCE, seq).setAttribute(REPLAYED, false);
    if (taskId != null) {
      builder.setAttribute(TASK_ID, taskId);
    } else if (!name.isEmpty()) {
      builder.setAttribute(OPERATION_NAME, name);
    }
    return builder.startSpan();
  }

  /** The current operation was answered by the sidecar: replayed says whether from its record. */
  static void replayed(boolean replayed) {
    Span.current().setAttribute(REPLAYED, replayed);
  }

  /** The current operation was served from the log: replayed, linked to the span that recorded it. */
  static void served(RecordedOperation recorded) {
    Span span = Span.current();
    if (!span.isRecording()) {
      return;
    }
    span.setAttribute(REPLAYED, true);
    if (recorded.hasOriginSpan()) {
      SpanContext origin = SpanContext.createFromRemoteParent(recorded.getOriginSpan().getTraceId(),
          recorded.getOriginSpan().getSpanId(), TraceFlags.getSampled(), TraceState.getDefault());
      if (origin.isValid()) {
        span.addLink(origin, Attributes.of(LINK, "recorded_by"));
      }
    }
  }

  /** Ends a span, recording the error that ended its operation (if any); span may be null. */
  static void end(Span span, Throwable error) {
    if (span == null) {
      return;
    }
    if (error != null && span.isRecording()) {
      span.recordException(error);
      span.setStatus(StatusCode.ERROR, String.valueOf(error.getMessage()));
    }
    span.end();
  }

  private static final TextMapSetter<Metadata> HEADERS =
      (headers, key, value) -> headers.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value);

  /**
   * Gives each call made under a span a CLIENT span (a unary call; a server stream sends the
   * caller's span) and sends it as W3C traceparent, whatever the global propagator is (the
   * sidecar reads W3C), plus the global propagator's own fields if it has any.
   */
  static ClientInterceptor clientInterceptor() {
    return new ClientInterceptor() {
      @Override
      public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        io.opentelemetry.context.Context parent = io.opentelemetry.context.Context.current();
        if (!Span.fromContext(parent).getSpanContext().isValid()) {
          return next.newCall(method, options);
        }
        Span span = method.getType() != MethodDescriptor.MethodType.UNARY ? null
            : tracer().spanBuilder("/" + method.getFullMethodName()).setParent(parent).setSpanKind(SpanKind.CLIENT)
                .setAttribute("rpc.system", "grpc").setAttribute("rpc.service", method.getServiceName())
                .setAttribute("rpc.method", method.getBareMethodName()).startSpan();
        io.opentelemetry.context.Context sent = span == null ? parent : parent.with(span);
        return new SimpleForwardingClientCall<>(next.newCall(method, options)) {
          @Override
          public void start(Listener<R> listener, Metadata headers) {
            W3CTraceContextPropagator.getInstance().inject(sent, headers, HEADERS);
            TextMapPropagator global = GlobalOpenTelemetry.getPropagators().getTextMapPropagator();
            if (!global.fields().isEmpty()) {
              global.inject(sent, headers, HEADERS);
            }
            super.start(new SimpleForwardingClientCallListener<>(listener) {
              @Override
              public void onClose(Status status, Metadata trailers) {
                if (span != null) {
                  span.setAttribute("rpc.grpc.status_code", status.getCode().value());
                  if (!status.isOk()) {
                    span.setStatus(StatusCode.ERROR, String.valueOf(status.getDescription()));
                  }
                  span.end();
                }
                super.onClose(status, trailers);
              }
            }, headers);
          }
        };
      }
    };
  }
}
