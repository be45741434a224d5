package wf

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
)

// fakeConn answers Random and remembers the traceparent each call sent.
type fakeConn struct {
	grpc.ClientConnInterface
	sent []string
}

func (f *fakeConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	md, _ := metadata.FromOutgoingContext(ctx)
	f.sent = append(f.sent, fmt.Sprint(md.Get("traceparent")))
	if r, ok := reply.(*sidecarv1.RandomResponse); ok {
		r.Value, r.Replayed = 0.5, len(f.sent) > 1
	}
	return nil
}

func TestOperationsAreTracedAndSendTraceparent(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	otel.SetTracerProvider(provider)
	defer otel.SetTracerProvider(noop.NewTracerProvider())

	conn := &fakeConn{}
	run := New(conn).Context("app", Identity{WorkflowID: "wf-1"}, "")
	run.log = emptyLog() // a first run whose log came with it: only the operation's call
	if _, err := run.Random(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exporter.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("want a CLIENT and an operation span, got %d", len(spans))
	}
	client, op := spans[0], spans[1]
	if op.Name != "pynenc.random" || client.SpanKind != trace.SpanKindClient || client.Parent.SpanID() != op.SpanContext.SpanID() {
		t.Fatalf("unexpected spans: %q %v parent %v", op.Name, client.SpanKind, client.Parent.SpanID())
	}
	want := fmt.Sprintf("[00-%s-%s-01]", client.SpanContext.TraceID(), client.SpanContext.SpanID())
	if conn.sent[0] != want {
		t.Fatalf("traceparent %s, want %s", conn.sent[0], want)
	}
	attrs := map[string]any{}
	for _, kv := range op.Attributes {
		attrs[string(kv.Key)] = kv.Value.AsInterface()
	}
	if attrs[attrOperation] != "random" || attrs[attrSequence] != int64(1) || attrs[attrWorkflowID] != "wf-1" || attrs[attrReplayed] != false {
		t.Fatalf("attributes %v", attrs)
	}
}

func TestNoProviderSendsNoTraceparent(t *testing.T) {
	otel.SetTracerProvider(noop.NewTracerProvider())
	conn := &fakeConn{}
	run := New(conn).Context("app", Identity{WorkflowID: "wf-1"}, "")
	run.log = emptyLog() // a first run whose log came with it: only the operation's call
	if _, err := run.Random(context.Background()); err != nil {
		t.Fatal(err)
	}
	if conn.sent[0] != "[]" {
		t.Fatalf("sent traceparent %s with tracing off", conn.sent[0])
	}
}

func TestAValueServedFromTheLogLinksToTheSpanThatRecordedIt(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	otel.SetTracerProvider(provider)
	defer otel.SetTracerProvider(noop.NewTracerProvider())

	const traceID, spanID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	conn := &fakeConn{}
	run := New(conn).Context("app", Identity{WorkflowID: "wf-1"}, "")
	run.log = emptyLog()
	run.log.ops[logKey{"wf-1", sidecarv1.OperationKind_OPERATION_KIND_RANDOM, "", 1}] = &sidecarv1.RecordedOperation{
		Value:      &sidecarv1.RecordedOperation_RandomValue{RandomValue: 0.25},
		OriginSpan: &sidecarv1.SpanReference{TraceId: traceID, SpanId: spanID},
	}
	run.log.ops[logKey{"wf-1", sidecarv1.OperationKind_OPERATION_KIND_RANDOM, "", 2}] = &sidecarv1.RecordedOperation{
		Value: &sidecarv1.RecordedOperation_RandomValue{RandomValue: 0.5}, // recorded untraced: no origin
	}
	for _, want := range []float64{0.25, 0.5} {
		if r, err := run.Random(context.Background()); err != nil || r != want {
			t.Fatalf("Random() = %v, %v; want %v from the log", r, err, want)
		}
	}
	if len(conn.sent) != 0 {
		t.Fatalf("served from the log, yet %d calls were made", len(conn.sent))
	}
	spans := exporter.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("want two operation spans, got %d", len(spans))
	}
	if got := len(spans[1].Links); got != 0 {
		t.Fatalf("a value recorded untraced got %d links", got)
	}
	links := spans[0].Links
	if len(links) != 1 || links[0].SpanContext.TraceID().String() != traceID || links[0].SpanContext.SpanID().String() != spanID {
		t.Fatalf("links %+v, want one to %s/%s", links, traceID, spanID)
	}
	if attrs := links[0].Attributes; len(attrs) != 1 || string(attrs[0].Key) != "pynenc.link" || attrs[0].Value.AsString() != "recorded_by" {
		t.Fatalf("link attributes %v", attrs)
	}
	for _, kv := range spans[0].Attributes {
		if string(kv.Key) == attrReplayed && !kv.Value.AsBool() {
			t.Fatal("a value served from the log is not marked replayed")
		}
	}
}
