// Command tracedemo is the Go side of tests/test_polyglot_tracing.py: it installs an OTel
// SDK TracerProvider exporting over OTLP/gRPC (OTEL_EXPORTER_OTLP_ENDPOINT), runs a small
// workflow through the wf helpers against a sidecar, flushes the spans and prints one
// JSON object: the workflow's outcome and the trace id of its run.
//
//	tracedemo -address HOST:PORT -app APP -workflow WF [-parent] [-context]
//
// With -parent the program starts its own span around the run (the helpers then add no
// "pynenc.workflow" span), and prints that span's id as parent_span_id. With -context it
// performs a random and a uuid in a free Context of the workflow (Client.Context: one call per
// new operation), inside a span of its own, instead of the workflow run; run twice, the second
// run serves both from the log, and their spans link to the sidecar spans that recorded them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pynenc/pynenc-sidecar/sdk/go/wf"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

func main() {
	address := flag.String("address", os.Getenv("PYNENC_SIDECAR_ADDRESS"), "sidecar host:port")
	app := flag.String("app", "", "app id")
	workflow := flag.String("workflow", "", "workflow id")
	parent := flag.Bool("parent", false, "run inside a span of the program's own")
	free := flag.Bool("context", false, "a random and a uuid in a free Context, not a workflow run")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exporter, err := otlptracegrpc.New(ctx) // endpoint and insecure from OTEL_EXPORTER_OTLP_*
	if err != nil {
		fail(err)
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("tracedemo-go"))))
	otel.SetTracerProvider(provider)

	client, err := wf.Dial(*address)
	if err != nil {
		fail(err)
	}
	out := map[string]any{}
	if *free {
		freeContext(ctx, client, provider, *app, *workflow, out)
		finish(ctx, client, provider, out)
		return
	}
	runCtx := ctx
	var own trace.Span
	if *parent {
		runCtx, own = provider.Tracer("tracedemo").Start(ctx, "tracedemo.main")
		out["parent_span_id"] = own.SpanContext().SpanID().String()
		out["trace_id"] = own.SpanContext().TraceID().String()
	}
	id := wf.Identity{WorkflowID: *workflow, WorkflowType: "tracedemo.main"}
	inv, err := client.StartWorkflow(runCtx, *app, id, nil, func(ctx context.Context, run *wf.Context) (any, error) {
		out["trace_id"] = trace.SpanContextFromContext(ctx).TraceID().String()
		r, err := run.Random(ctx)
		if err != nil {
			return nil, err
		}
		u, err := run.UUID(ctx)
		if err != nil {
			return nil, err
		}
		child, err := run.ExecuteTask(ctx, "tracedemo.child", map[string]any{"x": 1},
			func(ctx context.Context, task *wf.Context) (any, error) { return task.Random(ctx) })
		if err != nil {
			return nil, err
		}
		var c float64
		if err := child.Result(&c); err != nil {
			return nil, err
		}
		return map[string]any{"random": r, "uuid": u, "child": c}, nil
	})
	if own != nil {
		own.End()
	}
	if err != nil {
		fail(err)
	}
	var result any
	_ = json.Unmarshal([]byte(inv.ResultJSON), &result)
	out["result"], out["replayed"], out["ran"] = result, inv.Replayed, inv.Ran
	finish(ctx, client, provider, out)
}

// freeContext performs a random and a uuid in a free Context of the workflow, inside a span of
// the program's own (the trace's root).
func freeContext(ctx context.Context, client *wf.Client, provider *sdktrace.TracerProvider, app, workflow string,
	out map[string]any) {
	ctx, own := provider.Tracer("tracedemo").Start(ctx, "tracedemo.context")
	defer own.End()
	out["trace_id"] = own.SpanContext().TraceID().String()
	run := client.Context(app, wf.Identity{WorkflowID: workflow}, "")
	r, err := run.Random(ctx)
	if err != nil {
		fail(err)
	}
	u, err := run.UUID(ctx)
	if err != nil {
		fail(err)
	}
	out["result"] = map[string]any{"random": r, "uuid": u}
}

// finish closes the client, flushes the spans and prints out.
func finish(ctx context.Context, client *wf.Client, provider *sdktrace.TracerProvider, out map[string]any) {
	_ = client.Close()
	if err := provider.Shutdown(ctx); err != nil { // flushes the spans
		fail(err)
	}
	data, _ := json.Marshal(out)
	fmt.Println(string(data))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tracedemo:", err)
	os.Exit(1)
}
