// A workflow's recorded log, read once per run (one GetWorkflowLog stream, or the log a
// StartWorkflow reply brings) so that a replay serves recorded positions locally instead of
// one call per operation. Recorded values never change, so a snapshot can only be
// incomplete (a miss goes to the sidecar), never wrong.
import {
  OperationKind,
  type GetWorkflowLogResponse,
  type RecordedOperation,
  type TaskInvocation,
} from "./gen/pynenc/sidecar/v1/deterministic_executor_pb.js";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** A Context's sequence kinds ("random", "custom:<name>", ...) as the log's (kind, name). */
const KINDS: Record<string, OperationKind> = {
  random: OperationKind.RANDOM,
  time: OperationKind.TIME,
  uuid: OperationKind.UUID,
  task: OperationKind.TASK,
  custom: OperationKind.CUSTOM,
  data_read: OperationKind.DATA_READ,
  data_write: OperationKind.DATA_WRITE,
};

/** One series of positions: a scope's operations of one kind and name. */
function series(scope: string, kind: OperationKind, name: string): string {
  return `${scope}\u0000${kind}\u0000${name}`;
}

export class WorkflowLog {
  // By series, then by sequence (sparse arrays): no per-operation key string (a bigint
  // formatted into it was a fifth of the local replay's indexing and lookups).
  private readonly operations = new Map<string, RecordedOperation[]>();
  private count = 0;
  /** The latest time the log knows of (any scope's utc_now, the base time), in µs; 0: none. */
  lastTimeUs = 0n;
  /** The state of every task the log records a call of, by invocation id. */
  readonly tasks = new Map<string, TaskInvocation>();

  /** The log from GetWorkflowLog's messages (or StartWorkflowResponse.log.batches), in any order. */
  static fromBatches(batches: Iterable<GetWorkflowLogResponse>): WorkflowLog {
    const log = new WorkflowLog();
    for (const batch of batches) log.add(batch);
    return log;
  }

  /** @internal */
  add(batch: GetWorkflowLogResponse): void {
    for (const op of batch.operations) {
      const id = series(op.scope, op.kind, op.customName);
      let ops = this.operations.get(id);
      if (!ops) this.operations.set(id, (ops = []));
      const at = Number(op.sequence);
      if (ops[at] === undefined) this.count++;
      ops[at] = op;
      if (op.value.case === "timeValue") this.noteTime(op.value.value);
    }
    if (batch.baseTime) this.noteTime(batch.baseTime);
    for (const task of batch.tasks) this.tasks.set(task.invocationId, task);
  }

  private noteTime(t: Timestamp): void {
    const us = t.seconds * 1_000_000n + BigInt(Math.floor(t.nanos / 1000));
    if (us > this.lastTimeUs) this.lastTimeUs = us;
  }

  /** How many operations the log holds. */
  get size(): number {
    return this.count;
  }

  /** What `scope` recorded at `sequence` of a Context kind ("random", "custom:<name>", ...). */
  recorded(scope: string, kind: string, sequence: bigint): RecordedOperation | undefined {
    if (this.count === 0) return undefined;
    const colon = kind.indexOf(":");
    const base = colon < 0 ? kind : kind.slice(0, colon);
    const name = colon < 0 ? "" : kind.slice(colon + 1);
    return this.operations.get(series(scope, KINDS[base]!, name))?.[Number(sequence)];
  }
}
