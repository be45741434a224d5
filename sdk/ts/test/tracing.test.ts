// Tracing without a sidecar: an in-memory connect router stands in for it and records the
// traceparent each call sends; spans go to an in-memory exporter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { createRouterTransport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { Client, Context, ORIGIN_LINK_ATTRIBUTE, WorkflowLog, tracingInterceptor } from "../src/index.js";
import {
  DeterministicExecutorService,
  GetWorkflowLogResponseSchema,
  OperationKind,
} from "../src/gen/pynenc/sidecar/v1/deterministic_executor_pb.js";

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

test("a value served from the log is a replayed span linked to the span that recorded it", async () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  try {
    const origin = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" };
    const log = WorkflowLog.fromBatches([
      create(GetWorkflowLogResponseSchema, {
        operations: [
          { scope: "wf-log", kind: OperationKind.RANDOM, sequence: 1n, value: { case: "randomValue", value: 0.25 }, originSpan: origin },
        ],
      }),
    ]);
    const sent: (string | null)[] = [];
    const client = new Client(fakeSidecar(sent));
    const run = new Context(client, "app", { workflowId: "wf-log" }, "", undefined, log);
    assert.equal(await run.random(), 0.25); // from the log: no call
    assert.equal(await run.random(), 0.5); // position 2 is not in the log: the sidecar's
    assert.equal(sent.length, 1);
    const ops = exporter.getFinishedSpans().filter((s) => s.name === "pynenc.random");
    assert.deepEqual(
      ops.map((s) => [s.attributes["pynenc.sequence"], s.attributes["pynenc.replayed"], s.links.map((l) => l.context.spanId)]),
      [
        [1, true, [origin.spanId]],
        [2, false, []],
      ],
    );
    assert.equal(ops[0]!.links[0]!.attributes?.[ORIGIN_LINK_ATTRIBUTE], "recorded_by");
  } finally {
    trace.disable();
    await provider.shutdown();
  }
});
