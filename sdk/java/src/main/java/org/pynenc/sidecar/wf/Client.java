package org.pynenc.sidecar.wf;

import com.google.protobuf.Duration;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.time.Instant;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;
import pynenc.sidecar.v1.DeterministicExecutor.CompleteTaskRequest;
import pynenc.sidecar.v1.DeterministicExecutor.GetWorkflowLogRequest;
import pynenc.sidecar.v1.DeterministicExecutor.RenewTaskLeaseRequest;
import pynenc.sidecar.v1.DeterministicExecutor.RetryWorkflowRequest;
import pynenc.sidecar.v1.DeterministicExecutor.RetryWorkflowResponse;
import pynenc.sidecar.v1.DeterministicExecutor.StartWorkflowRequest;
import pynenc.sidecar.v1.DeterministicExecutor.StartWorkflowResponse;
import pynenc.sidecar.v1.DeterministicExecutor.TaskLease;
import pynenc.sidecar.v1.DeterministicExecutor.WaitTaskRequest;
import pynenc.sidecar.v1.DeterministicExecutor.WaitTaskResponse;
import pynenc.sidecar.v1.Common.TaskError;
import pynenc.sidecar.v1.DeterministicExecutorServiceGrpc;
import pynenc.sidecar.v1.DeterministicExecutorServiceGrpc.DeterministicExecutorServiceBlockingStub;

/**
 * The generated DeterministicExecutorService client and the settings shared by the
 * {@link Context}s it makes: Pynenc's workflow context ({@code task.wf}) for Java workers.
 *
 * <pre>{@code
 * try (Client client = Client.connect("127.0.0.1:50051")) {
 *   Context run = client.context("shop", Identity.of("order-42"), "");
 *   double r = run.random();
 *   Invocation inv = run.executeTask("orders.process_payment", Map.of("order_id", "42"),
 *       task -> Map.of("payment_id", task.uuid()));
 * }
 * }</pre>
 */
public final class Client implements AutoCloseable {
  private final Channel channel;
  private final ManagedChannel owned;
  private final DeterministicExecutorServiceBlockingStub stub;

  /** Recorded on the leases this client takes (default host-pid-java). */
  public volatile String runnerId = defaultRunnerId();
  /** Length of task leases; they are renewed every leaseTtl/3 while a task runs. */
  public volatile java.time.Duration leaseTtl = Contract.DEFAULT_LEASE_TTL;
  /** Bounds one WaitTask call; waiting repeats until the task finishes or is handed over. */
  public volatile java.time.Duration waitTimeout = Contract.DEFAULT_WAIT_SLICE;
  /** Deadline of every other call. */
  public volatile java.time.Duration callTimeout = java.time.Duration.ofSeconds(30);
  /**
   * Gets a line when a run starts waiting for another worker's lease, and on every later wait
   * slice: what it waits for and until when (default: standard error).
   */
  public volatile Consumer<String> waitLog = line -> System.err.println("pynenc-sidecar: " + line);

  private Client(Channel channel, ManagedChannel owned) {
    this.channel = channel;
    this.owned = owned;
    this.stub = DeterministicExecutorServiceGrpc.newBlockingStub(channel);
  }

  /**
   * Connects to a sidecar at "host:port" with the security the PYNENC_SIDECAR_* variables give
   * (TLS, mutual TLS, a bearer token; see {@link Security#fromEnv}): plaintext when none is set
   * (a sidecar on localhost).
   */
  public static Client connect(String target) {
    return connect(target, Security.fromEnv());
  }

  /** Connects with the given security settings. */
  public static Client connect(String target, Security security) {
    return connect(target, security.credentials());
  }

  /**
   * Connects with the given credentials (e.g. grpc's TlsChannelCredentials, or
   * InsecureChannelCredentials). Calls refused with UNAVAILABLE are retried
   * ({@link Contract#retryServiceConfig}).
   */
  public static Client connect(String target, ChannelCredentials credentials) {
    ManagedChannel channel = Grpc.newChannelBuilder(target, credentials)
        .defaultServiceConfig(Contract.retryServiceConfig()).enableRetry().build();
    return new Client(ClientInterceptors.intercept(channel, Tracing.clientInterceptor()), channel);
  }

  /** Wraps an existing channel (close() then leaves it open). */
  public static Client of(Channel channel) {
    return new Client(ClientInterceptors.intercept(channel, Tracing.clientInterceptor()), null);
  }

  /** The generated blocking stub, with the call deadline applied, for calls the helper does not wrap. */
  public DeterministicExecutorServiceBlockingStub executor() {
    return stub.withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** The channel this client calls through. */
  public Channel channel() {
    return channel;
  }

  /**
   * A run of an invocation's code inside a workflow. {@code invocationId} is the invocation
   * performing the operations (their scope); "" means the workflow's main task.
   */
  public Context context(String appId, Identity workflow, String invocationId) {
    return context(appId, workflow, invocationId, null, null);
  }

  private Context context(String appId, Identity workflow, String invocationId, WorkflowLog log, String leaseId) {
    return new Context(this, appId, workflow, invocationId == null ? "" : invocationId, log, leaseId);
  }

  /**
   * The workflow's recorded log, in one GetWorkflowLog stream. An identity the sidecar refuses
   * (INVALID_ARGUMENT) reads as an empty log: the run's first operation then gets the refusal
   * naming its own field.
   */
  WorkflowLog readLog(String appId, String workflowId) {
    try {
      return call(() -> WorkflowLog.of(executor().getWorkflowLog(
          GetWorkflowLogRequest.newBuilder().setAppId(appId).setWorkflowId(workflowId).build())));
    } catch (SidecarException e) {
      if (e.code() == io.grpc.Status.Code.INVALID_ARGUMENT) {
        return WorkflowLog.EMPTY;
      }
      throw e;
    }
  }

  /**
   * Registers (or finds) the main invocation of the workflow whose id the caller chose and
   * runs it like {@link Context#executeTask}: {@code fn} runs when this caller gets the
   * lease; a finished workflow returns its recorded outcome. workflow.workflowType is required.
   * A replay of an unfinished workflow serves its recorded positions from the log the reply
   * brings (include_log), or from one GetWorkflowLog when the log was too large for the reply.
   */
  public Invocation startWorkflow(String appId, Identity workflow, Object args, TaskFunction fn) {
    io.opentelemetry.api.trace.Span span = Tracing.run(appId, workflow); // the root of the run's trace
    try (io.opentelemetry.context.Scope ignored = span == null ? null : span.makeCurrent()) {
      Invocation inv = startWorkflowTraced(appId, workflow, args, fn);
      if (span != null) {
        span.setAttribute(Tracing.REPLAYED, inv.replayed());
      }
      Tracing.end(span, null);
      return inv;
    } catch (RuntimeException | Error e) {
      Tracing.end(span, e);
      throw e;
    }
  }

  private Invocation startWorkflowTraced(String appId, Identity workflow, Object args, TaskFunction fn) {
    StartWorkflowResponse resp = call(() -> executor().startWorkflow(StartWorkflowRequest.newBuilder()
        .setAppId(appId).setWorkflow(workflow.toProto()).setArgumentsJson(Context.argumentsJson(args))
        .setRunnerId(runnerId).setLeaseTtl(duration(leaseTtl)).setIncludeLog(true).build()));
    WorkflowLog log = !resp.getReplayed() ? WorkflowLog.EMPTY
        : resp.hasLog() ? WorkflowLog.of(resp.getLog().getBatchesList().iterator()) : null;
    return drive(appId, Invocation.fromProto(resp.getInvocation(), resp.getReplayed(), false),
        resp.hasLease() ? resp.getLease() : null, fn, leaseTtl, log);
  }

  /** Runs a call, turning a gRPC failure into a SidecarException. */
  static <T> T call(Supplier<T> rpc) {
    try {
      return rpc.get();
    } catch (StatusRuntimeException e) {
      throw SidecarException.from(e);
    }
  }

  static Duration duration(java.time.Duration d) {
    return Duration.newBuilder().setSeconds(d.getSeconds()).setNanos(d.getNano()).build();
  }

  /**
   * Brings an invocation to an outcome: run it under the lease if held, else wait (and take
   * over). {@code log}: what the first run replays from when the lease is granted at once
   * (null: read at its first operation); a run after waiting reads the log as it is then.
   */
  Invocation drive(String appId, Invocation inv, TaskLease lease, TaskFunction fn, java.time.Duration ttl,
                   WorkflowLog log) {
    boolean replayed = inv.replayed();
    boolean ran = false;
    int slices = 0;
    while (!inv.finished()) {
      if (lease != null) {
        if (fn == null) {
          throw new IllegalStateException("granted the lease on " + inv.id() + " (" + inv.taskId()
              + ") but no task function was given");
        }
        ran = true;
        try {
          inv = runLeased(appId, inv, lease.getLeaseId(), fn, ttl, log, null);
          break;
        } catch (SidecarException e) {
          if (!e.is(SidecarException.LEASE_NOT_HELD)) {
            throw e;
          }
          // another live holder took the task over: wait for its outcome
        }
      }
      log = null; // the task goes on meanwhile
      final Invocation waiting = inv;
      waitLog.accept(waiting.describeWait(Instant.now(), slices++ > 0));
      WaitTaskResponse resp = call(() -> stub
          .withDeadlineAfter(callTimeout.plus(waitTimeout).toMillis(), TimeUnit.MILLISECONDS)
          .waitTask(WaitTaskRequest.newBuilder().setAppId(appId).setInvocationId(waiting.id())
              .setRunnerId(runnerId).setTimeout(duration(waitTimeout)).setLeaseTtl(duration(ttl)).build()));
      inv = Invocation.fromProto(resp.getInvocation(), replayed, ran);
      lease = resp.hasLease() ? resp.getLease() : null;
    }
    return inv.with(replayed, ran);
  }

  /**
   * Runs the task while renewing its lease every ttl/3, then records its outcome with the run's
   * buffered operations. A commit refused with COMMIT_CONFLICT (this run's log was stale) makes
   * the run read the log again and run the task again from its top, at most
   * {@link Contract#CONFLICT_RERUNS} times. {@code handedBack} (null: never) is asked when the
   * code returns: true (a worker shutting down handed the run back) records nothing and throws
   * {@link HandedBack}.
   */
  Invocation runLeased(String appId, Invocation inv, String leaseId, TaskFunction fn, java.time.Duration ttl,
                       WorkflowLog log, java.util.function.BooleanSupplier handedBack) {
    ScheduledExecutorService renewer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "pynenc-lease-" + inv.id());
      t.setDaemon(true);
      return t;
    });
    long period = Math.max(1, ttl.toMillis() / Contract.RENEW_FRACTION);
    java.util.concurrent.atomic.AtomicReference<Context> current = new java.util.concurrent.atomic.AtomicReference<>();
    Thread runner = Thread.currentThread();
    renewer.scheduleAtFixedRate(() -> {
      try {
        stub.withDeadlineAfter(period, TimeUnit.MILLISECONDS).renewTaskLease(RenewTaskLeaseRequest.newBuilder()
            .setAppId(appId).setInvocationId(inv.id()).setLeaseId(leaseId).setLeaseTtl(duration(ttl)).build());
      } catch (StatusRuntimeException e) {
        SidecarException err = SidecarException.from(e);
        if (err.is(SidecarException.LEASE_NOT_HELD) || err.code() == io.grpc.Status.Code.NOT_FOUND) {
          // The lease is gone: the run's next operation throws LEASE_NOT_HELD, and a task
          // blocked in an interruptible call is interrupted (CompleteTask will tell).
          current.get().leaseLost = true;
          runner.interrupt();
          throw err; // stop renewing
        }
      }
    }, period, period, TimeUnit.MILLISECONDS);
    try {
      for (int rerun = 0; ; rerun++) {
        Context task = context(appId, inv.workflow(), inv.id(), log, leaseId);
        task.argumentsJson = inv.argumentsJson();
        Context previous = current.getAndSet(task);
        task.leaseLost = previous != null && previous.leaseLost;
        try {
          return runOnce(appId, inv, leaseId, fn, task, handedBack);
        } catch (SidecarException e) {
          if (!e.is(SidecarException.COMMIT_CONFLICT) || rerun >= Contract.CONFLICT_RERUNS) {
            throw e;
          }
          waitLog.accept("invocation " + inv.id() + " (" + inv.taskId() + "): " + e.getMessage()
              + "; reading the log again and running the task again");
          log = null; // read anew by the next run's first operation
        }
      }
    } finally {
      renewer.shutdownNow();
      try {
        renewer.awaitTermination(callTimeout.toMillis(), TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        // the renewer's own interrupt: cleared below
      }
      Thread.interrupted(); // an interrupt for a lost lease ends with the task's code
    }
  }

  /** One run of the task's code and its CompleteTask (carrying the run's buffer). */
  private Invocation runOnce(String appId, Invocation inv, String leaseId, TaskFunction fn, Context task,
                             java.util.function.BooleanSupplier handedBack) {
    CompleteTaskRequest.Builder req = CompleteTaskRequest.newBuilder()
        .setAppId(appId).setInvocationId(inv.id()).setLeaseId(leaseId);
    try {
      Object result = fn.run(task);
      try {
        req.setResultJson(Json.write(result));
      } catch (RuntimeException e) {
        req.setError(TaskError.newBuilder().setType("SerializationError").setMessage(String.valueOf(e.getMessage())));
      }
    } catch (TaskFailedException e) {
      req.setError(TaskError.newBuilder().setType(e.type()).setMessage(e.taskMessage()).setDetailJson(e.detailJson())
          .setTraceback(e.traceback()));
    } catch (Exception e) {
      if (task.conflicted) { // a blocking call's commit was refused: not the task's outcome
        throw SidecarException.commitConflict(inv.id());
      }
      req.setError(TaskError.newBuilder().setType(e.getClass().getSimpleName())
          .setMessage(e.getMessage() == null ? "" : e.getMessage()).setTraceback(stackTrace(e)));
    } finally {
      Thread.interrupted(); // an interrupt for a lost lease ends with the task's code
    }
    if (handedBack != null && handedBack.getAsBoolean()) {
      throw new HandedBack(inv.id());
    }
    if (task.conflicted) {
      throw SidecarException.commitConflict(inv.id());
    }
    var commit = task.commit(inv.workflow().workflowId());
    if (commit != null) {
      req.setCommit(commit.toBuilder().setLeaseId("")); // the request's own lease_id fences it
    }
    try {
      return Invocation.fromProto(call(() -> executor().completeTask(req.build())).getInvocation(), false, true);
    } catch (SidecarException e) {
      // Refused before the sidecar's handler saw it (larger than its gRPC message limit):
      // record that as the task's failure, so the task does not stay RUNNING.
      if (e.code() != io.grpc.Status.Code.RESOURCE_EXHAUSTED) {
        throw e;
      }
      req.setError(tooLargeError(req, inv, e));
      return Invocation.fromProto(call(() -> executor().completeTask(req.build())).getInvocation(), false, true);
    }
  }

  /**
   * A worker serving task ids of app {@code appId}: add each task's code with
   * {@link Worker.Builder#task}, then {@link Worker.Builder#start}.
   */
  public Worker.Builder worker(String appId) {
    return new Worker.Builder(this, appId);
  }

  /**
   * Records an unfinished invocation (queued or running, dispatched or not) FAILED with type
   * TaskCancelled and {@code reason} in its message; its holder learns at its next renewal.
   * Returns whether it cancelled (false: the invocation had already finished and is left as it was).
   */
  public boolean cancelTask(String appId, String invocationId, String reason) {
    return call(() -> executor().cancelTask(pynenc.sidecar.v1.DeterministicExecutor.CancelTaskRequest.newBuilder()
        .setAppId(appId).setInvocationId(invocationId).setReason(reason == null ? "" : reason).build()))
        .getCancelled();
  }

  /** Ends a run a worker hands back: nothing was recorded, the worker releases the lease. */
  static final class HandedBack extends RuntimeException {
    HandedBack(String invocationId) {
      super("invocation " + invocationId + " was handed back by a worker shutting down", null, false, false);
    }
  }

  /**
   * Makes a FAILED workflow runnable again from its failed steps: every FAILED invocation in
   * it (its main task, the failed tasks inside it, failed child workflows) is reset to RETRY;
   * everything recorded is kept. Returns the invocations reset, the main task last. Then
   * {@link #startWorkflow} with the same identity runs it again: recorded steps replay and
   * the reset tasks run again. A workflow that is not FAILED throws a SidecarException with
   * reason WORKFLOW_NOT_FAILED; an unknown one WORKFLOW_NOT_FOUND.
   */
  public java.util.List<Invocation> retryWorkflow(String appId, String workflowId) {
    RetryWorkflowResponse resp = call(() -> executor().retryWorkflow(
        RetryWorkflowRequest.newBuilder().setAppId(appId).setWorkflowId(workflowId).build()));
    return resp.getInvocationsList().stream().map(p -> Invocation.fromProto(p, false, false)).toList();
  }

  private static String stackTrace(Throwable e) {
    java.io.StringWriter out = new java.io.StringWriter();
    e.printStackTrace(new java.io.PrintWriter(out));
    return out.toString();
  }

  private static TaskError tooLargeError(CompleteTaskRequest.Builder req, Invocation inv, SidecarException refusal) {
    boolean result = req.getOutcomeCase() == CompleteTaskRequest.OutcomeCase.RESULT_JSON;
    long size = result ? req.getResultJson().getBytes(java.nio.charset.StandardCharsets.UTF_8).length
        : req.getError().getSerializedSize();
    return TaskError.newBuilder().setType("ResultTooLarge").setMessage("the " + (result ? "result" : "error")
        + " of task " + inv.taskId() + " (invocation " + inv.id() + ") is " + size + " bytes, more than the sidecar"
        + " accepts in one request (" + refusal.getMessage() + "): return less (keep large data elsewhere and"
        + " return a reference), or raise the sidecar's --max-message-bytes / PYNENC_SIDECAR_MAX_MESSAGE_BYTES"
        + " and --max-value-bytes / PYNENC_SIDECAR_MAX_VALUE_BYTES").build();
  }

  private static String defaultRunnerId() {
    String host;
    try {
      host = InetAddress.getLocalHost().getHostName();
    } catch (Exception e) {
      host = "localhost";
    }
    return host + "-" + ManagementFactory.getRuntimeMXBean().getPid() + "-java";
  }

  @Override
  public void close() {
    if (owned != null) {
      owned.shutdownNow();
      try {
        owned.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
