// A thin, idiomatic helper over the generated client: the Pynenc workflow context
// (`task.wf` in Python) for TypeScript workers.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { isDeepStrictEqual } from "node:util";
import { timestampDate, type Timestamp, type Duration } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient, type Client as ConnectClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { InvocationStatus, type WorkflowIdentity } from "./gen/pynenc/sidecar/v1/common_pb.js";
import {
  DeterministicExecutorService,
  OperationKind,
  type CompleteTaskRequest,
  type OperationCommit,
  type OperationPosition,
  type RecordedOperation,
  type TaskInvocation,
  type TaskLease,
} from "./gen/pynenc/sidecar/v1/deterministic_executor_pb.js";
import { COMMIT, DEFAULT_LEASE_TTL_MS, DEFAULT_WAIT_SLICE_MS, ENV, RENEW_FRACTION, retryInterceptor } from "./contract.js";
import { dispatchProto, type DispatchOptions } from "./dispatch.js";
import { Code, Reason, SidecarError, TaskFailedError, TaskSuspended } from "./errors.js";
import { WorkflowLog } from "./log.js";
import { RunBuffer, type BufferedInit } from "./commit.js";
import { deriveRandom, deriveUuid } from "./derive.js";
import type { Attributes, Context as OtelContext, Span } from "@opentelemetry/api";
import {
  callOptions,
  endSpan,
  inSpan,
  otelContext,
  startOperation,
  startRun,
  tracingInterceptor,
  workflowAttributes,
  ATTR,
} from "./tracing.js";

export type ExecutorClient = ConnectClient<typeof DeterministicExecutorService>;

/** Identity of a workflow: its id is the invocation id of its main task. */
export interface Identity {
  workflowId: string;
  workflowType?: string;
  parentWorkflowId?: string;
}

export interface ClientOptions {
  /** Recorded on the leases this client takes (default host-pid-ts). */
  runnerId?: string;
  /** Task lease length (default 30 s); renewed every third of it while a task runs. */
  leaseTtlMs?: number;
  /** Bound of one WaitTask call (default 10 s); waiting repeats until an outcome or a lease. */
  waitTimeoutMs?: number;
  /**
   * Gets a line when a run starts waiting for another worker's lease, and on every later
   * wait slice: what it waits for and until when (default: console.error, i.e. stderr).
   */
  log?: (line: string) => void;
  /**
   * Largest request this client sends (default 20 MiB, the sidecar's default
   * --max-message-bytes). A larger one fails here with RESOURCE_EXHAUSTED before it is sent
   * (a task's outcome then becomes ResultTooLarge): Node's HTTP/2 client can stall writing a
   * body the server has already refused. Set it to the sidecar's --max-message-bytes.
   */
  maxMessageBytes?: number;
}

/** Truncated to the millisecond, as the other SDKs print it (timestampDate rounds up). */
function millis({ seconds, nanos }: Timestamp): Date {
  return new Date(Number(seconds) * 1000 + Math.floor(nanos / 1_000_000));
}

/** What a run waits for and until when, in the same words in every SDK. */
export function describeWait(inv: Invocation, now: Date, again = false): string {
  const holder = inv.leaseRunnerId ? `runner ${JSON.stringify(inv.leaseRunnerId)}` : "another worker";
  if (inv.dispatched) return describeDispatchedWait(inv, now, again, holder);
  const text =
    `${again ? "still waiting" : "waiting"} for task ${inv.taskId} (invocation ${inv.id}, ` +
    `workflow ${inv.workflow.workflowId}) held by ${holder}: `;
  if (!inv.leaseExpireTime) return text + "its lease expiry is unknown";
  const at = inv.leaseExpireTime.toISOString();
  const left = (inv.leaseExpireTime.getTime() - now.getTime()) / 1000;
  if (left <= 0) return text + `its lease expired at ${at}; this run takes the task over now`;
  return (
    text +
    `its lease expires at ${at} (${left.toFixed(1)} s left); this run takes the task over then ` +
    "unless the holder renews it"
  );
}

/** What a caller waits for when its task is dispatched to a worker serving it. */
function describeDispatchedWait(inv: Invocation, now: Date, again: boolean, holder: string): string {
  const text =
    `${again ? "still waiting" : "waiting"} for task ${inv.taskId} (invocation ${inv.id}, ` +
    `workflow ${inv.workflow.workflowId}), dispatched to a worker serving it: `;
  if (inv.status === InvocationStatus.RUNNING) return text + `attempt ${inv.attempt} runs on ${holder}`;
  if (!inv.queueTime) return text + "queued";
  const at = inv.queueTime.toISOString();
  const retry = inv.attempt > 0 && inv.lastError ? ` (attempt ${inv.attempt} failed: ${inv.lastError.type})` : "";
  const waited = (now.getTime() - inv.queueTime.getTime()) / 1000;
  if (waited < 0) return text + `to be retried at ${at}${retry}`;
  return text + `queued since ${at} (${waited.toFixed(1)} s)${retry}`;
}

/**
 * How `Client.connect` reaches a sidecar that serves TLS (--tls-cert), mutual TLS
 * (--tls-client-ca) or requires a bearer token (--auth-token-file). Unset fields come from
 * the variables every SDK reads: PYNENC_SIDECAR_TLS_CA, PYNENC_SIDECAR_CLIENT_CERT,
 * PYNENC_SIDECAR_CLIENT_KEY, PYNENC_SIDECAR_TOKEN, PYNENC_SIDECAR_TLS (true: TLS with the
 * system's CAs). TLS is on when any TLS field is set (or the address is https://).
 */
export interface SecurityOptions {
  /** PEM CA (a path, or the PEM text itself) that signed the sidecar's certificate. */
  tlsCa?: string;
  /** This worker's PEM certificate and key (paths or PEM text), for mutual TLS. */
  tlsCert?: string;
  tlsKey?: string;
  /** Sent on every call as `authorization: Bearer <token>`. */
  token?: string;
  /** TLS with the system's CAs when no tlsCa is given. */
  tls?: boolean;
}

function env(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value ? value : undefined;
}

function pem(value: string): string {
  return value.includes("-----BEGIN ") ? value : readFileSync(value, "utf8");
}

/** SecurityOptions with every unset field taken from its PYNENC_SIDECAR_* variable. */
export function securityFromEnv(given: SecurityOptions = {}): SecurityOptions {
  const flag = env(ENV.tls)?.toLowerCase();
  return {
    tlsCa: given.tlsCa ?? env(ENV.tls_ca),
    tlsCert: given.tlsCert ?? env(ENV.client_cert),
    tlsKey: given.tlsKey ?? env(ENV.client_key),
    token: given.token ?? env(ENV.token),
    tls: given.tls ?? (flag === "1" || flag === "true" || flag === "yes"),
  };
}

/** A connect interceptor adding `authorization: Bearer <token>` to every call. */
export function bearerToken(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** A task function: `task` is the workflow context of the task's own code. */
export type TaskFn = (task: Context, signal: AbortSignal) => unknown;

export interface TaskOptions {
  /** Give the child a workflow of its own (Pynenc's force_new_workflow=True). */
  forceNewWorkflow?: boolean;
  leaseTtlMs?: number;
  /**
   * Queue the task for a worker serving its task id, in any language, instead of running it
   * here (`true`: the sidecar's default policies); the call resolves with its outcome. A call
   * without a task function is dispatched anyway.
   */
  dispatch?: DispatchOptions | true;
}

function identityProto(id: Identity): WorkflowIdentity {
  return {
    $typeName: "pynenc.sidecar.v1.WorkflowIdentity",
    workflowId: id.workflowId,
    workflowType: id.workflowType ?? "",
    parentWorkflowId: id.parentWorkflowId ?? "",
  };
}

/** @internal */
export function duration(ms: number): Duration {
  return {
    $typeName: "google.protobuf.Duration",
    seconds: BigInt(Math.floor(ms / 1000)),
    nanos: Math.round((ms % 1000) * 1e6),
  };
}

/** @internal */
export async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw SidecarError.from(err);
  }
}

function toJson(value: unknown, what: string): string {
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new TypeError(`${what} is not JSON-serializable`);
  return text;
}

/** A task invocation as the workflow context sees it (Pynenc's invocation handle). */
export class Invocation {
  readonly id: string;
  readonly taskId: string;
  /** Canonical JSON of the arguments. */
  readonly argumentsJson: string;
  readonly status: InvocationStatus;
  readonly workflow: Identity;
  readonly parentInvocationId: string;
  /** JSON text; set when status is SUCCESS. */
  readonly resultJson: string;
  readonly failure?: TaskFailedError;
  /** True when the task position already held this call. */
  replayed = false;
  /** True when this caller ran the task function. */
  ran = false;
  /** While status is RUNNING: the runner id of the lease's holder. */
  readonly leaseRunnerId: string;
  /** While status is RUNNING: when the holder's lease expires (undefined when unknown). */
  readonly leaseExpireTime?: Date;
  /** A worker serving the task id runs it (attempt: 1-based, of the current or last run). */
  readonly dispatched: boolean;
  readonly attempt: number;
  /** While a dispatched task is queued: since when (a retry's: when it is due). */
  readonly queueTime?: Date;
  /** While a dispatched task waits for a retry: the failed attempt's error. */
  readonly lastError?: TaskFailedError;

  constructor(p: TaskInvocation) {
    this.id = p.invocationId;
    this.taskId = p.taskId;
    this.argumentsJson = p.argumentsJson;
    this.status = p.status;
    this.workflow = {
      workflowId: p.workflow?.workflowId ?? "",
      workflowType: p.workflow?.workflowType ?? "",
      parentWorkflowId: p.workflow?.parentWorkflowId ?? "",
    };
    this.parentInvocationId = p.parentInvocationId;
    this.resultJson = p.resultJson;
    this.leaseRunnerId = p.leaseRunnerId;
    if (p.leaseExpireTime) this.leaseExpireTime = millis(p.leaseExpireTime);
    this.dispatched = p.dispatched;
    this.attempt = p.attempt;
    if (p.queueTime) this.queueTime = millis(p.queueTime);
    if (p.lastError) this.lastError = new TaskFailedError(p.lastError.type, p.lastError.message, p.lastError.detailJson, p.lastError.traceback);
    if (p.status === InvocationStatus.FAILED && p.error) {
      this.failure = new TaskFailedError(p.error.type, p.error.message, p.error.detailJson, p.error.traceback);
    }
  }

  get finished(): boolean {
    return this.status === InvocationStatus.SUCCESS || this.status === InvocationStatus.FAILED;
  }

  /** The task's result (parsed JSON); throws its TaskFailedError if it failed. */
  get result(): unknown {
    if (this.status === InvocationStatus.SUCCESS) return JSON.parse(this.resultJson);
    if (this.failure) throw this.failure;
    throw new Error(`invocation ${this.id} is not finished (${InvocationStatus[this.status]})`);
  }
}

export class Client {
  readonly executor: ExecutorClient;
  readonly runnerId: string;
  leaseTtlMs: number;
  waitTimeoutMs: number;
  log: (line: string) => void;
  private readonly sessions?: Http2SessionManager;

  /**
   * Wraps a transport (e.g. createGrpcTransport with TLS options). For traces to reach the
   * sidecar, give that transport `tracingInterceptor()` among its interceptors (`connect`
   * does).
   */
  constructor(transport: Transport, options: ClientOptions = {}, sessions?: Http2SessionManager) {
    this.executor = createClient(DeterministicExecutorService, transport);
    this.runnerId = options.runnerId ?? `${hostname()}-${process.pid}-ts`;
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.waitTimeoutMs = options.waitTimeoutMs ?? DEFAULT_WAIT_SLICE_MS;
    this.log = options.log ?? ((line) => console.error(`pynenc-sidecar: ${line}`));
    this.sessions = sessions;
  }

  /**
   * Connects over HTTP/2 gRPC to "host:port" (or a full http(s):// URL): plaintext, or TLS /
   * mutual TLS with a bearer token as `security` (and the PYNENC_SIDECAR_* variables) say.
   */
  static connect(address: string, options: ClientOptions & SecurityOptions = {}): Client {
    const security = securityFromEnv(options);
    const useTls = Boolean(security.tls || security.tlsCa || security.tlsCert) || address.startsWith("https://");
    if (Boolean(security.tlsCert) !== Boolean(security.tlsKey)) {
      throw new Error("a client certificate needs its key: set both tlsCert and tlsKey");
    }
    const hostPort = address.replace(/^https?:\/\//, "");
    const baseUrl = `${useTls ? "https" : "http"}://${hostPort}`;
    const nodeOptions = useTls
      ? {
          ...(security.tlsCa ? { ca: pem(security.tlsCa) } : {}),
          ...(security.tlsCert ? { cert: pem(security.tlsCert), key: pem(security.tlsKey!) } : {}),
        }
      : {};
    const sessions = new Http2SessionManager(baseUrl, undefined, nodeOptions);
    // Retries outermost: each attempt is its own traced call carrying the token.
    const interceptors = [retryInterceptor(), tracingInterceptor(), ...(security.token ? [bearerToken(security.token)] : [])];
    const writeMaxBytes = options.maxMessageBytes ?? 20 * 1024 * 1024;
    return new Client(createGrpcTransport({ baseUrl, sessionManager: sessions, interceptors, writeMaxBytes }), options,
      sessions);
  }

  /** Closes the connection `connect` opened. */
  close(): void {
    this.sessions?.abort();
  }

  /**
   * A run of an invocation's code inside a workflow. `invocationId` is the invocation
   * performing the operations (its scope); "" means the workflow's main task.
   */
  context(appId: string, workflow: Identity, invocationId = "", traceContext: OtelContext = otelContext.active()): Context {
    return new Context(this, appId, workflow, invocationId, traceContext);
  }

  /**
   * Like `context`, but the workflow's log is read first (one GetWorkflowLog call), so that
   * every position already recorded replays locally, without a call; only new positions
   * reach the sidecar.
   */
  async contextFromLog(
    appId: string,
    workflow: Identity,
    invocationId = "",
    traceContext: OtelContext = otelContext.active(),
  ): Promise<Context> {
    const log = await this.readLog(appId, workflow.workflowId, traceContext);
    return new Context(this, appId, workflow, invocationId, traceContext, log);
  }

  /** The workflow's recorded operations and their tasks' states, in one streaming call. */
  async readLog(appId: string, workflowId: string, traceContext: OtelContext = otelContext.active()): Promise<WorkflowLog> {
    const log = new WorkflowLog();
    try {
      for await (const batch of this.executor.getWorkflowLog({ appId, workflowId }, callOptions(traceContext))) log.add(batch);
    } catch (err) {
      throw SidecarError.from(err);
    }
    return log;
  }

  /**
   * Registers (or finds) the main invocation of a workflow whose id the caller chose and
   * runs it like executeTask: `run` is called when this caller gets the main task's lease;
   * a finished workflow returns its recorded outcome. workflow.workflowType is required.
   * With tracing on and no active span (or none in `traceContext`), the run gets a
   * "pynenc.workflow <type>" span.
   */
  async startWorkflow(
    appId: string,
    workflow: Identity,
    args: Record<string, unknown>,
    run: TaskFn,
    traceContext: OtelContext = otelContext.active(),
  ): Promise<Invocation> {
    const argumentsJson = toJson(args ?? {}, "arguments");
    const [span, ctx] = startRun(traceContext, appId, workflow);
    return inSpan(
      span,
      async () => {
        const resp = await call(
          this.executor.startWorkflow(
            {
              appId,
              workflow: identityProto(workflow),
              argumentsJson,
              runnerId: this.runnerId,
              leaseTtl: duration(this.leaseTtlMs),
              // On a replay the reply brings the log when it is small, saving a GetWorkflowLog.
              includeLog: true,
            },
            callOptions(ctx),
          ),
        );
        const inv = new Invocation(resp.invocation!);
        inv.replayed = resp.replayed;
        const log = !resp.replayed ? new WorkflowLog() : resp.log ? WorkflowLog.fromBatches(resp.log.batches) : undefined;
        return this.drive(appId, inv, resp.lease, run, this.leaseTtlMs, ctx, log);
      },
      (inv) => inv.replayed,
    );
  }

  /**
   * @internal Brings an invocation to an outcome: run it under a held lease, else wait.
   * `log`: what a run under the lease granted now replays from (undefined: read it then); a
   * run after waiting (a takeover) reads the log anew, since the last holder went on.
   */
  async drive(
    appId: string,
    inv: Invocation,
    lease: TaskLease | undefined,
    run: TaskFn | undefined,
    ttlMs: number,
    ctx: OtelContext = otelContext.active(),
    log?: WorkflowLog,
  ): Promise<Invocation> {
    const replayed = inv.replayed;
    let ran = false;
    let slices = 0;
    while (!inv.finished) {
      if (lease) {
        if (!run) throw new Error(`granted the lease on ${inv.id} (${inv.taskId}) but no task function was given`);
        ran = true;
        try {
          const runLog = log ?? (await this.readLog(appId, inv.workflow.workflowId, ctx));
          log = undefined;
          const done = await this.runLeased(appId, inv, lease.leaseId, run, ttlMs, ctx, runLog);
          inv = done;
          break;
        } catch (err) {
          if (!(err instanceof SidecarError && err.reason === Reason.LEASE_NOT_HELD)) {
            inv.ran = ran;
            throw err;
          }
          // another live holder took the task over: wait for its outcome
        }
      }
      // A dispatched task's wait is the normal case: said only once it outlasts a slice.
      if (!inv.dispatched || slices > 0) this.log(describeWait(inv, new Date(), slices > 0));
      slices++;
      const resp = await call(
        this.executor.waitTask(
          {
            appId,
            invocationId: inv.id,
            runnerId: this.runnerId,
            timeout: duration(this.waitTimeoutMs),
            leaseTtl: duration(ttlMs),
          },
          callOptions(ctx),
        ),
      );
      inv = new Invocation(resp.invocation!);
      lease = resp.lease;
      log = undefined;
    }
    inv.replayed = replayed;
    inv.ran = ran;
    return inv;
  }

  /**
   * @internal Runs `run` under the held lease (renewed every ttl/3), then records its outcome.
   * `stop` (a worker handing the task back) aborts the run's signal as a lost lease does.
   */
  async runLeased(
    appId: string,
    inv: Invocation,
    leaseId: string,
    run: TaskFn,
    ttlMs: number,
    ctx: OtelContext,
    log: WorkflowLog,
    stop?: AbortSignal,
  ): Promise<Invocation> {
    const abort = new AbortController();
    const signal = stop ? AbortSignal.any([abort.signal, stop]) : abort.signal;
    let task = new Context(this, appId, inv.workflow, inv.id, ctx, log);
    task.argumentsJson = inv.argumentsJson;
    const timer = setInterval(() => {
      this.executor
        .renewTaskLease({ appId, invocationId: inv.id, leaseId, leaseTtl: duration(ttlMs) }, callOptions(ctx, { timeoutMs: Math.max(1, Math.floor(ttlMs / RENEW_FRACTION)) }))
        .catch((err: unknown) => {
          const e = SidecarError.from(err);
          if (e.reason === Reason.LEASE_NOT_HELD || e.code === Code.NotFound) {
            clearInterval(timer);
            task.leaseLost = true; // its next operation fails LEASE_NOT_HELD
            abort.abort(e); // tell cooperative task code it lost the task
          }
        });
    }, Math.max(1, Math.floor(ttlMs / RENEW_FRACTION)));
    try {
      for (let rerun = 0; ; rerun++) {
        task.buffer = new RunBuffer(leaseId);
        try {
          return await this.runOnce(appId, inv, leaseId, run, task, signal, ctx);
        } catch (err) {
          // A commit refused with COMMIT_CONFLICT: this run's log was stale. Read it again and
          // run the code again from its top (counters at 0), replaying the winner's record.
          if (!task.buffer.conflicted || rerun >= COMMIT.conflictReruns) throw err;
          this.log(`invocation ${inv.id}: ${err instanceof Error ? err.message : String(err)}; reading the log again and running the task again`);
          const fresh = new Context(this, appId, inv.workflow, inv.id, ctx, await this.readLog(appId, inv.workflow.workflowId, ctx));
          fresh.leaseLost = task.leaseLost;
          fresh.argumentsJson = inv.argumentsJson;
          task = fresh;
        }
      }
    } finally {
      clearInterval(timer);
    }
  }

  /** One run of a leased task's code, then its outcome recorded with the run's buffer. */
  private async runOnce(
    appId: string,
    inv: Invocation,
    leaseId: string,
    run: TaskFn,
    task: Context,
    signal: AbortSignal,
    ctx: OtelContext,
  ): Promise<Invocation> {
    const buffer = task.buffer!;
    let outcome: CompleteTaskRequest["outcome"];
    try {
      const result = await run(task, signal);
      try {
        outcome = { case: "resultJson", value: toJson(result, "task result") };
      } catch (err) {
        outcome = errorOutcome("SerializationError", String(err));
      }
    } catch (err) {
      if (err instanceof TaskSuspended) throw err; // records nothing: the buffer is dropped
      if (buffer.conflicted) throw err;
      outcome =
        err instanceof TaskFailedError
          ? errorOutcome(err.type, err.message, err.detailJson, err.traceback)
          : err instanceof Error
            ? errorOutcome(err.name, err.message, "", err.stack ?? "")
            : errorOutcome("Error", String(err));
    }
    // Code that caught a conflict and went on still ran on a stale log: run it again.
    if (buffer.conflicted) throw new Error(`a commit of invocation ${inv.id} was refused with ${COMMIT.conflictReason}`);
    // The buffer goes with the outcome, fenced by this request's own lease id.
    const complete = (outcome: CompleteTaskRequest["outcome"]) =>
      buffer.carry(
        (commit) => call(this.executor.completeTask({ appId, invocationId: inv.id, leaseId, outcome, commit }, callOptions(ctx))),
        inv.workflow.workflowId,
        "",
      );
    try {
      return new Invocation((await complete(outcome)).invocation!);
    } catch (err) {
      // Refused before the sidecar's handler saw it (larger than its gRPC message limit):
      // record that as the task's failure, so the task does not stay RUNNING.
      if (!(err instanceof SidecarError && err.code === Code.ResourceExhausted)) throw err;
      return new Invocation((await complete(tooLargeOutcome(outcome, inv, err))).invocation!);
    }
  }

  /**
   * Makes a FAILED workflow runnable again from its failed steps: every FAILED invocation
   * in it (its main task, the failed tasks inside it, failed child workflows) is reset to
   * RETRY; everything recorded is kept. Returns the invocations reset, the main task last.
   * Then startWorkflow with the same identity runs it again: recorded steps replay and the
   * reset tasks run again. A workflow that is not FAILED throws a SidecarError with reason
   * WORKFLOW_NOT_FAILED; an unknown one WORKFLOW_NOT_FOUND.
   */
  async retryWorkflow(appId: string, workflowId: string): Promise<Invocation[]> {
    const resp = await call(this.executor.retryWorkflow({ appId, workflowId }, callOptions(otelContext.active())));
    return resp.invocations.map((p) => new Invocation(p));
  }
}

function errorOutcome(type: string, message: string, detailJson = "", traceback = ""): CompleteTaskRequest["outcome"] {
  return {
    case: "error",
    value: { $typeName: "pynenc.sidecar.v1.TaskError", type: type || "Error", message, detailJson, traceback },
  };
}

function tooLargeOutcome(outcome: CompleteTaskRequest["outcome"], inv: Invocation, refusal: SidecarError): CompleteTaskRequest["outcome"] {
  const [what, size] =
    outcome.case === "resultJson"
      ? ["result", Buffer.byteLength(outcome.value, "utf8")]
      : ["error", Buffer.byteLength((outcome.value?.message ?? "") + (outcome.value?.traceback ?? ""), "utf8")];
  return errorOutcome(
    "ResultTooLarge",
    `the ${what} of task ${inv.taskId} (invocation ${inv.id}) is ${size} bytes, more than the sidecar accepts in one ` +
      `request (${refusal.message}): return less (keep large data elsewhere and return a reference), or raise the ` +
      "sidecar's --max-message-bytes / PYNENC_SIDECAR_MAX_MESSAGE_BYTES and --max-value-bytes / " +
      "PYNENC_SIDECAR_MAX_VALUE_BYTES",
  );
}

/**
 * Thrown by an operation called while a custom operation's generator runs: the generator's
 * value is recorded once and the generator does not run on replay, so operations inside it
 * would take positions only the first time (docs/client-contract.md).
 */
export class OperationInGeneratorError extends Error {
  override readonly name = "OperationInGeneratorError";
  readonly reason = "OPERATION_IN_GENERATOR";
  constructor(kind: string, custom: string) {
    super(
      `OPERATION_IN_GENERATOR: a workflow operation (${kind}) was called inside the generator of custom operation ` +
        `"${custom}"; call it before the custom operation and use its value inside the generator`,
    );
  }
}

/** What a `local` reader returns when the log's entry cannot serve the call (the sidecar judges it). */
const MISS: unique symbol = Symbol("not served from the log");

/** Two JSON texts hold the same value (key order and 1.0 against 1 aside, as the sidecar compares). */
function sameJson(a: string, b: string): boolean {
  return a === b || isDeepStrictEqual(JSON.parse(a), JSON.parse(b));
}

const FINISHED = new Set([InvocationStatus.SUCCESS, InvocationStatus.FAILED]);

/**
 * The workflow context of one run of one invocation's code: Pynenc's `wf`. It counts a
 * 1-based sequence per operation kind (random, time, uuid, task, each custom name);
 * a new run starts a new Context and so replays. Each operation takes the next position
 * of its kind when called and gives it back if it fails (docs/client-contract.md). A
 * position the run's log already holds is served from it without a call (a run of
 * startWorkflow or executeTask, or `Client.contextFromLog`, has the workflow's log).
 */
export class Context {
  private readonly seqs = new Map<string, bigint>();
  private attrs?: Attributes;
  /** The custom operation whose generator runs now ("" when none). */
  private generating = "";
  /** @internal Set when another worker took this run's task over. */
  leaseLost = false;
  /** @internal The canonical JSON arguments of the invocation whose code runs (set in a leased run). */
  argumentsJson?: string;
  /**
   * @internal A run under a lease buffers its random, uuid, utc_now, custom values and data
   * writes and sends them with its next blocking call; a free Context (no lease) calls the
   * sidecar for each.
   */
  buffer?: RunBuffer;

  constructor(
    readonly client: Client,
    readonly appId: string,
    readonly workflow: Identity,
    private readonly invocation = "",
    /** The OTel context operations' spans are children of (the run's or task's span). */
    readonly traceContext: OtelContext = otelContext.active(),
    /** @internal What this run replays locally (a snapshot: a miss goes to the sidecar). */
    readonly log: WorkflowLog = new WorkflowLog(),
  ) {}

  /** The scope of the operations: the invocation whose code runs (workflow id for the main task). */
  get invocationId(): string {
    return this.invocation || this.workflow.workflowId;
  }

  /** Whether the code is the workflow's main task (which alone may setData). */
  get isMainTask(): boolean {
    return this.invocationId === this.workflow.workflowId;
  }

  /**
   * The arguments of the invocation whose code runs (a task a Worker runs, or any task run by
   * executeTask), parsed from their JSON.
   */
  arguments<T = Record<string, unknown>>(): T {
    if (this.argumentsJson === undefined) {
      throw new Error(`no arguments are known to this context of invocation ${this.invocationId}`);
    }
    return JSON.parse(this.argumentsJson) as T;
  }

  /**
   * The last sequence used for a kind: "random", "time", "uuid", "task", "custom:<name>",
   * "data_read:<key>" or "data_write:<key>".
   */
  sequence(kind: string): number {
    return Number(this.seqs.get(kind) ?? 0n);
  }

  /**
   * Runs `op` at the next sequence of `kind` inside the operation's span (name: a task id or
   * custom operation's name); `op` returns its value and whether it was replayed. The span
   * ends with the call, unless `keepOpen` (then the caller ends it). When the log holds the
   * position and `local` can serve that entry, `op` is not called (`served`).
   */
  private open<T>(
    kind: string,
    name: string,
    op: (pos: OperationPosition, ctx: OtelContext) => Promise<[T, boolean]>,
    keepOpen: boolean,
    local?: (recorded: RecordedOperation) => T | typeof MISS,
  ): Promise<{ value: T; replayed: boolean; span: Span; ctx: OtelContext; served: boolean }> {
    // The position is taken now, in call order, and no queue is awaited: a custom
    // operation's generator may call other operations, which take later positions.
    if (this.generating) return Promise.reject(new OperationInGeneratorError(kind, this.generating));
    if (this.leaseLost) return Promise.reject(SidecarError.leaseLost(this.invocationId));
    const seq = (this.seqs.get(kind) ?? 0n) + 1n;
    this.seqs.set(kind, seq);
    this.attrs ??= { ...workflowAttributes(this.appId, this.workflow), [ATTR.invocationId]: this.invocationId };
    // "custom:<name>", "data_read:<key>", "data_write:<key>": the span's operation is the prefix
    const operation = kind.split(":", 1)[0]!;
    const recorded = local && this.log.recorded(this.invocationId, kind, seq);
    if (recorded) {
      const value = local(recorded);
      if (value !== MISS) {
        const [span, ctx] = startOperation(this.traceContext, this.attrs, operation, name, seq, { origin: recorded.originSpan });
        if (!keepOpen) endSpan(span, true);
        return Promise.resolve({ value, replayed: true, span, ctx, served: true });
      }
    }
    const [span, ctx] = startOperation(this.traceContext, this.attrs, operation, name, seq);
    const position: OperationPosition = {
      $typeName: "pynenc.sidecar.v1.OperationPosition",
      appId: this.appId,
      workflow: identityProto(this.workflow),
      invocationId: this.invocation,
      sequence: seq,
    };
    return op(position, ctx).then(
      ([value, replayed]) => {
        if (!keepOpen) endSpan(span, replayed);
        return { value, replayed, span, ctx, served: false };
      },
      (err: unknown) => {
        this.giveBack(kind, seq);
        endSpan(span, false, err);
        throw err;
      },
    );
  }

  /** @internal Gives back position `seq` of `kind` after its operation failed, unless a later one was taken. */
  giveBack(kind: string, seq: bigint): void {
    if (this.seqs.get(kind) === seq) this.seqs.set(kind, seq - 1n);
  }

  /** Buffers a computed value; a full buffer is committed now (if that fails, so does the operation). */
  private async buffered<T>(buffer: RunBuffer, value: T, init: BufferedInit): Promise<[T, boolean]> {
    if (buffer.add(init)) {
      try {
        await this.flush();
      } catch (err) {
        buffer.dropLast();
        throw err;
      }
    }
    return [value, false];
  }

  /** @internal Commits the buffered operations on their own (CommitOperations). */
  async flush(): Promise<void> {
    const buffer = this.buffer;
    if (!buffer || buffer.size === 0) return;
    await buffer.carry((commit) =>
      call(
        this.client.executor.commitOperations(
          { appId: this.appId, workflowId: this.workflow.workflowId, invocationId: this.invocation, commit },
          callOptions(this.traceContext),
        ),
      ),
    );
  }

  /** A blocking call, carrying the buffer when the run has one. */
  private blocking<T>(send: (commit: OperationCommit | undefined) => Promise<T>): Promise<T> {
    return this.buffer ? this.buffer.carry(send) : send(undefined);
  }

  private async at<T>(
    kind: string,
    op: (pos: OperationPosition, ctx: OtelContext) => Promise<[T, boolean]>,
    name: string,
    local: (recorded: RecordedOperation) => T | typeof MISS,
  ): Promise<T> {
    return (await this.open(kind, name, op, false, local)).value;
  }

  /** A deterministic float in [0, 1), replayed identically. Not for secrets. */
  random(): Promise<number> {
    return this.at(
      "random",
      async (position, ctx) => {
        if (this.buffer) {
          const value = deriveRandom(this.invocationId, position.sequence);
          return this.buffered(this.buffer, value, { kind: OperationKind.RANDOM, sequence: position.sequence, value: { case: "randomValue", value } });
        }
        const resp = await call(this.client.executor.random({ position }, callOptions(ctx)));
        return [resp.value, resp.replayed];
      },
      "",
      (r) => (r.value.case === "randomValue" ? r.value.value : MISS),
    );
  }

  /** The recorded time as a protobuf Timestamp (microsecond precision). */
  utcNowTimestamp(): Promise<Timestamp> {
    return this.at(
      "time",
      async (position, ctx) => {
        if (this.buffer) {
          const value = this.buffer.nextTime(this.log.lastTimeUs);
          return this.buffered(this.buffer, value, { kind: OperationKind.TIME, sequence: position.sequence, value: { case: "timeValue", value } });
        }
        const resp = await call(this.client.executor.utcNow({ position }, callOptions(ctx)));
        return [resp.time!, resp.replayed];
      },
      "",
      (r) => (r.value.case === "timeValue" ? r.value.value : MISS),
    );
  }

  /** Real UTC time at first record, strictly later than earlier recorded times, replayed identically. */
  async utcNow(): Promise<Date> {
    return timestampDate(await this.utcNowTimestamp());
  }

  /** A deterministic UUIDv5 (canonical lowercase text), replayed identically. */
  uuid(): Promise<string> {
    return this.at(
      "uuid",
      async (position, ctx) => {
        if (this.buffer) {
          const value = deriveUuid(this.invocationId, position.sequence);
          return this.buffered(this.buffer, value, { kind: OperationKind.UUID, sequence: position.sequence, value: { case: "uuidValue", value } });
        }
        const resp = await call(this.client.executor.uuid({ position }, callOptions(ctx)));
        return [resp.uuid, resp.replayed];
      },
      "",
      (r) => (r.value.case === "uuidValue" ? r.value.value : MISS),
    );
  }

  /**
   * A custom deterministic operation on JSON text: the value recorded at the next position
   * of `name`, or, when none is recorded, the one `gen` returns (gen runs only then).
   */
  recordJson(name: string, gen: () => string | Promise<string>): Promise<string> {
    return this.at(
      `custom:${name}`,
      async (position, ctx): Promise<[string, boolean]> => {
        // Buffered, the log is the record: its generator runs when the log has nothing here
        // (a stale log makes the commit COMMIT_CONFLICT, and the run runs again).
        if (!this.buffer) {
          const got = await call(
            this.client.executor.getRecorded({ position, kind: OperationKind.CUSTOM, customName: name }, callOptions(ctx)),
          );
          if (got.found && got.operation?.value.case === "jsonValue") return [got.operation.value.value, true];
        }
        this.generating = name;
        let value: string;
        try {
          value = await gen();
        } finally {
          this.generating = "";
        }
        if (this.buffer) {
          try {
            JSON.parse(value);
          } catch {
            throw new TypeError(`the value of custom operation ${name} is not JSON text`);
          }
          return this.buffered(this.buffer, value, {
            kind: OperationKind.CUSTOM,
            customName: name,
            sequence: position.sequence,
            value: { case: "jsonValue", value },
          });
        }
        const resp = await call(this.client.executor.record({ position, operation: name, valueJson: value }, callOptions(ctx)));
        return [resp.valueJson, resp.replayed];
      },
      name,
      (r) => (r.value.case === "jsonValue" ? r.value.value : MISS),
    );
  }

  /** Pynenc's `wf.deterministic._deterministic_operation(name, generator)` for JSON values. */
  async record<T>(name: string, gen: () => T | Promise<T>): Promise<T> {
    return JSON.parse(await this.recordJson(name, async () => toJson(await gen(), `value of ${name}`))) as T;
  }

  /**
   * Takes the next task position of this run. The first time the sidecar registers a
   * child invocation; on replay the same invocation comes back with its outcome and `run`
   * is not called. When this caller gets the task's lease, `run` is called (the lease is
   * renewed while it runs) and its outcome recorded; otherwise it waits for the holder's
   * outcome (taking the task over if that lease lapses). A replay asking for another call
   * throws a SidecarError with reason NONDETERMINISTIC_REPLAY.
   *
   * Without `run`, or with `options.dispatch`, the task is dispatched: the sidecar queues it
   * for a worker serving its task id (in any language, `client.worker(...)` here) and this
   * call resolves when it has an outcome (docs/client-contract.md, "Dispatch"). A replay finds
   * the recorded invocation: nothing is dispatched again.
   */
  async executeTask(taskId: string, args: Record<string, unknown>, run?: TaskFn, options: TaskOptions = {}): Promise<Invocation> {
    const ttlMs = options.leaseTtlMs ?? this.client.leaseTtlMs;
    const argumentsJson = toJson(args ?? {}, "arguments");
    const dispatched = options.dispatch !== undefined || run === undefined;
    const dispatch = dispatched ? dispatchProto(options.dispatch === true ? {} : (options.dispatch ?? {})) : undefined;
    let taskSeq = 0n;
    type Reply = { state: TaskInvocation; lease?: TaskLease };
    const opened = await this.open<Reply>(
      "task",
      taskId,
      async (position, ctx) => {
        taskSeq = position.sequence;
        // The buffer goes with this call: the task starts only once everything before it is recorded.
        const resp = await this.blocking((commit) =>
          call(
            this.client.executor.executeTask(
              {
                position,
                taskId,
                argumentsJson,
                forceNewWorkflow: options.forceNewWorkflow ?? false,
                runnerId: this.client.runnerId,
                leaseTtl: duration(ttlMs),
                commit,
                dispatch,
              },
              callOptions(ctx),
            ),
          ),
        );
        return [{ state: resp.invocation!, lease: resp.lease }, resp.replayed];
      },
      true,
      (r) => {
        // Served only when the same call is recorded and its task finished; else the sidecar
        // judges it (another call is NONDETERMINISTIC_REPLAY) or drives the task on.
        if (r.value.case !== "taskValue") return MISS;
        const recorded = r.value.value;
        const state = this.log.tasks.get(recorded.invocationId);
        const same = recorded.taskId === taskId && sameJson(recorded.argumentsJson, argumentsJson);
        return same && state && FINISHED.has(state.status) ? { state } : MISS;
      },
    );
    const { span, ctx, served, replayed } = opened;
    const { state, lease } = opened.value;
    const inv = new Invocation(state);
    inv.replayed = replayed;
    if (served) {
      endSpan(span, true);
      return inv;
    }
    // A child in this workflow, granted now, replays from this run's log; a new child has nothing recorded.
    const log = !replayed ? new WorkflowLog() : inv.workflow.workflowId === this.workflow.workflowId ? this.log : undefined;
    return inSpan(span, () => this.client.drive(this.appId, inv, lease, run, ttlMs, ctx, log), () => replayed).catch(
      (err: unknown) => {
        this.giveBack("task", taskSeq); // calling it again replays the registered call
        throw err;
      },
    );
  }

  /**
   * A workflow data key (any task of the workflow may read): undefined when missing; a stored
   * null is null. The read is a recorded step (the key's next data_read position): a replay
   * returns what this position read the first time, whatever the data holds now.
   */
  async getData<T = unknown>(key: string): Promise<T | undefined> {
    const [found, valueJson] = await this.at(
      `data_read:${key}`,
      async (position, ctx): Promise<[[boolean, string], boolean]> => {
        // With the buffer: the read sees this run's own buffered writes.
        const resp = await this.blocking((commit) => call(this.client.executor.getData({ key, position, commit }, callOptions(ctx))));
        return [[resp.found, resp.valueJson], resp.replayed];
      },
      key,
      (r): [boolean, string] | typeof MISS => (r.value.case === "dataValue" ? [r.value.value.found, r.value.value.valueJson] : MISS),
    );
    return found ? (JSON.parse(valueJson) as T) : undefined;
  }

  /**
   * Writes a workflow data key; only the main task may (else reason WORKFLOW_ACCESS_DENIED).
   * The write is a recorded step (the key's next data_write position): a replay does not
   * apply it again, and a replay writing another value throws reason NONDETERMINISTIC_REPLAY.
   */
  async setData(key: string, value: unknown): Promise<void> {
    const valueJson = toJson(value, `data ${key}`);
    if (this.buffer && !this.isMainTask) {
      throw new SidecarError(
        new ConnectError(
          `invocation ${this.invocationId} is not the main task of workflow ${this.workflow.workflowId}: only the ` +
            "workflow's main task may write its data",
          Code.PermissionDenied,
        ),
        Reason.WORKFLOW_ACCESS_DENIED,
      );
    }
    await this.at(
      `data_write:${key}`,
      async (position, ctx): Promise<[undefined, boolean]> => {
        if (this.buffer) {
          const recorded = this.log.recorded(this.invocationId, `data_write:${key}`, position.sequence);
          if (recorded?.value.case === "dataValue") {
            // Recorded with another value (the same one is served from the log).
            throw new SidecarError(
              new ConnectError(
                `non-deterministic replay at data write ${JSON.stringify(key)} #${position.sequence} of invocation ` +
                  `${this.invocationId}: data key ${JSON.stringify(key)} was written ${recorded.value.value.valueJson.slice(0, 256)} ` +
                  `there, the replay writes ${valueJson.slice(0, 256)}`,
                Code.FailedPrecondition,
              ),
              Reason.NONDETERMINISTIC_REPLAY,
            );
          }
          return this.buffered(this.buffer, undefined, {
            kind: OperationKind.DATA_WRITE,
            customName: key,
            sequence: position.sequence,
            value: { case: "jsonValue", value: valueJson },
          });
        }
        const resp = await call(this.client.executor.setData({ key, valueJson, position }, callOptions(ctx)));
        return [undefined, resp.replayed];
      },
      key,
      // The same value recorded: nothing to apply. Another: the sidecar refuses it.
      (r) => (r.value.case === "dataValue" && r.value.value.found && sameJson(r.value.value.valueJson, valueJson) ? undefined : MISS),
    );
  }

  /** The workflow's time zero, recorded at its first use. */
  async baseTime(): Promise<Date> {
    await this.flush(); // a buffered utc_now fixes the base time: commit it first
    const resp = await call(
      this.client.executor.getBaseTime({ appId: this.appId, workflowId: this.workflow.workflowId }, callOptions(this.traceContext)),
    );
    return timestampDate(resp.baseTime!);
  }
}

export { InvocationStatus };
