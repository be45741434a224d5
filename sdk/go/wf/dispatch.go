package wf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The dispatch constants of the client contract (docs/client-contract.md, "Dispatch").
const (
	DefaultPollTimeout   = 30 * time.Second
	MaxPollTimeout       = 60 * time.Second
	MaxTasksPerPoll      = 100
	MaxTaskIDsPerPoll    = 100
	DefaultShutdownGrace = 30 * time.Second
)

// RetryPolicy is how often a dispatched task is attempted (zero fields: the sidecar's
// defaults, one attempt; docs/client-contract.md, "Policies").
type RetryPolicy struct {
	MaxAttempts            int
	InitialBackoff         time.Duration
	BackoffMultiplier      float64
	MaxBackoff             time.Duration
	RetryableErrorTypes    []string // empty: every type
	NonRetryableErrorTypes []string
}

func (p RetryPolicy) proto() *sidecarv1.RetryPolicy {
	out := &sidecarv1.RetryPolicy{
		MaxAttempts: int32(p.MaxAttempts), BackoffMultiplier: p.BackoffMultiplier,
		RetryableErrorTypes: p.RetryableErrorTypes, NonRetryableErrorTypes: p.NonRetryableErrorTypes,
	}
	if p.InitialBackoff > 0 {
		out.InitialBackoff = durationpb.New(p.InitialBackoff)
	}
	if p.MaxBackoff > 0 {
		out.MaxBackoff = durationpb.New(p.MaxBackoff)
	}
	return out
}

// DispatchOption sets a policy of a dispatched task.
type DispatchOption func(*sidecarv1.TaskDispatch)

// WithRetryPolicy sets how often the task is attempted.
func WithRetryPolicy(p RetryPolicy) DispatchOption {
	return func(d *sidecarv1.TaskDispatch) { d.RetryPolicy = p.proto() }
}

// WithStartToCloseTimeout bounds one attempt's run (default: none).
func WithStartToCloseTimeout(t time.Duration) DispatchOption {
	return func(d *sidecarv1.TaskDispatch) { d.StartToCloseTimeout = durationpb.New(t) }
}

// WithScheduleToStartTimeout bounds how long the task may wait for a worker (default 10 min).
func WithScheduleToStartTimeout(t time.Duration) DispatchOption {
	return func(d *sidecarv1.TaskDispatch) { d.ScheduleToStartTimeout = durationpb.New(t) }
}

// Dispatch has ExecuteTask queue the task for a worker serving its task id (in any
// language) instead of running it here; ExecuteTask then blocks until its outcome or until
// ctx ends. A call with a nil TaskFunc is dispatched without this option.
func Dispatch(opts ...DispatchOption) TaskOption {
	return func(o *taskOptions) {
		o.dispatch = &sidecarv1.TaskDispatch{}
		for _, opt := range opts {
			opt(o.dispatch)
		}
	}
}

// CancelTask records an unfinished invocation (queued or running, dispatched or not)
// FAILED with type TaskCancelled; its holder learns at its next renewal. It reports
// whether it cancelled (false: the invocation had already finished).
func (c *Client) CancelTask(ctx context.Context, appID, invocationID, reason string) (*Invocation, bool, error) {
	resp, err := c.Executor.CancelTask(ctx, &sidecarv1.CancelTaskRequest{AppId: appID, InvocationId: invocationID, Reason: reason})
	if err != nil {
		return nil, false, wrap(err)
	}
	return invocationFrom(resp.GetInvocation()), resp.GetCancelled(), nil
}

// Arguments decodes the arguments of the invocation whose code runs (a task a Worker runs,
// or any task run by ExecuteTask) into out.
func (w *Context) Arguments(out any) error {
	if w.argumentsJSON == "" {
		return fmt.Errorf("wf: no arguments are known to this context of invocation %s", w.InvocationID())
	}
	return json.Unmarshal([]byte(w.argumentsJSON), out)
}

type workerOptions struct {
	concurrency int
	grace       time.Duration
	pollTimeout time.Duration
	workerID    string
}

// WorkerOption changes how a Worker polls and runs.
type WorkerOption func(*workerOptions)

// WithConcurrency is how many invocations the worker runs at once (default 4).
func WithConcurrency(n int) WorkerOption { return func(o *workerOptions) { o.concurrency = n } }

// WithShutdownGrace is how long a stopping worker lets running invocations finish before
// handing them back (default 30 s).
func WithShutdownGrace(d time.Duration) WorkerOption { return func(o *workerOptions) { o.grace = d } }

// WithPollTimeout is the long poll's length (default 30 s, at most 60 s).
func WithPollTimeout(d time.Duration) WorkerOption {
	return func(o *workerOptions) { o.pollTimeout = d }
}

// WithWorkerID names the worker on the leases it takes (default the client's RunnerID).
func WithWorkerID(id string) WorkerOption { return func(o *workerOptions) { o.workerID = id } }

// Worker serves task ids: it long-polls the sidecar for their dispatched invocations and
// runs each under its lease (renewed every LeaseTTL/3), recording its outcome.
type Worker struct {
	client *Client
	appID  string
	tasks  map[string]TaskFunc
	opts   workerOptions
}

// NewWorker makes a worker serving the task ids of tasks (1..100) in app appID.
func (c *Client) NewWorker(appID string, tasks map[string]TaskFunc, opts ...WorkerOption) *Worker {
	o := workerOptions{concurrency: 4, grace: DefaultShutdownGrace, pollTimeout: DefaultPollTimeout, workerID: c.runnerID}
	for _, opt := range opts {
		opt(&o)
	}
	return &Worker{client: c, appID: appID, tasks: tasks, opts: o}
}

// errHandedBack ends a run the worker hands back: nothing is recorded (as a suspension).
var errHandedBack = fmt.Errorf("wf: handed back by a worker shutting down: %w", ErrSuspended)

// Run serves until ctx ends, then shuts down gracefully: it stops polling, lets running
// invocations finish for the shutdown grace, hands the rest back (ReleaseTask: another
// worker takes them at once) and returns nil. A poll that fails is retried after a pause;
// a configuration error (no task ids, too many, a concurrency below 1) is returned at once.
func (w *Worker) Run(ctx context.Context) error {
	if len(w.tasks) == 0 || len(w.tasks) > MaxTaskIDsPerPoll {
		return fmt.Errorf("wf: a worker serves 1..%d task ids, not %d", MaxTaskIDsPerPoll, len(w.tasks))
	}
	if w.opts.concurrency < 1 {
		return fmt.Errorf("wf: a worker's concurrency must be at least 1, not %d", w.opts.concurrency)
	}
	ids := make([]string, 0, len(w.tasks))
	for id := range w.tasks {
		ids = append(ids, id)
	}
	// Running tasks outlive ctx by the grace: their own context ends only when handed back.
	runCtx, handBack := context.WithCancel(context.WithoutCancel(ctx))
	defer handBack()
	slots := make(chan struct{}, w.opts.concurrency)
	var running sync.WaitGroup
	for ctx.Err() == nil {
		select { // wait for a free slot
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := 1
	take: // and take every other free slot: one poll asks for as many as it can run
		for free < MaxTasksPerPoll {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break take
			}
		}
		got, err := w.poll(ctx, ids, free)
		for range free - len(got) {
			<-slots
		}
		if err != nil {
			if ctx.Err() == nil {
				w.client.logf("worker %s: polling failed, polling again in 1 s: %v", w.opts.workerID, err)
				sleep(ctx, time.Second)
			}
			continue
		}
		for _, task := range got {
			running.Add(1)
			go func() {
				defer running.Done()
				defer func() { <-slots }()
				w.serve(runCtx, task)
			}()
		}
	}
	done := make(chan struct{})
	go func() { running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.opts.grace):
		handBack()
		<-done
	}
	return nil
}

func (w *Worker) poll(ctx context.Context, ids []string, free int) ([]*sidecarv1.DispatchedTask, error) {
	timeout := min(w.opts.pollTimeout, MaxPollTimeout)
	callCtx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	resp, err := w.client.Executor.PollTasks(callCtx, &sidecarv1.PollTasksRequest{
		AppId: w.appID, TaskIds: ids, WorkerId: w.opts.workerID, MaxTasks: int32(free),
		LeaseTtl: durationpb.New(w.client.leaseTTL), Timeout: durationpb.New(timeout),
	})
	if err != nil {
		return nil, wrap(err)
	}
	return resp.GetTasks(), nil
}

// serve runs one dispatched invocation; handed back (ctx ended), it releases the lease.
func (w *Worker) serve(ctx context.Context, task *sidecarv1.DispatchedTask) {
	inv, leaseID := invocationFrom(task.GetInvocation()), task.GetLease().GetLeaseId()
	fn := w.tasks[inv.TaskID]
	if fn == nil { // not asked for: hand it back to a worker that serves it
		w.release(inv, leaseID)
		return
	}
	run := func(taskCtx context.Context, tc *Context) (any, error) {
		result, err := fn(taskCtx, tc)
		if ctx.Err() != nil {
			return nil, errHandedBack
		}
		return result, err
	}
	// An empty log, not nil: nil would read the whole workflow's log at the run's first
	// operation, one read per task of a workflow that dispatched thousands (quadratic). A
	// redelivered run's recorded positions replay from the sidecar instead.
	_, err := w.client.runLeased(ctx, w.appID, inv, leaseID, run, w.client.leaseTTL, emptyLog())
	switch {
	case errors.Is(err, errHandedBack):
		w.release(inv, leaseID)
	case err != nil:
		w.client.logf("worker %s: task %s (invocation %s) ended without an outcome: %v", w.opts.workerID, inv.TaskID, inv.ID, err)
	}
}

func (w *Worker) release(inv *Invocation, leaseID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.client.Executor.ReleaseTask(ctx, &sidecarv1.ReleaseTaskRequest{AppId: w.appID, InvocationId: inv.ID, LeaseId: leaseID}); err != nil {
		w.client.logf("worker %s: could not hand back task %s (invocation %s): %v", w.opts.workerID, inv.TaskID, inv.ID, wrap(err))
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
