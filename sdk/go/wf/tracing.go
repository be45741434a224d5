package wf

// OpenTelemetry tracing, through the global TracerProvider (otel.GetTracerProvider): a
// no-op unless the application sets one, so there is nothing to configure and, off,
// nearly nothing to pay. On, a run is one trace, as with the Python SDK:
//
//	pynenc.workflow <type>                  INTERNAL: StartWorkflow's run when ctx has no span
//	  pynenc.random / utc_now / uuid        INTERNAL: one per operation (pynenc.* attributes)
//	    /pynenc.sidecar.v1...Service/Random CLIENT: sends W3C traceparent to the sidecar
//	      (the sidecar's SERVER span, its Redis spans)
//	  pynenc.execute_task <task id>         the child task's own operations nest inside
//
// The traceparent header is written with the W3C TraceContext propagator whatever the
// global propagator is (the sidecar reads W3C), plus the global one's fields if it has any.

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
)

// InstrumentationName is the tracer (instrumentation scope) name of the SDK's spans.
const InstrumentationName = "github.com/pynenc/pynenc-sidecar/sdk/go/wf"

// The attribute names the sidecar and the Python SDK use too.
const (
	attrAppID          = "pynenc.app_id"
	attrWorkflowID     = "pynenc.workflow.id"
	attrWorkflowType   = "pynenc.workflow.type"
	attrParentWorkflow = "pynenc.workflow.parent_id"
	attrInvocationID   = "pynenc.invocation.id"
	attrOperation      = "pynenc.operation"
	attrOperationName  = "pynenc.operation.name"
	attrSequence       = "pynenc.sequence"
	attrTaskID         = "pynenc.task.id"
	attrReplayed       = "pynenc.replayed"
	// attrLink is the attribute of a replayed operation's Link to the span that recorded its
	// value: "recorded_by", as in the other SDKs and the sidecar.
	attrLink = "pynenc.link"
)

var w3c = propagation.TraceContext{}

func tracer() trace.Tracer { return otel.GetTracerProvider().Tracer(InstrumentationName) }

func workflowAttributes(appID string, workflow Identity) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String(attrAppID, appID), attribute.String(attrWorkflowID, workflow.WorkflowID)}
	if workflow.WorkflowType != "" {
		attrs = append(attrs, attribute.String(attrWorkflowType, workflow.WorkflowType))
	}
	if workflow.ParentWorkflowID != "" {
		attrs = append(attrs, attribute.String(attrParentWorkflow, workflow.ParentWorkflowID))
	}
	return attrs
}

var spanNames = map[string]string{
	seqRandom: "pynenc.random", seqTime: "pynenc.utc_now", seqUUID: "pynenc.uuid",
	seqTask: "pynenc.execute_task", "custom": "pynenc.deterministic",
	seqDataRead: "pynenc.get_data", seqDataWrite: "pynenc.set_data",
}

// startOperation starts the span of one deterministic operation (kind: random, time,
// uuid, task, custom, data_read, data_write; name: the task id, custom operation's name
// or data key). recorded: what the workflow's log holds at its position (nil: nothing);
// the span then links to the span that recorded it, when the log knows that span.
func (w *Context) startOperation(ctx context.Context, kind, name string, seq int64,
	recorded *sidecarv1.RecordedOperation) (context.Context, trace.Span) {
	spanName := spanNames[kind]
	if name != "" {
		spanName += " " + name
	}
	// The attributes are built only for a span that records: with tracing off (the global
	// no-op provider) building them was a fifth of a local replay's CPU. Set after Start,
	// they reach exporters the same, but a sampler does not see them.
	ctx, span := tracer().Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindInternal))
	if !span.IsRecording() {
		return ctx, span
	}
	attrs := append(workflowAttributes(w.appID, w.workflow),
		attribute.String(attrInvocationID, w.InvocationID()), attribute.String(attrOperation, kind),
		attribute.Int64(attrSequence, seq))
	if kind == seqTask && name != "" {
		attrs = append(attrs, attribute.String(attrTaskID, name))
	} else if name != "" {
		attrs = append(attrs, attribute.String(attrOperationName, name))
	}
	span.SetAttributes(attrs...)
	if link, ok := recordedBy(recorded.GetOriginSpan()); ok {
		span.AddLink(link)
	}
	return ctx, span
}

// recordedBy is the Link to the span that recorded a value (RecordedOperation.origin_span),
// if it names a valid one.
func recordedBy(origin *sidecarv1.SpanReference) (trace.Link, bool) {
	if origin == nil {
		return trace.Link{}, false
	}
	traceID, err := trace.TraceIDFromHex(origin.GetTraceId())
	if err != nil {
		return trace.Link{}, false
	}
	spanID, err := trace.SpanIDFromHex(origin.GetSpanId())
	if err != nil {
		return trace.Link{}, false
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID,
		TraceFlags: trace.FlagsSampled, Remote: true})
	return trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String(attrLink, "recorded_by")}},
		sc.IsValid()
}

// startRun starts the span of a workflow run, unless ctx already carries a span.
func startRun(ctx context.Context, appID string, workflow Identity) (context.Context, trace.Span) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, nil
	}
	attrs := append(workflowAttributes(appID, workflow), attribute.String(attrTaskID, workflow.WorkflowType))
	return tracer().Start(ctx, "pynenc.workflow "+workflow.WorkflowType,
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
}

// endSpan records the outcome on span and ends it (span may be nil).
func endSpan(span trace.Span, replayed bool, err error) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Bool(attrReplayed, replayed))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// tracedConn wraps a connection: each unary call gets a CLIENT span (a child of the
// caller's span) and sends it as traceparent; server streams send the caller's context.
type tracedConn struct{ grpc.ClientConnInterface }

func traced(cc grpc.ClientConnInterface) grpc.ClientConnInterface { return tracedConn{cc} }

type metadataCarrier struct{ md metadata.MD }

func (c metadataCarrier) Get(key string) string {
	if v := c.md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c metadataCarrier) Set(key, value string) { c.md.Set(key, value) }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c.md))
	for k := range c.md {
		keys = append(keys, k)
	}
	return keys
}

func inject(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	carrier := metadataCarrier{md}
	w3c.Inject(ctx, carrier)
	if global := otel.GetTextMapPropagator(); len(global.Fields()) > 0 {
		global.Inject(ctx, carrier)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

func rpcAttributes(method string) (string, []attribute.KeyValue) {
	service, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return method, []attribute.KeyValue{
		attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", service), attribute.String("rpc.method", name),
	}
}

func (c tracedConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	name, attrs := rpcAttributes(method)
	ctx, span := tracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	err := c.ClientConnInterface.Invoke(inject(ctx), method, args, reply, opts...)
	if span.IsRecording() {
		st, _ := status.FromError(err)
		span.SetAttributes(attribute.Int64("rpc.grpc.status_code", int64(st.Code())))
		if err != nil {
			span.SetStatus(codes.Error, st.Message())
		}
	}
	span.End()
	return err
}

func (c tracedConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.ClientConnInterface.NewStream(inject(ctx), desc, method, opts...)
}
