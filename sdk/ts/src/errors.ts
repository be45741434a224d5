import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export { Code };

/** The google.rpc.ErrorInfo domain of every error the sidecar reports. */
export const ERROR_DOMAIN = "sidecar.pynenc.org";

/** Reasons the sidecar reports in google.rpc.ErrorInfo (stable; switch on them). */
export const Reason = {
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  INVOCATION_NOT_FOUND: "INVOCATION_NOT_FOUND",
  WORKFLOW_ACCESS_DENIED: "WORKFLOW_ACCESS_DENIED",
  NONDETERMINISTIC_REPLAY: "NONDETERMINISTIC_REPLAY",
  LEASE_NOT_HELD: "LEASE_NOT_HELD",
  STORE_UNAVAILABLE: "STORE_UNAVAILABLE",
  /** No bearer token, or not an accepted one. */
  UNAUTHENTICATED: "UNAUTHENTICATED",
  /** retryWorkflow named a workflow the app does not have. */
  WORKFLOW_NOT_FOUND: "WORKFLOW_NOT_FOUND",
  /** retryWorkflow on a workflow that is not FAILED (metadata "status" names its status). */
  WORKFLOW_NOT_FAILED: "WORKFLOW_NOT_FAILED",
} as const;

export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * A failed sidecar call: its gRPC status code and the google.rpc details the server sent
 * in the grpc-status-details-bin trailer (decoded by connect into ConnectError.details).
 */
export class SidecarError extends Error {
  override readonly name = "SidecarError";
  readonly code: Code;
  /** ErrorInfo.reason, "" when the server sent none. */
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];
  override readonly cause: ConnectError;

  /** The error of an operation of a run whose task another worker took over. */
  static leaseLost(invocationId: string): SidecarError {
    return new SidecarError(
      new ConnectError(
        `this worker lost its lease on invocation ${invocationId}: another worker took the task over, so this run ` +
          "stops at its next workflow operation",
        Code.FailedPrecondition,
      ),
      Reason.LEASE_NOT_HELD,
    );
  }

  constructor(cause: ConnectError, localReason = "") {
    const info = cause.findDetails(ErrorInfoSchema)[0];
    const reason = info?.reason ?? localReason;
    super(`sidecar: ${Code[cause.code]}${reason ? ` (${reason})` : ""}: ${cause.rawMessage}`);
    this.cause = cause;
    this.code = cause.code;
    this.reason = reason;
    this.domain = info?.domain ?? (localReason ? ERROR_DOMAIN : "");
    this.metadata = { ...(info?.metadata ?? {}) };
    this.fieldViolations = cause
      .findDetails(BadRequestSchema)
      .flatMap((d) => d.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
  }

  /** Converts any error thrown by a generated-client call (already converted ones pass through). */
  static from(err: unknown): SidecarError {
    return err instanceof SidecarError ? err : new SidecarError(ConnectError.from(err));
  }
}

/** The ErrorInfo reason of an error ("" when it carries none). */
export function reasonOf(err: unknown): string {
  if (err instanceof SidecarError) return err.reason;
  if (err instanceof ConnectError) return new SidecarError(err).reason;
  return "";
}

/**
 * The failure a task recorded; thrown by Invocation.result for a FAILED invocation. A task
 * function that throws it records it unchanged: a child's failure keeps its type, message
 * and traceback.
 */
export class TaskFailedError extends Error {
  override readonly name = "TaskFailedError";
  constructor(
    readonly type: string,
    message: string,
    readonly detailJson = "",
    /** Where the error was raised, as the failing task's language printed it. */
    readonly traceback = "",
  ) {
    super(message);
  }
}

/**
 * Thrown by a task function to stop without recording an outcome: its lease is left to
 * lapse, and the next caller of the task (in any language) takes it over and runs it
 * again from the top, replaying every recorded operation.
 */
export class TaskSuspended extends Error {
  override readonly name = "TaskSuspended";
  constructor(message = "task suspended without an outcome") {
    super(message);
  }
}
