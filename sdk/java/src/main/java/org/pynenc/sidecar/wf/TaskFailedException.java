package org.pynenc.sidecar.wf;

/**
 * The failure a task recorded (CompleteTask's error): {@link Invocation#result} throws it
 * for a FAILED invocation. A task function that throws one records its type as it is.
 */
public class TaskFailedException extends RuntimeException {
  private final String type;
  private final String detailJson;

  public TaskFailedException(String type, String message, String detailJson) {
    super("task failed: " + type + ": " + message);
    this.type = type;
    this.detailJson = detailJson == null ? "" : detailJson;
  }

  /** The error's type name, e.g. "ValueError" (Python) or "IllegalStateException". */
  public String type() {
    return type;
  }

  /** The message the task recorded (without the "task failed: type:" prefix). */
  public String taskMessage() {
    return getMessage().substring(("task failed: " + type + ": ").length());
  }

  public String detailJson() {
    return detailJson;
  }
}
