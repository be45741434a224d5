package wf

import (
	"context"
	"errors"
	"testing"
)

func TestWorkerRefusesABadConfiguration(t *testing.T) {
	c := New(nil)
	err := c.NewWorker("app", nil).Run(context.Background())
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("no task ids: %v", err)
	}
	err = c.NewWorker("app", map[string]TaskFunc{"t": nil}, WithConcurrency(0)).Run(context.Background())
	if err == nil {
		t.Fatal("concurrency 0 accepted")
	}
}
