// The TypeScript side of tests/test_cross_language.py: performs one step of the shared
// cross-language scenario against a sidecar and prints the outcome as one JSON object.
// Twin of sdk/go/internal/xlang (same commands, same output).
//
//   node dist/tools/xlang.js run      --address A --app APP --workflow WF
//   node dist/tools/xlang.js lease    --address A --app APP --workflow WF --ttl-ms 1000
//   node dist/tools/xlang.js complete --address A --app APP --invocation ID --lease LEASE
//   node dist/tools/xlang.js takeover --address A --app APP --workflow WF
//   node dist/tools/xlang.js errors   --address A --app APP --workflow WF
//   node dist/tools/xlang.js flow     --address A --app APP --workflow WF --fixed false  the second task fails unless fixed
//   node dist/tools/xlang.js retry    --address A --app APP --workflow WF --fixed true   RetryWorkflow, then the flow
//   node dist/tools/xlang.js oversize --address A --app APP --workflow WF --bytes N      a child returning N bytes
//   node dist/tools/xlang.js nested   --address A --app APP --workflow WF   a custom op calling other ops
//   node dist/tools/xlang.js visits   --address A --app APP --workflow WF
//   node dist/tools/xlang.js diverge  --address A --app APP --workflow WF --value V
//   node dist/tools/xlang.js notify   --address A --app APP --workflow WF [--notify yes]
//   node dist/tools/xlang.js state    --address A --app APP --workflow WF
//     (TypeScript only: the workflow as StateBackendService shows it, see docs/pynenc-state.md)
//   node dist/tools/xlang.js bench-replay --address A --ops N [--repeats 5]
//     {"record_ms", "replay_ms"}: N random operations recorded in a fresh workflow, then
//     replayed from its log (the median of the repeats)
//   node dist/tools/xlang.js lease-loss --address A --app APP --workflow WF --ttl-ms 1000
//     the contract's lease-loss scenario: a main task calling random until its lease is taken over
//   node dist/tools/xlang.js takeover-scenario --address A --app APP --workflow WF
//     the contract's takeover scenario: wait for a dead holder's main task, take it over, replay
//   node dist/tools/xlang.js batch-flow --address A --app APP --workflow WF
//     buffered operations: 19 operations around one task call, in four calls (docs/client-contract.md)
//   node dist/tools/xlang.js batch-race --address A --app APP --workflow WF --dir D [--ttl-ms T]
//     a custom op and a data write buffered, then D/ready, wait for D/go, then a blocking read
//   node dist/tools/xlang.js batch-stall --address A --app APP --workflow WF --dir D --ttl-ms T
//     custom op "first" and a data write committed with a task call, "second" and another write
//     buffered, then D/ready, wait for D/go, then a blocking read (refused: the lease was lost)
// run, nested, visits and diverge read the workflow's log first (Client.contextFromLog): a
// replay of them makes that one call and serves every recorded position locally.
import { parseArgs } from "node:util";
import { randomInt, randomUUID } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client, Context, Invocation, InvocationStatus, OperationInGeneratorError, SidecarError, type Identity } from "../src/index.js";
import { StateBackendService } from "../src/gen/pynenc/sidecar/v1/state_backend_pb.js";

const LANG = "ts";

function taskSummary(inv: Invocation) {
  return {
    invocation_id: inv.id,
    task_id: inv.taskId,
    arguments_json: inv.argumentsJson,
    status: `INVOCATION_STATUS_${InvocationStatus[inv.status]}`,
    result: inv.resultJson ? JSON.parse(inv.resultJson) : null,
    ran: inv.ran,
    replayed: inv.replayed,
  };
}

async function scenario(run: Context) {
  const random = [await run.random(), await run.random()];
  const uuid = [await run.uuid()];
  const time_us: bigint[] = [];
  for (let i = 0; i < 2; i++) {
    const t = await run.utcNowTimestamp();
    time_us.push(t.seconds * 1_000_000n + BigInt(Math.floor(t.nanos / 1000)));
  }
  const pick = await run.record("pick", () => ({ lang: LANG, n: randomInt(1_000_000) }));
  const double = await run.executeTask("xlang.double", { x: 21, label: "ünï" }, async (task) => ({
    y: 42,
    r: await task.random(),
    u: await task.uuid(),
    lang: LANG,
  }));
  const greet = await run.executeTask("xlang.greet", { name: "wörld" }, () => ({ greeting: "hello wörld", lang: LANG }));
  await run.setData("summary", { r1: random[0], uuid: uuid[0] });
  const data = await run.getData("summary");
  return { lang: LANG, random, uuid, time_us, pick, tasks: [taskSummary(double), taskSummary(greet)], data };
}

async function reasons(client: Client, app: string, id: Identity) {
  const out: Record<string, unknown> = {};
  const note = async (name: string, promise: Promise<unknown>) => {
    try {
      await promise;
      out[name] = null;
    } catch (err) {
      const e = SidecarError.from(err);
      const entry: Record<string, unknown> = { code: e.code, reason: e.reason, domain: e.domain };
      if (e.fieldViolations.length > 0) entry.field = e.fieldViolations[0]!.field;
      out[name] = entry;
    }
  };
  await client.context(app, id).executeTask("xlang.first", {}, () => 1);
  const noRun = () => {
    throw new Error("must not run");
  };
  // Read from the log, the recorded call is another one: the sidecar is asked, and refuses.
  await note("nondeterministic", (await client.contextFromLog(app, id)).executeTask("xlang.second", {}, noRun));
  await note("access_denied", client.context(app, id, "some-task").setData("k", 1));
  await note("not_found", client.executor.renewTaskLease({ appId: app, invocationId: "no-such-invocation", leaseId: "x" }));
  const first = await client.context(app, id).executeTask("xlang.first", {}, noRun);
  await note("lease_not_held", client.executor.renewTaskLease({ appId: app, invocationId: first.id, leaseId: "not-mine" }));
  await note("invalid_argument", client.context(app, { workflowId: "" }).random());
  return out;
}

/** A task failure with the same type name in every language. */
class XlangBroken extends Error {
  override readonly name = "XlangBroken";
}

function failure(inv: Invocation) {
  return inv.failure ? { type: inv.failure.type, message: inv.failure.message, traceback: inv.failure.traceback } : null;
}

function outcome(inv: Invocation, ran: string[]) {
  return {
    status: `INVOCATION_STATUS_${InvocationStatus[inv.status]}`,
    error: failure(inv),
    result: inv.resultJson ? JSON.parse(inv.resultJson) : null,
    ran,
  };
}

/** xlang.first, then xlang.second, which fails until fixed. */
async function flow(client: Client, app: string, workflowId: string, fixed: boolean, reset?: Invocation[]) {
  const ran: string[] = [];
  const inv = await client.startWorkflow(app, { workflowId, workflowType: "xlang.retry_flow" }, {}, async (main) => {
    const first = await main.executeTask("xlang.first", {}, async (task) => {
      ran.push("first");
      return { r: await task.random(), lang: LANG };
    });
    const second = await main.executeTask("xlang.second", {}, () => {
      ran.push("second");
      if (!fixed) throw new XlangBroken(`broken in ${LANG}`);
      return { fixed_by: LANG };
    });
    return { first: first.result, second: second.result };
  });
  const out: Record<string, unknown> = outcome(inv, ran);
  if (reset) out.reset = reset.map((r) => `${r.taskId}:INVOCATION_STATUS_${InvocationStatus[r.status]}`);
  return out;
}

/** A child returning a string of n bytes; the parent returns the child's result. */
async function oversize(client: Client, app: string, workflowId: string, n: number) {
  const ran: string[] = [];
  let child: Invocation | undefined;
  const inv = await client.startWorkflow(app, { workflowId, workflowType: "xlang.big_flow" }, {}, async (main) => {
    child = await main.executeTask("xlang.big", {}, () => {
      ran.push("big");
      return "x".repeat(n);
    });
    return (child.result as string).length;
  });
  const out: Record<string, unknown> = outcome(inv, ran);
  if (child) out.child = { status: `INVOCATION_STATUS_${InvocationStatus[child.status]}`, error: failure(child) };
  return out;
}

/**
 * The client contract's nested-operation scenario: an operation inside a custom operation's
 * generator is refused (OPERATION_IN_GENERATOR) and takes no position.
 */
async function nested(run: Context) {
  const refused = await run.record("refused", () => run.random()).then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(refused instanceof OperationInGeneratorError)) throw new Error(`want OperationInGeneratorError, got ${refused}`);
  const r = await run.random();
  const outer = await run.record("outer", () => ({ r, lang: LANG }));
  const after = await run.random();
  const sequences = Object.fromEntries(["random", "custom:outer", "custom:refused"].map((k) => [k, run.sequence(k)]));
  return { refused: refused.reason, outer, after, sequences, lang: LANG };
}

/** Issue 11's read-modify-write of workflow data: replayed, it reads and writes nothing new. */
async function visits(run: Context) {
  const n = ((await run.getData<number>("visits")) ?? 0) + 1;
  await run.setData("visits", n);
  return { n };
}

async function diverge(run: Context, value: string) {
  try {
    await run.setData("counter", JSON.parse(value));
    return { error: null };
  } catch (err) {
    const e = SidecarError.from(err);
    return { error: e.reason, message: e.message };
  }
}

/** A workflow whose newer code (notify) adds a task after its recorded step. */
async function notifyFlow(client: Client, app: string, id: Identity, notify: boolean) {
  const ran: string[] = [];
  const inv = await client.startWorkflow(app, { ...id, workflowType: "xlang.notify_flow" }, {}, async (main) => {
    ran.push("flow");
    const step = await main.executeTask("xlang.step", {}, () => {
      ran.push("step");
      return 41;
    });
    if (notify) {
      await main.executeTask("xlang.notify", {}, () => {
        ran.push("notify");
        return "sent";
      });
    }
    return (step.result as number) + 1;
  });
  return { result: JSON.parse(inv.resultJson), ran, replayed: inv.replayed };
}

// Every invocation of the workflow with its call, history and outcome, read through
// StateBackendService, plus the workflow's runs of its type and sub-invocations.
async function workflowState(address: string, app: string, workflowId: string) {
  const sb = createClient(StateBackendService, createGrpcTransport({ baseUrl: `http://${address}` }));
  const ids = (await sb.listInvocationIdsByWorkflow({ appId: app, workflowId })).invocationIds;
  const invocations: Record<string, unknown> = {};
  let workflowType = "";
  for (const invocationId of ids) {
    const inv = (await sb.getInvocation({ appId: app, invocationId })).invocation!;
    if (invocationId === workflowId) workflowType = inv.workflow?.workflowType ?? "";
    const history = (await sb.getHistory({ appId: app, invocationId })).history;
    const last = history[history.length - 1]?.status;
    let outcome: unknown = null;
    if (last === InvocationStatus.SUCCESS) {
      outcome = JSON.parse((await sb.getResult({ appId: app, invocationId })).resultJson);
    } else if (last === InvocationStatus.FAILED) {
      outcome = (await sb.getException({ appId: app, invocationId })).exception?.type ?? "";
    }
    invocations[invocationId] = {
      task_id: inv.taskId,
      call_id: inv.callId,
      arguments: Object.fromEntries(Object.entries(inv.serializedArguments).map(([k, v]) => [k, JSON.parse(v)])),
      parent_invocation_id: inv.parentInvocationId,
      workflow_type: inv.workflow?.workflowType ?? "",
      history: history.map((h) => [`INVOCATION_STATUS_${InvocationStatus[h.status]}`, h.runnerId]),
      outcome,
    };
  }
  const runs = (await sb.listWorkflowRuns({ appId: app, workflowType, pageSize: 1000 })).workflows;
  const subs = (await sb.listWorkflowSubInvocations({ appId: app, workflowId })).invocationIds;
  return {
    workflow_type: workflowType,
    listed_as_run: runs.some((r) => r.workflowId === workflowId),
    sub_invocations: subs,
    invocations,
  };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * The client contract's lease-loss scenario (tests/test_client_contract.py): the main task
 * calls random until an operation fails; the test takes its lease over meanwhile. The run must
 * be told (its signal aborted), stop (its next operation LEASE_NOT_HELD), not complete, and
 * report the new holder's outcome.
 */
async function leaseLoss(client: Client, app: string, id: Identity) {
  let stoppedBy = "";
  let signalled = false;
  const inv = await client.startWorkflow(app, { ...id, workflowType: "contract.lease_loss" }, {}, async (main, signal) => {
    for (let i = 0; i < 1200; i++) {
      try {
        await main.random();
      } catch (err) {
        stoppedBy = SidecarError.from(err).reason;
        signalled = signal.aborted;
        throw err;
      }
      await sleep(50, signal);
    }
    return { completed_by: LANG };
  });
  return { ...outcomeOf(inv), stopped_by: stoppedBy, signalled, lang: LANG };
}

/**
 * The client contract's takeover scenario: the test held the main task's lease, recorded a
 * custom op "pick" and a time, and died; this run waits, takes the task over once that lease
 * lapses and runs it from the top, replaying what the dead holder recorded.
 */
async function takeoverScenario(client: Client, app: string, id: Identity) {
  const inv = await client.startWorkflow(app, { ...id, workflowType: "contract.takeover" }, {}, async (main) => {
    const pick = () => main.record("pick", () => ({ by: LANG }));
    const first = await pick();
    const at = await main.utcNowTimestamp();
    const r = await main.random();
    const second = await pick();
    return { picks: [first, second], time_us: Number(at.seconds * 1_000_000n + BigInt(Math.floor(at.nanos / 1000))), r, lang: LANG };
  });
  return { ...outcomeOf(inv), lang: LANG };
}

function outcomeOf(inv: Invocation) {
  return {
    status: `INVOCATION_STATUS_${InvocationStatus[inv.status]}`,
    result: inv.resultJson ? JSON.parse(inv.resultJson) : null,
    ran: inv.ran,
  };
}

const micros = (t: { seconds: bigint; nanos: number }) => Number(t.seconds * 1_000_000n + BigInt(Math.floor(t.nanos / 1000)));

/** Buffered operations: everything before the task call travels with ExecuteTask, the rest with CompleteTask. */
async function batchFlow(client: Client, app: string, id: Identity) {
  const inv = await client.startWorkflow(app, { ...id, workflowType: "contract.batch_flow" }, {}, async (main) => {
    const random = [];
    for (let i = 0; i < 5; i++) random.push(await main.random());
    const uuid = [];
    for (let i = 0; i < 3; i++) uuid.push(await main.uuid());
    const time_us = [];
    for (let i = 0; i < 3; i++) time_us.push(micros(await main.utcNowTimestamp()));
    const custom = await main.record("pick", () => ({ k: [1, 2] }));
    await main.setData("stage", "before-child");
    const child = await main.executeTask("contract.batch_child", { n: 7 }, async (task) => [
      await task.random(),
      await task.random(),
      await task.random(),
      7,
    ]);
    await main.setData("stage", "after-child");
    const late = [await main.random(), micros(await main.utcNowTimestamp())];
    return { random, uuid, time_us, custom, child: child.result, late };
  });
  return { ...outcomeOf(inv), lang: LANG };
}

/** A custom op and a data write buffered; the blocking read waits for the test's go-ahead. */
async function batchRace(client: Client, app: string, id: Identity, dir: string) {
  const generated: string[] = [];
  let runs = 0;
  const inv = await client.startWorkflow(app, { ...id, workflowType: "contract.batch_race" }, {}, async (main) => {
    runs++;
    const pick = await main.record("pick", () => {
      generated.push("gen");
      return { by: LANG };
    });
    await main.setData("by", LANG);
    await readyThenGo(dir);
    await main.getData("k"); // the blocking point: the buffer travels with it
    return { pick, lang: LANG };
  });
  return { ...outcomeOf(inv), generated, runs, lang: LANG };
}

/**
 * A worker that lost its lease cannot commit: "first" and data "by" are committed with a task
 * call, "second" and data "late" buffered; while the run waits for the test's go-ahead the test
 * takes its lease over, so the read's commit is refused (LEASE_NOT_HELD) and the run waits for
 * the new holder's outcome.
 */
async function batchStall(client: Client, app: string, id: Identity, dir: string) {
  let stoppedBy = "";
  const inv = await client.startWorkflow(app, { ...id, workflowType: "contract.batch_stall" }, {}, async (main) => {
    await main.record("first", () => ({ by: LANG }));
    await main.setData("by", LANG);
    await main.executeTask("contract.batch_step", {}, () => 1);
    await main.record("second", () => ({ by: LANG }));
    await main.setData("late", LANG);
    await readyThenGo(dir);
    try {
      await main.getData("by");
    } catch (err) {
      stoppedBy = SidecarError.from(err).reason;
      throw err;
    }
    return { completed_by: LANG };
  });
  return { ...outcomeOf(inv), stopped_by: stoppedBy, lang: LANG };
}

/** Creates dir/ready, then waits for the test to create dir/go. */
async function readyThenGo(dir: string) {
  writeFileSync(join(dir, "ready"), "");
  while (!existsSync(join(dir, "go"))) await new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * Records `ops` random values in a fresh workflow, then replays them `repeats` times, each
 * from a fresh read of its log (one call): replay_ms is the median replay, as bench/run.py
 * takes the median of the Python SDK's (a first replay also pays the JIT's warm-up).
 */
async function benchReplay(client: Client, app: string, ops: number, repeats: number) {
  const id: Identity = { workflowId: `bench-replay-ts-${randomUUID()}` };
  // Recorded as a workflow's main task: buffered, committed with its completion.
  let start = performance.now();
  const recorded: number[] = [];
  await client.startWorkflow(app, { ...id, workflowType: "bench.replay" }, {}, async (main) => {
    for (let i = 0; i < ops; i++) recorded.push(await main.random());
    return ops;
  });
  const recordMs = performance.now() - start;
  // Besides the whole replay: its log read (the call, decoding and indexing), and a bare
  // GetWorkflowLog stream (the call and decoding alone), for BENCHMARKS.md's breakdown.
  const replays: number[] = [], logReads: number[] = [], calls: number[] = [];
  for (let r = 0; r < repeats; r++) {
    start = performance.now();
    const again = await client.contextFromLog(app, id);
    logReads.push(performance.now() - start);
    for (let i = 0; i < ops; i++) {
      if ((await again.random()) !== recorded[i]) throw new Error(`replay diverged at random #${i + 1}`);
    }
    replays.push(performance.now() - start);
    start = performance.now();
    for await (const batch of client.executor.getWorkflowLog({ appId: app, workflowId: id.workflowId })) void batch;
    calls.push(performance.now() - start);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { record_ms: recordMs, replay_ms: median(replays), first_op_ms: median(logReads), log_call_ms: median(calls) };
}

async function main() {
  const [command, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: {
      address: { type: "string", default: process.env.PYNENC_SIDECAR_ADDRESS ?? "" },
      app: { type: "string", default: "" },
      workflow: { type: "string", default: "" },
      invocation: { type: "string", default: "" },
      lease: { type: "string", default: "" },
      "ttl-ms": { type: "string", default: "1000" },
      fixed: { type: "string", default: "false" },
      bytes: { type: "string", default: "0" },


      value: { type: "string", default: "1" },
      notify: { type: "string", default: "no" },
      ops: { type: "string", default: "1000" },
      dir: { type: "string", default: "." },
      repeats: { type: "string", default: "5" },
    },
  });
  const client = Client.connect(values.address!);
  const app = values.app!;
  const id: Identity = { workflowId: values.workflow! };
  try {
    let out: unknown;
    switch (command) {
      case "run":
        out = await scenario(await client.contextFromLog(app, id));
        break;
      case "lease": {
        const resp = await client.executor.executeTask({
          position: { appId: app, workflow: { workflowId: id.workflowId }, sequence: 1n },
          taskId: "xlang.handoff",
          argumentsJson: '{"k":1}',
          runnerId: `xlang-${LANG}`,
          leaseTtl: { seconds: BigInt(Math.floor(Number(values["ttl-ms"]) / 1000)), nanos: (Number(values["ttl-ms"]) % 1000) * 1e6 },
        });
        out = { invocation_id: resp.invocation!.invocationId, granted: resp.lease !== undefined, lease_id: resp.lease?.leaseId ?? "" };
        break;
      }
      case "complete": {
        const resp = await client.executor.completeTask({
          appId: app,
          invocationId: values.invocation!,
          leaseId: values.lease!,
          outcome: { case: "resultJson", value: JSON.stringify({ completed_by: LANG }) },
        });
        out = {
          accepted: resp.accepted,
          status: `INVOCATION_STATUS_${InvocationStatus[resp.invocation!.status]}`,
          result: JSON.parse(resp.invocation!.resultJson),
        };
        break;
      }
      case "takeover":
        out = taskSummary(await client.context(app, id).executeTask("xlang.handoff", { k: 1 }, () => ({ completed_by: LANG })));
        break;
      case "errors":
        out = await reasons(client, app, id);
        break;
      case "flow":
        out = await flow(client, app, id.workflowId, values.fixed === "true");
        break;
      case "retry":
        out = await flow(client, app, id.workflowId, values.fixed === "true", await client.retryWorkflow(app, id.workflowId));
        break;
      case "oversize":
        out = await oversize(client, app, id.workflowId, Number(values.bytes));
        break;
      case "nested":
        out = await nested(await client.contextFromLog(app, id));
        break;
      case "visits":
        out = await visits(await client.contextFromLog(app, id));
        break;
      case "diverge":
        out = await diverge(await client.contextFromLog(app, id), values.value!);
        break;
      case "lease-loss":
        client.leaseTtlMs = Number(values["ttl-ms"]);
        out = await leaseLoss(client, app, id);
        break;
      case "takeover-scenario":
        out = await takeoverScenario(client, app, id);
        break;
      case "batch-flow":
        out = await batchFlow(client, app, id);
        break;
      case "batch-race":
        client.leaseTtlMs = Number(values["ttl-ms"]);
        out = await batchRace(client, app, id, values.dir!);
        break;
      case "batch-stall":
        client.leaseTtlMs = Number(values["ttl-ms"]);
        out = await batchStall(client, app, id, values.dir!);
        break;
      case "bench-replay":
        out = await benchReplay(client, app || "bench-ts", Number(values.ops), Number(values.repeats));
        break;
      case "notify":
        out = await notifyFlow(client, app, id, values.notify === "yes");
        break;
      case "state":
        out = await workflowState(values.address!, app, id.workflowId);
        break;
      default:
        throw new Error(`unknown command ${command}: run|lease|complete|takeover|errors|flow|retry|nested|oversize|visits|diverge|notify|state|lease-loss|takeover-scenario|batch-flow|batch-race|batch-stall|bench-replay`);
    }
    // bigint (time_us) printed as JSON integers
    process.stdout.write(JSON.stringify(out, (_k, v: unknown) => (typeof v === "bigint" ? `@@${v}@@` : v)).replace(/"@@(-?\d+)@@"/g, "$1") + "\n");
  } finally {
    client.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`xlang: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
