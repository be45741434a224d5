//go:build sidecar_dispatch

// These tests need a sidecar that dispatches (PollTasks): tests/test_go_dispatch.py runs
// them with -tags sidecar_dispatch against one.
package wf

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// dispatchClient is testClient for a sidecar that dispatches (PollTasks).
func dispatchClient(t *testing.T) *Client {
	t.Helper()
	c := testClient(t)
	_, err := c.Executor.PollTasks(testCtx(t), &sidecarv1.PollTasksRequest{
		AppId: unique("probe"), TaskIds: []string{"probe"}, MaxTasks: 1, Timeout: durationpb.New(0),
	})
	if e := FromError(err); e != nil && e.Code == codes.Unimplemented {
		t.Fatal("this sidecar does not dispatch (PollTasks unimplemented): run a sidecar with dispatch")
	}
	return c
}

// A task this process does not serve is run by a Worker (here in the same process, through
// its own client); the caller blocks for the outcome, and a replay dispatches nothing again.
func TestDispatchedTaskRunsInAWorkerAndReplays(t *testing.T) {
	caller, workerClient := dispatchClient(t), dispatchClient(t)
	ctx := testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("dispatch")}
	var runs atomic.Int32
	var concurrent, most atomic.Int32
	worker := workerClient.NewWorker(app, map[string]TaskFunc{
		"tests.double": func(ctx context.Context, task *Context) (any, error) {
			runs.Add(1)
			now := concurrent.Add(1)
			defer concurrent.Add(-1)
			for {
				m := most.Load()
				if now <= m || most.CompareAndSwap(m, now) {
					break
				}
			}
			var args struct{ X int }
			if err := task.Arguments(&args); err != nil {
				return nil, err
			}
			u, err := task.UUID(ctx)
			time.Sleep(50 * time.Millisecond)
			return map[string]any{"y": 2 * args.X, "u": u}, err
		},
	}, WithConcurrency(2), WithPollTimeout(time.Second))
	workerCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- worker.Run(workerCtx) }()

	run := caller.Context(app, id, "")
	var wg sync.WaitGroup
	results := make([]*Invocation, 4)
	for i := range results {
		wg.Add(1)
		go func() { // Go's way of waiting on several: one goroutine each
			defer wg.Done()
			inv, err := caller.Context(app, Identity{WorkflowID: id.WorkflowID + "-" + string(rune('a'+i))}, "").
				ExecuteTask(ctx, "tests.double", map[string]any{"x": 21}, nil)
			if err != nil {
				t.Error(err)
			}
			results[i] = inv
		}()
	}
	first, err := run.ExecuteTask(ctx, "tests.double", map[string]any{"x": 21}, nil)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Y int
		U string
	}
	if err := first.Result(&out); err != nil || out.Y != 42 || out.U != DeriveUUID(first.ID, 1) || first.Ran {
		t.Fatalf("dispatched outcome %+v %+v %v", first, out, err)
	}
	if m := most.Load(); m > 2 {
		t.Fatalf("the worker ran %d tasks at once, above its concurrency 2", m)
	}
	stop()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	before := runs.Load()
	again, err := caller.Context(app, id, "").ExecuteTask(ctx, "tests.double", map[string]any{"x": 21}, nil)
	if err != nil || !again.Replayed || again.ResultJSON != first.ResultJSON || runs.Load() != before {
		t.Fatalf("replay %+v %v (runs %d then %d)", again, err, before, runs.Load())
	}
}

// A worker stopping while it runs a task past its grace hands the task back; the next worker
// runs it and it completes once.
func TestStoppingWorkerHandsBackWhatItHolds(t *testing.T) {
	c := dispatchClient(t)
	ctx := testCtx(t)
	app, id := unique("go-app"), Identity{WorkflowID: unique("handback")}
	started := make(chan struct{}, 1)
	slow := c.NewWorker(app, map[string]TaskFunc{
		"tests.slow": func(ctx context.Context, task *Context) (any, error) {
			started <- struct{}{}
			<-ctx.Done() // runs until handed back
			return nil, ctx.Err()
		},
	}, WithShutdownGrace(100*time.Millisecond), WithPollTimeout(time.Second), WithWorkerID("slow"))
	slowCtx, stopSlow := context.WithCancel(context.Background())
	slowDone := make(chan error, 1)
	go func() { slowDone <- slow.Run(slowCtx) }()
	result := make(chan *Invocation, 1)
	go func() {
		inv, err := c.Context(app, id, "").ExecuteTask(ctx, "tests.slow", nil, nil)
		if err != nil {
			t.Error(err)
		}
		result <- inv
	}()
	<-started
	stopSlow()
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	quick := c.NewWorker(app, map[string]TaskFunc{
		"tests.slow": func(ctx context.Context, task *Context) (any, error) { return "quick", nil },
	}, WithPollTimeout(time.Second), WithWorkerID("quick"))
	quickCtx, stopQuick := context.WithCancel(context.Background())
	defer stopQuick()
	go func() { _ = quick.Run(quickCtx) }()
	select {
	case inv := <-result:
		if inv == nil || inv.ResultJSON != `"quick"` {
			t.Fatalf("outcome %+v", inv)
		}
	case <-ctx.Done():
		t.Fatal("the handed-back task never completed")
	}
}
