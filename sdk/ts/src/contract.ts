// The client contract's constants (docs/client-contract.md; tests/vectors/client_contract.json
// is checked against them by test/contract.test.ts).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export const DEFAULT_LEASE_TTL_MS = 30_000;
export const DEFAULT_WAIT_SLICE_MS = 10_000;
/** A held lease is renewed every leaseTtl / RENEW_FRACTION. */
export const RENEW_FRACTION = 3;

export const ENV = {
  address: "PYNENC_SIDECAR_ADDRESS",
  tls: "PYNENC_SIDECAR_TLS",
  tls_ca: "PYNENC_SIDECAR_TLS_CA",
  client_cert: "PYNENC_SIDECAR_CLIENT_CERT",
  client_key: "PYNENC_SIDECAR_CLIENT_KEY",
  token: "PYNENC_SIDECAR_TOKEN",
} as const;

/** Buffered operations (docs/client-contract.md, "One round trip per blocking point"). */
export const COMMIT = {
  /** A run commits its buffer on its own (CommitOperations) when it holds this many. */
  flushAtOperations: 1000,
  /** The most operations one commit may carry. */
  maxOperations: 10_000,
  /** How often a run refused with COMMIT_CONFLICT reads the log again and runs again. */
  conflictReruns: 3,
  /** A new utc_now is at least this much later than every time the run knows of. */
  timeStepUs: 1,
  /** ABORTED: another run recorded one of the commit's positions with another value. */
  conflictReason: "COMMIT_CONFLICT",
} as const;

export const RETRY = {
  retryableCodes: ["UNAVAILABLE"],
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 2000,
  backoffMultiplier: 2,
} as const;

/**
 * Retries a unary call refused with UNAVAILABLE, as gRPC's retry policy does in the other
 * SDKs (connect-node has none): up to RETRY.maxAttempts attempts in all, sleeping a random
 * time below the current backoff between them. Every call of the service is safe to
 * repeat. Streaming calls are not retried (a partly read stream cannot be resent).
 */
export function retryInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    let backoff: number = RETRY.initialBackoffMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        const code = err instanceof ConnectError ? err.code : undefined;
        if (code !== Code.Unavailable || attempt >= RETRY.maxAttempts || req.signal.aborted) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * backoff));
      backoff = Math.min(backoff * RETRY.backoffMultiplier, RETRY.maxBackoffMs);
    }
  };
}

/** Dispatch (docs/client-contract.md, "Dispatch: a task served by a worker in any language"). */
export const DISPATCH = {
  pollTimeoutMsDefault: 30_000,
  pollTimeoutMsMax: 60_000,
  maxTasksPerPoll: 100,
  maxTaskIdsPerPoll: 100,
  shutdownGraceMsDefault: 30_000,
} as const;
