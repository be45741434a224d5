// The TypeScript side of tests/test_polyglot_tracing.py (twin of sdk/go/internal/tracedemo):
// installs an OTel SDK TracerProvider exporting over OTLP/gRPC (OTEL_EXPORTER_OTLP_ENDPOINT),
// runs a small workflow through the wf helpers against a sidecar, flushes the spans and
// prints one JSON object: the workflow's outcome and the trace id of its run.
//
//   node dist/tools/tracedemo.js --address A --app APP --workflow WF [--parent]
//
// With --parent the program starts its own span around the run (the helpers then add no
// "pynenc.workflow" span), and prints that span's id as parent_span_id.
import { parseArgs } from "node:util";
import { context, trace } from "@opentelemetry/api";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { Client } from "../src/index.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      address: { type: "string", default: process.env.PYNENC_SIDECAR_ADDRESS ?? "" },
      app: { type: "string", default: "" },
      workflow: { type: "string", default: "" },
      parent: { type: "boolean", default: false },
    },
  });
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  trace.setGlobalTracerProvider(provider);

  const client = Client.connect(values.address!);
  const out: Record<string, unknown> = {};
  let parentCtx = context.active();
  const own = values.parent ? provider.getTracer("tracedemo").startSpan("tracedemo.main") : undefined;
  if (own) {
    parentCtx = trace.setSpan(parentCtx, own);
    out.parent_span_id = own.spanContext().spanId;
    out.trace_id = own.spanContext().traceId;
  }
  try {
    const inv = await client.startWorkflow(
      values.app!,
      { workflowId: values.workflow!, workflowType: "tracedemo.main" },
      {},
      async (run) => {
        out.trace_id = trace.getSpanContext(run.traceContext)?.traceId;
        const random = await run.random();
        const uuid = await run.uuid();
        const child = await run.executeTask("tracedemo.child", { x: 1 }, (task) => task.random());
        return { random, uuid, child: child.result };
      },
      parentCtx,
    );
    own?.end();
    Object.assign(out, { result: JSON.parse(inv.resultJson), replayed: inv.replayed, ran: inv.ran });
  } finally {
    client.close();
    await provider.shutdown(); // flushes the spans
  }
  console.log(JSON.stringify(out));
}

main().catch((err: unknown) => {
  console.error("tracedemo:", err);
  process.exit(1);
});
