// OpenTelemetry tracing through the global tracer (@opentelemetry/api): a no-op unless the
// application registers a TracerProvider, so nothing to configure and, off, next to no cost.
// On, a run is one trace, as with the Python and Go SDKs:
//
//   pynenc.workflow <type>                   INTERNAL: startWorkflow's run when no span is active
//     pynenc.random / utc_now / uuid         INTERNAL: one per operation (pynenc.* attributes)
//       /pynenc.sidecar.v1...Service/Random  CLIENT: sends W3C traceparent to the sidecar
//         (the sidecar's SERVER span, its Redis spans)
//     pynenc.execute_task <task id>          the child task's own operations nest inside
//
// The parent of each span is passed explicitly (a Context remembers its run's span, calls
// carry it in connect's contextValues), so no OTel context manager is needed.
import {
  context as otelContext,
  INVALID_SPAN_CONTEXT,
  propagation,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Link,
  type Context as OtelContext,
  type Span,
  type TextMapSetter,
} from "@opentelemetry/api";
import { createContextKey, createContextValues, type CallOptions, type Interceptor } from "@connectrpc/connect";

/** The tracer (instrumentation scope) name of the SDK's spans. */
export const INSTRUMENTATION_NAME = "@pynenc/sidecar";

export const ATTR = {
  appId: "pynenc.app_id",
  workflowId: "pynenc.workflow.id",
  workflowType: "pynenc.workflow.type",
  parentWorkflowId: "pynenc.workflow.parent_id",
  invocationId: "pynenc.invocation.id",
  operation: "pynenc.operation",
  operationName: "pynenc.operation.name",
  sequence: "pynenc.sequence",
  taskId: "pynenc.task.id",
  replayed: "pynenc.replayed",
} as const;

export const SPAN_NAMES: Record<string, string> = {
  random: "pynenc.random",
  time: "pynenc.utc_now",
  uuid: "pynenc.uuid",
  task: "pynenc.execute_task",
  custom: "pynenc.deterministic",
  data_read: "pynenc.get_data",
  data_write: "pynenc.set_data",
};

/** The OTel context a call is made in (its CLIENT span's parent). */
export const TRACE_CONTEXT = createContextKey<OtelContext | undefined>(undefined, { description: "OpenTelemetry context" });

export function tracer() {
  return trace.getTracer(INSTRUMENTATION_NAME);
}

/** Call options carrying `ctx` to the tracing interceptor. */
export function callOptions(ctx: OtelContext, extra: CallOptions = {}): CallOptions {
  return { ...extra, contextValues: createContextValues().set(TRACE_CONTEXT, ctx) };
}

export interface WorkflowLike {
  workflowId: string;
  workflowType?: string;
  parentWorkflowId?: string;
}

export function workflowAttributes(appId: string, workflow: WorkflowLike): Attributes {
  const attrs: Attributes = { [ATTR.appId]: appId, [ATTR.workflowId]: workflow.workflowId };
  if (workflow.workflowType) attrs[ATTR.workflowType] = workflow.workflowType;
  if (workflow.parentWorkflowId) attrs[ATTR.parentWorkflowId] = workflow.parentWorkflowId;
  return attrs;
}

/** A span that records nothing: what operations get while no TracerProvider is registered. */
const OFF_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Whether an application registered a TracerProvider (the API's global is a proxy until then). */
function tracingOn(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(INSTRUMENTATION_NAME) !== undefined;
}

/** The attribute of the Link from a replayed operation's span to the span that recorded it. */
export const ORIGIN_LINK_ATTRIBUTE = "pynenc.link";

/** Where a recorded value came from (RecordedOperation.origin_span). */
export interface SpanOrigin {
  traceId: string;
  spanId: string;
}

function originLinks(origin: SpanOrigin | undefined): Link[] {
  if (!origin) return [];
  const context = { traceId: origin.traceId, spanId: origin.spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true };
  return trace.isSpanContextValid(context) ? [{ context, attributes: { [ORIGIN_LINK_ATTRIBUTE]: "recorded_by" } }] : [];
}

/**
 * The span of one deterministic operation, and the context with it active. `replayedFrom`:
 * the operation is served from the workflow's log (no call), and its span links to the
 * span that recorded the value, when the log knows it.
 */
export function startOperation(
  parent: OtelContext,
  attrs: Attributes,
  kind: string,
  name: string,
  sequence: bigint,
  replayedFrom?: { origin?: SpanOrigin },
): [Span, OtelContext] {
  // Off (no provider registered), a replay served from the log costs no span work at all:
  // the calls below would only build objects the no-op tracer drops.
  if (!tracingOn()) return [OFF_SPAN, parent];
  const attributes: Attributes = { ...attrs, [ATTR.operation]: kind, [ATTR.sequence]: Number(sequence) };
  if (name) attributes[kind === "task" ? ATTR.taskId : ATTR.operationName] = name;
  if (replayedFrom) attributes[ATTR.replayed] = true;
  const spanName = name ? `${SPAN_NAMES[kind]} ${name}` : SPAN_NAMES[kind];
  const links = originLinks(replayedFrom?.origin);
  const span = tracer().startSpan(spanName, { kind: SpanKind.INTERNAL, attributes, links }, parent);
  return [span, trace.setSpan(parent, span)];
}

/** The span of a workflow run, unless `parent` already has a span (then undefined). */
export function startRun(parent: OtelContext, appId: string, workflow: WorkflowLike): [Span | undefined, OtelContext] {
  if (trace.getSpanContext(parent) !== undefined) return [undefined, parent];
  const attributes = { ...workflowAttributes(appId, workflow), [ATTR.taskId]: workflow.workflowType ?? "" };
  const span = tracer().startSpan(`pynenc.workflow ${workflow.workflowType ?? ""}`, { kind: SpanKind.INTERNAL, attributes }, parent);
  return [span, trace.setSpan(parent, span)];
}

/** Records the outcome on `span` and ends it. */
export function endSpan(span: Span | undefined, replayed: boolean, err?: unknown): void {
  if (!span) return;
  if (span.isRecording()) {
    span.setAttribute(ATTR.replayed, replayed);
    if (err !== undefined) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    }
  }
  span.end();
}

/** Runs `fn` inside `span`, ending it with the outcome (`replayedOf` reads it from the value). */
export async function inSpan<T>(span: Span | undefined, fn: () => Promise<T>, replayedOf: (value: T) => boolean): Promise<T> {
  try {
    const value = await fn();
    endSpan(span, replayedOf(value));
    return value;
  } catch (err) {
    endSpan(span, false, err);
    throw err;
  }
}

const headerSetter: TextMapSetter<Headers> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

/**
 * A connect interceptor: a CLIENT span per call (child of the context the call carries,
 * else of the active one) sent as W3C `traceparent` — with the global propagator, and by
 * hand when that one writes none (the API's default propagator is a no-op).
 */
export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const parent = req.contextValues.get(TRACE_CONTEXT) ?? otelContext.active();
    const span = tracer().startSpan(
      `/${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { "rpc.system": "grpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
      },
      parent,
    );
    const sc = span.spanContext();
    if (trace.isSpanContextValid(sc)) {
      propagation.inject(trace.setSpan(parent, span), req.header, headerSetter);
      if (!req.header.has("traceparent")) {
        req.header.set("traceparent", `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & 1).toString(16)}`);
        const state = sc.traceState?.serialize();
        if (state) req.header.set("tracestate", state);
      }
    }
    try {
      const res = await next(req);
      if (span.isRecording()) span.setAttribute("rpc.grpc.status_code", 0);
      return res;
    } catch (err) {
      if (span.isRecording()) {
        const code = (err as { code?: number }).code;
        if (typeof code === "number") span.setAttribute("rpc.grpc.status_code", code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      }
      throw err;
    } finally {
      span.end();
    }
  };
}

export { otelContext };
