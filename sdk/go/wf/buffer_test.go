package wf

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A leased run computes random values locally (the derivations), commits them on their own
// only when the buffer holds FlushAtOperations, and the rest with its completion.
func TestBufferedRunFlushesAtTheLimitAndCompletesWithTheRest(t *testing.T) {
	c, counter := countingClient(t)
	ctx := testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("flush"), WorkflowType: "tests.flush"}
	n := FlushAtOperations + 5
	var got []float64
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, w *Context) (any, error) {
		for range n {
			r, err := w.Random(ctx)
			if err != nil {
				return nil, err
			}
			got = append(got, r)
		}
		return len(got), nil
	})
	if err != nil || !inv.Finished() {
		t.Fatalf("run: %v %+v", err, inv)
	}
	calls := counter.snapshot()
	if calls["Random"] != 0 || calls["CommitOperations"] != 1 || calls["CompleteTask"] != 1 {
		t.Errorf("want one CommitOperations and one CompleteTask, no Random, got %v", calls)
	}
	for i, r := range got {
		if r != DeriveRandom(id.WorkflowID, int64(i+1)) {
			t.Fatalf("random #%d is %v, not its derivation", i+1, r)
		}
	}
	// Everything was committed: a free context replays all n from the log.
	replay := c.Context(app, id, "")
	for i := range n {
		if r := must(replay.Random(ctx)); r != got[i] {
			t.Fatalf("replayed random #%d is %v, recorded %v", i+1, r, got[i])
		}
	}
}

// BaseTime commits the buffer first, so a buffered utc_now fixes the workflow's base time;
// a child task's data write is refused locally (no call) and takes no position.
func TestBufferedRunBaseTimeAndChildWrites(t *testing.T) {
	c, counter := countingClient(t)
	ctx := testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("base"), WorkflowType: "tests.base"}
	var at, base time.Time
	var childErr error
	var childSeq int64
	_, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, w *Context) (any, error) {
		var err error
		if at, err = w.UtcNow(ctx); err != nil {
			return nil, err
		}
		if base, err = w.BaseTime(ctx); err != nil {
			return nil, err
		}
		_, err = w.ExecuteTask(ctx, "tests.child", nil, func(ctx context.Context, task *Context) (any, error) {
			childErr = task.SetData(ctx, "k", 1)
			childSeq = task.Sequence("data_write:k")
			return nil, nil
		})
		return nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !base.Equal(at) {
		t.Errorf("base time %v, want the first utc_now %v", base, at)
	}
	if !errors.Is(childErr, ErrWorkflowAccessDenied) || childSeq != 0 {
		t.Errorf("a child's write: %v (position %d), want WORKFLOW_ACCESS_DENIED and none taken", childErr, childSeq)
	}
	calls := counter.snapshot()
	if calls["CommitOperations"] != 1 || calls["SetData"] != 0 || calls["UtcNow"] != 0 {
		t.Errorf("want one CommitOperations (before GetBaseTime), no SetData or UtcNow, got %v", calls)
	}
}
