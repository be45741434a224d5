package wf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The SDK's constants are the client contract's (tests/vectors/client_contract.json).
func TestClientContractConstants(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "tests", "vectors", "client_contract.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ErrorDomain string   `json:"error_domain"`
		Reasons     []string `json:"reasons"`
		Defaults    struct {
			LeaseTTLMs    int64 `json:"lease_ttl_ms"`
			RenewFraction int64 `json:"renew_every_fraction_of_ttl"`
			WaitSliceMs   int64 `json:"wait_slice_ms"`
		} `json:"defaults"`
		Retry struct {
			Codes      []string `json:"retryable_codes"`
			Attempts   int      `json:"max_attempts"`
			InitialMs  int64    `json:"initial_backoff_ms"`
			MaxMs      int64    `json:"max_backoff_ms"`
			Multiplier int      `json:"backoff_multiplier"`
		} `json:"retry"`
		Dispatch struct {
			PollDefaultMs int64 `json:"poll_timeout_ms_default"`
			PollMaxMs     int64 `json:"poll_timeout_ms_max"`
			MaxTasks      int   `json:"max_tasks_per_poll"`
			MaxTaskIDs    int   `json:"max_task_ids_per_poll"`
			GraceMs       int64 `json:"shutdown_grace_ms_default"`
		} `json:"dispatch"`
		Commit struct {
			FlushAt    int               `json:"flush_at_operations"`
			Reruns     int               `json:"conflict_reruns"`
			TimeStepUs int64             `json:"time_step_us"`
			Reasons    []string          `json:"reasons"`
			Codes      map[string]string `json:"codes"`
		} `json:"commit"`
		Env            map[string]string `json:"env"`
		SpanAttributes map[string]string `json:"span_attributes"`
		SpanNames      map[string]string `json:"span_names"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the SDK has %v, the contract %v", what, got, want)
		}
	}
	check("error domain", ErrorDomain, c.ErrorDomain)
	check("reasons", []string{ReasonInvalidArgument, ReasonInvocationNotFound, ReasonWorkflowAccessDenied,
		ReasonNondeterministicReplay, ReasonLeaseNotHeld, ReasonStoreUnavailable, ReasonUnauthenticated,
		ReasonWorkflowNotFound, ReasonWorkflowNotFailed}, c.Reasons)
	check("lease ttl", DefaultLeaseTTL, time.Duration(c.Defaults.LeaseTTLMs)*time.Millisecond)
	check("renew fraction", int64(RenewFraction), c.Defaults.RenewFraction)
	check("wait slice", DefaultWaitSlice, time.Duration(c.Defaults.WaitSliceMs)*time.Millisecond)
	client := New(nil)
	check("client lease ttl", client.leaseTTL, DefaultLeaseTTL)
	check("client wait slice", client.waitSlice, DefaultWaitSlice)
	check("retryable codes", RetryableCodes, c.Retry.Codes)
	check("max attempts", RetryMaxAttempts, c.Retry.Attempts)
	check("initial backoff", RetryInitialBackoff, time.Duration(c.Retry.InitialMs)*time.Millisecond)
	check("max backoff", RetryMaxBackoff, time.Duration(c.Retry.MaxMs)*time.Millisecond)
	check("multiplier", RetryBackoffMultiplier, c.Retry.Multiplier)
	check("poll timeout", DefaultPollTimeout, time.Duration(c.Dispatch.PollDefaultMs)*time.Millisecond)
	check("poll timeout max", MaxPollTimeout, time.Duration(c.Dispatch.PollMaxMs)*time.Millisecond)
	check("tasks per poll", MaxTasksPerPoll, c.Dispatch.MaxTasks)
	check("task ids per poll", MaxTaskIDsPerPoll, c.Dispatch.MaxTaskIDs)
	check("shutdown grace", DefaultShutdownGrace, time.Duration(c.Dispatch.GraceMs)*time.Millisecond)
	check("flush at", FlushAtOperations, c.Commit.FlushAt)
	check("conflict reruns", ConflictReruns, c.Commit.Reruns)
	check("time step", TimeStep, time.Duration(c.Commit.TimeStepUs)*time.Microsecond)
	check("commit reasons", []string{ReasonCommitConflict}, c.Commit.Reasons)
	check("commit codes", map[string]string{ReasonCommitConflict: "ABORTED", ReasonLeaseNotHeld: "FAILED_PRECONDITION"},
		c.Commit.Codes)
	var config map[string]any
	if err := json.Unmarshal([]byte(RetryServiceConfig()), &config); err != nil {
		t.Fatalf("the retry service config is not JSON: %v", err)
	}
	check("env", map[string]string{"address": EnvAddress, "tls": EnvTLS, "tls_ca": EnvTLSCA,
		"client_cert": EnvClientCert, "client_key": EnvClientKey, "token": EnvToken}, c.Env)
	check("span attributes", map[string]string{"app_id": attrAppID, "workflow_id": attrWorkflowID,
		"workflow_type": attrWorkflowType, "parent_workflow_id": attrParentWorkflow, "invocation_id": attrInvocationID,
		"operation": attrOperation, "operation_name": attrOperationName, "sequence": attrSequence,
		"task_id": attrTaskID, "replayed": attrReplayed}, c.SpanAttributes)
	names := map[string]string{"workflow": "pynenc.workflow"}
	for kind, name := range spanNames {
		names[kind] = name
	}
	check("span names", names, c.SpanNames)
}
