// The dispatch worker loop (src/worker.ts) and dispatched executeTask against a real sidecar:
// PYNENC_SIDECAR_ADDRESS=host:port (skipped without; tests/test_ts_dispatch.py runs it on
// both stores).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Client, Invocation, InvocationStatus, TaskFailedError, Worker, describeWait, type Context } from "../src/index.js";
import { TaskErrorSchema } from "../src/gen/pynenc/sidecar/v1/common_pb.js";
import { TaskInvocationSchema } from "../src/gen/pynenc/sidecar/v1/deterministic_executor_pb.js";

const address = process.env.PYNENC_SIDECAR_ADDRESS;
const unique = (prefix: string) => `${prefix}-${process.hrtime.bigint()}`;
const quiet = { log: () => {} };

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe("dispatch worker against a sidecar", { skip: address ? false : "PYNENC_SIDECAR_ADDRESS is not set" }, () => {
  let client: Client;
  before(() => {
    client = Client.connect(address!, quiet);
  });
  after(() => client.close());

  test("a dispatched task runs in a worker; the replay dispatches nothing", async () => {
    const app = unique("ts-dispatch");
    const runs: string[] = [];
    const worker = new Worker(client, app, {
      "ts.double": async (task: Context) => {
        runs.push(task.invocationId);
        const { n } = task.arguments<{ n: number }>();
        return { doubled: n * 2, id: await task.uuid() };
      },
    }, { pollTimeoutMs: 1000 });
    const serving = worker.run();
    const workflow = { workflowId: unique("wf"), workflowType: "ts.order" };
    const order = (wf: Context) => wf.executeTask("ts.double", { n: 21 }).then((inv) => inv.result);
    const first = await client.startWorkflow(app, workflow, {}, order);
    assert.equal(first.status, InvocationStatus.SUCCESS);
    const result = first.result as { doubled: number; id: string };
    assert.equal(result.doubled, 42);
    assert.equal(runs.length, 1);
    await worker.stop();
    assert.equal(await serving, undefined);
    assert.equal(worker.completed, 1);

    // No worker now: a replay that dispatched again would wait; it returns the record.
    const replay = await client.startWorkflow(app, workflow, {}, order);
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.result, result);
    // The task position itself replays: the recorded invocation comes back, nothing queued.
    const again = await client.context(app, workflow).executeTask("ts.double", { n: 21 });
    assert.equal(again.replayed, true);
    assert.equal(again.dispatched, true);
    assert.deepEqual(again.result, result);
    assert.equal(runs.length, 1);
  });

  test("a failed attempt is retried per the caller's policy and its failure reaches the caller", async () => {
    const app = unique("ts-dispatch");
    let attempts = 0;
    const worker = new Worker(client, app, {
      "ts.flaky": async () => {
        attempts++;
        const err = new Error(`declined #${attempts}`);
        err.name = "PaymentDeclined";
        throw err;
      },
    }, { pollTimeoutMs: 1000 });
    const serving = worker.run();
    const inv = await client.context(app, { workflowId: unique("wf") })
      .executeTask("ts.flaky", {}, undefined, { dispatch: { maxAttempts: 2, initialBackoffMs: 50, retryOn: ["PaymentDeclined"] } });
    await worker.stop();
    await serving;
    assert.equal(attempts, 2);
    assert.equal(inv.status, InvocationStatus.FAILED);
    assert.equal(inv.dispatched, true);
    assert.ok(inv.failure instanceof TaskFailedError);
    assert.equal(inv.failure.type, "PaymentDeclined");
    assert.equal(inv.failure.message, "declined #2");
  });

  test("the worker runs at most `concurrency` invocations at once", async () => {
    const app = unique("ts-dispatch");
    let now = 0;
    let most = 0;
    const worker = new Worker(client, app, {
      "ts.slow": async () => {
        most = Math.max(most, ++now);
        await sleep(150);
        now--;
        return "done";
      },
    }, { concurrency: 2, pollTimeoutMs: 1000 });
    const serving = worker.run();
    const caller = client.context(app, { workflowId: unique("wf") });
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => caller.executeTask("ts.slow", { i })));
    await worker.stop();
    await serving;
    assert.deepEqual(results.map((inv) => inv.result), Array(6).fill("done"));
    assert.equal(most, 2, "two slots, both used, never more");
    assert.equal(worker.completed, 6);
  });

  test("stopping lets a running task finish within the grace", async () => {
    const app = unique("ts-dispatch");
    const started: string[] = [];
    const worker = new Worker(client, app, {
      "ts.short": async (task: Context) => {
        started.push(task.invocationId);
        await sleep(300);
        return "finished";
      },
    }, { pollTimeoutMs: 1000, shutdownGraceMs: 10_000 });
    const serving = worker.run();
    const pending = client.context(app, { workflowId: unique("wf") }).executeTask("ts.short", {});
    await until("the task to start", () => started.length === 1);
    await worker.stop();
    await serving;
    assert.equal(worker.completed, 1);
    assert.equal(worker.handedBack, 0);
    assert.equal((await pending).result, "finished");
  });

  test("past the grace, a stopping worker hands its task back and another worker completes it once", async () => {
    const app = unique("ts-dispatch");
    const seen: string[] = [];
    let aborted = false;
    const stubborn = new Worker(client, app, {
      "ts.long": async (task: Context, signal: AbortSignal) => {
        seen.push(`stubborn:${task.invocationId}`);
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        aborted = true;
        return "too late"; // handed back: never recorded
      },
    }, { pollTimeoutMs: 1000, shutdownGraceMs: 200 });
    const serving = stubborn.run();
    const pending = client.context(app, { workflowId: unique("wf") }).executeTask("ts.long", {});
    await until("the first worker to take the task", () => seen.length === 1);
    await stubborn.stop();
    await serving;
    assert.equal(aborted, true, "the task's signal told it to stop");
    assert.equal(stubborn.handedBack, 1);
    assert.equal(stubborn.completed, 0);

    // Handed back at once: a new worker takes it now, well before the 30 s lease would lapse.
    const successor = new Worker(client, app, {
      "ts.long": async (task: Context) => {
        seen.push(`successor:${task.invocationId}`);
        return "completed by the successor";
      },
    }, { pollTimeoutMs: 1000 });
    const successorServing = successor.run();
    const inv = await pending;
    await successor.stop();
    await successorServing;
    assert.equal(inv.result, "completed by the successor");
    assert.equal(inv.attempt, 1, "a hand-back is not a failed attempt");
    assert.deepEqual(seen.map((s) => s.split(":")[0]), ["stubborn", "successor"]);
  });

  test("stop() before a task arrives ends the long poll at once", async () => {
    const worker = new Worker(client, unique("ts-dispatch"), { "ts.none": () => null }, { pollTimeoutMs: 60_000 });
    const serving = worker.run();
    await sleep(200); // the poll is in flight
    const started = Date.now();
    await worker.stop();
    await serving;
    assert.ok(Date.now() - started < 5_000, `stop took ${Date.now() - started} ms`);
  });
});

test("a worker refuses a configuration the sidecar would refuse", () => {
  const client = Client.connect("127.0.0.1:1", quiet);
  try {
    assert.throws(() => new Worker(client, "app", {}), /serves 1\.\.100 task ids, not 0/);
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`t${i}`, () => null]));
    assert.throws(() => new Worker(client, "app", many), /serves 1\.\.100 task ids, not 101/);
    assert.throws(() => new Worker(client, "app", { t: () => null }, { concurrency: 0 }), /concurrency must be an integer of at least 1, not 0/);
  } finally {
    client.close();
  }
});

test("a caller waiting for a dispatched task says so in the words of every SDK", () => {
  const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const state = (fields: object) =>
    new Invocation(create(TaskInvocationSchema, { invocationId: "inv-1", taskId: "orders.pay", workflow: { workflowId: "wf-1" }, dispatched: true, ...fields }));
  const prefix = "waiting for task orders.pay (invocation inv-1, workflow wf-1), dispatched to a worker serving it: ";
  assert.equal(describeWait(state({ queueTime: timestampFromMs(now.getTime() - 2500) }), now), prefix + "queued since 2026-01-02T03:04:02.500Z (2.5 s)");
  const retried = state({ queueTime: timestampFromMs(now.getTime() + 1000), attempt: 1, lastError: create(TaskErrorSchema, { type: "Boom" }) });
  assert.equal(describeWait(retried, now), prefix + "to be retried at 2026-01-02T03:04:06.000Z (attempt 1 failed: Boom)");
  const running = state({ status: InvocationStatus.RUNNING, leaseRunnerId: "w-1", attempt: 2 });
  assert.equal(describeWait(running, now), prefix + 'attempt 2 runs on runner "w-1"');
});
