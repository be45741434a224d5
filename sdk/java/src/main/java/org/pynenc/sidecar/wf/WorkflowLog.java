package org.pynenc.sidecar.wf;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonPrimitive;
import java.math.BigDecimal;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import pynenc.sidecar.v1.DeterministicExecutor.GetWorkflowLogResponse;
import pynenc.sidecar.v1.DeterministicExecutor.OperationKind;
import pynenc.sidecar.v1.DeterministicExecutor.RecordedOperation;
import pynenc.sidecar.v1.DeterministicExecutor.TaskInvocation;

/**
 * A snapshot of a workflow's recorded operations and their tasks' states, read in one
 * GetWorkflowLog stream (or carried by StartWorkflowResponse.log). A replay serves every
 * position it holds without a call. Recorded values never change, so a snapshot can only be
 * incomplete (positions recorded after it was read go to the sidecar, which answers from the
 * record), never wrong.
 */
final class WorkflowLog {
  /** A position: the scope that recorded it, its kind, the custom name or data key, its sequence. */
  record Key(String scope, OperationKind kind, String name, long sequence) {}

  static final WorkflowLog EMPTY = new WorkflowLog(Map.of(), Map.of(), 0);

  private final Map<Key, RecordedOperation> operations;
  private final Map<String, TaskInvocation> tasks;
  private final long lastTimeUs;

  private WorkflowLog(Map<Key, RecordedOperation> operations, Map<String, TaskInvocation> tasks, long lastTimeUs) {
    this.operations = operations;
    this.tasks = tasks;
    this.lastTimeUs = lastTimeUs;
  }

  /** The latest time the snapshot knows of (any scope's utcNow, the base time), in microseconds; 0 if none. */
  long lastTimeUs() {
    return lastTimeUs;
  }

  private static long micros(com.google.protobuf.Timestamp t) {
    return t.getSeconds() * 1_000_000L + t.getNanos() / 1_000;
  }

  /** The log from GetWorkflowLog's messages, in whatever order they list the operations. */
  static WorkflowLog of(Iterator<GetWorkflowLogResponse> batches) {
    Map<Key, RecordedOperation> operations = new HashMap<>();
    Map<String, TaskInvocation> tasks = new HashMap<>();
    long last = 0;
    while (batches.hasNext()) {
      GetWorkflowLogResponse batch = batches.next();
      if (batch.hasBaseTime()) {
        last = Math.max(last, micros(batch.getBaseTime()));
      }
      for (RecordedOperation op : batch.getOperationsList()) {
        operations.put(new Key(op.getScope(), op.getKind(), op.getCustomName(), op.getSequence()), op);
        if (op.getKind() == OperationKind.OPERATION_KIND_TIME) {
          last = Math.max(last, micros(op.getTimeValue()));
        }
      }
      for (TaskInvocation task : batch.getTasksList()) {
        tasks.put(task.getInvocationId(), task);
      }
    }
    return new WorkflowLog(operations, tasks, last);
  }

  /** The value recorded at a position, null when this snapshot does not hold it. */
  RecordedOperation get(String scope, OperationKind kind, String name, long sequence) {
    return operations.isEmpty() ? null : operations.get(new Key(scope, kind, name, sequence));
  }

  /** A recorded task's state when the snapshot was read, null when it holds none. */
  TaskInvocation task(String invocationId) {
    return tasks.get(invocationId);
  }

  int size() {
    return operations.size();
  }

  /**
   * Whether two JSON texts hold the same value as the sidecar judges it (canonical JSON: key
   * order and number spelling do not matter, 1.0 is 1). Exact for numbers of any size, unlike
   * Gson's own equality, which compares parsed numbers as doubles. Unparsable text is never the
   * same: the sidecar then judges.
   */
  static boolean sameJson(String a, String b) {
    if (a.equals(b)) {
      return true;
    }
    try {
      return same(Json.tree(a), Json.tree(b));
    } catch (JsonParseException e) {
      return false;
    }
  }

  private static boolean same(JsonElement a, JsonElement b) {
    if (a.isJsonObject() && b.isJsonObject()) {
      JsonObject x = a.getAsJsonObject();
      JsonObject y = b.getAsJsonObject();
      if (!x.keySet().equals(y.keySet())) {
        return false;
      }
      for (String key : x.keySet()) {
        if (!same(x.get(key), y.get(key))) {
          return false;
        }
      }
      return true;
    }
    if (a.isJsonArray() && b.isJsonArray()) {
      var x = a.getAsJsonArray();
      var y = b.getAsJsonArray();
      if (x.size() != y.size()) {
        return false;
      }
      for (int i = 0; i < x.size(); i++) {
        if (!same(x.get(i), y.get(i))) {
          return false;
        }
      }
      return true;
    }
    if (a.isJsonPrimitive() && b.isJsonPrimitive()) {
      JsonPrimitive x = a.getAsJsonPrimitive();
      JsonPrimitive y = b.getAsJsonPrimitive();
      if (x.isNumber() && y.isNumber()) {
        return new BigDecimal(x.getAsString()).compareTo(new BigDecimal(y.getAsString())) == 0;
      }
      return x.equals(y);
    }
    return a.isJsonNull() && b.isJsonNull();
  }
}
