package wf

import (
	"strings"
	"testing"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
)

func TestDescribeWaitNamesTheHolderAndTheExpiry(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	inv := &Invocation{ID: "inv-1", TaskID: "mod.step", Workflow: Identity{WorkflowID: "wf-1"}, LeaseRunnerID: "r-9"}
	if got, want := describeWait(inv, now, false), `waiting for task mod.step (invocation inv-1, workflow wf-1) held by runner "r-9": its lease expiry is unknown`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	inv.LeaseExpireTime = now.Add(12500 * time.Millisecond)
	want := `still waiting for task mod.step (invocation inv-1, workflow wf-1) held by runner "r-9": its lease expires at 2026-01-02T03:04:18.178Z (12.5 s left); this run takes the task over then unless the holder renews it`
	if got := describeWait(inv, now, true); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := describeWait(inv, now.Add(20*time.Second), false); !strings.HasSuffix(got, "its lease expired at 2026-01-02T03:04:18.178Z; this run takes the task over now") {
		t.Fatalf("got %q", got)
	}
}

func TestDescribeWaitForADispatchedTask(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	inv := &Invocation{ID: "inv-1", TaskID: "orders.pay", Workflow: Identity{WorkflowID: "wf-1"}, Dispatched: true,
		QueueTime: now.Add(-2500 * time.Millisecond)}
	prefix := "waiting for task orders.pay (invocation inv-1, workflow wf-1), dispatched to a worker serving it: "
	if got := describeWait(inv, now, false); got != prefix+"queued since 2026-01-02T03:04:02.500Z (2.5 s)" {
		t.Fatalf("got %q", got)
	}
	inv.Attempt, inv.LastError, inv.QueueTime = 1, &TaskError{Type: "Boom"}, now.Add(time.Second)
	if got := describeWait(inv, now, false); got != prefix+"to be retried at 2026-01-02T03:04:06.000Z (attempt 1 failed: Boom)" {
		t.Fatalf("got %q", got)
	}
	inv.Status, inv.LeaseRunnerID, inv.Attempt = sidecarv1.InvocationStatus_INVOCATION_STATUS_RUNNING, "w-1", 2
	if got := describeWait(inv, now, false); got != prefix+`attempt 2 runs on runner "w-1"` {
		t.Fatalf("got %q", got)
	}
}
