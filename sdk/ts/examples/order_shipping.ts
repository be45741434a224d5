// The TypeScript half of a two-language run of the seed's order workflow
// (robust_processing_workflow, Pynenc workflow docs): this worker performs the shipping
// step (reserve_inventory, then generate_shipping_label) and completes the workflow; the
// Go worker sdk/go/examples/order_payment performs the payment step before it.
//
// Both workers run the same workflow code. The steps the Go worker already performed are
// replayed from the sidecar's record (their results come back; they are not run again).
// A worker that reaches a step it does not implement suspends (TaskSuspended), so the
// worker that does implement it takes over once the lease lapses.
//
//   (in sdk/go) go run ./examples/order_payment -address 127.0.0.1:50051 -app shop -workflow order-42
//   npm run build && node dist/examples/order_shipping.js --address 127.0.0.1:50051 --app shop --workflow order-42
import { parseArgs } from "node:util";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Client, Context, TaskSuspended, type TaskFn } from "../src/index.js";

const WORKFLOW_TYPE = "orders.robust_processing_workflow";

interface OrderData {
  order_id: string;
  customer_id: string;
  items: { id: string; quantity: number }[];
  total: number;
}

/** The order both workers start the workflow with (the same arguments, or NONDETERMINISTIC_REPLAY). */
function newOrder(orderId: string): OrderData {
  return {
    order_id: orderId,
    customer_id: "cust-1",
    items: [
      { id: "sku-1", quantity: 2 },
      { id: "sku-2", quantity: 1 },
    ],
    total: 59.9,
  };
}

/** A step another worker implements: give it back (the lease lapses and the owner takes over). */
const notMine =
  (step: string): TaskFn =>
  () => {
    throw new TaskSuspended(`${step} is the Go worker's step`);
  };

/** The seed's reserve_inventory. */
const reserveInventory =
  (order: OrderData): TaskFn =>
  async (task: Context) => {
    const reservationId = await task.uuid();
    const reservedAt = await task.utcNow();
    const reservedItems = [];
    for (const item of order.items) {
      reservedItems.push({ item_id: item.id, quantity: item.quantity, reservation_id: await task.uuid() });
    }
    return { reservation_id: reservationId, reserved_items: reservedItems, reserved_at: reservedAt.toISOString() };
  };

/** The seed's generate_shipping_label. */
const generateShippingLabel =
  (orderId: string, inventory: { reservation_id: string }): TaskFn =>
  async (task: Context) => {
    const suffix = String(Math.floor((await task.random()) * 100000)).padStart(5, "0");
    const labelId = await task.uuid();
    const generatedAt = await task.utcNow();
    return {
      label_id: labelId,
      tracking_number: `TRK-${orderId}-${suffix}`,
      order_id: orderId,
      reservation_id: inventory.reservation_id,
      generated_at: generatedAt.toISOString(),
    };
  };

/**
 * A recorded time as Go's time.RFC3339Nano writes it (UTC, microseconds, trailing zeros
 * trimmed): the Go worker writes `started_at` this way, and a data write replayed with
 * other text (Date's milliseconds) would be NONDETERMINISTIC_REPLAY.
 */
function rfc3339Nano(ts: Timestamp): string {
  const seconds = new Date(Number(ts.seconds) * 1000).toISOString().slice(0, 19);
  const fraction = String(Math.floor(ts.nanos / 1000)).padStart(6, "0").replace(/0+$/, "");
  return `${seconds}${fraction ? "." + fraction : ""}Z`;
}

/** The seed's robust_processing_workflow (main task). */
const workflow =
  (order: OrderData): TaskFn =>
  async (wf: Context) => {
    const startStamp = await wf.utcNowTimestamp();
    const workflowStart = timestampDate(startStamp);
    const orderId = order.order_id;
    await wf.setData("order_id", orderId);
    await wf.setData("started_at", rfc3339Nano(startStamp));
    await wf.setData("status", "processing");
    const args = { order_data: order };

    const validation = (await wf.executeTask("orders.validate_order", args, notMine("validate_order"))).result as {
      valid: boolean;
      errors: string[];
    };
    if (!validation.valid) {
      await wf.setData("status", "validation_failed");
      return { order_id: orderId, status: "failed", step: "validation", error: validation.errors };
    }
    const payment = (await wf.executeTask("orders.process_payment_with_retry", args, notMine("process_payment_with_retry")))
      .result as { payment_id: string };
    await wf.setData("payment_id", payment.payment_id);

    const inventory = (await wf.executeTask("orders.reserve_inventory", args, reserveInventory(order))).result as {
      reservation_id: string;
    };
    await wf.setData("reservation_id", inventory.reservation_id);
    const shipping = (
      await wf.executeTask(
        "orders.generate_shipping_label",
        { order_id: orderId, inventory_data: inventory },
        generateShippingLabel(orderId, inventory),
      )
    ).result as { tracking_number: string };

    await wf.setData("status", "completed");
    const completionTime = await wf.utcNow();
    return {
      order_id: orderId,
      status: "completed",
      payment_id: payment.payment_id,
      reservation_id: inventory.reservation_id,
      tracking_number: shipping.tracking_number,
      started_at: workflowStart.toISOString(),
      completed_at: completionTime.toISOString(),
      processing_time_seconds: (completionTime.getTime() - workflowStart.getTime()) / 1000,
    };
  };

async function main() {
  const { values } = parseArgs({
    options: {
      address: { type: "string", default: process.env.PYNENC_SIDECAR_ADDRESS ?? "" },
      app: { type: "string", default: "shop" },
      workflow: { type: "string", default: "" },
      "lease-ttl-ms": { type: "string", default: "2000" },
    },
  });
  if (!values.address || !values.workflow) {
    throw new Error("usage: order_shipping --address host:port --app APP --workflow WORKFLOW_ID");
  }
  const client = Client.connect(values.address, { leaseTtlMs: Number(values["lease-ttl-ms"]) });
  try {
    const order = newOrder(values.workflow);
    let out: Record<string, unknown>;
    try {
      const inv = await client.startWorkflow(
        values.app!,
        { workflowId: values.workflow, workflowType: WORKFLOW_TYPE },
        { order_data: order },
        workflow(order),
      );
      out = { worker: "ts", workflow_id: values.workflow, handed_off: false, ran: inv.ran, workflow_result: inv.result };
    } catch (err) {
      if (!(err instanceof TaskSuspended)) throw err;
      // reached a step the Go worker implements: it takes the workflow over from here
      out = { worker: "ts", workflow_id: values.workflow, handed_off: true, reason: err.message };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    client.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`order_shipping: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
