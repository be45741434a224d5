package org.pynenc.sidecar.wf;

import java.lang.reflect.Type;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import pynenc.sidecar.v1.Common.InvocationStatus;
import pynenc.sidecar.v1.DeterministicExecutor.TaskInvocation;

/**
 * A task invocation as the workflow context sees it, with what this caller did:
 * {@code replayed} (the position already held this call) and {@code ran} (this caller ran
 * the task function). While it is RUNNING, {@code leaseRunnerId} and {@code leaseExpireTime}
 * say who holds its lease and until when ({@code leaseExpireTime} null when unknown).
 * {@code dispatched}: a worker serving the task id runs it ({@code attempt}: 1-based, of the
 * current or last run); while it is queued, {@code queueTime} is since when (a retry's: when it
 * is due) and {@code lastError} the failed attempt's error when it waits for a retry (both
 * null otherwise).
 */
public record Invocation(
    String id,
    String taskId,
    String argumentsJson,
    InvocationStatus status,
    Identity workflow,
    String parentInvocationId,
    String resultJson,
    TaskFailedException failure,
    boolean replayed,
    boolean ran,
    String leaseRunnerId,
    Instant leaseExpireTime,
    boolean dispatched,
    int attempt,
    Instant queueTime,
    TaskFailedException lastError) {

  static Invocation fromProto(TaskInvocation p, boolean replayed, boolean ran) {
    TaskFailedException failure = p.getStatus() == InvocationStatus.INVOCATION_STATUS_FAILED
        ? failure(p.getError())
        : null;
    Instant expires = p.hasLeaseExpireTime() ? instant(p.getLeaseExpireTime()) : null;
    return new Invocation(p.getInvocationId(), p.getTaskId(), p.getArgumentsJson(), p.getStatus(),
        Identity.fromProto(p.getWorkflow()), p.getParentInvocationId(), p.getResultJson(), failure, replayed, ran,
        p.getLeaseRunnerId(), expires, p.getDispatched(), p.getAttempt(),
        p.hasQueueTime() ? instant(p.getQueueTime()) : null, p.hasLastError() ? failure(p.getLastError()) : null);
  }

  private static TaskFailedException failure(pynenc.sidecar.v1.Common.TaskError e) {
    return new TaskFailedException(e.getType(), e.getMessage(), e.getDetailJson(), e.getTraceback());
  }

  private static Instant instant(com.google.protobuf.Timestamp t) {
    return Instant.ofEpochSecond(t.getSeconds(), t.getNanos());
  }

  Invocation with(boolean replayed, boolean ran) {
    return new Invocation(id, taskId, argumentsJson, status, workflow, parentInvocationId, resultJson, failure,
        replayed, ran, leaseRunnerId, leaseExpireTime, dispatched, attempt, queueTime, lastError);
  }

  private static final DateTimeFormatter MILLIS =
      DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

  /** What a run waiting for this invocation waits for and until when, in the same words in every SDK. */
  public String describeWait(Instant now, boolean again) {
    String holder = leaseRunnerId.isEmpty() ? "another worker" : "runner " + Json.write(leaseRunnerId);
    String verb = again ? "still waiting" : "waiting";
    if (dispatched) {
      return describeDispatchedWait(now, verb, holder);
    }
    String text = verb + " for task " + taskId + " (invocation " + id
        + ", workflow " + workflow.workflowId() + ") held by " + holder + ": ";
    if (leaseExpireTime == null) {
      return text + "its lease expiry is unknown";
    }
    String at = MILLIS.format(leaseExpireTime);
    double left = java.time.Duration.between(now, leaseExpireTime).toMillis() / 1000.0;
    if (left <= 0) {
      return text + "its lease expired at " + at + "; this run takes the task over now";
    }
    return text + String.format(Locale.ROOT, "its lease expires at %s (%.1f s left); this run takes the task over "
        + "then unless the holder renews it", at, left);
  }

  /** What a caller waits for when its task is dispatched to a worker. */
  private String describeDispatchedWait(Instant now, String verb, String holder) {
    String text = verb + " for task " + taskId + " (invocation " + id + ", workflow " + workflow.workflowId()
        + "), dispatched to a worker serving it: ";
    if (status == InvocationStatus.INVOCATION_STATUS_RUNNING) {
      return text + "attempt " + attempt + " runs on " + holder;
    }
    if (queueTime == null) {
      return text + "queued";
    }
    String at = MILLIS.format(queueTime);
    String retry = attempt > 0 && lastError != null ? " (attempt " + attempt + " failed: " + lastError.type() + ")" : "";
    double waited = java.time.Duration.between(queueTime, now).toMillis() / 1000.0;
    if (waited < 0) {
      return text + "to be retried at " + at + retry;
    }
    return text + String.format(Locale.ROOT, "queued since %s (%.1f s)%s", at, waited, retry);
  }

  public boolean finished() {
    return status == InvocationStatus.INVOCATION_STATUS_SUCCESS || status == InvocationStatus.INVOCATION_STATUS_FAILED;
  }

  /**
   * The task's result decoded into {@code type}; throws the recorded TaskFailedException for
   * a failed task and IllegalStateException for an unfinished one.
   */
  public <T> T result(Class<T> type) {
    return result((Type) type);
  }

  /** {@link #result(Class)} for a generic type (e.g. a Gson TypeToken's getType()). */
  public <T> T result(Type type) {
    switch (status) {
      case INVOCATION_STATUS_SUCCESS:
        return Json.read(resultJson, type);
      case INVOCATION_STATUS_FAILED:
        throw failure;
      default:
        throw new IllegalStateException("invocation " + id + " is not finished (" + status + ")");
    }
  }
}
