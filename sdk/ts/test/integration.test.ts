// Needs a running sidecar: PYNENC_SIDECAR_ADDRESS=host:port (skipped without).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client, Code, InvocationStatus, Reason, SidecarError, TaskFailedError, deriveRandom, deriveUuid, reasonOf } from "../src/index.js";

const address = process.env.PYNENC_SIDECAR_ADDRESS;
const unique = (prefix: string) => `${prefix}-${process.hrtime.bigint()}`;

async function rejection(promise: Promise<unknown>): Promise<SidecarError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SidecarError, `expected a SidecarError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a rejection");
}

describe("against a sidecar", { skip: address ? false : "PYNENC_SIDECAR_ADDRESS is not set" }, () => {
  let client: Client;
  before(() => {
    client = Client.connect(address!);
  });
  after(() => client.close());

  test("values replay identically and match the local derivations", async () => {
    const app = unique("ts-app");
    const id = { workflowId: unique("wf") };
    const first = client.context(app, id);
    const r1 = await first.random();
    const r2 = await first.random();
    const u1 = await first.uuid();
    const t1 = await first.utcNowTimestamp();
    const t2 = await first.utcNowTimestamp();
    assert.equal(r1, deriveRandom(id.workflowId, 1));
    assert.equal(r2, deriveRandom(id.workflowId, 2));
    assert.equal(u1, deriveUuid(id.workflowId, 1));
    assert.ok(t2.seconds * 1_000_000n + BigInt(t2.nanos / 1000) > t1.seconds * 1_000_000n + BigInt(t1.nanos / 1000));
    const again = client.context(app, id);
    assert.equal(await again.random(), r1);
    assert.equal(await again.random(), r2);
    assert.equal(await again.uuid(), u1);
    assert.deepEqual(await again.utcNowTimestamp(), t1);
    assert.equal(again.sequence("random"), 2);
  });

  test("concurrent calls on one context take consecutive sequences", async () => {
    const id = { workflowId: unique("wf") };
    const run = client.context(unique("ts-app"), id);
    const values = await Promise.all([run.random(), run.random(), run.random()]);
    assert.deepEqual(values, [1, 2, 3].map((s) => deriveRandom(id.workflowId, s)));
  });

  test("record runs the generator only when nothing is recorded", async () => {
    const app = unique("ts-app");
    const id = { workflowId: unique("wf") };
    let calls = 0;
    const gen = () => ({ n: ++calls * Math.random(), s: "ü" });
    const v1 = await client.context(app, id).record("sequence", gen);
    const v2 = await client.context(app, id).record("sequence", gen);
    assert.equal(calls, 1);
    assert.deepEqual(v2, v1);
    assert.equal(await client.context(app, id).record("nothing", () => null), null);
    assert.equal(await client.context(app, id).record("nothing", () => 1), null, "a recorded null replays");
  });

  test("executeTask runs once, replays, and detects a diverging replay", async () => {
    const app = unique("ts-app");
    const id = { workflowId: unique("wf") };
    let runs = 0;
    const double = async (task: import("../src/index.js").Context) => {
      runs++;
      return { y: 42, r: await task.random(), scope: task.invocationId };
    };
    const first = client.context(app, id);
    const inv = await first.executeTask("tests.double", { x: 21.0 }, double);
    assert.ok(inv.ran && !inv.replayed);
    assert.equal(inv.status, InvocationStatus.SUCCESS);
    assert.equal(inv.argumentsJson, '{"x":21}');
    assert.equal(inv.workflow.workflowId, id.workflowId);
    assert.equal(inv.parentInvocationId, id.workflowId);
    assert.deepEqual(inv.result, { y: 42, r: deriveRandom(inv.id, 1), scope: inv.id });
    const second = await first.executeTask("tests.double", { x: 21 }, double);
    assert.notEqual(second.id, inv.id, "two identical calls are two invocations");
    const replay = client.context(app, id);
    const again = await replay.executeTask("tests.double", { x: 21 }, double);
    assert.ok(!again.ran && again.replayed);
    assert.equal(again.id, inv.id);
    assert.equal(again.resultJson, inv.resultJson);
    assert.equal(runs, 2);
    const err = await rejection(replay.executeTask("tests.other", {}, double));
    assert.equal(err.code, Code.FailedPrecondition);
    assert.equal(err.reason, Reason.NONDETERMINISTIC_REPLAY);
    assert.equal(err.domain, "sidecar.pynenc.org");
    assert.equal(err.metadata.recorded_task_id, "tests.double");
    assert.equal(err.metadata.requested_task_id, "tests.other");
    assert.equal(replay.sequence("task"), 1, "a failed call does not advance the sequence");
  });

  test("a failing task records its error; forceNewWorkflow gives the child its own workflow", async () => {
    const app = unique("ts-app");
    const id = { workflowId: unique("wf") };
    const run = client.context(app, id);
    const failed = await run.executeTask("tests.fail", {}, () => {
      throw new RangeError("boom");
    });
    assert.throws(() => failed.result, (e: unknown) => e instanceof TaskFailedError && e.type === "RangeError" && e.message === "boom");
    const child = await run.executeTask(
      "tests.child_wf",
      { a: 1 },
      async (task) => {
        assert.ok(task.isMainTask);
        await task.setData("k", "v");
        return null;
      },
      { forceNewWorkflow: true },
    );
    assert.equal(child.result, null);
    assert.equal(child.workflow.workflowId, child.id);
    assert.equal(child.workflow.parentWorkflowId, id.workflowId);
  });

  test("workflow data: main task writes, tasks read, others are denied", async () => {
    const app = unique("ts-app");
    const id = { workflowId: unique("wf") };
    const main = client.context(app, id);
    await main.setData("tracking", { n: "TRK-1" });
    await main.setData("none", null);
    assert.deepEqual(await main.getData("tracking"), { n: "TRK-1" });
    assert.equal(await main.getData("none"), null);
    assert.equal(await main.getData("missing"), undefined);
    const inv = await main.executeTask("tests.writer", {}, async (task) => {
      const read = await task.getData<{ n: string }>("tracking");
      const reason = await task.setData("tracking", "overwritten").then(() => "", reasonOf);
      return { read: read?.n, reason };
    });
    assert.deepEqual(inv.result, { read: "TRK-1", reason: Reason.WORKFLOW_ACCESS_DENIED });
  });

  test("a lapsed lease is taken over; the dead holder's lease is gone", async () => {
    const app = unique("ts-app");
    const id = { workflowId: unique("wf") };
    const dead = await client.executor.executeTask({
      position: { appId: app, workflow: { workflowId: id.workflowId }, sequence: 1n },
      taskId: "tests.slow",
      argumentsJson: "{}",
      leaseTtl: { seconds: 1n },
    });
    assert.ok(dead.lease);
    const start = Date.now();
    const inv = await client.context(app, id).executeTask("tests.slow", {}, () => "taken over");
    assert.ok(inv.ran);
    assert.equal(inv.result, "taken over");
    assert.ok(Date.now() - start >= 500);
    const err = await rejection(
      client.executor.renewTaskLease({ appId: app, invocationId: inv.id, leaseId: dead.lease.leaseId }).catch((e) => {
        throw SidecarError.from(e);
      }),
    );
    assert.equal(err.reason, Reason.LEASE_NOT_HELD);
  });

  test("the lease is renewed while a long task runs; a second caller waits", async () => {
    const runner = Client.connect(address!, { leaseTtlMs: 2000, runnerId: "runner" });
    const waiter = Client.connect(address!, { leaseTtlMs: 2000, runnerId: "waiter" });
    try {
      const app = unique("ts-app");
      const id = { workflowId: unique("wf") };
      let waited: Promise<import("../src/index.js").Invocation> | undefined;
      const inv = await runner.context(app, id).executeTask("tests.long", {}, async () => {
        waited = waiter.context(app, id).executeTask("tests.long", {}, () => "ran twice");
        await new Promise((r) => setTimeout(r, 3500));
        return "once";
      });
      const other = await waited!;
      assert.equal(inv.result, "once");
      assert.ok(!other.ran);
      assert.equal(other.result, "once");
    } finally {
      runner.close();
      waiter.close();
    }
  });

  test("INVALID_ARGUMENT names the field", async () => {
    const err = await rejection(client.context("", { workflowId: "wf" }).random());
    assert.equal(err.code, Code.InvalidArgument);
    assert.equal(err.fieldViolations[0]?.field, "position.app_id");
  });

  test("startWorkflow runs the main task once and replays it", async () => {
    const app = unique("ts-app");
    const id = { workflowId: unique("order"), workflowType: "tests.order_workflow" };
    const main = async (wf: import("../src/index.js").Context) => {
      const r = await wf.random();
      await wf.setData("r", r);
      return { r };
    };
    const inv = await client.startWorkflow(app, id, { order_id: "1" }, main);
    assert.ok(inv.ran);
    assert.equal(inv.id, id.workflowId);
    const again = await client.startWorkflow(app, id, { order_id: "1" }, main);
    assert.ok(!again.ran && again.replayed);
    assert.equal(again.resultJson, inv.resultJson);
    const err = await rejection(client.startWorkflow(app, id, { order_id: "2" }, main));
    assert.equal(err.reason, Reason.NONDETERMINISTIC_REPLAY);
  });
});
