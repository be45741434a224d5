package org.pynenc.sidecar.wf;

import java.lang.reflect.Type;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.function.LongFunction;
import com.google.protobuf.Timestamp;
import java.util.ArrayList;
import java.util.List;
import pynenc.sidecar.v1.DeterministicExecutor.BufferedOperation;
import pynenc.sidecar.v1.DeterministicExecutor.CommitOperationsRequest;
import pynenc.sidecar.v1.DeterministicExecutor.ExecuteTaskRequest;
import pynenc.sidecar.v1.DeterministicExecutor.OperationCommit;
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
 *
 * <p>A run under a lease (a task or workflow this worker runs) buffers what cannot leave the
 * process before its next call to the sidecar — random and uuid (derived locally), utcNow (the
 * local clock), custom operations, the main task's data writes — and sends the buffer, fenced
 * by its lease, with its next blocking call: executeTask, getData, the task's completion
 * (docs/client-contract.md, "One round trip per blocking point"). A Context made with
 * {@code client.context(...)} holds no lease: each of its operations is one call.
 */
public final class Context {
  private final Client client;
  private final String appId;
  private final Identity workflow;
  private final String invocationId;
  private final Map<String, Long> seqs = new HashMap<>();
  /** The workflow's recorded log; null until the first operation reads it. */
  private WorkflowLog log;
  /** This run's lease on its invocation, which fences its commits; null: nothing is buffered. */
  private final String leaseId;
  /** Operations whose values were computed here and not yet committed, in call order. */
  private final List<BufferedOperation> pending = new ArrayList<>();
  /** The latest time this run knows of, in microseconds; -1: not read from the log yet. */
  private long lastTimeUs = -1;
  /** Set when a commit of this run was refused with COMMIT_CONFLICT: the run must start again. */
  volatile boolean conflicted;
  /** The arguments of the invocation whose code runs (JSON); null when this context does not know them. */
  String argumentsJson;

  Context(Client client, String appId, Identity workflow, String invocationId, WorkflowLog log, String leaseId) {
    this.client = client;
    this.appId = appId;
    this.workflow = workflow;
    this.invocationId = invocationId;
    this.log = log;
    this.leaseId = leaseId;
  }

  /** Whether this run buffers its operations (it holds a lease). */
  private boolean buffering() {
    return leaseId != null;
  }

  /**
   * Buffers an operation whose value the code gets now. At {@link Contract#FLUSH_AT_OPERATIONS}
   * the buffer is committed on its own; if that fails the operation fails too (it leaves the
   * buffer, and its position is given back).
   */
  private synchronized void buffer(BufferedOperation op) {
    pending.add(op);
    if (pending.size() >= Contract.FLUSH_AT_OPERATIONS) {
      OperationCommit commit = commit("");
      try {
        blocking(() -> client.executor().commitOperations(CommitOperationsRequest.newBuilder().setAppId(appId)
            .setWorkflowId(workflow.workflowId()).setInvocationId(invocationId).setCommit(commit).build()));
        committed(commit);
      } catch (RuntimeException e) {
        pending.remove(pending.size() - 1);
        throw e;
      }
    }
  }

  /** The buffer as the commit of the next blocking call (null when empty); kept until committed. */
  synchronized OperationCommit commit(String workflowId) {
    if (pending.isEmpty()) {
      return null;
    }
    return OperationCommit.newBuilder().setLeaseId(leaseId).addAllOperations(pending).setWorkflowId(workflowId)
        .build();
  }

  /** The commit's operations are recorded: they leave the buffer. */
  synchronized void committed(OperationCommit commit) {
    if (commit != null) {
      pending.subList(0, commit.getOperationsCount()).clear();
    }
  }

  /** A call carrying a commit: a COMMIT_CONFLICT refusal marks the run to start again. */
  private <T> T blocking(java.util.function.Supplier<T> rpc) {
    try {
      return Client.call(rpc);
    } catch (SidecarException e) {
      if (e.is(SidecarException.COMMIT_CONFLICT)) {
        conflicted = true;
      }
      throw e;
    }
  }

  /** A new utcNow: the clock's microsecond, or 1 us after the latest time this run knows of. */
  private synchronized Instant nextTime() {
    Instant now = Instant.now();
    long nowUs = now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    long last = lastTimeUs >= 0 ? lastTimeUs : log().lastTimeUs();
    lastTimeUs = Math.max(nowUs, last + Contract.TIME_STEP_US);
    return Instant.ofEpochSecond(Math.floorDiv(lastTimeUs, 1_000_000L), Math.floorMod(lastTimeUs, 1_000_000L) * 1_000);
  }

  private synchronized void knowTime(Timestamp time) {
    long us = time.getSeconds() * 1_000_000L + time.getNanos() / 1_000;
    lastTimeUs = Math.max(lastTimeUs >= 0 ? lastTimeUs : log().lastTimeUs(), us);
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

  /**
   * The arguments of the invocation whose code runs (a task a {@link Worker} runs, or any task
   * run by executeTask or startWorkflow), a JSON object by parameter name. A context made with
   * {@code client.context(...)} knows none: IllegalStateException.
   */
  public String argumentsJson() {
    if (argumentsJson == null) {
      throw new IllegalStateException("no arguments are known to this context of invocation " + invocationId());
    }
    return argumentsJson;
  }

  /** {@link #argumentsJson()} decoded into {@code type} (a record, a Map, ...). */
  public <T> T arguments(Class<T> type) {
    return Json.read(argumentsJson(), type);
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
      if (buffering()) {
        double value = Derivations.random(invocationId(), seq);
        buffer(BufferedOperation.newBuilder().setKind(OperationKind.OPERATION_KIND_RANDOM).setSequence(seq)
            .setRandomValue(value).build());
        return value;
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
        knowTime(op.getTimeValue());
        return op.getTimeValue();
      }
      if (buffering()) {
        Instant t = nextTime();
        Timestamp value = Timestamp.newBuilder().setSeconds(t.getEpochSecond()).setNanos(t.getNano()).build();
        buffer(BufferedOperation.newBuilder().setKind(OperationKind.OPERATION_KIND_TIME).setSequence(seq)
            .setTimeValue(value).build());
        return value;
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
      if (buffering()) {
        String value = Derivations.uuid(invocationId(), seq);
        buffer(BufferedOperation.newBuilder().setKind(OperationKind.OPERATION_KIND_UUID).setSequence(seq)
            .setUuidValue(value).build());
        return value;
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
      if (buffering()) { // nothing in the log: the generator's value, committed with the next blocking call
        String generated = generate(name, generator);
        buffer(BufferedOperation.newBuilder().setKind(OperationKind.OPERATION_KIND_CUSTOM).setCustomName(name)
            .setSequence(seq).setJsonValue(generated).build());
        return generated;
      }
      GetRecordedResponse got = Client.call(() -> client.executor().getRecorded(GetRecordedRequest.newBuilder()
          .setPosition(pos).setKind(OperationKind.OPERATION_KIND_CUSTOM).setCustomName(name).build()));
      if (got.getFound()) {
        Tracing.served(got.getOperation());
        return got.getOperation().getJsonValue();
      }
      String generated = generate(name, generator);
      var recordedNow = Client.call(() -> client.executor().record(RecordRequest.newBuilder()
          .setPosition(pos).setOperation(name).setValueJson(generated).build()));
      Tracing.replayed(recordedNow.getReplayed());
      return recordedNow.getValueJson();
    });
  }

  /** Runs a custom operation's generator, refusing any operation called inside it. */
  private String generate(String name, Callable<String> generator) {
    synchronized (this) {
      generating = name;
    }
    try {
      return generator.call();
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException("the generator of custom operation '" + name + "' failed", e);
    } finally {
      synchronized (this) {
        generating = null;
      }
    }
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

  /**
   * {@link #executeTask(String, Object, TaskFunction)} with Pynenc's force_new_workflow and a
   * lease length. A null {@code fn} (a task this process does not run) dispatches the call with
   * the default policies, as {@link #executeRemote(String, Object)} does.
   */
  public Invocation executeTask(String taskId, Object args, TaskFunction fn, boolean forceNewWorkflow,
                                java.time.Duration leaseTtl) {
    return executeTask(taskId, args, fn, forceNewWorkflow, leaseTtl, fn == null ? Dispatch.DEFAULT : null);
  }

  /**
   * Dispatches the call: the sidecar records it at this run's next task position and queues it
   * for a {@link Worker} serving {@code taskId}, in any language, under {@code dispatch}'s
   * policies; this blocks until its outcome (a failure after the retries is the Invocation's
   * TaskFailedException). A replay finds the recorded invocation and dispatches nothing again
   * (its outcome, or, still unfinished, the same queued invocation waited for). Pynenc's
   * {@code execute_task} of a remote task (Python's {@code app.remote_task}).
   */
  public Invocation executeRemote(String taskId, Object args, Dispatch dispatch) {
    return executeTask(taskId, args, null, false, client.leaseTtl,
        java.util.Objects.requireNonNull(dispatch, "dispatch (Dispatch.DEFAULT for the default policies)"));
  }

  /** {@link #executeRemote(String, Object, Dispatch)} with the default policies. */
  public Invocation executeRemote(String taskId, Object args) {
    return executeRemote(taskId, args, Dispatch.DEFAULT);
  }

  private Invocation executeTask(String taskId, Object args, TaskFunction fn, boolean forceNewWorkflow,
                                 java.time.Duration leaseTtl, Dispatch dispatch) {
    String argsJson = argumentsJson(args);
    return at("task", taskId, seq -> {
      Invocation replayed = recordedOutcome(seq, taskId, argsJson);
      if (replayed != null) {
        return replayed;
      }
      OperationCommit commit = commit("");
      ExecuteTaskRequest.Builder req = ExecuteTaskRequest.newBuilder().setPosition(position(seq)).setTaskId(taskId)
          .setArgumentsJson(argsJson).setForceNewWorkflow(forceNewWorkflow).setRunnerId(client.runnerId)
          .setLeaseTtl(Client.duration(leaseTtl));
      if (commit != null) {
        req.setCommit(commit);
      }
      if (dispatch != null) {
        req.setDispatch(dispatch.toProto());
      }
      ExecuteTaskResponse resp = blocking(() -> client.executor().executeTask(req.build()));
      committed(commit);
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
      OperationCommit commit = commit("");
      GetDataRequest.Builder req = GetDataRequest.newBuilder().setKey(key).setPosition(position(seq));
      if (commit != null) {
        req.setCommit(commit);
      }
      GetDataResponse resp = blocking(() -> client.executor().getData(req.build()));
      committed(commit);
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
    if (buffering() && !isMainTask()) {
      throw SidecarException.accessDenied(workflow.workflowId(), invocationId());
    }
    at("data_write:" + key, seq -> {
      // The same value recorded here: nothing to apply. Another value (or none): the sidecar
      // applies it, or refuses it with NONDETERMINISTIC_REPLAY.
      RecordedOperation op = recorded(OperationKind.OPERATION_KIND_DATA_WRITE, key, seq);
      if (op != null && WorkflowLog.sameJson(op.getDataValue().getValueJson(), json)) {
        Tracing.served(op);
        return null;
      }
      if (op == null && buffering()) {
        buffer(BufferedOperation.newBuilder().setKind(OperationKind.OPERATION_KIND_DATA_WRITE).setCustomName(key)
            .setSequence(seq).setJsonValue(json).build());
        return null;
      }
      // Another value than the log's: the sidecar judges it (NONDETERMINISTIC_REPLAY).
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
