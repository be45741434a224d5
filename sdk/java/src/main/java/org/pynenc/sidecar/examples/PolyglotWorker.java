package org.pynenc.sidecar.examples;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.pynenc.sidecar.wf.Client;
import org.pynenc.sidecar.wf.Context;
import org.pynenc.sidecar.wf.Contract;
import org.pynenc.sidecar.wf.TaskFunction;
import org.pynenc.sidecar.wf.Worker;

/**
 * The polyglot example's two tasks served in Java (the same work as the Go payment worker, the
 * Python and TypeScript workers; docs/client-contract.md, "Dispatch"), until SIGTERM or SIGINT,
 * when it shuts down gracefully (stop polling, finish what runs for the grace, hand back the
 * rest, exit 0).
 *
 * <pre>
 * java -cp sdk/java/target/pynenc-sidecar-client.jar org.pynenc.sidecar.examples.PolyglotWorker \
 *     --address 127.0.0.1:50051 --app polyglot --concurrency 4 --tasks orders.process_payment
 * </pre>
 * Flags: --address ($PYNENC_SIDECAR_ADDRESS, else 127.0.0.1:50051), --app ($PYNENC_APP_ID,
 * else polyglot), --concurrency (4), --lease-ttl seconds (30), --delay-ms (0: a pause before
 * each result, so that a test can kill the worker mid-task; each pause is announced on stderr,
 * "java worker: running invocation ID for N ms"), --grace seconds (30), --tasks
 * (both task ids, comma-separated).
 */
public final class PolyglotWorker {
  private PolyglotWorker() {}

  static TaskFunction processPayment(long delayMs) {
    return task -> {
      String orderId = (String) task.arguments(Map.class).get("order_id");
      String paymentId = task.uuid();
      String processedAt = OrderWorkflow.ISO.format(task.utcNow());
      pause(task, delayMs);
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("payment_id", paymentId);
      out.put("order_id", orderId);
      out.put("processed_at", processedAt);
      out.put("status", "completed");
      return out;
    };
  }

  /** --delay-ms: says on stderr that the task runs (a test waits for it), then pauses. */
  static void pause(Context task, long delayMs) throws InterruptedException {
    if (delayMs > 0) {
      System.err.println("java worker: running invocation " + task.invocationId() + " for " + delayMs + " ms");
      Thread.sleep(delayMs);
    }
  }

  record Item(String sku, Integer quantity) {}

  record OrderData(String order_id, List<Item> items) {}

  record InventoryArgs(OrderData order_data) {}

  static TaskFunction reserveInventory(long delayMs) {
    return task -> {
      OrderData order = task.arguments(InventoryArgs.class).order_data();
      String reservationId = task.uuid();
      String reservedAt = OrderWorkflow.ISO.format(task.utcNow());
      pause(task, delayMs);
      List<Map<String, Object>> items = new ArrayList<>();
      for (Item item : order.items() == null ? List.<Item>of() : order.items()) {
        Map<String, Object> reserved = new LinkedHashMap<>();
        reserved.put("sku", item.sku());
        reserved.put("quantity", item.quantity() == null ? 1 : item.quantity());
        items.add(reserved);
      }
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("reservation_id", reservationId);
      out.put("order_id", order.order_id());
      out.put("reserved_items", items);
      out.put("reserved_at", reservedAt);
      return out;
    };
  }

  public static void main(String[] args) throws InterruptedException {
    Map<String, String> flags = new LinkedHashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        System.err.println("PolyglotWorker: expected --flag value, got " + args[i]);
        System.exit(2);
      }
      flags.put(args[i].substring(2), args[i + 1]);
    }
    String address = flags.getOrDefault("address", OrderWorkflow.envOr("PYNENC_SIDECAR_ADDRESS", "127.0.0.1:50051"));
    String app = flags.getOrDefault("app", OrderWorkflow.envOr("PYNENC_APP_ID", "polyglot"));
    long delayMs = Long.parseLong(flags.getOrDefault("delay-ms", "0"));
    Map<String, TaskFunction> known = Map.of("orders.process_payment", processPayment(delayMs),
        "orders.reserve_inventory", reserveInventory(delayMs));
    Client client = Client.connect(address);
    client.leaseTtl = Duration.ofMillis((long) (Double.parseDouble(flags.getOrDefault("lease-ttl", "30")) * 1000));
    Worker.Builder builder = client.worker(app)
        .concurrency(Integer.parseInt(flags.getOrDefault("concurrency", "4")))
        .shutdownGrace(Duration.ofMillis((long) (Double.parseDouble(
            flags.getOrDefault("grace", String.valueOf(Contract.DEFAULT_SHUTDOWN_GRACE.toSeconds()))) * 1000)));
    String served = flags.getOrDefault("tasks", "orders.process_payment,orders.reserve_inventory");
    for (String taskId : served.split(",")) {
      TaskFunction fn = known.get(taskId);
      if (fn == null) {
        System.err.println("PolyglotWorker: unknown task " + taskId + "; known: " + known.keySet());
        System.exit(2);
      }
      builder.task(taskId, fn);
    }
    Worker worker = builder.start();
    // SIGTERM / SIGINT: shut down gracefully, then exit 0 (the JVM's own status would be 143).
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      worker.close();
      client.close();
      System.err.println("java worker: stopped");
      System.err.flush();
      Runtime.getRuntime().halt(0);
    }));
    System.err.println("java worker: serving " + served + " of app " + app + " at " + address);
    worker.awaitTermination();
  }
}
