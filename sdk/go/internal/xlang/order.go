package main

import (
	"context"
	"fmt"
	"path"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pynenc/pynenc-sidecar/sdk/go/wf"
)

// callCounts counts the calls a client makes, by RPC name.
type callCounts struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounts) note(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[path.Base(method)]++
}

// take returns the counts so far and starts again from none.
func (c *callCounts) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

// countingDial is wf.Dial (plaintext) with every unary and streaming call counted.
func countingDial(address string) (*wf.Client, *callCounts, error) {
	counts := &callCounts{calls: map[string]int{}}
	client, err := wf.Dial(address, wf.WithGRPCOptions(
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
			invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			counts.note(method)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
			streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			counts.note(method)
			return streamer(ctx, desc, cc, method, opts...)
		})))
	return client, counts, err
}

// processOrderWorkflow is the Go twin of the seed's process_order_workflow
// (examples/seed_workflows.py): a tracking number from random, the payment task (uuid,
// utc_now), a notification time from utc_now, two data writes.
func processOrderWorkflow(ctx context.Context, c *wf.Client, app, workflowID, orderID string) (*wf.Invocation, error) {
	id := wf.Identity{WorkflowID: workflowID, WorkflowType: "seed.process_order_workflow"}
	return c.StartWorkflow(ctx, app, id, map[string]any{"order_id": orderID}, func(ctx context.Context, main *wf.Context) (any, error) {
		r, err := main.Random(ctx)
		if err != nil {
			return nil, err
		}
		tracking := fmt.Sprintf("TRK-%s-%05d", orderID, int(r*100000))
		payment, err := main.ExecuteTask(ctx, "seed.process_payment", map[string]any{"order_id": orderID},
			func(ctx context.Context, task *wf.Context) (any, error) {
				paymentID, err := task.UUID(ctx)
				if err != nil {
					return nil, err
				}
				at, err := task.UtcNow(ctx)
				if err != nil {
					return nil, err
				}
				return map[string]any{"payment_id": paymentID, "processed_at": at.Format(time.RFC3339Nano),
					"status": "completed"}, nil
			})
		if err != nil {
			return nil, err
		}
		var status any
		if err := payment.Result(&status); err != nil {
			return nil, err
		}
		now, err := main.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		notify := now.Add(time.Hour).Format(time.RFC3339Nano)
		if err := main.SetData(ctx, "tracking_number", tracking); err != nil {
			return nil, err
		}
		if err := main.SetData(ctx, "notification_time", notify); err != nil {
			return nil, err
		}
		return map[string]any{"order_id": orderID, "tracking_number": tracking, "payment_status": status,
			"notification_scheduled": notify}, nil
	})
}

// orderRPCs: the calls to the sidecar, by RPC, of one fresh process_order_workflow and of
// its replay (bench/run.py scenario e prints them next to the Python SDK's).
func orderRPCs(ctx context.Context, address, app string) (any, error) {
	client, counts, err := countingDial(address)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	if app == "" {
		app = "bench-go"
	}
	workflowID := fmt.Sprintf("order-rpcs-go-%d", time.Now().UnixNano())
	first, err := processOrderWorkflow(ctx, client, app, workflowID, "R-1")
	if err != nil {
		return nil, err
	}
	firstRun := counts.take()
	again, err := processOrderWorkflow(ctx, client, app, workflowID, "R-1")
	if err != nil {
		return nil, err
	}
	if again.ResultJSON != first.ResultJSON || !again.Replayed {
		return nil, fmt.Errorf("the replay returned %s (replayed %v), the first run %s", again.ResultJSON, again.Replayed,
			first.ResultJSON)
	}
	return map[string]any{"first_run": firstRun, "replay": counts.take()}, nil
}
