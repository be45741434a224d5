package org.pynenc.sidecar.wf;

import java.lang.reflect.Type;
import pynenc.sidecar.v1.Common.InvocationStatus;
import pynenc.sidecar.v1.DeterministicExecutor.TaskInvocation;

/**
 * A task invocation as the workflow context sees it, with what this caller did:
 * {@code replayed} (the position already held this call) and {@code ran} (this caller ran
 * the task function).
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
    boolean ran) {

  static Invocation fromProto(TaskInvocation p, boolean replayed, boolean ran) {
    TaskFailedException failure = p.getStatus() == InvocationStatus.INVOCATION_STATUS_FAILED
        ? new TaskFailedException(p.getError().getType(), p.getError().getMessage(), p.getError().getDetailJson(),
            p.getError().getTraceback())
        : null;
    return new Invocation(p.getInvocationId(), p.getTaskId(), p.getArgumentsJson(), p.getStatus(),
        Identity.fromProto(p.getWorkflow()), p.getParentInvocationId(), p.getResultJson(), failure, replayed, ran);
  }

  Invocation with(boolean replayed, boolean ran) {
    return new Invocation(id, taskId, argumentsJson, status, workflow, parentInvocationId, resultJson, failure,
        replayed, ran);
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
