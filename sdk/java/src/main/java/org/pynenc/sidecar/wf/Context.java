package org.pynenc.sidecar.wf;

import java.lang.reflect.Type;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.function.LongFunction;
import pynenc.sidecar.v1.DeterministicExecutor.ExecuteTaskRequest;
import pynenc.sidecar.v1.DeterministicExecutor.ExecuteTaskResponse;
import pynenc.sidecar.v1.DeterministicExecutor.GetDataRequest;
import pynenc.sidecar.v1.DeterministicExecutor.GetDataResponse;
import pynenc.sidecar.v1.DeterministicExecutor.GetRecordedRequest;
import pynenc.sidecar.v1.DeterministicExecutor.GetRecordedResponse;
import pynenc.sidecar.v1.DeterministicExecutor.OperationKind;
import pynenc.sidecar.v1.DeterministicExecutor.OperationPosition;
import pynenc.sidecar.v1.DeterministicExecutor.RandomRequest;
import pynenc.sidecar.v1.DeterministicExecutor.RecordedOperation;
import pynenc.sidecar.v1.DeterministicExecutor.RecordRequest;
import pynenc.sidecar.v1.DeterministicExecutor.SetDataRequest;
import pynenc.sidecar.v1.DeterministicExecutor.TaskCall;
import pynenc.sidecar.v1.DeterministicExecutor.TaskInvocation;
import pynenc.sidecar.v1.DeterministicExecutor.UtcNowRequest;
import pynenc.sidecar.v1.DeterministicExecutor.UuidRequest;

/**
 * The workflow context of one run of one invocation's code: Pynenc's {@code wf}. It counts a
 * 1-based sequence per operation kind (random, time, uuid, task, each custom name); a new
 * Context for the same invocation starts again at 1 and so replays. Each operation takes the
 * next position of its kind when called and gives it back if it fails, so calling it again
 * takes the same position (docs/client-contract.md).
 *
 * <p>Replay is local: the Context reads the workflow's log once (one GetWorkflowLog stream, at
 * its first operation, unless it was started with the log StartWorkflow brought) and serves
 * every position the log holds without a call; only unrecorded positions reach the sidecar.
 */
public final class Context {
  private final Client client;
  private final String appId;
  private final Identity workflow;
  private final String invocationId;
  private final Map<String, Long> seqs = new HashMap<>();
  /** The workflow's recorded log; null until the first operation reads it. */
  private WorkflowLog log;

  Context(Client client, String appId, Identity workflow, String invocationId, WorkflowLog log) {
    this.client = client;
    this.appId = appId;
    this.workflow = workflow;
    this.invocationId = invocationId;
    this.log = log;
  }

  /** The log this run replays from, read in one call the first time it is needed. */
  synchronized WorkflowLog log() {
    if (log == null) {
      log = client.readLog(appId, workflow.workflowId());
    }
    return log;
  }

  /** The value the log holds at this run's position, or null (then the sidecar is asked). */
  private RecordedOperation recorded(OperationKind kind, String name, long seq) {
    return log().get(invocationId(), kind, name, seq);
  }

  public String appId() {
    return appId;
  }

  public Identity workflow() {
    return workflow;
  }

  public Client client() {
    return client;
  }

  /** The scope of the operations: the invocation whose code runs (the workflow id for the main task). */
  public String invocationId() {
    return invocationId.isEmpty() ? workflow.workflowId() : invocationId;
  }

  /** Whether the code is the workflow's main task (which alone may setData). */
  public boolean isMainTask() {
    return invocationId().equals(workflow.workflowId());
  }

  /**
   * The last sequence used for a kind in this run ("random", "time", "uuid", "task", "custom:NAME",
   * "data_read:KEY", "data_write:KEY").
   */
  public synchronized long sequence(String kind) {
    return seqs.getOrDefault(kind, 0L);
  }

  /**
   * Runs a call at the next position of kind (docs/client-contract.md, "Positions"): taken when
   * called, without holding the lock during the call (a custom operation's generator may call
   * other operations, which take later positions), and given back if the call fails unless a
   * later operation of the kind was called meanwhile.
   */
  private <T> T at(String kind, LongFunction<T> call) {
    return at(kind, null, call);
  }

  /** {@link #at(String, LongFunction)} in the operation's span ({@code taskId}: the task of a task position). */
  private <T> T at(String kind, String taskId, LongFunction<T> call) {
    log(); // read before a position is taken: a failed read takes none
    long seq = take(kind);
    io.opentelemetry.api.trace.Span span = Tracing.operation(this, kind, seq, taskId);
    try (io.opentelemetry.context.Scope ignored = span.makeCurrent()) {
      T value = call.apply(seq);
      Tracing.end(span, null);
      return value;
    } catch (RuntimeException | Error e) {
      giveBack(kind, seq);
      // A call cut short because the lease was lost (the interrupt cancels it) says so.
      RuntimeException reported = leaseLost && !(e instanceof SidecarException se && se.is(SidecarException.LEASE_NOT_HELD))
          && e instanceof RuntimeException ? SidecarException.leaseLost(invocationId(), e) : null;
      Tracing.end(span, reported != null ? reported : e);
      if (reported != null) {
        throw reported;
      }
      throw e;
    }
  }

  /** The value the log holds at this run's position, marking the operation's span as served from it. */
  private RecordedOperation served(OperationKind kind, String name, long seq) {
    RecordedOperation op = recorded(kind, name, seq);
    if (op != null) {
      Tracing.served(op);
    }
    return op;
  }

  /** The custom operation whose generator runs now (null when none). */
  private String generating;

  private synchronized long take(String kind) {
    if (generating != null) {
      throw new OperationInGeneratorException(kind, generating);
    }
    if (leaseLost) {
      throw SidecarException.leaseLost(invocationId());
    }
    long seq = seqs.getOrDefault(kind, 0L) + 1;
    seqs.put(kind, seq);
    return seq;
  }

  synchronized void giveBack(String kind, long seq) {
    if (seqs.getOrDefault(kind, 0L) == seq) {
      seqs.put(kind, seq - 1);
    }
  }

  /** Set when another worker took this run's task over: every later operation throws LEASE_NOT_HELD. */
  volatile boolean leaseLost;

  /** Whether this run lost its task's lease to another worker (its code should stop). */
  public boolean leaseLost() {
    return leaseLost;
  }

  private OperationPosition position(long seq) {
    return OperationPosition.newBuilder().setAppId(appId).setWorkflow(workflow.toProto())
        .setInvocationId(invocationId).setSequence(seq).build();
  }

  /** A deterministic double in [0, 1), replayed identically. Not for secrets. */
  public double random() {
    return at("random", seq -> {
      RecordedOperation op = served(OperationKind.OPERATION_KIND_RANDOM, "", seq);
      if (op != null) {
        return op.getRandomValue();
      }
      var resp = Client.call(() -> client.executor().random(RandomRequest.newBuilder().setPosition(position(seq)).build()));
      Tracing.replayed(resp.getReplayed());
      return resp.getValue();
    });
  }

  /** The real UTC time at first record, strictly later than every earlier recorded time of the workflow. */
  public Instant utcNow() {
    var time = at("time", seq -> {
      RecordedOperation op = served(OperationKind.OPERATION_KIND_TIME, "", seq);
      if (op != null) {
        return op.getTimeValue();
      }
      var resp = Client.call(() -> client.executor().utcNow(UtcNowRequest.newBuilder().setPosition(position(seq)).build()));
      Tracing.replayed(resp.getReplayed());
      return resp.getTime();
    });
    return Instant.ofEpochSecond(time.getSeconds(), time.getNanos());
  }

  /** A deterministic UUIDv5 (canonical lowercase text), replayed identically. */
  public String uuid() {
    return at("uuid", seq -> {
      RecordedOperation op = served(OperationKind.OPERATION_KIND_UUID, "", seq);
      if (op != null) {
        return op.getUuidValue();
      }
      var resp = Client.call(() -> client.executor().uuid(UuidRequest.newBuilder().setPosition(position(seq)).build()));
      Tracing.replayed(resp.getReplayed());
      return resp.getUuid();
    });
  }

  /**
   * A custom deterministic operation on JSON text: the value recorded at the next position of
   * the operation {@code name}, or, when nothing is recorded there, the one {@code generator}
   * returns (it runs only then). The first value recorded wins.
   */
  public String recordJson(String name, Callable<String> generator) {
    return at("custom:" + name, seq -> {
      RecordedOperation logged = served(OperationKind.OPERATION_KIND_CUSTOM, name, seq);
      if (logged != null) {
        return logged.getJsonValue();
      }
      OperationPosition pos = position(seq);
      GetRecordedResponse got = Client.call(() -> client.executor().getRecorded(GetRecordedRequest.newBuilder()
          .setPosition(pos).setKind(OperationKind.OPERATION_KIND_CUSTOM).setCustomName(name).build()));
      if (got.getFound()) {
        Tracing.served(got.getOperation());
        return got.getOperation().getJsonValue();
      }
      String generated;
      synchronized (this) {
        generating = name;
      }
      try {
        generated = generator.call();
      } catch (RuntimeException e) {
        throw e;
      } catch (Exception e) {
        throw new IllegalStateException("the generator of custom operation '" + name + "' failed", e);
      } finally {
        synchronized (this) {
          generating = null;
        }
      }
      var recordedNow = Client.call(() -> client.executor().record(RecordRequest.newBuilder()
          .setPosition(pos).setOperation(name).setValueJson(generated).build()));
      Tracing.replayed(recordedNow.getReplayed());
      return recordedNow.getValueJson();
    });
  }

  /**
   * {@link #recordJson} for any JSON-serializable value (Pynenc's
   * {@code wf.deterministic._deterministic_operation(name, generator)}), decoded into {@code type}.
   */
  public <T> T record(String name, Class<T> type, Callable<? extends T> generator) {
    return Json.read(recordJson(name, () -> Json.write(generator.call())), type);
  }

  /** {@link #record(String, Class, Callable)} for a generic type (e.g. a Gson TypeToken's getType()). */
  public <T> T record(String name, Type type, Callable<? extends T> generator) {
    return Json.read(recordJson(name, () -> Json.write(generator.call())), type);
  }

  /**
   * Takes the next task position of this run. The first time, the sidecar registers a child
   * invocation; on replay the same invocation comes back with its outcome and {@code fn} is
   * not called. When this caller is granted the lease, {@code fn} runs (the lease renewed
   * while it does) and its outcome is recorded; when another caller holds it, this waits for
   * the outcome (taking the task over if that lease lapses). A replay asking for another call
   * than the recorded one throws reason NONDETERMINISTIC_REPLAY. {@code args}: a JSON object
   * of the arguments by parameter name (a Map, a record, or null for none).
   */
  public Invocation executeTask(String taskId, Object args, TaskFunction fn) {
    return executeTask(taskId, args, fn, false, client.leaseTtl);
  }

  /** {@link #executeTask(String, Object, TaskFunction)} with Pynenc's force_new_workflow and a lease length. */
  public Invocation executeTask(String taskId, Object args, TaskFunction fn, boolean forceNewWorkflow,
                                java.time.Duration leaseTtl) {
    String argsJson = argumentsJson(args);
    return at("task", taskId, seq -> {
      Invocation replayed = recordedOutcome(seq, taskId, argsJson);
      if (replayed != null) {
        return replayed;
      }
      ExecuteTaskResponse resp = Client.call(() -> client.executor().executeTask(
          ExecuteTaskRequest.newBuilder().setPosition(position(seq)).setTaskId(taskId).setArgumentsJson(argsJson)
              .setForceNewWorkflow(forceNewWorkflow).setRunnerId(client.runnerId)
              .setLeaseTtl(Client.duration(leaseTtl)).build()));
      Tracing.replayed(resp.getReplayed());
      return client.drive(appId, Invocation.fromProto(resp.getInvocation(), resp.getReplayed(), false),
          resp.hasLease() ? resp.getLease() : null, fn, leaseTtl, logFor(resp.getInvocation()));
    });
  }

  /**
   * The finished invocation the log holds for this call at this task position, or null: not
   * recorded, still unfinished, or another call (the sidecar then replays it, drives it, or
   * refuses it with NONDETERMINISTIC_REPLAY).
   */
  private Invocation recordedOutcome(long seq, String taskId, String argsJson) {
    RecordedOperation op = recorded(OperationKind.OPERATION_KIND_TASK, "", seq);
    if (op == null) {
      return null;
    }
    TaskCall call = op.getTaskValue();
    TaskInvocation state = log().task(call.getInvocationId());
    if (state == null || !call.getTaskId().equals(taskId) || !WorkflowLog.sameJson(call.getArgumentsJson(), argsJson)) {
      return null;
    }
    Invocation inv = Invocation.fromProto(state, true, false);
    if (!inv.finished()) {
      return null;
    }
    Tracing.served(op);
    return inv;
  }

  /** The log a child's run replays from: this run's when it runs in the same workflow, else its own (read when needed). */
  WorkflowLog logFor(TaskInvocation child) {
    return child.getWorkflow().getWorkflowId().equals(workflow.workflowId()) ? log() : null;
  }

  /**
   * Reads a workflow data key as JSON text (any task of the workflow may read); a stored null is
   * present. The read is a recorded step (the key's next data_read position): a replay returns
   * what this position read the first time, whatever the data holds now.
   */
  public Optional<String> getDataJson(String key) {
    return at("data_read:" + key, seq -> {
      RecordedOperation op = served(OperationKind.OPERATION_KIND_DATA_READ, key, seq);
      if (op != null) {
        return op.getDataValue().getFound() ? Optional.of(op.getDataValue().getValueJson()) : Optional.<String>empty();
      }
      GetDataResponse resp = Client.call(() -> client.executor().getData(
          GetDataRequest.newBuilder().setKey(key).setPosition(position(seq)).build()));
      Tracing.replayed(resp.getReplayed());
      return resp.getFound() ? Optional.of(resp.getValueJson()) : Optional.<String>empty();
    });
  }

  /** Reads a workflow data key decoded into {@code type}; empty when unset or a stored null (getDataJson tells them apart). */
  public <T> Optional<T> getData(String key, Class<T> type) {
    return getDataJson(key).map(json -> Json.<T>read(json, type));
  }

  /** {@link #getData(String, Class)} for a generic type (e.g. a Gson TypeToken's getType()). */
  public <T> Optional<T> getData(String key, Type type) {
    return getDataJson(key).map(json -> Json.<T>read(json, type));
  }

  /**
   * Writes a workflow data key. Only the workflow's main task may write: any other task gets
   * a SidecarException with reason WORKFLOW_ACCESS_DENIED. The write is a recorded step (the
   * key's next data_write position): a replay does not apply it again, and a replay writing
   * another value throws reason NONDETERMINISTIC_REPLAY.
   */
  public void setData(String key, Object value) {
    String json = Json.write(value);
    at("data_write:" + key, seq -> {
      // The same value recorded here: nothing to apply. Another value (or none): the sidecar
      // applies it, or refuses it with NONDETERMINISTIC_REPLAY.
      RecordedOperation op = recorded(OperationKind.OPERATION_KIND_DATA_WRITE, key, seq);
      if (op != null && WorkflowLog.sameJson(op.getDataValue().getValueJson(), json)) {
        Tracing.served(op);
        return null;
      }
      var resp = Client.call(() -> client.executor().setData(SetDataRequest.newBuilder()
          .setKey(key).setValueJson(json).setPosition(position(seq)).build()));
      Tracing.replayed(resp.getReplayed());
      return resp;
    });
  }

  static String argumentsJson(Object args) {
    return args == null ? "{}" : Json.write(args);
  }
}
