package wf

import (
	"context"
	"errors"
	"os"
	"path"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// callCounter counts the calls made through a connection, by method name.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) note(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[path.Base(method)]++
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

func countingClient(t *testing.T) (*Client, *callCounter) {
	t.Helper()
	address := os.Getenv("PYNENC_SIDECAR_ADDRESS")
	if address == "" {
		t.Skip("PYNENC_SIDECAR_ADDRESS is not set")
	}
	counter := &callCounter{calls: map[string]int{}}
	c, err := Dial(address, WithGRPCOptions(
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			counter.note(method)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			counter.note(method)
			return streamer(ctx, desc, cc, method, opts...)
		})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, counter
}

// A run that takes a suspended workflow over replays every recorded step from one log read:
// no Random, Uuid, UtcNow, GetRecorded, GetData, SetData or ExecuteTask call.
func TestTakeoverReplaysFromOneLogRead(t *testing.T) {
	c, counter := countingClient(t)
	ctx := testCtx(t)
	c.leaseTTL = time.Second
	app, id := unique("go-app"), Identity{WorkflowID: unique("replay"), WorkflowType: "tests.replay"}
	type values struct {
		R       float64
		U, Pick string
		At      time.Time
		Read    string
		Child   string
	}
	steps := func(ctx context.Context, w *Context) (values, error) {
		var v values
		var err error
		if v.R, err = w.Random(ctx); err != nil {
			return v, err
		}
		if v.U, err = w.UUID(ctx); err != nil {
			return v, err
		}
		if v.At, err = w.UtcNow(ctx); err != nil {
			return v, err
		}
		if v.Pick, err = Record(ctx, w, "pick", func() (string, error) { return time.Now().String(), nil }); err != nil {
			return v, err
		}
		if err = w.SetData(ctx, "k", "v"); err != nil {
			return v, err
		}
		if _, err = w.GetData(ctx, "k", &v.Read); err != nil {
			return v, err
		}
		child, err := w.ExecuteTask(ctx, "tests.child", map[string]any{"n": 1}, func(ctx context.Context, task *Context) (any, error) {
			return task.UUID(ctx)
		})
		if err != nil {
			return v, err
		}
		return v, child.Result(&v.Child)
	}
	var first, second values
	_, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, w *Context) (any, error) {
		var err error
		if first, err = steps(ctx, w); err != nil {
			return nil, err
		}
		return nil, ErrSuspended
	})
	if !errors.Is(err, ErrSuspended) {
		t.Fatalf("first run: %v", err)
	}
	before := counter.snapshot()
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, w *Context) (any, error) {
		var err error
		second, err = steps(ctx, w)
		return "done", err
	})
	if err != nil || inv.ResultJSON != `"done"` {
		t.Fatalf("second run: %v %+v", err, inv)
	}
	if first != second {
		t.Fatalf("replayed %+v, recorded %+v", second, first)
	}
	calls := counter.snapshot()
	for method, n := range before {
		calls[method] -= n
	}
	for _, op := range []string{"Random", "Uuid", "UtcNow", "GetRecorded", "Record", "GetData", "SetData", "ExecuteTask"} {
		if calls[op] != 0 {
			t.Errorf("the replay called %s %d times: %v", op, calls[op], calls)
		}
	}
	if calls["GetWorkflowLog"] != 1 || calls["StartWorkflow"] != 1 || calls["CompleteTask"] != 1 {
		t.Errorf("want one StartWorkflow, GetWorkflowLog and CompleteTask, got %v", calls)
	}
}
