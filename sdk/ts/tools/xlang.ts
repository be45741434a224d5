// The TypeScript side of tests/test_cross_language.py: performs one step of the shared
// cross-language scenario against a sidecar and prints the outcome as one JSON object.
// Twin of sdk/go/internal/xlang (same commands, same output).
//
//   node dist/tools/xlang.js run      --address A --app APP --workflow WF
//   node dist/tools/xlang.js lease    --address A --app APP --workflow WF --ttl-ms 1000
//   node dist/tools/xlang.js complete --address A --app APP --invocation ID --lease LEASE
//   node dist/tools/xlang.js takeover --address A --app APP --workflow WF
//   node dist/tools/xlang.js errors   --address A --app APP --workflow WF
//   node dist/tools/xlang.js state    --address A --app APP --workflow WF
//     (TypeScript only: the workflow as StateBackendService shows it, see docs/pynenc-state.md)
import { parseArgs } from "node:util";
import { randomInt } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client, Context, Invocation, InvocationStatus, SidecarError, type Identity } from "../src/index.js";
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
  await note("nondeterministic", client.context(app, id).executeTask("xlang.second", {}, noRun));
  await note("access_denied", client.context(app, id, "some-task").setData("k", 1));
  await note("not_found", client.executor.renewTaskLease({ appId: app, invocationId: "no-such-invocation", leaseId: "x" }));
  const first = await client.context(app, id).executeTask("xlang.first", {}, noRun);
  await note("lease_not_held", client.executor.renewTaskLease({ appId: app, invocationId: first.id, leaseId: "not-mine" }));
  await note("invalid_argument", client.context(app, { workflowId: "" }).random());
  return out;
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
    },
  });
  const client = Client.connect(values.address!);
  const app = values.app!;
  const id: Identity = { workflowId: values.workflow! };
  try {
    let out: unknown;
    switch (command) {
      case "run":
        out = await scenario(client.context(app, id));
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
      case "state":
        out = await workflowState(values.address!, app, id.workflowId);
        break;
      default:
        throw new Error(`unknown command ${command}: run|lease|complete|takeover|errors|state`);
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
