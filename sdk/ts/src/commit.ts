// A leased run's buffered operations (docs/client-contract.md, "One round trip per blocking
// point"): random, uuid, utc_now, custom values and the main task's data writes are computed
// by the SDK and sent, in call order, with the run's next blocking call as one
// OperationCommit, fenced by the run's lease.
import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  BufferedOperationSchema,
  OperationCommitSchema,
  type BufferedOperation,
  type OperationCommit,
} from "./gen/pynenc/sidecar/v1/deterministic_executor_pb.js";
import { COMMIT } from "./contract.js";
import { SidecarError } from "./errors.js";

export type BufferedInit = Parameters<typeof create<typeof BufferedOperationSchema>>[1];

export class RunBuffer {
  private pending: BufferedOperation[] = [];
  private lastTimeUs?: bigint;
  /** Set when a commit was refused with COMMIT_CONFLICT: the run must run again on a fresh log. */
  conflicted = false;

  /** `leaseId`: the run's lease on its scope, which fences its commits. */
  constructor(readonly leaseId: string) {}

  get size(): number {
    return this.pending.length;
  }

  /** Buffers an operation; true when the buffer is now full and must be flushed. */
  add(init: BufferedInit): boolean {
    this.pending.push(create(BufferedOperationSchema, init));
    return this.pending.length >= COMMIT.flushAtOperations;
  }

  /** Takes back the operation just added (its flush failed, so the operation fails). */
  dropLast(): void {
    this.pending.pop();
  }

  /**
   * Sends the buffer with a blocking call (`send` gets undefined when it is empty). What
   * was sent leaves the buffer only when the call succeeds: a failed call leaves it to the
   * next one (every commit is safe to repeat). `leaseId` "" lets CompleteTask's own fence it.
   */
  async carry<T>(send: (commit: OperationCommit | undefined) => Promise<T>, workflowId = "", leaseId = this.leaseId): Promise<T> {
    const n = this.pending.length;
    const commit = n ? create(OperationCommitSchema, { leaseId, operations: this.pending.slice(0, n), workflowId }) : undefined;
    try {
      const reply = await send(commit);
      this.pending.splice(0, n);
      return reply;
    } catch (err) {
      const e = SidecarError.from(err);
      if (e.reason === COMMIT.conflictReason) this.conflicted = true;
      throw e;
    }
  }

  /** A new utc_now: now, or COMMIT.timeStepUs after the latest time the run knows of. */
  nextTime(knownUs: bigint): Timestamp {
    const nowUs = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000));
    const last = this.lastTimeUs ?? knownUs;
    const us = nowUs > last ? nowUs : last + BigInt(COMMIT.timeStepUs);
    this.lastTimeUs = us;
    return {
      $typeName: "google.protobuf.Timestamp",
      seconds: us / 1_000_000n,
      nanos: Number(us % 1_000_000n) * 1000,
    };
  }
}
