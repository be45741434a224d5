// Tracing without a sidecar: an in-memory connect router stands in for it and records the
// traceparent each call sends; spans go to an in-memory exporter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { createRouterTransport } from "@connectrpc/connect";
import { Client, tracingInterceptor } from "../src/index.js";
import { DeterministicExecutorService } from "../src/gen/pynenc/sidecar/v1/deterministic_executor_pb.js";

function fakeSidecar(sent: (string | null)[]) {
  return createRouterTransport(
    ({ service }) => {
      service(DeterministicExecutorService, {
        random(_req, ctx) {
          sent.push(ctx.requestHeader.get("traceparent"));
          return { value: 0.5, replayed: sent.length > 1 };
        },
      });
    },
    { transport: { interceptors: [tracingInterceptor()] } },
  );
}

test("no provider: no spans and no traceparent", async () => {
  const sent: (string | null)[] = [];
  await new Client(fakeSidecar(sent)).context("app", { workflowId: "wf-off" }).random();
  assert.deepEqual(sent, [null]);
});

test("operations get spans and the CLIENT span is sent as traceparent", async () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  try {
    const sent: (string | null)[] = [];
    const run = new Client(fakeSidecar(sent)).context("app", { workflowId: "wf-on" });
    assert.equal(await run.random(), 0.5);
    const [client, op] = exporter.getFinishedSpans();
    assert.equal(op.name, "pynenc.random");
    assert.equal(client.name, "/pynenc.sidecar.v1.DeterministicExecutorService/Random");
    assert.equal(client.parentSpanContext?.spanId, op.spanContext().spanId);
    assert.equal(sent[0], `00-${client.spanContext().traceId}-${client.spanContext().spanId}-01`);
    assert.deepEqual(
      {
        operation: op.attributes["pynenc.operation"],
        sequence: op.attributes["pynenc.sequence"],
        workflow: op.attributes["pynenc.workflow.id"],
        replayed: op.attributes["pynenc.replayed"],
      },
      { operation: "random", sequence: 1, workflow: "wf-on", replayed: false },
    );
  } finally {
    trace.disable();
    await provider.shutdown();
  }
});
