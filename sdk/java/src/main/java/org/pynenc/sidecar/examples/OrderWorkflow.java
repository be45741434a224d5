package org.pynenc.sidecar.examples;

import com.google.gson.JsonElement;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.pynenc.sidecar.wf.Client;
import org.pynenc.sidecar.wf.Context;
import org.pynenc.sidecar.wf.Dispatch;
import org.pynenc.sidecar.wf.Identity;
import org.pynenc.sidecar.wf.Invocation;
import org.pynenc.sidecar.wf.Json;

/**
 * The seed order workflow (examples/polyglot/order_workflow.py) in Java: its payment step is
 * dispatched to whichever worker serves {@code orders.process_payment} (the Go payment worker,
 * or {@link PolyglotWorker}), its inventory step to one serving {@code orders.reserve_inventory}
 * (the Python or TypeScript worker, or PolyglotWorker). README, "A task in any language".
 *
 * <pre>
 * java -cp sdk/java/target/pynenc-sidecar-client.jar org.pynenc.sidecar.examples.OrderWorkflow order-42 A-1
 * </pre>
 * (address: $PYNENC_SIDECAR_ADDRESS, default 127.0.0.1:50051; app: $PYNENC_APP_ID, default
 * "polyglot"). Prints {"result": ..., "replayed": ...} as JSON, as the Python one does. Run it
 * again with the same workflow id: it replays from the record and nothing is dispatched again.
 */
public final class OrderWorkflow {
  public static final String TYPE = "orders.process_order_workflow";
  /** A declined payment is retried twice; either step fails if no worker takes it in 2 minutes. */
  static final Dispatch PAYMENT = Dispatch.builder().maxAttempts(3).initialBackoff(Duration.ofMillis(500))
      .retryableErrorTypes("PaymentDeclined").scheduleToStartTimeout(Duration.ofMinutes(2)).build();
  static final Dispatch INVENTORY = Dispatch.builder().scheduleToStartTimeout(Duration.ofMinutes(2)).build();
  /** Python's datetime.isoformat() of a UTC time, as every SDK's example writes it. */
  static final DateTimeFormatter ISO =
      DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSSSS'+00:00'").withZone(ZoneOffset.UTC);

  private OrderWorkflow() {}

  record Item(String sku, int quantity) {}

  record Order(String order_id, List<Item> items) {}

  static Map<String, Object> processOrder(Context wf) {
    Order order = wf.arguments(Order.class);
    String trackingNumber = String.format("TRK-%s-%05d", order.order_id(), (int) (wf.random() * 100000));
    Invocation payment = wf.executeRemote("orders.process_payment", Map.of("order_id", order.order_id()), PAYMENT);
    Invocation inventory = wf.executeRemote("orders.reserve_inventory", Map.of("order_data", order), INVENTORY);
    Instant notificationTime = wf.utcNow().plus(Duration.ofHours(1));
    wf.setData("tracking_number", trackingNumber);
    wf.setData("notification_time", ISO.format(notificationTime));
    Map<String, Object> result = new LinkedHashMap<>();
    result.put("order_id", order.order_id());
    result.put("tracking_number", trackingNumber);
    // The workers' results as they are (a JsonElement keeps number text); a failed step throws
    // its TaskFailedException, which fails the workflow.
    result.put("payment_status", payment.result(JsonElement.class));
    result.put("inventory", inventory.result(JsonElement.class));
    result.put("notification_scheduled", ISO.format(notificationTime));
    return result;
  }

  public static void main(String[] args) {
    if (args.length < 1) {
      System.err.println("usage: OrderWorkflow WORKFLOW_ID [ORDER_ID]");
      System.exit(2);
    }
    String workflowId = args[0];
    String orderId = args.length > 1 ? args[1] : "A-1";
    String address = envOr("PYNENC_SIDECAR_ADDRESS", "127.0.0.1:50051");
    String app = envOr("PYNENC_APP_ID", "polyglot");
    Order order = new Order(orderId, List.of(new Item("sku-1", 2), new Item("sku-2", 1)));
    try (Client client = Client.connect(address)) {
      Invocation inv = client.startWorkflow(app, new Identity(workflowId, TYPE, ""), order, OrderWorkflow::processOrder);
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("result", inv.result(JsonElement.class)); // a failed workflow: its TaskFailedException, exit 1
      out.put("replayed", inv.replayed());
      System.out.println(Json.write(out));
    }
  }

  static String envOr(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
