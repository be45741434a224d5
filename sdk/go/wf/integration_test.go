package wf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// These tests need a running sidecar: PYNENC_SIDECAR_ADDRESS=host:port (they skip without).

func testClient(t *testing.T) *Client {
	t.Helper()
	address := os.Getenv("PYNENC_SIDECAR_ADDRESS")
	if address == "" {
		t.Skip("PYNENC_SIDECAR_ADDRESS is not set")
	}
	c, err := Dial(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must unwraps (value, error) results in tests; an error panics, failing the test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestValuesReplay(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("wf")}
	first := c.Context(app, id, "")
	r1 := must(first.Random(ctx))
	r2 := must(first.Random(ctx))
	u1 := must(first.UUID(ctx))
	t1 := must(first.UtcNow(ctx))
	t2 := must(first.UtcNow(ctx))
	if r1 != DeriveRandom(id.WorkflowID, 1) || r2 != DeriveRandom(id.WorkflowID, 2) {
		t.Fatalf("random %v %v differ from the local derivation", r1, r2)
	}
	if u1 != DeriveUUID(id.WorkflowID, 1) {
		t.Fatalf("uuid %s differs from the local derivation", u1)
	}
	if !t2.After(t1) {
		t.Fatalf("utc_now not increasing: %v then %v", t1, t2)
	}
	again := c.Context(app, id, "")
	if got := must(again.Random(ctx)); got != r1 {
		t.Fatalf("replayed random %v != %v", got, r1)
	}
	must(again.Random(ctx))
	if got := must(again.UUID(ctx)); got != u1 {
		t.Fatalf("replayed uuid %s != %s", got, u1)
	}
	if got := must(again.UtcNow(ctx)); !got.Equal(t1) {
		t.Fatalf("replayed time %v != %v", got, t1)
	}
	if again.Sequence("random") != 2 || again.Sequence("time") != 1 {
		t.Fatalf("sequences %d %d", again.Sequence("random"), again.Sequence("time"))
	}
	// another app never sees this workflow's values (same derivation, separately recorded)
	other := c.Context(unique("go-other"), id, "")
	must(other.UtcNow(ctx))
}

func TestRecordRunsGeneratorOnce(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("wf")}
	var calls atomic.Int32
	gen := func() (map[string]any, error) {
		calls.Add(1)
		return map[string]any{"n": time.Now().UnixNano(), "s": "ü"}, nil
	}
	v1 := must(Record(ctx, c.Context(app, id, ""), "sequence", gen))
	v2 := must(Record(ctx, c.Context(app, id, ""), "sequence", gen))
	if calls.Load() != 1 {
		t.Fatalf("generator ran %d times", calls.Load())
	}
	if fmt.Sprint(v1) != fmt.Sprint(v2) {
		t.Fatalf("replayed %v != %v", v2, v1)
	}
	// null is a value
	n1 := must(Record(ctx, c.Context(app, id, ""), "nothing", func() (*int, error) { return nil, nil }))
	if n1 != nil {
		t.Fatal("expected nil")
	}
	ran := false
	must(c.Context(app, id, "").RecordJSON(ctx, "nothing", func() (string, error) { ran = true; return "1", nil }))
	if ran {
		t.Fatal("a recorded null must replay, not regenerate")
	}
}

func TestExecuteTaskReplay(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("wf"), WorkflowType: "tests.main"}
	var runs atomic.Int32
	double := func(ctx context.Context, task *Context) (any, error) {
		runs.Add(1)
		r, err := task.Random(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"y": 42, "r": r, "scope": task.InvocationID()}, nil
	}
	first := c.Context(app, id, "")
	inv := must(first.ExecuteTask(ctx, "tests.double", map[string]any{"x": 21.0}, double))
	if !inv.Ran || inv.Replayed || inv.Status != sidecarv1.InvocationStatus_INVOCATION_STATUS_SUCCESS {
		t.Fatalf("first run: %+v", inv)
	}
	if inv.ArgumentsJSON != `{"x":21}` {
		t.Fatalf("arguments not canonical: %s", inv.ArgumentsJSON)
	}
	if inv.Workflow.WorkflowID != id.WorkflowID || inv.ParentInvocationID != id.WorkflowID {
		t.Fatalf("child inherits the workflow: %+v", inv)
	}
	var out struct {
		Y     int     `json:"y"`
		R     float64 `json:"r"`
		Scope string  `json:"scope"`
	}
	if err := inv.Result(&out); err != nil {
		t.Fatal(err)
	}
	if out.Y != 42 || out.Scope != inv.ID || out.R != DeriveRandom(inv.ID, 1) {
		t.Fatalf("result %+v", out)
	}
	// an identical second call is a second invocation
	inv2 := must(first.ExecuteTask(ctx, "tests.double", map[string]any{"x": 21}, double))
	if inv2.ID == inv.ID {
		t.Fatal("two identical calls in one run must be two invocations")
	}
	replay := c.Context(app, id, "")
	again := must(replay.ExecuteTask(ctx, "tests.double", map[string]any{"x": 21}, double))
	if again.Ran || !again.Replayed || again.ID != inv.ID || again.ResultJSON != inv.ResultJSON {
		t.Fatalf("replay: %+v vs %+v", again, inv)
	}
	if runs.Load() != 2 {
		t.Fatalf("task ran %d times", runs.Load())
	}
	_, err := replay.ExecuteTask(ctx, "tests.other", nil, double)
	e := FromError(err)
	if e == nil || e.Code != codes.FailedPrecondition || e.Reason != ReasonNondeterministicReplay || e.Domain != ErrorDomain {
		t.Fatalf("expected NONDETERMINISTIC_REPLAY, got %v", err)
	}
	if e.Metadata["recorded_task_id"] != "tests.double" || e.Metadata["requested_task_id"] != "tests.other" {
		t.Fatalf("metadata %v", e.Metadata)
	}
	if !errors.Is(err, &Error{Code: codes.FailedPrecondition, Reason: ReasonNondeterministicReplay}) {
		t.Fatal("errors.Is on reason")
	}
	if replay.Sequence("task") != 1 {
		t.Fatal("a failed call must not advance the sequence")
	}
}

func TestTaskFailureAndForceNewWorkflow(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("wf")}
	run := c.Context(app, id, "")
	inv := must(run.ExecuteTask(ctx, "tests.fail", nil, func(ctx context.Context, task *Context) (any, error) {
		return nil, errors.New("boom")
	}))
	var te *TaskError
	if err := inv.Result(nil); !errors.As(err, &te) || te.Message != "boom" || te.Type != "errors.errorString" {
		t.Fatalf("expected the task error, got %v", err)
	}
	child := must(run.ExecuteTask(ctx, "tests.child_wf", map[string]any{"a": 1}, func(ctx context.Context, task *Context) (any, error) {
		if !task.IsMainTask() {
			return nil, errors.New("a forced workflow's task is its main task")
		}
		return nil, task.SetData(ctx, "k", "v")
	}, ForceNewWorkflow()))
	if err := child.Result(nil); err != nil {
		t.Fatal(err)
	}
	if child.Workflow.WorkflowID != child.ID || child.Workflow.ParentWorkflowID != id.WorkflowID {
		t.Fatalf("forced workflow identity %+v", child.Workflow)
	}
}

func TestWorkflowData(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("wf")}
	main := c.Context(app, id, "")
	if err := main.SetData(ctx, "tracking", map[string]any{"n": "TRK-1"}); err != nil {
		t.Fatal(err)
	}
	if err := main.SetData(ctx, "none", nil); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if found := must(main.GetData(ctx, "tracking", &got)); !found || got["n"] != "TRK-1" {
		t.Fatalf("get: %v %v", found, got)
	}
	if _, found, err := main.GetDataJSON(ctx, "none"); err != nil || !found {
		t.Fatal("a stored null is found")
	}
	if found := must(main.GetData(ctx, "missing", nil)); found {
		t.Fatal("missing key found")
	}
	inv := must(main.ExecuteTask(ctx, "tests.writer", nil, func(ctx context.Context, task *Context) (any, error) {
		var v map[string]string
		if _, err := task.GetData(ctx, "tracking", &v); err != nil {
			return nil, err
		}
		err := task.SetData(ctx, "tracking", "overwritten")
		return map[string]any{"read": v["n"], "reason": Reason(err)}, nil
	}))
	var out map[string]string
	if err := inv.Result(&out); err != nil {
		t.Fatal(err)
	}
	if out["read"] != "TRK-1" || out["reason"] != ReasonWorkflowAccessDenied {
		t.Fatalf("task view of data: %v", out)
	}
}

func TestLeaseTakeoverAndWait(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("wf")}
	// a caller that takes the lease and dies (never renews nor completes)
	resp, err := c.Executor.ExecuteTask(ctx, &sidecarv1.ExecuteTaskRequest{
		Position: &sidecarv1.OperationPosition{AppId: app, Workflow: id.proto(), Sequence: 1},
		TaskId:   "tests.slow", ArgumentsJson: "{}", LeaseTtl: durationpb.New(time.Second),
	})
	if err != nil || resp.GetLease() == nil {
		t.Fatalf("expected a lease: %v %v", resp, err)
	}
	start := time.Now()
	inv := must(c.Context(app, id, "").ExecuteTask(ctx, "tests.slow", nil, func(ctx context.Context, task *Context) (any, error) {
		return "taken over", nil
	}))
	if !inv.Ran || inv.ResultJSON != `"taken over"` || time.Since(start) < 500*time.Millisecond {
		t.Fatalf("takeover: %+v after %v", inv, time.Since(start))
	}
	// the dead holder's lease is gone
	_, err = c.Executor.CompleteTask(ctx, &sidecarv1.CompleteTaskRequest{
		AppId: app, InvocationId: inv.ID, LeaseId: resp.GetLease().GetLeaseId(),
		Outcome: &sidecarv1.CompleteTaskRequest_ResultJson{ResultJson: `"late"`},
	})
	if err != nil {
		t.Fatalf("completing a finished task returns the stored outcome: %v", err)
	}
	// renewing a lease one does not hold
	_, err = c.Executor.RenewTaskLease(ctx, &sidecarv1.RenewTaskLeaseRequest{AppId: app, InvocationId: inv.ID, LeaseId: "nope"})
	if Reason(err) != ReasonLeaseNotHeld {
		t.Fatalf("expected LEASE_NOT_HELD, got %v", err)
	}
}

func TestLeaseRenewedWhileRunning(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	c.leaseTTL = 2 * time.Second
	app, id := unique("go-app"), Identity{WorkflowID: unique("wf")}
	other := *c
	other.runnerID = "other"
	var waited *Invocation
	done := make(chan error, 1)
	inv := must(c.Context(app, id, "").ExecuteTask(ctx, "tests.long", nil, func(taskCtx context.Context, task *Context) (any, error) {
		go func() { // another run of the same workflow waits for this one
			inv, err := other.Context(app, id, "").ExecuteTask(ctx, "tests.long", nil, func(ctx context.Context, task *Context) (any, error) {
				return "ran twice", nil
			})
			waited = inv
			done <- err
		}()
		select {
		case <-time.After(3500 * time.Millisecond): // longer than the lease: renewal keeps it
		case <-taskCtx.Done():
			return nil, taskCtx.Err()
		}
		return "once", nil
	}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if inv.ResultJSON != `"once"` || waited.Ran || waited.ResultJSON != `"once"` {
		t.Fatalf("runner %+v, waiter %+v", inv, waited)
	}
}

func TestInvalidArgumentNamesTheField(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	_, err := c.Context("", Identity{WorkflowID: "wf"}, "").Random(ctx)
	e := FromError(err)
	if e == nil || e.Code != codes.InvalidArgument || len(e.FieldViolations) == 0 || e.FieldViolations[0].Field != "position.app_id" {
		t.Fatalf("expected INVALID_ARGUMENT on position.app_id, got %+v", e)
	}
}

func TestStartWorkflow(t *testing.T) {
	c, ctx := testClient(t), testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("order"), WorkflowType: "tests.order_workflow"}
	main := func(ctx context.Context, w *Context) (any, error) {
		r, err := w.Random(ctx)
		if err != nil {
			return nil, err
		}
		if err := w.SetData(ctx, "r", r); err != nil {
			return nil, err
		}
		return map[string]any{"r": r}, nil
	}
	inv := must(c.StartWorkflow(ctx, app, id, map[string]any{"order_id": "1"}, main))
	if !inv.Ran || inv.ID != id.WorkflowID {
		t.Fatalf("start: %+v", inv)
	}
	again := must(c.StartWorkflow(ctx, app, id, map[string]any{"order_id": "1"}, main))
	if again.Ran || !again.Replayed || again.ResultJSON != inv.ResultJSON {
		t.Fatalf("restart: %+v", again)
	}
	_, err := c.StartWorkflow(ctx, app, id, map[string]any{"order_id": "2"}, main)
	if Reason(err) != ReasonNondeterministicReplay {
		t.Fatalf("expected NONDETERMINISTIC_REPLAY, got %v", err)
	}
}
