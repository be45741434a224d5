package org.pynenc.sidecar.wf;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A failed sidecar call: its gRPC status and the google.rpc details the server sent
 * (ErrorInfo's reason/domain/metadata, BadRequest's field violations).
 */
public class SidecarException extends RuntimeException {
  /** The ErrorInfo domain of every error the sidecar reports. */
  public static final String DOMAIN = "sidecar.pynenc.org";

  // Reasons the sidecar reports in google.rpc.ErrorInfo (stable; switch on them).
  public static final String INVALID_ARGUMENT = "INVALID_ARGUMENT";
  public static final String INVOCATION_NOT_FOUND = "INVOCATION_NOT_FOUND";
  public static final String WORKFLOW_ACCESS_DENIED = "WORKFLOW_ACCESS_DENIED";
  public static final String NONDETERMINISTIC_REPLAY = "NONDETERMINISTIC_REPLAY";
  public static final String LEASE_NOT_HELD = "LEASE_NOT_HELD";
  public static final String STORE_UNAVAILABLE = "STORE_UNAVAILABLE";
  public static final String UNAUTHENTICATED = "UNAUTHENTICATED";
  /** retryWorkflow named a workflow the app does not have. */
  public static final String WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND";
  /** retryWorkflow on a workflow that is not FAILED (metadata "status" names its status). */
  public static final String WORKFLOW_NOT_FAILED = "WORKFLOW_NOT_FAILED";
  /**
   * A commit of buffered operations found a position recorded by another run with another value
   * (ABORTED): nothing was written; the SDK reads the log again and runs the code again.
   */
  public static final String COMMIT_CONFLICT = "COMMIT_CONFLICT";

  /** One google.rpc.BadRequest field violation. */
  public record FieldViolation(String field, String description) {}

  private final Status.Code code;
  private final String reason;
  private final String domain;
  private final Map<String, String> metadata;
  private final List<FieldViolation> fieldViolations;

  private SidecarException(Status.Code code, String message, ErrorInfo info, List<FieldViolation> violations,
                           Throwable cause) {
    super(info.getReason().isEmpty()
        ? "sidecar: " + code + ": " + message
        : "sidecar: " + code + " (" + info.getReason() + "): " + message, cause);
    this.code = code;
    this.reason = info.getReason();
    this.domain = info.getDomain();
    this.metadata = Map.copyOf(info.getMetadataMap());
    this.fieldViolations = List.copyOf(violations);
  }

  /** Thrown by an operation of a run whose task another worker took over. */
  static SidecarException leaseLost(String invocationId) {
    return leaseLost(invocationId, null);
  }

  /** {@link #leaseLost(String)} for an operation whose call the lost lease cut short (cause: how it failed). */
  static SidecarException leaseLost(String invocationId, Throwable cause) {
    return new SidecarException(Status.Code.FAILED_PRECONDITION, "this worker lost its lease on invocation "
        + invocationId + ": another worker took the task over, so this run stops at its next workflow operation",
        ErrorInfo.newBuilder().setReason(LEASE_NOT_HELD).setDomain(DOMAIN).build(), List.of(), cause);
  }

  /** A run whose commit was refused with COMMIT_CONFLICT, though its code caught the error. */
  static SidecarException commitConflict(String invocationId) {
    return new SidecarException(Status.Code.ABORTED, "a commit of invocation " + invocationId + " was refused: another"
        + " run recorded one of its positions first", ErrorInfo.newBuilder().setReason(COMMIT_CONFLICT).setDomain(DOMAIN)
        .build(), List.of(), null);
  }

  /** A data write by a task that is not its workflow's main task, refused before any call. */
  static SidecarException accessDenied(String workflowId, String invocationId) {
    return new SidecarException(Status.Code.PERMISSION_DENIED, "invocation '" + invocationId + "' is not the main task"
        + " of workflow '" + workflowId + "': only the workflow's main task may write its data",
        ErrorInfo.newBuilder().setReason(WORKFLOW_ACCESS_DENIED).setDomain(DOMAIN)
            .putMetadata("workflow_id", workflowId).putMetadata("invocation_id", invocationId).build(), List.of(), null);
  }

  /** The SidecarException of a failed gRPC call (itself if it already is one). */
  public static SidecarException from(Throwable error) {
    if (error instanceof SidecarException e) {
      return e;
    }
    Status status = Status.fromThrowable(error);
    ErrorInfo info = ErrorInfo.getDefaultInstance();
    List<FieldViolation> violations = new ArrayList<>();
    com.google.rpc.Status details = StatusProto.fromThrowable(error);
    if (details != null) {
      for (Any detail : details.getDetailsList()) {
        try {
          if (detail.is(ErrorInfo.class)) {
            info = detail.unpack(ErrorInfo.class);
          } else if (detail.is(BadRequest.class)) {
            for (BadRequest.FieldViolation v : detail.unpack(BadRequest.class).getFieldViolationsList()) {
              violations.add(new FieldViolation(v.getField(), v.getDescription()));
            }
          }
        } catch (InvalidProtocolBufferException ignored) {
          // a malformed detail is skipped; the status code still stands
        }
      }
    }
    String message = status.getDescription() == null ? "" : status.getDescription();
    return new SidecarException(status.getCode(), message, info, violations, error);
  }

  public Status.Code code() {
    return code;
  }

  /** ErrorInfo.reason, "" when the server sent none. */
  public String reason() {
    return reason;
  }

  public String domain() {
    return domain;
  }

  public Map<String, String> metadata() {
    return metadata;
  }

  public List<FieldViolation> fieldViolations() {
    return fieldViolations;
  }

  /** Whether this error carries the given ErrorInfo reason. */
  public boolean is(String reason) {
    return this.reason.equals(reason);
  }
}
