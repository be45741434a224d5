package org.pynenc.sidecar.wf;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import pynenc.sidecar.v1.DeterministicExecutor.DispatchedTask;
import pynenc.sidecar.v1.DeterministicExecutor.PollTasksRequest;
import pynenc.sidecar.v1.DeterministicExecutor.ReleaseTaskRequest;

/**
 * Serves task ids: long-polls the sidecar for their dispatched invocations (PollTasks, asking
 * for as many as it has free slots) and runs each on its own thread under its lease, renewed
 * every leaseTtl/3 (the heartbeat), recording its outcome as {@link Context#executeTask} does
 * (docs/client-contract.md, "Dispatch").
 *
 * <pre>{@code
 * try (Worker worker = client.worker("polyglot")
 *     .task("orders.process_payment", task -> Map.of("payment_id", task.uuid()))
 *     .concurrency(4).start()) {
 *   worker.awaitTermination(); // until close() from elsewhere, e.g. a shutdown hook
 * }
 * }</pre>
 *
 * <p>{@link #close()} shuts down gracefully: it stops polling, lets running invocations finish
 * for the shutdown grace, then interrupts the rest and hands them back (ReleaseTask: nothing
 * is recorded, the attempt is not counted, another worker takes them at once), and returns
 * when every run has ended. A task's code that ignores interruption keeps close() waiting.
 * Stopping cancels the poll in flight: invocations the sidecar claimed for it just then, whose
 * reply the worker never reads, go to another worker when their lease lapses, as a lost
 * worker's do (the Go and Python workers cancel their poll alike).
 */
public final class Worker implements AutoCloseable {
  private final Client client;
  private final String appId;
  private final Map<String, TaskFunction> tasks;
  private final int concurrency;
  private final Duration grace;
  private final Duration pollTimeout;
  private final Duration leaseTtl;
  private final String workerId;
  private final Consumer<String> log;

  private final Semaphore slots;
  private final ExecutorService runners;
  private final Thread poller;
  private final AtomicBoolean closing = new AtomicBoolean();
  private final CountDownLatch terminated = new CountDownLatch(1);
  /** Set when the grace is over: a run ending now is handed back, not recorded. */
  private volatile boolean handingBack;

  private Worker(Builder b) {
    this.client = b.client;
    this.appId = b.appId;
    this.tasks = Map.copyOf(b.tasks);
    this.concurrency = b.concurrency;
    this.grace = b.grace;
    this.pollTimeout = b.pollTimeout;
    this.leaseTtl = b.leaseTtl != null ? b.leaseTtl : client.leaseTtl;
    this.workerId = b.workerId != null ? b.workerId : client.runnerId;
    this.log = b.log != null ? b.log : client.waitLog;
    this.slots = new Semaphore(concurrency);
    AtomicInteger threads = new AtomicInteger();
    this.runners = Executors.newFixedThreadPool(concurrency, r -> {
      Thread t = new Thread(r, "pynenc-worker-" + workerId + "-" + threads.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    this.poller = new Thread(this::pollLoop, "pynenc-worker-" + workerId + "-poll");
    this.poller.setDaemon(true);
  }

  /** The options of a worker; {@link Client#worker(String)} makes one. */
  public static final class Builder {
    private final Client client;
    private final String appId;
    private final Map<String, TaskFunction> tasks = new LinkedHashMap<>();
    private int concurrency = 4;
    private Duration grace = Contract.DEFAULT_SHUTDOWN_GRACE;
    private Duration pollTimeout = Contract.DEFAULT_POLL_TIMEOUT;
    private Duration leaseTtl;
    private String workerId;
    private Consumer<String> log;

    Builder(Client client, String appId) {
      this.client = client;
      this.appId = appId;
    }

    /** Serves {@code taskId} with {@code fn} (its {@link Context#arguments} are the call's). */
    public Builder task(String taskId, TaskFunction fn) {
      tasks.put(taskId, java.util.Objects.requireNonNull(fn, "the code of task " + taskId));
      return this;
    }

    /** How many invocations run at once (default 4). */
    public Builder concurrency(int n) {
      concurrency = n;
      return this;
    }

    /** How long a stopping worker lets running invocations finish before handing them back (default 30 s). */
    public Builder shutdownGrace(Duration d) {
      grace = d;
      return this;
    }

    /** The long poll's length (default 30 s, at most 60 s). */
    public Builder pollTimeout(Duration d) {
      pollTimeout = d;
      return this;
    }

    /** The lease length of the invocations it takes (default the client's leaseTtl). */
    public Builder leaseTtl(Duration d) {
      leaseTtl = d;
      return this;
    }

    /** The name on the leases it takes (default the client's runnerId). */
    public Builder workerId(String id) {
      workerId = id;
      return this;
    }

    /** Gets a line when a poll fails or a run ends without an outcome (default the client's waitLog). */
    public Builder log(Consumer<String> sink) {
      log = sink;
      return this;
    }

    /**
     * Starts polling. IllegalArgumentException for a configuration the sidecar would refuse:
     * no task, more than 100 task ids, a concurrency below 1, a poll timeout outside (0, 60 s].
     */
    public Worker start() {
      if (tasks.isEmpty() || tasks.size() > Contract.MAX_TASK_IDS_PER_POLL) {
        throw new IllegalArgumentException("a worker serves 1.." + Contract.MAX_TASK_IDS_PER_POLL
            + " task ids, not " + tasks.size() + ": add each with task(taskId, fn)");
      }
      if (concurrency < 1) {
        throw new IllegalArgumentException("a worker's concurrency must be at least 1, not " + concurrency);
      }
      if (pollTimeout.isNegative() || pollTimeout.isZero() || pollTimeout.compareTo(Contract.MAX_POLL_TIMEOUT) > 0) {
        throw new IllegalArgumentException("a worker's poll timeout must be more than 0 and at most "
            + Contract.MAX_POLL_TIMEOUT.toSeconds() + " s, not " + pollTimeout);
      }
      Worker worker = new Worker(this);
      worker.poller.start();
      return worker;
    }
  }

  private void pollLoop() {
    List<String> ids = List.copyOf(tasks.keySet());
    while (!closing.get()) {
      int free;
      try {
        slots.acquire(); // wait for a free slot, then take every other free one
        free = 1 + slots.drainPermits();
      } catch (InterruptedException e) {
        return; // closing
      }
      if (free > Contract.MAX_TASKS_PER_POLL) {
        slots.release(free - Contract.MAX_TASKS_PER_POLL);
        free = Contract.MAX_TASKS_PER_POLL;
      }
      List<DispatchedTask> got;
      try {
        got = poll(ids, free);
      } catch (RuntimeException e) {
        slots.release(free);
        if (closing.get()) {
          return;
        }
        log.accept("worker " + workerId + ": polling failed, polling again in 1 s: " + SidecarException.from(e));
        try {
          Thread.sleep(1000);
        } catch (InterruptedException interrupted) {
          return;
        }
        continue;
      }
      slots.release(Math.max(0, free - got.size()));
      for (DispatchedTask task : got) {
        runners.execute(() -> {
          try {
            serve(task);
          } finally {
            slots.release();
          }
        });
      }
    }
  }

  private List<DispatchedTask> poll(List<String> ids, int free) {
    // Interrupting this thread (close) cancels the call.
    return client.executor().withDeadlineAfter(pollTimeout.plus(client.callTimeout).toMillis(), TimeUnit.MILLISECONDS)
        .pollTasks(PollTasksRequest.newBuilder().setAppId(appId).addAllTaskIds(ids).setWorkerId(workerId)
            .setMaxTasks(free).setLeaseTtl(Client.duration(leaseTtl)).setTimeout(Client.duration(pollTimeout)).build())
        .getTasksList();
  }

  /** Runs one dispatched invocation; handed back (the grace is over), it releases the lease. */
  private void serve(DispatchedTask task) {
    Invocation inv = Invocation.fromProto(task.getInvocation(), false, false);
    String leaseId = task.getLease().getLeaseId();
    TaskFunction fn = tasks.get(inv.taskId());
    if (fn == null || handingBack) { // not asked for, or too late to start: another worker takes it
      release(inv, leaseId);
      return;
    }
    try {
      // An empty log, not the workflow's: reading a workflow's whole log for each of its
      // dispatched tasks costs O(tasks) per task. A redelivered run's positions recorded by the
      // dead worker come back from the sidecar (a differing buffered value is a
      // COMMIT_CONFLICT, and the rerun reads the log), as in the Python worker.
      client.runLeased(appId, inv, leaseId, fn, leaseTtl, WorkflowLog.EMPTY, () -> handingBack);
    } catch (Client.HandedBack e) {
      release(inv, leaseId);
    } catch (RuntimeException e) {
      log.accept("worker " + workerId + ": task " + inv.taskId() + " (invocation " + inv.id()
          + ") ended without an outcome: " + e);
    }
  }

  private void release(Invocation inv, String leaseId) {
    try {
      Client.call(() -> client.executor().releaseTask(ReleaseTaskRequest.newBuilder().setAppId(appId)
          .setInvocationId(inv.id()).setLeaseId(leaseId).build()));
      log.accept("worker " + workerId + ": handed back task " + inv.taskId() + " (invocation " + inv.id() + ")");
    } catch (RuntimeException e) {
      log.accept("worker " + workerId + ": could not hand back task " + inv.taskId() + " (invocation " + inv.id()
          + "): " + e);
    }
  }

  /** The task ids this worker serves. */
  public java.util.Set<String> taskIds() {
    return tasks.keySet();
  }

  /** Blocks until the worker has shut down (close() returned, from any thread). */
  public void awaitTermination() throws InterruptedException {
    terminated.await();
  }

  /**
   * Shuts down gracefully (see the class): stop polling, let running invocations finish for
   * the grace, hand back the rest, return when every run has ended. Calling it again waits
   * for the first call to finish.
   */
  @Override
  public void close() {
    if (!closing.compareAndSet(false, true)) {
      awaitUninterruptibly(terminated);
      return;
    }
    try {
      poller.interrupt();
      joinUninterruptibly(poller);
      runners.shutdown();
      if (!awaitRunners(grace)) {
        handingBack = true;
        // Interrupts the runs still going: each ends and is handed back; one not started yet
        // is handed back here.
        for (Runnable notStarted : runners.shutdownNow()) {
          notStarted.run();
        }
        awaitRunners(null);
      }
    } finally {
      terminated.countDown();
    }
  }

  /** Waits for the running invocations (null: however long they take); false if the time ran out. */
  private boolean awaitRunners(Duration limit) {
    long deadline = limit == null ? Long.MAX_VALUE : System.nanoTime() + limit.toNanos();
    boolean interrupted = false;
    try {
      while (true) {
        try {
          long left = limit == null ? Long.MAX_VALUE : deadline - System.nanoTime();
          return runners.awaitTermination(Math.max(0, left), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static void joinUninterruptibly(Thread thread) {
    boolean interrupted = false;
    while (thread.isAlive()) {
      try {
        thread.join();
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  private static void awaitUninterruptibly(CountDownLatch latch) {
    boolean interrupted = false;
    while (latch.getCount() > 0) {
      try {
        latch.await();
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

}
