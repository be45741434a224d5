package org.pynenc.sidecar.wf;

import java.time.Duration;
import java.util.List;
import pynenc.sidecar.v1.DeterministicExecutor.RetryPolicy;
import pynenc.sidecar.v1.DeterministicExecutor.TaskDispatch;

/**
 * How a dispatched task is run: {@link Context#executeRemote(String, Object, Dispatch)} queues
 * the call for a worker serving its task id (in any language) instead of running it here.
 * Unset policies take the sidecar's defaults (docs/client-contract.md, "Policies"): one
 * attempt, no start-to-close timeout, a 10 min schedule-to-start timeout. The policies are
 * recorded with the first call; a replay keeps them whatever it asks.
 *
 * <pre>{@code
 * Dispatch payment = Dispatch.builder().maxAttempts(3).initialBackoff(Duration.ofMillis(500))
 *     .retryableErrorTypes("PaymentDeclined").scheduleToStartTimeout(Duration.ofMinutes(2)).build();
 * }</pre>
 */
public final class Dispatch {
  /** Every policy at the sidecar's default. */
  public static final Dispatch DEFAULT = builder().build();

  private final TaskDispatch proto;

  private Dispatch(TaskDispatch proto) {
    this.proto = proto;
  }

  public static Builder builder() {
    return new Builder();
  }

  TaskDispatch toProto() {
    return proto;
  }

  /** The policies of one dispatched call; each setter may be left out. */
  public static final class Builder {
    private final TaskDispatch.Builder dispatch = TaskDispatch.newBuilder();
    private final RetryPolicy.Builder retry = RetryPolicy.newBuilder();
    private boolean retrySet;

    private Builder() {}

    /** Attempts in all, the first one included (default 1: no retry). */
    public Builder maxAttempts(int attempts) {
      retrySet = true;
      retry.setMaxAttempts(attempts);
      return this;
    }

    /** The wait before the second attempt (default 1 s). */
    public Builder initialBackoff(Duration backoff) {
      retrySet = true;
      retry.setInitialBackoff(Client.duration(backoff));
      return this;
    }

    /** The factor the wait grows by per attempt (default 2). */
    public Builder backoffMultiplier(double multiplier) {
      retrySet = true;
      retry.setBackoffMultiplier(multiplier);
      return this;
    }

    /** The longest wait between attempts (default 60 s). */
    public Builder maxBackoff(Duration backoff) {
      retrySet = true;
      retry.setMaxBackoff(Client.duration(backoff));
      return this;
    }

    /** The error types that retry (none given: every type but the never-retried ones). */
    public Builder retryableErrorTypes(String... types) {
      retrySet = true;
      retry.addAllRetryableErrorTypes(List.of(types));
      return this;
    }

    /** The error types that never retry. */
    public Builder nonRetryableErrorTypes(String... types) {
      retrySet = true;
      retry.addAllNonRetryableErrorTypes(List.of(types));
      return this;
    }

    /** Bounds one attempt's run (default: none); a longer one fails with StartToCloseTimeout. */
    public Builder startToCloseTimeout(Duration timeout) {
      dispatch.setStartToCloseTimeout(Client.duration(timeout));
      return this;
    }

    /** Bounds the wait for a worker (default 10 min); a longer one fails with ScheduleToStartTimeout. */
    public Builder scheduleToStartTimeout(Duration timeout) {
      dispatch.setScheduleToStartTimeout(Client.duration(timeout));
      return this;
    }

    public Dispatch build() {
      TaskDispatch.Builder out = dispatch.clone();
      if (retrySet) {
        out.setRetryPolicy(retry.build());
      }
      return new Dispatch(out.build());
    }
  }
}
