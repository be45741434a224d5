// Command payment_worker serves the polyglot order example's "orders.process_payment" task
// (examples/polyglot, docs/client-contract.md "Dispatch"): it long-polls the sidecar for
// dispatched payments and runs each under its lease, until SIGTERM or SIGINT, when it shuts
// down gracefully (finishes what it runs for the grace, hands back the rest).
//
//	go run ./examples/payment_worker -address 127.0.0.1:50051 -app polyglot
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pynenc/pynenc-sidecar/sdk/go/wf"
)

func main() {
	address := flag.String("address", os.Getenv("PYNENC_SIDECAR_ADDRESS"), "the sidecar's host:port (default $PYNENC_SIDECAR_ADDRESS)")
	app := flag.String("app", envOr("PYNENC_APP_ID", "polyglot"), "the app id (default $PYNENC_APP_ID, else polyglot)")
	concurrency := flag.Int("concurrency", 4, "how many payments run at once")
	leaseTTL := flag.Float64("lease-ttl", 30, "lease length in seconds")
	delay := flag.Int("delay-ms", 0, "a pause before each result (a test kills the worker meanwhile)")
	grace := flag.Duration("grace", wf.DefaultShutdownGrace, "how long a stopping worker lets payments finish")
	flag.Parse()
	if *address == "" {
		*address = "127.0.0.1:50051"
	}

	client, err := wf.Dial(*address, wf.WithDefaultLeaseTTL(time.Duration(*leaseTTL*float64(time.Second))))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	worker := client.NewWorker(*app, map[string]wf.TaskFunc{
		"orders.process_payment": processPayment(time.Duration(*delay) * time.Millisecond),
	}, wf.WithConcurrency(*concurrency), wf.WithShutdownGrace(*grace))
	fmt.Fprintf(os.Stderr, "payment worker: serving orders.process_payment of app %s at %s\n", *app, *address)
	if err := worker.Run(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "payment worker: stopped")
}

// processPayment is the same work as the Python worker's process_payment.
func processPayment(delay time.Duration) wf.TaskFunc {
	return func(ctx context.Context, task *wf.Context) (any, error) {
		var args struct {
			OrderID string `json:"order_id"`
		}
		if err := task.Arguments(&args); err != nil {
			return nil, err
		}
		paymentID, err := task.UUID(ctx)
		if err != nil {
			return nil, err
		}
		at, err := task.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return map[string]any{"payment_id": paymentID, "order_id": args.OrderID,
			"processed_at": at.UTC().Format("2006-01-02T15:04:05.000000+00:00"), "status": "completed"}, nil
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
