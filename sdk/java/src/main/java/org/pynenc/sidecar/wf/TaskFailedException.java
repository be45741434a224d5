package org.pynenc.sidecar.wf;

/**
 * The failure a task recorded (CompleteTask's error): {@link Invocation#result} throws it
 * for a FAILED invocation. A task function that throws one records it as it is: a child's
 * failure keeps its type, message and traceback.
 */
public class TaskFailedException extends RuntimeException {
  private final String type;
  private final String detailJson;
  private final String traceback;

  public TaskFailedException(String type, String message, String detailJson) {
    this(type, message, detailJson, "");
  }

  public TaskFailedException(String type, String message, String detailJson, String traceback) {
    super("task failed: " + type + ": " + message);
    this.type = type;
    this.detailJson = detailJson == null ? "" : detailJson;
    this.traceback = traceback == null ? "" : traceback;
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

  /** Where the error was raised, as the failing task's language printed it ("" if unknown). */
  public String traceback() {
    return traceback;
  }
}
