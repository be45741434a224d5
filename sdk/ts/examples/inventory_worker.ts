// Serves the polyglot order example's "orders.reserve_inventory" task (examples/polyglot,
// docs/client-contract.md "Dispatch"): it long-polls the sidecar for dispatched
// reservations and runs each under its lease, until SIGTERM or SIGINT, when it shuts down
// gracefully (finishes what it runs for the grace, hands back the rest) and exits 0.
//
//   npm run build && node dist/examples/inventory_worker.js --address 127.0.0.1:50051 --app polyglot
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Client, DISPATCH, Worker, type Context } from "../src/index.js";

const { values: flags } = parseArgs({
  options: {
    address: { type: "string", default: process.env.PYNENC_SIDECAR_ADDRESS || "127.0.0.1:50051" },
    app: { type: "string", default: process.env.PYNENC_APP_ID || "polyglot" },
    concurrency: { type: "string", default: "4" },
    "lease-ttl": { type: "string", default: "30" },
    "delay-ms": { type: "string", default: "0" },
    "grace-ms": { type: "string", default: String(DISPATCH.shutdownGraceMsDefault) },
  },
});

interface OrderData {
  order_id?: string;
  items?: { sku?: string; quantity?: number }[];
}

/** Python's isoformat of a UTC datetime: microseconds and "+00:00", as the other workers write it. */
function isoMicros(t: Timestamp): string {
  const date = new Date(Number(t.seconds) * 1000).toISOString().slice(0, 19);
  return `${date}.${String(Math.floor(t.nanos / 1000)).padStart(6, "0")}+00:00`;
}

/** The same work as the Python worker's reserve_inventory. */
async function reserveInventory(task: Context, signal: AbortSignal): Promise<unknown> {
  const { order_data: order } = task.arguments<{ order_data: OrderData }>();
  const reservationId = await task.uuid();
  const reservedAt = await task.utcNowTimestamp();
  const delay = Number(flags["delay-ms"]);
  if (delay > 0) await sleep(delay, undefined, { signal });
  return {
    reservation_id: reservationId,
    order_id: order.order_id,
    reserved_items: (order.items ?? []).map((item) => ({ sku: item.sku, quantity: item.quantity ?? 1 })),
    reserved_at: isoMicros(reservedAt),
  };
}

const client = Client.connect(flags.address, { leaseTtlMs: Number(flags["lease-ttl"]) * 1000 });
const worker = new Worker(client, flags.app, { "orders.reserve_inventory": reserveInventory }, {
  concurrency: Number(flags.concurrency),
  shutdownGraceMs: Number(flags["grace-ms"]),
});
const stop = () => void worker.stop();
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
console.error(`inventory worker: serving orders.reserve_inventory of app ${flags.app} at ${flags.address}`);
await worker.run();
client.close();
console.error("inventory worker: stopped");
