package wf

import (
	"strings"
	"testing"
	"time"
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
