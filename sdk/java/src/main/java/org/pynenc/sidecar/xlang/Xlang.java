package org.pynenc.sidecar.xlang;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import java.time.Instant;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.pynenc.sidecar.wf.Client;
import org.pynenc.sidecar.wf.Context;
import org.pynenc.sidecar.wf.Identity;
import org.pynenc.sidecar.wf.Invocation;
import org.pynenc.sidecar.wf.Json;
import org.pynenc.sidecar.wf.SidecarException;
import pynenc.sidecar.v1.Common.WorkflowIdentity;
import pynenc.sidecar.v1.DeterministicExecutor.CompleteTaskRequest;
import pynenc.sidecar.v1.DeterministicExecutor.CompleteTaskResponse;
import pynenc.sidecar.v1.DeterministicExecutor.ExecuteTaskRequest;
import pynenc.sidecar.v1.DeterministicExecutor.ExecuteTaskResponse;
import pynenc.sidecar.v1.DeterministicExecutor.OperationPosition;
import pynenc.sidecar.v1.DeterministicExecutor.RenewTaskLeaseRequest;

/**
 * The Java side of tests/test_java_client.py, the twin of sdk/go/internal/xlang: one step of
 * the shared cross-language scenario, printed as one JSON object.
 *
 * <pre>
 * xlang run      --address A --app APP --workflow WF   the scenario in WF's main task
 * xlang lease    --address A --app APP --workflow WF --ttl-ms 1000   take task #1's lease and exit
 * xlang complete --address A --app APP --invocation ID --lease LEASE
 * xlang takeover --address A --app APP --workflow WF   run task #1 (waiting for / taking over its lease)
 * xlang errors   --address A --app APP --workflow WF   the error reasons, read from ErrorInfo
 * xlang flow     --address A --app APP --workflow WF --fixed false   two tasks; the second fails unless fixed
 * xlang retry    --address A --app APP --workflow WF --fixed true    RetryWorkflow, then the flow again
 * xlang oversize --address A --app APP --workflow WF --bytes N       a child returning an N-byte string
 * xlang lease-loss --address A --app APP --workflow WF --ttl-ms 1000   the contract's lease-loss
 *                scenario: a main task calling random until its lease is taken over
 * xlang takeover-scenario --address A --app APP --workflow WF   the contract's takeover scenario:
 *                wait for a dead holder's main task, take it over, replay its record
 * xlang batch-flow --address A --app APP --workflow WF   the contract's buffered operations: 19
 *                operations around one task call, in four calls (docs/client-contract.md)
 * xlang batch-race --address A --app APP --workflow WF --dir D [--ttl-ms T]   the contract's losing
 *                commit: custom op "pick" and a data write buffered, then D/ready; wait for D/go,
 *                then a blocking read
 * xlang batch-stall --address A --app APP --workflow WF --dir D --ttl-ms 1000   the contract's
 *                lost lease: commit "first" with a task, buffer "second", D/ready; wait for D/go,
 *                then a blocking read
 * xlang bench-replay --address A --app APP --ops N [--repeats 5]   record N randoms in a fresh
 *                workflow, then replay them: {"record_ms": ..., "replay_ms": median replay}
 *                (after 20 untimed warm-up replays in the same JVM)
 * xlang nested   --address A --app APP --workflow WF   a custom op calling other ops, then random
 * xlang visits   --address A --app APP --workflow WF   n = data "visits" + 1; write it; print n
 * xlang diverge  --address A --app APP --workflow WF --value V   write data "counter" = V
 * xlang notify   --address A --app APP --workflow WF [--notify yes]   StartWorkflow: task "step",
 *                then (with --notify yes, a newer version of the code) task "notify"
 * </pre>
 */
public final class Xlang {
  private static final String LANG = "java";

  private Xlang() {}

  public static void main(String[] argv) {
    if (argv.length < 1) {
      fail("usage: xlang run|lease|complete|takeover|errors [--flag value ...]");
    }
    Map<String, String> flags = new HashMap<>();
    for (int i = 1; i + 1 < argv.length; i += 2) {
      flags.put(argv[i].replaceFirst("^--?", ""), argv[i + 1]);
    }
    String address = flags.getOrDefault("address", System.getenv().getOrDefault("PYNENC_SIDECAR_ADDRESS", ""));
    String app = flags.getOrDefault("app", "");
    Identity id = Identity.of(flags.getOrDefault("workflow", ""));
    JsonElement out;
    try (Client client = Client.connect(address)) {
      switch (argv[0]) {
        case "run" -> out = scenario(client.context(app, id, ""));
        case "lease" -> out = takeLease(client, app, id, Long.parseLong(flags.getOrDefault("ttl-ms", "1000")));
        case "complete" -> out = complete(client, app, flags.get("invocation"), flags.get("lease"));
        case "takeover" -> out = takeover(client, app, id);
        case "errors" -> out = reasons(client, app, id);
        case "flow" -> out = flow(client, app, id.workflowId(), Boolean.parseBoolean(flags.get("fixed")), null);
        case "retry" -> out = flow(client, app, id.workflowId(), Boolean.parseBoolean(flags.get("fixed")),
            client.retryWorkflow(app, id.workflowId()));
        case "oversize" -> out = oversize(client, app, id.workflowId(), Integer.parseInt(flags.get("bytes")));
        case "lease-loss" -> {
          client.leaseTtl = java.time.Duration.ofMillis(Long.parseLong(flags.getOrDefault("ttl-ms", "1000")));
          out = leaseLoss(client, app, id);
        }
        case "takeover-scenario" -> out = takeoverScenario(client, app, id);
        case "batch-flow" -> out = batchFlow(client, app, id);
        case "batch-race" -> {
          client.leaseTtl = java.time.Duration.ofMillis(Long.parseLong(flags.getOrDefault("ttl-ms", "30000")));
          out = batchRace(client, app, id, java.nio.file.Path.of(flags.getOrDefault("dir", ".")));
        }
        case "batch-stall" -> {
          client.leaseTtl = java.time.Duration.ofMillis(Long.parseLong(flags.getOrDefault("ttl-ms", "1000")));
          out = batchStall(client, app, id, java.nio.file.Path.of(flags.getOrDefault("dir", ".")));
        }
        case "bench-replay" -> out = benchReplay(client, app.isEmpty() ? "bench-replay" : app,
            Integer.parseInt(flags.getOrDefault("ops", "1000")), Integer.parseInt(flags.getOrDefault("repeats", "5")));
        case "nested" -> out = com.google.gson.JsonParser.parseString(Json.write(nested(client.context(app, id, ""))));
        case "visits" -> out = visits(client.context(app, id, ""));
        case "diverge" -> out = diverge(client.context(app, id, ""), flags.getOrDefault("value", "1"));
        case "notify" -> out = notifyFlow(client, app, id, "yes".equals(flags.get("notify")));
        default -> throw new IllegalArgumentException("unknown command " + argv[0]);
      }
    } catch (RuntimeException e) {
      e.printStackTrace();
      fail(e.toString());
      return;
    }
    System.out.println(Json.write(out));
  }

  private static void fail(String message) {
    System.err.println("xlang: " + message);
    System.exit(1);
  }

  static JsonObject taskSummary(Invocation inv) {
    JsonObject o = new JsonObject();
    o.addProperty("invocation_id", inv.id());
    o.addProperty("task_id", inv.taskId());
    o.addProperty("arguments_json", inv.argumentsJson());
    o.addProperty("status", inv.status().name());
    o.add("result", inv.resultJson().isEmpty() ? JsonNull.INSTANCE : Json.tree(inv.resultJson()));
    o.addProperty("ran", inv.ran());
    o.addProperty("replayed", inv.replayed());
    return o;
  }

  /** A task failure with the same type name in every language. */
  static final class XlangBroken extends RuntimeException {
    XlangBroken(String message) {
      super(message);
    }
  }

  static JsonElement failure(Invocation inv) {
    if (inv.failure() == null) {
      return JsonNull.INSTANCE;
    }
    JsonObject o = new JsonObject();
    o.addProperty("type", inv.failure().type());
    o.addProperty("message", inv.failure().taskMessage());
    o.addProperty("traceback", inv.failure().traceback());
    return o;
  }

  static JsonObject outcome(Invocation inv, JsonArray ran) {
    JsonObject o = new JsonObject();
    o.addProperty("status", inv.status().name());
    o.add("error", failure(inv));
    o.add("result", inv.resultJson().isEmpty() ? JsonNull.INSTANCE : Json.tree(inv.resultJson()));
    o.add("ran", ran);
    return o;
  }

  /** The retry scenario: xlang.first, then xlang.second, which fails until fixed. */
  static JsonObject flow(Client client, String app, String workflowId, boolean fixed, java.util.List<Invocation> reset) {
    JsonArray ran = new JsonArray();
    Invocation inv = client.startWorkflow(app, new Identity(workflowId, "xlang.retry_flow", ""), null, main -> {
      Invocation first = main.executeTask("xlang.first", null, task -> {
        ran.add("first");
        return Map.of("r", task.random(), "lang", LANG);
      });
      Invocation second = main.executeTask("xlang.second", null, task -> {
        ran.add("second");
        if (!fixed) {
          throw new XlangBroken("broken in " + LANG);
        }
        return Map.of("fixed_by", LANG);
      });
      Map<String, Object> result = new LinkedHashMap<>();
      result.put("first", first.result(JsonElement.class));
      result.put("second", second.result(JsonElement.class));
      return result;
    });
    JsonObject out = outcome(inv, ran);
    if (reset != null) {
      JsonArray names = new JsonArray();
      reset.forEach(r -> names.add(r.taskId() + ":" + r.status().name()));
      out.add("reset", names);
    }
    return out;
  }

  /** A child returning a string of n bytes; the parent returns the child's result. */
  static JsonObject oversize(Client client, String app, String workflowId, int n) {
    JsonArray ran = new JsonArray();
    Invocation[] child = new Invocation[1];
    Invocation inv = client.startWorkflow(app, new Identity(workflowId, "xlang.big_flow", ""), null, main -> {
      child[0] = main.executeTask("xlang.big", null, task -> {
        ran.add("big");
        return "x".repeat(n);
      });
      return child[0].result(String.class).length();
    });
    JsonObject out = outcome(inv, ran);
    if (child[0] != null) {
      JsonObject c = new JsonObject();
      c.addProperty("status", child[0].status().name());
      c.add("error", failure(child[0]));
      out.add("child", c);
    }
    return out;
  }

  /**
   * The client contract's lease-loss scenario (tests/test_client_contract.py): the main task
   * calls random every 50 ms until an operation fails; the test takes its lease over meanwhile.
   * The run must be told (leaseLost(), its thread interrupted), stop with LEASE_NOT_HELD, and
   * report the new holder's outcome.
   */
  static JsonObject leaseLoss(Client client, String app, Identity id) {
    String[] stoppedBy = {""};
    boolean[] signalled = {false};
    Invocation inv = client.startWorkflow(app, new Identity(id.workflowId(), "contract.lease_loss", ""), null,
        main -> {
          for (int i = 0; i < 1200; i++) { // at most a minute
            try {
              main.random();
            } catch (SidecarException e) {
              stoppedBy[0] = e.reason();
              signalled[0] = main.leaseLost();
              throw e;
            }
            try {
              Thread.sleep(50);
            } catch (InterruptedException e) {
              // the lease was lost: the next operation says so
            }
          }
          return Map.of("completed_by", LANG);
        });
    JsonObject o = new JsonObject();
    o.addProperty("status", inv.status().name());
    o.add("result", inv.resultJson().isEmpty() ? JsonNull.INSTANCE : Json.tree(inv.resultJson()));
    o.addProperty("ran", inv.ran());
    o.addProperty("stopped_by", stoppedBy[0]);
    o.addProperty("signalled", signalled[0]);
    o.addProperty("lang", LANG);
    return o;
  }

  /**
   * The client contract's takeover scenario: the test holds the main task's lease, records
   * custom op "pick" and a time, and dies; this run waits, takes the task over when that lease
   * lapses and runs it from the top, replaying what the dead holder recorded.
   */
  static JsonObject takeoverScenario(Client client, String app, Identity id) {
    Invocation inv = client.startWorkflow(app, new Identity(id.workflowId(), "contract.takeover", ""), null,
        main -> {
          java.util.function.Supplier<JsonElement> pick = () -> main.record("pick", JsonElement.class,
              () -> Json.tree(Json.write(Map.of("by", LANG))));
          JsonElement first = pick.get();
          Instant at = main.utcNow();
          double r = main.random();
          JsonElement second = pick.get();
          JsonArray picks = new JsonArray();
          picks.add(first);
          picks.add(second);
          JsonObject result = new JsonObject();
          result.add("picks", picks);
          result.addProperty("time_us", at.getEpochSecond() * 1_000_000L + at.getNano() / 1_000);
          result.addProperty("r", r);
          result.addProperty("lang", LANG);
          return result;
        });
    JsonObject o = new JsonObject();
    o.addProperty("status", inv.status().name());
    o.add("result", inv.resultJson().isEmpty() ? JsonNull.INSTANCE : Json.tree(inv.resultJson()));
    o.addProperty("ran", inv.ran());
    o.addProperty("lang", LANG);
    return o;
  }

  private static long micros(Instant t) {
    return t.getEpochSecond() * 1_000_000L + t.getNano() / 1_000;
  }

  /**
   * The client contract's buffered operations (docs/client-contract.md, "One round trip per
   * blocking point"): 5 randoms, 3 uuids, 3 times, custom op "pick" and a data write travel
   * with the child's ExecuteTask; the child's 3 randoms with its CompleteTask; a data write, a
   * random and a time with the main task's CompleteTask.
   */
  static JsonObject batchFlow(Client client, String app, Identity id) {
    Invocation inv = client.startWorkflow(app, new Identity(id.workflowId(), "contract.batch_flow", ""), null, main -> {
      JsonArray random = new JsonArray();
      for (int i = 0; i < 5; i++) {
        random.add(main.random());
      }
      JsonArray uuid = new JsonArray();
      for (int i = 0; i < 3; i++) {
        uuid.add(main.uuid());
      }
      JsonArray times = new JsonArray();
      for (int i = 0; i < 3; i++) {
        times.add(micros(main.utcNow()));
      }
      JsonElement custom = main.record("pick", JsonElement.class, () -> Json.tree("{\"k\":[1,2]}"));
      main.setData("stage", "before-child");
      Invocation child = main.executeTask("contract.batch_child", Map.of("n", 7), task -> {
        JsonArray values = new JsonArray();
        for (int i = 0; i < 3; i++) {
          values.add(task.random());
        }
        values.add(7);
        return values;
      });
      main.setData("stage", "after-child");
      JsonArray late = new JsonArray();
      late.add(main.random());
      late.add(micros(main.utcNow()));
      JsonObject out = new JsonObject();
      out.add("random", random);
      out.add("uuid", uuid);
      out.add("time_us", times);
      out.add("custom", custom);
      out.add("child", Json.tree(child.resultJson()));
      out.add("late", late);
      return out;
    });
    JsonObject o = new JsonObject();
    o.addProperty("status", inv.status().name());
    o.add("result", inv.resultJson().isEmpty() ? JsonNull.INSTANCE : Json.tree(inv.resultJson()));
    o.addProperty("ran", inv.ran());
    o.addProperty("lang", LANG);
    return o;
  }

  /**
   * The client contract's losing commit (tests/test_client_contract.py): custom op "pick" and a
   * data write are buffered, then D/ready; while the run waits for D/go the test records "pick"
   * #1 with another value. The read's commit is refused (COMMIT_CONFLICT) and the run starts
   * again on a fresh log, replaying the winner's pick without running its generator again.
   */
  static JsonObject batchRace(Client client, String app, Identity id, java.nio.file.Path dir) {
    int[] runs = {0};
    JsonArray generated = new JsonArray();
    Invocation inv = client.startWorkflow(app, new Identity(id.workflowId(), "contract.batch_race", ""), null, main -> {
      runs[0]++;
      JsonElement pick = main.record("pick", JsonElement.class, () -> {
        generated.add("gen");
        return Json.tree("{\"by\":\"" + LANG + "\"}");
      });
      main.setData("by", LANG);
      readyThenGo(dir);
      main.getData("k", String.class); // the blocking point: the buffer travels with it
      JsonObject result = new JsonObject();
      result.add("pick", pick);
      result.addProperty("lang", LANG);
      return result;
    });
    JsonObject o = new JsonObject();
    o.addProperty("status", inv.status().name());
    o.add("result", inv.resultJson().isEmpty() ? JsonNull.INSTANCE : Json.tree(inv.resultJson()));
    o.addProperty("ran", inv.ran());
    o.add("generated", generated);
    o.addProperty("runs", runs[0]);
    o.addProperty("lang", LANG);
    return o;
  }

  /**
   * The client contract's lost lease (tests/test_client_contract.py): the main task commits
   * "first" and data "by" with a task call, buffers "second" and data "late", creates D/ready
   * and waits for D/go while the test takes its lease over; its read's commit is then refused
   * (LEASE_NOT_HELD) and it waits for the new holder's outcome.
   */
  static JsonObject batchStall(Client client, String app, Identity id, java.nio.file.Path dir) {
    String[] stoppedBy = {""};
    Invocation inv = client.startWorkflow(app, new Identity(id.workflowId(), "contract.batch_stall", ""), null, main -> {
      main.record("first", JsonElement.class, () -> Json.tree("{\"by\":\"" + LANG + "\"}"));
      main.setData("by", LANG);
      main.executeTask("contract.batch_step", null, task -> 1);
      main.record("second", JsonElement.class, () -> Json.tree("{\"by\":\"" + LANG + "\"}"));
      main.setData("late", LANG);
      readyThenGo(dir);
      try {
        main.getData("by", String.class);
      } catch (SidecarException e) {
        stoppedBy[0] = e.reason();
        throw e;
      }
      return Map.of("completed_by", LANG);
    });
    JsonObject o = new JsonObject();
    o.addProperty("status", inv.status().name());
    o.add("result", inv.resultJson().isEmpty() ? JsonNull.INSTANCE : Json.tree(inv.resultJson()));
    o.addProperty("stopped_by", stoppedBy[0]);
    o.addProperty("ran", inv.ran());
    o.addProperty("lang", LANG);
    return o;
  }

  /** Creates dir/ready, then waits (at most a minute) for the test to create dir/go. */
  private static void readyThenGo(java.nio.file.Path dir) throws java.io.IOException {
    java.nio.file.Files.writeString(dir.resolve("ready"), "ready");
    long deadline = System.nanoTime() + 60_000_000_000L;
    while (!java.nio.file.Files.exists(dir.resolve("go")) && System.nanoTime() < deadline) {
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        // a lost lease: the blocking call after this says so
      }
    }
  }

  /**
   * Records n randoms in the main task of a fresh workflow (startWorkflow: buffered, committed
   * with its completion), then replays them `repeats` times, each in a new Context of that main
   * task (one GetWorkflowLog, then local), all in this one JVM. WARM_UP_REPLAYS replays run
   * first and are discarded, so the JIT has compiled the replay path; replay_ms is the median
   * of the timed ones, as bench/run.py takes the median of the Python SDK's.
   */
  static JsonObject benchReplay(Client client, String app, int n, int repeats) {
    Identity wf = new Identity("bench-replay-" + java.util.UUID.randomUUID(), "xlang.bench_replay", "");
    double[][] recorded = new double[1][];
    long start = System.nanoTime();
    client.startWorkflow(app, wf, null, main -> {
      recorded[0] = randoms(main, n); // buffered: committed with the completion
      return n;
    });
    double recordMs = (System.nanoTime() - start) / 1e6;
    // Besides the whole replay: its first operation (the log's call, decoding and indexing),
    // and a bare GetWorkflowLog stream (the call and decoding alone), for BENCHMARKS.md.
    int timedRuns = Math.max(repeats, 1);
    double[] timed = new double[timedRuns], firsts = new double[timedRuns], calls = new double[timedRuns];
    var logRequest = pynenc.sidecar.v1.DeterministicExecutor.GetWorkflowLogRequest.newBuilder()
        .setAppId(app).setWorkflowId(wf.workflowId()).build();
    for (int r = -WARM_UP_REPLAYS; r < timedRuns; r++) {
      long t0 = System.nanoTime();
      Context run = client.context(app, wf, "");
      double[] replayed = new double[n];
      replayed[0] = run.random();
      long first = System.nanoTime();
      for (int i = 1; i < n; i++) {
        replayed[i] = run.random();
      }
      long t1 = System.nanoTime();
      if (!java.util.Arrays.equals(recorded[0], replayed)) {
        throw new IllegalStateException("the replay of " + wf.workflowId() + " returned other values");
      }
      client.executor().getWorkflowLog(logRequest).forEachRemaining(batch -> { });
      long t2 = System.nanoTime();
      if (r >= 0) {
        timed[r] = (t1 - t0) / 1e6;
        firsts[r] = (first - t0) / 1e6;
        calls[r] = (t2 - t1) / 1e6;
      }
    }
    JsonObject o = new JsonObject();
    o.addProperty("record_ms", recordMs);
    o.addProperty("replay_ms", median(timed));
    o.addProperty("first_op_ms", median(firsts));
    o.addProperty("log_call_ms", median(calls));
    return o;
  }

  private static double median(double[] xs) {
    java.util.Arrays.sort(xs);
    return xs[xs.length / 2];
  }

  /** Replays bench-replay runs and discards before timing: enough for C2 to compile the path. */
  private static final int WARM_UP_REPLAYS = 20;

  private static double[] randoms(Context run, int n) {
    double[] values = new double[n];
    for (int i = 0; i < n; i++) {
      values[i] = run.random();
    }
    return values;
  }

  /** The operations every language performs, in the same order. */
  static JsonObject scenario(Context run) {
    JsonArray randoms = new JsonArray();
    for (int i = 0; i < 2; i++) {
      randoms.add(run.random());
    }
    String uuid = run.uuid();
    JsonArray times = new JsonArray();
    for (int i = 0; i < 2; i++) {
      Instant t = run.utcNow();
      times.add(t.getEpochSecond() * 1_000_000L + t.getNano() / 1_000);
    }
    JsonElement pick = run.record("pick", JsonElement.class,
        () -> Json.tree(Json.write(Map.of("lang", LANG, "n", ThreadLocalRandom.current().nextInt(1_000_000)))));
    Invocation doubled = run.executeTask("xlang.double", Map.of("x", 21, "label", "ünï"), task -> {
      Map<String, Object> result = new LinkedHashMap<>();
      result.put("y", 42);
      result.put("r", task.random());
      result.put("u", task.uuid());
      result.put("lang", LANG);
      return result;
    });
    Invocation greet = run.executeTask("xlang.greet", Map.of("name", "wörld"),
        task -> Map.of("greeting", "hello wörld", "lang", LANG));
    Map<String, Object> summary = new LinkedHashMap<>();
    summary.put("r1", randoms.get(0).getAsDouble());
    summary.put("uuid", uuid);
    run.setData("summary", summary);

    JsonObject out = new JsonObject();
    out.addProperty("lang", LANG);
    out.add("random", randoms);
    JsonArray uuids = new JsonArray();
    uuids.add(uuid);
    out.add("uuid", uuids);
    out.add("time_us", times);
    out.add("pick", pick);
    JsonArray tasks = new JsonArray();
    tasks.add(taskSummary(doubled));
    tasks.add(taskSummary(greet));
    out.add("tasks", tasks);
    out.add("data", run.getData("summary", JsonElement.class).orElse(JsonNull.INSTANCE));
    return out;
  }

  static JsonObject takeLease(Client client, String app, Identity id, long ttlMs) {
    ExecuteTaskResponse resp = client.executor().executeTask(ExecuteTaskRequest.newBuilder()
        .setPosition(OperationPosition.newBuilder().setAppId(app)
            .setWorkflow(WorkflowIdentity.newBuilder().setWorkflowId(id.workflowId())).setSequence(1))
        .setTaskId("xlang.handoff").setArgumentsJson("{\"k\":1}").setRunnerId("xlang-" + LANG)
        .setLeaseTtl(com.google.protobuf.Duration.newBuilder().setSeconds(ttlMs / 1000)
            .setNanos((int) (ttlMs % 1000) * 1_000_000))
        .build());
    JsonObject o = new JsonObject();
    o.addProperty("invocation_id", resp.getInvocation().getInvocationId());
    o.addProperty("granted", resp.hasLease());
    o.addProperty("lease_id", resp.getLease().getLeaseId());
    return o;
  }

  static JsonObject complete(Client client, String app, String invocation, String lease) {
    CompleteTaskResponse resp = client.executor().completeTask(CompleteTaskRequest.newBuilder()
        .setAppId(app).setInvocationId(invocation).setLeaseId(lease)
        .setResultJson("{\"completed_by\":\"" + LANG + "\"}").build());
    JsonObject o = new JsonObject();
    o.addProperty("accepted", resp.getAccepted());
    o.addProperty("status", resp.getInvocation().getStatus().name());
    o.add("result", Json.tree(resp.getInvocation().getResultJson()));
    return o;
  }

  static JsonObject takeover(Client client, String app, Identity id) {
    return taskSummary(client.context(app, id, "").executeTask("xlang.handoff", Map.of("k", 1),
        task -> Map.of("completed_by", LANG)));
  }

  /** Issue 11's read-modify-write of workflow data: replayed, it reads and writes nothing new. */
  static JsonObject visits(Context run) {
    int n = run.getData("visits", Integer.class).orElse(0) + 1;
    run.setData("visits", n);
    JsonObject o = new JsonObject();
    o.addProperty("n", n);
    return o;
  }

  static JsonObject diverge(Context run, String value) {
    JsonObject o = new JsonObject();
    try {
      run.setData("counter", Json.tree(value));
      o.add("error", JsonNull.INSTANCE);
    } catch (RuntimeException error) {
      SidecarException e = SidecarException.from(error);
      o.addProperty("error", e.reason());
      o.addProperty("message", e.getMessage());
    }
    return o;
  }

  /** A workflow whose newer code (notify) adds a task after its recorded step. */
  static JsonObject notifyFlow(Client client, String app, Identity id, boolean notify) {
    JsonArray ran = new JsonArray();
    Invocation inv = client.startWorkflow(app, new Identity(id.workflowId(), "xlang.notify_flow", ""), null, main -> {
      ran.add("flow");
      Invocation step = main.executeTask("xlang.step", null, task -> {
        ran.add("step");
        return 41;
      });
      if (notify) {
        main.executeTask("xlang.notify", null, task -> {
          ran.add("notify");
          return "sent";
        });
      }
      return Json.tree(step.resultJson()).getAsInt() + 1;
    });
    JsonObject o = new JsonObject();
    o.add("result", Json.tree(inv.resultJson()));
    o.add("ran", ran);
    o.addProperty("replayed", inv.replayed());
    return o;
  }

  /** Provokes each client error once and reports the ErrorInfo it carried. */
  static JsonObject reasons(Client client, String app, Identity id) {
    JsonObject out = new JsonObject();
    client.context(app, id, "").executeTask("xlang.first", null, task -> 1);
    note(out, "nondeterministic", () -> client.context(app, id, "").executeTask("xlang.second", null, null));
    note(out, "access_denied", () -> client.context(app, id, "some-task").setData("k", 1));
    note(out, "not_found", () -> client.executor().renewTaskLease(RenewTaskLeaseRequest.newBuilder()
        .setAppId(app).setInvocationId("no-such-invocation").setLeaseId("x").build()));
    Invocation first = client.context(app, id, "").executeTask("xlang.first", null, null);
    note(out, "lease_not_held", () -> client.executor().renewTaskLease(RenewTaskLeaseRequest.newBuilder()
        .setAppId(app).setInvocationId(first.id()).setLeaseId("not-mine").build()));
    note(out, "invalid_argument", () -> client.context(app, Identity.of(""), "").random());
    return out;
  }

  private static void note(JsonObject out, String name, Runnable call) {
    try {
      call.run();
      out.add(name, JsonNull.INSTANCE);
    } catch (RuntimeException error) {
      SidecarException e = SidecarException.from(error);
      JsonObject entry = new JsonObject();
      entry.addProperty("code", e.code().value());
      entry.addProperty("reason", e.reason());
      entry.addProperty("domain", e.domain());
      if (!e.fieldViolations().isEmpty()) {
        entry.addProperty("field", e.fieldViolations().get(0).field());
      }
      out.add(name, entry);
    }
  }

  /**
   * The client contract's nested-operation scenario: an operation inside a custom operation's
   * generator is refused (OPERATION_IN_GENERATOR) and takes no position.
   */
  private static Object nested(Context run) {
    String refused = null;
    try {
      run.record("refused", Double.class, run::random);
    } catch (org.pynenc.sidecar.wf.OperationInGeneratorException e) {
      refused = org.pynenc.sidecar.wf.OperationInGeneratorException.REASON;
    }
    if (refused == null) {
      throw new IllegalStateException("an operation inside a generator was not refused");
    }
    double r = run.random();
    Map<?, ?> outer = run.record("outer", Map.class, () -> {
      Map<String, Object> value = new LinkedHashMap<>();
      value.put("r", r);
      value.put("lang", LANG);
      return value;
    });
    double after = run.random();
    Map<String, Object> sequences = new LinkedHashMap<>();
    for (String kind : new String[] {"random", "custom:outer", "custom:refused"}) {
      sequences.put(kind, run.sequence(kind));
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("refused", refused);
    out.put("outer", outer);
    out.put("after", after);
    out.put("sequences", sequences);
    out.put("lang", LANG);
    return out;
  }
}
