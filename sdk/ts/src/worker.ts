// A worker serving task ids: it long-polls the sidecar for their dispatched invocations and
// runs each under its lease, as the Python (`app.worker()`) and Go (`client.NewWorker`)
// workers do (docs/client-contract.md, "Dispatch: a task served by a worker in any language").
import type { DispatchedTask } from "./gen/pynenc/sidecar/v1/deterministic_executor_pb.js";
import { DISPATCH } from "./contract.js";
import { TaskSuspended } from "./errors.js";
import { WorkflowLog } from "./log.js";
import { otelContext } from "./tracing.js";
import { Invocation, call, duration, type Client, type TaskFn } from "./wf.js";

export interface WorkerOptions {
  /** How many invocations run at once (default 4); a poll asks for at most the free slots. */
  concurrency?: number;
  /** How long a stopping worker lets running invocations finish before handing them back (default 30 s). */
  shutdownGraceMs?: number;
  /** One long poll's length (default 30 s, at most 60 s). */
  pollTimeoutMs?: number;
  /** Recorded on the leases the worker takes (default the client's runnerId). */
  workerId?: string;
  /** Lease length of each invocation (default the client's leaseTtlMs); renewed every third of it. */
  leaseTtlMs?: number;
}

/** Ends a run the worker hands back: nothing is recorded (as a suspension). */
class HandedBack extends TaskSuspended {
  constructor() {
    super("handed back by a worker shutting down");
  }
}

/**
 * Serves the task ids of `tasks` (1..100) in app `appId`: `run()` polls until `stop()` (or
 * the signal given to `run`), then shuts down gracefully and resolves. A task function
 * reads its arguments with `task.arguments()`; its `signal` aborts when the run lost its
 * lease (cancelled, timed out, taken over) or is handed back.
 */
export class Worker {
  readonly taskIds: string[];
  readonly concurrency: number;
  readonly shutdownGraceMs: number;
  readonly pollTimeoutMs: number;
  readonly workerId: string;
  readonly leaseTtlMs: number;
  /** Invocations this worker recorded an outcome for, and handed back. */
  completed = 0;
  handedBack = 0;
  private readonly stopping = new AbortController();
  private readonly handBack = new AbortController();
  /** Running invocations: id -> lease id, and the promise of each run. */
  private readonly held = new Map<string, string>();
  private readonly running = new Set<Promise<void>>();
  private done?: Promise<void>;

  /** Throws a RangeError for a configuration the sidecar would refuse (no task ids, too many, a concurrency below 1). */
  constructor(
    readonly client: Client,
    readonly appId: string,
    private readonly tasks: Record<string, TaskFn>,
    options: WorkerOptions = {},
  ) {
    this.taskIds = Object.keys(tasks);
    if (this.taskIds.length === 0 || this.taskIds.length > DISPATCH.maxTaskIdsPerPoll) {
      throw new RangeError(`a worker serves 1..${DISPATCH.maxTaskIdsPerPoll} task ids, not ${this.taskIds.length}`);
    }
    this.concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`a worker's concurrency must be an integer of at least 1, not ${this.concurrency}`);
    }
    this.pollTimeoutMs = Math.min(options.pollTimeoutMs ?? DISPATCH.pollTimeoutMsDefault, DISPATCH.pollTimeoutMsMax);
    this.shutdownGraceMs = options.shutdownGraceMs ?? DISPATCH.shutdownGraceMsDefault;
    this.workerId = options.workerId ?? client.runnerId;
    this.leaseTtlMs = options.leaseTtlMs ?? client.leaseTtlMs;
  }

  /** How many invocations run now. */
  get active(): number {
    return this.running.size;
  }

  /** Serves until stopped (by `stop()` or `signal`); resolves once shut down. */
  run(signal?: AbortSignal): Promise<void> {
    if (signal) {
      if (signal.aborted) this.stopping.abort();
      else signal.addEventListener("abort", () => this.stopping.abort(), { once: true });
    }
    this.done ??= this.serveUntilStopped();
    return this.done;
  }

  /**
   * Stops taking work, lets running invocations finish for the shutdown grace, hands back
   * the rest (ReleaseTask: another worker takes them at once); resolves when `run` has.
   */
  stop(): Promise<void> {
    this.stopping.abort();
    return this.done ?? Promise.resolve();
  }

  private async serveUntilStopped(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.stopping.signal.addEventListener("abort", () => resolve(), { once: true }));
    while (!this.stopping.signal.aborted) {
      const free = Math.min(this.concurrency - this.running.size, DISPATCH.maxTasksPerPoll);
      if (free <= 0) {
        await Promise.race([stopped, ...this.running]); // a slot frees, or the worker stops
        continue;
      }
      let got: DispatchedTask[];
      try {
        got = await this.poll(free);
      } catch (err) {
        if (this.stopping.signal.aborted) break;
        this.client.log(`worker ${this.workerId}: polling failed, polling again in 1 s: ${err instanceof Error ? err.message : String(err)}`);
        await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 1000))]);
        continue;
      }
      for (const task of got) {
        const run = this.serve(task).finally(() => this.running.delete(run));
        this.running.add(run);
      }
    }
    await this.shutDown();
  }

  private async poll(free: number): Promise<DispatchedTask[]> {
    const resp = await call(
      this.client.executor.pollTasks(
        {
          appId: this.appId,
          taskIds: this.taskIds,
          workerId: this.workerId,
          maxTasks: free,
          leaseTtl: duration(this.leaseTtlMs),
          timeout: duration(this.pollTimeoutMs),
        },
        // Stopping cancels the poll in flight; the sidecar answers before this deadline.
        { signal: this.stopping.signal, timeoutMs: this.pollTimeoutMs + 30_000 },
      ),
    );
    return resp.tasks;
  }

  private async shutDown(): Promise<void> {
    const all = Promise.all(this.running);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.shutdownGraceMs);
    });
    const late = await Promise.race([all.then(() => false), graceOver]);
    clearTimeout(timer);
    if (late) {
      // Hand back at once, whether or not the task code heeds its signal: another worker
      // can take the invocation now, and this run's late outcome is refused (fenced).
      this.handBack.abort();
      await Promise.all([...this.held].map(([id, leaseId]) => this.release(id, leaseId, "shutting down")));
    }
    await all;
  }

  /** Runs one dispatched invocation under its lease; one this worker does not serve is handed back. */
  private async serve(task: DispatchedTask): Promise<void> {
    const inv = new Invocation(task.invocation!);
    const leaseId = task.lease!.leaseId;
    const fn = this.tasks[inv.taskId];
    if (!fn) {
      await this.release(inv.id, leaseId, `it does not serve ${inv.taskId}`);
      return;
    }
    const handBack = this.handBack.signal;
    const guarded: TaskFn = async (context, signal) => {
      let result: unknown;
      try {
        result = await fn(context, signal);
      } catch (err) {
        if (handBack.aborted) throw new HandedBack();
        throw err;
      }
      if (handBack.aborted) throw new HandedBack();
      return result;
    };
    this.held.set(inv.id, leaseId);
    try {
      // A fresh run has nothing recorded; a redelivered one replays what its last holder
      // recorded from the sidecar (a stale buffer is refused with COMMIT_CONFLICT and the
      // run reads the log and runs again), as the Python worker does.
      await this.client.runLeased(this.appId, inv, leaseId, guarded, this.leaseTtlMs, otelContext.active(), new WorkflowLog(), handBack);
      this.completed++;
    } catch (err) {
      if (!(err instanceof HandedBack)) {
        this.client.log(
          `worker ${this.workerId}: task ${inv.taskId} (invocation ${inv.id}) ended without an outcome: ` +
            `${err instanceof Error ? err.message : String(err)}`,
        );
      }
    } finally {
      this.held.delete(inv.id);
    }
  }

  private async release(invocationId: string, leaseId: string, why: string): Promise<void> {
    try {
      await call(this.client.executor.releaseTask({ appId: this.appId, invocationId, leaseId }, { timeoutMs: 10_000 }));
      this.handedBack++;
      this.client.log(`worker ${this.workerId}: handed invocation ${invocationId} back: ${why}`);
    } catch (err) {
      // finished meanwhile, or already someone else's
      this.client.log(`worker ${this.workerId}: could not hand back invocation ${invocationId}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
