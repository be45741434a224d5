package wf

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
)

// The client contract's retry policy (docs/client-contract.md, "Retries";
// tests/vectors/client_contract.json): a call refused with UNAVAILABLE is sent again, up
// to RetryMaxAttempts times in all, after a randomized exponential backoff. Every call of
// the service is safe to repeat: a position, a lease id or an invocation id makes a
// repeated write find what the first one did.
const (
	RetryMaxAttempts       = 5
	RetryInitialBackoff    = 100 * time.Millisecond
	RetryMaxBackoff        = 2 * time.Second
	RetryBackoffMultiplier = 2
)

// RetryableCodes are the gRPC status codes the SDK retries.
var RetryableCodes = []string{"UNAVAILABLE"}

// RetryServiceConfig is the gRPC service config carrying the retry policy, for every
// method of both services (grpc-go applies it; Dial sets it by default).
func RetryServiceConfig() string {
	return fmt.Sprintf(`{"methodConfig":[{"name":[{"service":"pynenc.sidecar.v1.DeterministicExecutorService"},`+
		`{"service":"pynenc.sidecar.v1.StateBackendService"}],"retryPolicy":{"maxAttempts":%d,`+
		`"initialBackoff":"%.3fs","maxBackoff":"%.3fs","backoffMultiplier":%d,"retryableStatusCodes":["UNAVAILABLE"]}}]}`,
		RetryMaxAttempts, RetryInitialBackoff.Seconds(), RetryMaxBackoff.Seconds(), RetryBackoffMultiplier)
}

// WithRetries is the dial option of the retry policy.
func WithRetries() grpc.DialOption { return grpc.WithDefaultServiceConfig(RetryServiceConfig()) }
