// The policies of a dispatched task call (docs/client-contract.md, "Policies"): chosen by
// the caller, recorded with the first call; unset fields take the sidecar's defaults.
import { create } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { RetryPolicySchema, TaskDispatchSchema, type TaskDispatch } from "./gen/pynenc/sidecar/v1/deterministic_executor_pb.js";

export interface DispatchOptions {
  /** Attempts in all, the first included (default 1: no retry). */
  maxAttempts?: number;
  /** Wait before the second attempt (default 1 s), times `backoffMultiplier` (2) per attempt, up to `maxBackoffMs` (60 s). */
  initialBackoffMs?: number;
  backoffMultiplier?: number;
  maxBackoffMs?: number;
  /** Error types (a TaskFailedError's type, an Error's name) that retry; empty: every type. */
  retryOn?: string[];
  /** Error types that never retry (checked after `retryOn`). */
  neverRetry?: string[];
  /** Longest run of one attempt (default: none). */
  startToCloseMs?: number;
  /** Longest wait in the queue for a worker before the task fails with ScheduleToStartTimeout (default 10 min). */
  scheduleToStartMs?: number;
}

function durationOf(ms: number | undefined, what: string): Duration | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`${what} must be a number of milliseconds >= 0, not ${ms}`);
  return {
    $typeName: "google.protobuf.Duration",
    seconds: BigInt(Math.floor(ms / 1000)),
    nanos: Math.round((ms % 1000) * 1e6),
  };
}

/** @internal The TaskDispatch message of a dispatched call (the sidecar checks the ranges). */
export function dispatchProto(options: DispatchOptions): TaskDispatch {
  const retry =
    options.maxAttempts !== undefined ||
    options.initialBackoffMs !== undefined ||
    options.backoffMultiplier !== undefined ||
    options.maxBackoffMs !== undefined ||
    options.retryOn?.length ||
    options.neverRetry?.length;
  return create(TaskDispatchSchema, {
    retryPolicy: retry
      ? create(RetryPolicySchema, {
          maxAttempts: options.maxAttempts ?? 0,
          initialBackoff: durationOf(options.initialBackoffMs, "initialBackoffMs"),
          backoffMultiplier: options.backoffMultiplier ?? 0,
          maxBackoff: durationOf(options.maxBackoffMs, "maxBackoffMs"),
          retryableErrorTypes: options.retryOn ?? [],
          nonRetryableErrorTypes: options.neverRetry ?? [],
        })
      : undefined,
    startToCloseTimeout: durationOf(options.startToCloseMs, "startToCloseMs"),
    scheduleToStartTimeout: durationOf(options.scheduleToStartMs, "scheduleToStartMs"),
  });
}
