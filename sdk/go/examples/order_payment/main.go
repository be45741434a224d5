// Command order_payment is the Go half of a two-language run of the seed's order
// workflow (robust_processing_workflow, Pynenc workflow docs): this worker performs the
// payment step (validate_order, then process_payment_with_retry); the TypeScript worker
// sdk/ts/examples/order_shipping.ts performs the shipping step (reserve_inventory, then
// generate_shipping_label) and completes the workflow.
//
// Both workers run the same workflow code. A worker that reaches a step it does not
// implement suspends the workflow (wf.ErrSuspended): its lease on the main task lapses
// and the other worker takes the workflow over, replaying every recorded step (values,
// times, task results) instead of running it again.
//
//	go run ./examples/order_payment -address 127.0.0.1:50051 -app shop -workflow order-42
//	(then, in sdk/ts) node dist/examples/order_shipping.js --address 127.0.0.1:50051 --app shop --workflow order-42
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/pynenc/pynenc-sidecar/sdk/go/wf"
)

const workflowType = "orders.robust_processing_workflow"

type orderItem struct {
	ID       string `json:"id"`
	Quantity int    `json:"quantity"`
}

type orderData struct {
	OrderID    string      `json:"order_id"`
	CustomerID string      `json:"customer_id"`
	Items      []orderItem `json:"items"`
	Total      float64     `json:"total"`
}

// newOrder is the order both workers start the workflow with (the same arguments, or
// the sidecar reports NONDETERMINISTIC_REPLAY).
func newOrder(orderID string) orderData {
	return orderData{OrderID: orderID, CustomerID: "cust-1",
		Items: []orderItem{{"sku-1", 2}, {"sku-2", 1}}, Total: 59.9}
}

// validateOrder: the seed's validate_order.
func validateOrder(order orderData) wf.TaskFunc {
	return func(ctx context.Context, task *wf.Context) (any, error) {
		validationID, err := task.UUID(ctx)
		if err != nil {
			return nil, err
		}
		validatedAt, err := task.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		errs := []string{}
		if order.CustomerID == "" {
			errs = append(errs, "Missing customer_id")
		}
		if len(order.Items) == 0 {
			errs = append(errs, "No items in order")
		}
		return map[string]any{"validation_id": validationID, "valid": len(errs) == 0, "errors": errs,
			"validated_at": validatedAt.Format(time.RFC3339Nano)}, nil
	}
}

// processPayment: the seed's process_payment_with_retry.
func processPayment(order orderData) wf.TaskFunc {
	return func(ctx context.Context, task *wf.Context) (any, error) {
		paymentID, err := task.UUID(ctx)
		if err != nil {
			return nil, err
		}
		attemptTime, err := task.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		successChance, err := task.Random(ctx)
		if err != nil {
			return nil, err
		}
		if successChance > 0.1 { // 90% success rate, decided deterministically
			return map[string]any{"payment_id": paymentID, "status": "completed", "amount": order.Total,
				"processed_at": attemptTime.Format(time.RFC3339Nano)}, nil
		}
		return map[string]any{"payment_id": paymentID, "status": "failed", "error": "Payment processing failed",
			"attempted_at": attemptTime.Format(time.RFC3339Nano)}, nil
	}
}

// main task: the seed's robust_processing_workflow up to the steps this worker implements.
func workflow(order orderData, payment *map[string]any) wf.TaskFunc {
	return func(ctx context.Context, w *wf.Context) (any, error) {
		start, err := w.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		for _, kv := range [][2]any{{"order_id", order.OrderID}, {"started_at", start.Format(time.RFC3339Nano)}, {"status", "processing"}} {
			if err := w.SetData(ctx, kv[0].(string), kv[1]); err != nil {
				return nil, err
			}
		}
		args := map[string]any{"order_data": order}
		validation, err := w.ExecuteTask(ctx, "orders.validate_order", args, validateOrder(order))
		if err != nil {
			return nil, err
		}
		var valid struct {
			Valid  bool     `json:"valid"`
			Errors []string `json:"errors"`
		}
		if err := validation.Result(&valid); err != nil {
			return nil, err
		}
		if !valid.Valid {
			if err := w.SetData(ctx, "status", "validation_failed"); err != nil {
				return nil, err
			}
			return map[string]any{"order_id": order.OrderID, "status": "failed", "step": "validation", "error": valid.Errors}, nil
		}
		paid, err := w.ExecuteTask(ctx, "orders.process_payment_with_retry", args, processPayment(order))
		if err != nil {
			return nil, err
		}
		if err := paid.Result(payment); err != nil {
			return nil, err
		}
		if err := w.SetData(ctx, "payment_id", (*payment)["payment_id"]); err != nil {
			return nil, err
		}
		// Step 3 (reserve_inventory) and 4 (generate_shipping_label) belong to the
		// TypeScript worker: hand the workflow over.
		return nil, fmt.Errorf("payment done, shipping is the TypeScript worker's: %w", wf.ErrSuspended)
	}
}

func main() {
	address := flag.String("address", os.Getenv("PYNENC_SIDECAR_ADDRESS"), "sidecar host:port")
	app := flag.String("app", "shop", "app id")
	workflowID := flag.String("workflow", "", "workflow id (also the order id)")
	leaseTTL := flag.Duration("lease-ttl", 2*time.Second, "task lease length; the other worker takes over this long after we stop")
	flag.Parse()
	if *workflowID == "" || *address == "" {
		log.Fatal("usage: order_payment -address host:port -app APP -workflow WORKFLOW_ID")
	}
	client, err := wf.Dial(*address, wf.WithDefaultLeaseTTL(*leaseTTL))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	order := newOrder(*workflowID)
	payment := map[string]any{}
	identity := wf.Identity{WorkflowID: *workflowID, WorkflowType: workflowType}
	inv, err := client.StartWorkflow(ctx, *app, identity, map[string]any{"order_data": order}, workflow(order, &payment))
	out := map[string]any{"worker": "go", "workflow_id": *workflowID, "payment": payment}
	switch {
	case errors.Is(err, wf.ErrSuspended):
		out["handed_off"] = true
	case err != nil:
		log.Fatal(err)
	default: // the workflow had already finished: its recorded outcome
		out["handed_off"] = false
		out["workflow_result"] = json.RawMessage(inv.ResultJSON)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}
