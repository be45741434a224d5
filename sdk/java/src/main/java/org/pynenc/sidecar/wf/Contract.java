package org.pynenc.sidecar.wf;

import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * The client contract's constants (docs/client-contract.md; tests/vectors/client_contract.json,
 * checked by ContractTest).
 */
public final class Contract {
  private Contract() {}

  public static final Duration DEFAULT_LEASE_TTL = Duration.ofSeconds(30);
  public static final Duration DEFAULT_WAIT_SLICE = Duration.ofSeconds(10);
  /** A held lease is renewed every leaseTtl / RENEW_FRACTION. */
  public static final int RENEW_FRACTION = 3;

  public static final List<String> RETRYABLE_CODES = List.of("UNAVAILABLE");
  public static final int RETRY_MAX_ATTEMPTS = 5;
  public static final Duration RETRY_INITIAL_BACKOFF = Duration.ofMillis(100);
  public static final Duration RETRY_MAX_BACKOFF = Duration.ofMillis(2000);
  public static final int RETRY_BACKOFF_MULTIPLIER = 2;

  /** A run commits its buffer on its own (CommitOperations) when it holds this many operations. */
  public static final int FLUSH_AT_OPERATIONS = 1000;
  /** Times a run starts again after COMMIT_CONFLICT before the error reaches the caller. */
  public static final int CONFLICT_RERUNS = 3;
  /** A buffered utcNow is at least this many microseconds after every time the run knows of. */
  public static final long TIME_STEP_US = 1;

  /** A worker's long poll (PollTasks timeout): default and most. */
  public static final Duration DEFAULT_POLL_TIMEOUT = Duration.ofSeconds(30);
  public static final Duration MAX_POLL_TIMEOUT = Duration.ofSeconds(60);
  /** One PollTasks asks for at most this many invocations, for at most this many task ids. */
  public static final int MAX_TASKS_PER_POLL = 100;
  public static final int MAX_TASK_IDS_PER_POLL = 100;
  /** How long a stopping worker lets running invocations finish before handing them back. */
  public static final Duration DEFAULT_SHUTDOWN_GRACE = Duration.ofSeconds(30);

  public static final String ENV_ADDRESS = "PYNENC_SIDECAR_ADDRESS";
  public static final String ENV_TLS = "PYNENC_SIDECAR_TLS";
  public static final String ENV_TLS_CA = "PYNENC_SIDECAR_TLS_CA";
  public static final String ENV_CLIENT_CERT = "PYNENC_SIDECAR_CLIENT_CERT";
  public static final String ENV_CLIENT_KEY = "PYNENC_SIDECAR_CLIENT_KEY";
  public static final String ENV_TOKEN = "PYNENC_SIDECAR_TOKEN";

  /** gRPC's retry policy for every method of both services (every call is safe to repeat). */
  public static Map<String, Object> retryServiceConfig() {
    Map<String, Object> policy = Map.of(
        "maxAttempts", (double) RETRY_MAX_ATTEMPTS,
        "initialBackoff", RETRY_INITIAL_BACKOFF.toMillis() / 1000.0 + "s",
        "maxBackoff", RETRY_MAX_BACKOFF.toMillis() / 1000.0 + "s",
        "backoffMultiplier", (double) RETRY_BACKOFF_MULTIPLIER,
        "retryableStatusCodes", RETRYABLE_CODES);
    return Map.of("methodConfig", List.of(Map.of(
        "name", List.of(Map.of("service", "pynenc.sidecar.v1.DeterministicExecutorService"),
            Map.of("service", "pynenc.sidecar.v1.StateBackendService")),
        "retryPolicy", policy)));
  }
}
