package org.pynenc.sidecar.xlang;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.context.Scope;
import io.opentelemetry.exporter.otlp.trace.OtlpGrpcSpanExporter;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.pynenc.sidecar.wf.Client;
import org.pynenc.sidecar.wf.Context;
import org.pynenc.sidecar.wf.Identity;
import org.pynenc.sidecar.wf.Invocation;
import org.pynenc.sidecar.wf.Json;

/**
 * The Java side of tests/test_polyglot_tracing.py, the twin of sdk/go/internal/tracedemo: it
 * installs an OpenTelemetry SDK exporting OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT, runs a
 * small workflow through the wf helper, flushes the spans and prints one JSON object: the
 * workflow's outcome and the trace id of its run.
 *
 * <pre>
 * TraceDemo --address HOST:PORT --app APP --workflow WF [--parent] [--context]
 * </pre>
 *
 * With --parent the program starts its own span around the run (the helper then adds no
 * "pynenc.workflow" span) and prints its id as parent_span_id. With --context it performs a
 * random and a uuid in a bare {@code client.context(...)} of the workflow, inside a span of its
 * own, instead of the workflow run (run twice, the second run serves both from the log).
 */
public final class TraceDemo {
  private TraceDemo() {}

  public static void main(String[] argv) {
    List<String> args = Arrays.asList(argv);
    String address = value(args, "--address", System.getenv().getOrDefault("PYNENC_SIDECAR_ADDRESS", ""));
    String app = value(args, "--app", "");
    String workflow = value(args, "--workflow", "");
    String endpoint = System.getenv().getOrDefault("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
    SdkTracerProvider provider = SdkTracerProvider.builder()
        .addSpanProcessor(BatchSpanProcessor.builder(OtlpGrpcSpanExporter.builder().setEndpoint(endpoint).build())
            .build())
        .setResource(Resource.getDefault().merge(Resource.create(Attributes.of(
            io.opentelemetry.api.common.AttributeKey.stringKey("service.name"), "tracedemo-java"))))
        .build();
    OpenTelemetrySdk.builder().setTracerProvider(provider).buildAndRegisterGlobal();
    JsonObject out = new JsonObject();
    try (Client client = Client.connect(address)) {
      if (args.contains("--context")) {
        bareContext(client, provider, app, workflow, out);
      } else {
        workflowRun(client, provider, app, workflow, args.contains("--parent"), out);
      }
    } catch (RuntimeException e) {
      e.printStackTrace();
      System.exit(1);
    }
    provider.shutdown().join(30, TimeUnit.SECONDS); // flushes the spans
    System.out.println(Json.write(out));
  }

  private static void workflowRun(Client client, SdkTracerProvider provider, String app, String workflow,
                                  boolean parent, JsonObject out) {
    Span own = parent ? provider.get("tracedemo").spanBuilder("tracedemo.main").startSpan() : null;
    if (own != null) {
      out.addProperty("parent_span_id", own.getSpanContext().getSpanId());
      out.addProperty("trace_id", own.getSpanContext().getTraceId());
    }
    Invocation inv;
    try (Scope ignored = own == null ? null : own.makeCurrent()) {
      inv = client.startWorkflow(app, new Identity(workflow, "tracedemo.main", ""), null, run -> {
        out.addProperty("trace_id", Span.current().getSpanContext().getTraceId());
        double r = run.random();
        String u = run.uuid();
        Invocation child = run.executeTask("tracedemo.child", Map.of("x", 1), Context::random);
        return Map.of("random", r, "uuid", u, "child", child.result(Double.class));
      });
    } finally {
      if (own != null) {
        own.end();
      }
    }
    out.add("result", Json.tree(inv.resultJson()));
    out.addProperty("replayed", inv.replayed());
    out.addProperty("ran", inv.ran());
  }

  private static void bareContext(Client client, SdkTracerProvider provider, String app, String workflow,
                                  JsonObject out) {
    Span own = provider.get("tracedemo").spanBuilder("tracedemo.context").startSpan();
    out.addProperty("trace_id", own.getSpanContext().getTraceId());
    try (Scope ignored = own.makeCurrent()) {
      Context run = client.context(app, Identity.of(workflow), "");
      JsonObject result = new JsonObject();
      result.addProperty("random", run.random());
      result.addProperty("uuid", run.uuid());
      out.add("result", (JsonElement) result);
    } finally {
      own.end();
    }
  }

  private static String value(List<String> args, String flag, String otherwise) {
    int at = args.indexOf(flag);
    return at >= 0 && at + 1 < args.size() ? args.get(at + 1) : otherwise;
  }
}
