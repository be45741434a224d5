package wf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TaskFunc runs a task. task is the workflow context of the task's own code: its scope
// is the task's invocation, its workflow the one the task runs in. The returned value is
// recorded as the task's result (JSON); a returned error is recorded as its failure.
type TaskFunc func(ctx context.Context, task *Context) (any, error)

// ErrSuspended stops a task without recording an outcome when a TaskFunc returns (or
// wraps) it: its lease is left to lapse, and the next caller of the task (in any language)
// takes it over and runs it again from the top, replaying every recorded operation. The
// caller of ExecuteTask / StartWorkflow gets the error back with the unfinished invocation.
var ErrSuspended = errors.New("wf: task suspended without an outcome")

// Invocation is a task invocation as the workflow context sees it (Pynenc's invocation
// handle: Result, ID, Workflow).
type Invocation struct {
	ID                 string
	TaskID             string
	ArgumentsJSON      string // canonical JSON of the arguments
	Status             sidecarv1.InvocationStatus
	Workflow           Identity
	ParentInvocationID string
	ResultJSON         string     // set when Status is SUCCESS
	Failure            *TaskError // set when Status is FAILED
	// Replayed is true when the task position already held this call.
	Replayed bool
	// Ran is true when this caller ran the task function.
	Ran bool
	// While Status is RUNNING: the runner id of the lease's holder, and when the lease
	// expires (zero when unknown).
	LeaseRunnerID   string
	LeaseExpireTime time.Time
	// Dispatched: a worker serving the task id runs it (Attempt: 1-based, of the current or
	// last run). While queued: since when (QueueTime; a retry's: when it is due) and the
	// failed attempt's error (LastError) when it waits for a retry.
	Dispatched bool
	Attempt    int
	QueueTime  time.Time
	LastError  *TaskError
}

// Finished reports whether the invocation has an outcome.
func (i *Invocation) Finished() bool {
	return i.Status == sidecarv1.InvocationStatus_INVOCATION_STATUS_SUCCESS ||
		i.Status == sidecarv1.InvocationStatus_INVOCATION_STATUS_FAILED
}

// Result decodes the task's JSON result into out; a failed task returns its *TaskError.
func (i *Invocation) Result(out any) error {
	switch i.Status {
	case sidecarv1.InvocationStatus_INVOCATION_STATUS_SUCCESS:
		if out == nil {
			return nil
		}
		return json.Unmarshal([]byte(i.ResultJSON), out)
	case sidecarv1.InvocationStatus_INVOCATION_STATUS_FAILED:
		return i.Failure
	default:
		return fmt.Errorf("wf: invocation %s is not finished (%s)", i.ID, i.Status)
	}
}

func invocationFrom(p *sidecarv1.TaskInvocation) *Invocation {
	inv := &Invocation{
		ID: p.GetInvocationId(), TaskID: p.GetTaskId(), ArgumentsJSON: p.GetArgumentsJson(), Status: p.GetStatus(),
		Workflow: identityFrom(p.GetWorkflow()), ParentInvocationID: p.GetParentInvocationId(), ResultJSON: p.GetResultJson(),
		LeaseRunnerID: p.GetLeaseRunnerId(),
	}
	if p.GetLeaseExpireTime() != nil {
		inv.LeaseExpireTime = p.GetLeaseExpireTime().AsTime()
	}
	inv.Dispatched, inv.Attempt = p.GetDispatched(), int(p.GetAttempt())
	if p.GetQueueTime() != nil {
		inv.QueueTime = p.GetQueueTime().AsTime()
	}
	if e := p.GetLastError(); e != nil {
		inv.LastError = &TaskError{Type: e.GetType(), Message: e.GetMessage(), DetailJSON: e.GetDetailJson(), Traceback: e.GetTraceback()}
	}
	if e := p.GetError(); e != nil && p.GetStatus() == sidecarv1.InvocationStatus_INVOCATION_STATUS_FAILED {
		inv.Failure = &TaskError{Type: e.GetType(), Message: e.GetMessage(), DetailJSON: e.GetDetailJson(), Traceback: e.GetTraceback()}
	}
	return inv
}

type taskOptions struct {
	forceNewWorkflow bool
	leaseTTL         time.Duration
	dispatch         *sidecarv1.TaskDispatch // set: a worker serving the task id runs it
}

// TaskOption changes how ExecuteTask runs a task.
type TaskOption func(*taskOptions)

// ForceNewWorkflow gives the child a workflow of its own (Pynenc's force_new_workflow=True).
func ForceNewWorkflow() TaskOption { return func(o *taskOptions) { o.forceNewWorkflow = true } }

// WithLeaseTTL sets the lease length for this task (1 s .. 1 h).
func WithLeaseTTL(d time.Duration) TaskOption { return func(o *taskOptions) { o.leaseTTL = d } }

func argumentsJSON(args any) (string, error) {
	if args == nil {
		return "{}", nil
	}
	data, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("wf: task arguments: %w", err)
	}
	return string(data), nil
}

// ExecuteTask takes the next task position of this run. The first time, the sidecar
// registers a child invocation; on replay the same invocation comes back with its
// outcome and run is not called again. When this caller is granted the task's lease,
// run is called (the lease is renewed while it runs) and its outcome recorded; when
// another caller holds it, ExecuteTask waits for the outcome (taking the task over if
// that holder's lease lapses). A replay that asks for another call than the recorded
// one fails with reason NONDETERMINISTIC_REPLAY. args is a JSON object of arguments by
// parameter name (a map or struct; nil for none).
//
// With a nil run (a task this process does not serve) or the Dispatch option, the sidecar
// queues the task for a Worker serving its task id, in any language, and ExecuteTask blocks
// until its outcome (or until ctx ends: the task stays queued or running); a replay finds
// the recorded invocation and dispatches nothing again.
func (w *Context) ExecuteTask(ctx context.Context, taskID string, args any, run TaskFunc, opts ...TaskOption) (*Invocation, error) {
	o := taskOptions{leaseTTL: w.client.leaseTTL}
	for _, opt := range opts {
		opt(&o)
	}
	if run == nil && o.dispatch == nil { // not served here: a worker serving it runs it
		o.dispatch = &sidecarv1.TaskDispatch{}
	}
	argsJSON, err := argumentsJSON(args)
	if err != nil {
		return nil, err
	}
	var resp *sidecarv1.ExecuteTaskResponse
	var finished *sidecarv1.TaskInvocation // the recorded call's outcome, served from the log
	var taskSeq int64
	ctx, span, replayed, err := w.open(ctx, seqTask, taskID, func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error) {
		var err error
		taskSeq = pos.GetSequence()
		if call := recorded.GetTaskValue(); call != nil && call.GetTaskId() == taskID && sameJSON(call.GetArgumentsJson(), argsJSON) {
			if state := w.logTask(call.GetInvocationId()); finishedState(state) {
				finished = state
				return true, nil
			}
		}
		// The buffer goes with this call: the task starts only once everything before it is recorded.
		resp, err = blocking(w, func(commit *sidecarv1.OperationCommit) (*sidecarv1.ExecuteTaskResponse, error) {
			resp, err := w.client.Executor.ExecuteTask(ctx, &sidecarv1.ExecuteTaskRequest{
				Position: pos, TaskId: taskID, ArgumentsJson: argsJSON, ForceNewWorkflow: o.forceNewWorkflow,
				RunnerId: w.client.runnerID, LeaseTtl: durationpb.New(o.leaseTTL), Dispatch: o.dispatch, Commit: commit,
			})
			return resp, wrap(err)
		})
		return resp.GetReplayed(), err
	})
	if err != nil {
		return nil, err
	}
	if finished != nil {
		inv := invocationFrom(finished)
		inv.Replayed = true
		endSpan(span, true, nil)
		return inv, nil
	}
	inv := invocationFrom(resp.GetInvocation())
	inv.Replayed = resp.GetReplayed()
	// A child in this workflow reads this run's log; one in a workflow of its own reads its
	// own at its first operation, unless it was just created (nothing recorded yet).
	var childLog *workflowLog
	switch {
	case inv.Workflow.WorkflowID == w.workflow.WorkflowID:
		w.mu.Lock()
		childLog = w.log
		w.mu.Unlock()
	case !inv.Replayed:
		childLog = emptyLog()
	}
	inv, err = w.client.drive(ctx, w.appID, inv, resp.GetLease(), run, o.leaseTTL, childLog)
	if err != nil {
		w.giveBack(seqTask, taskSeq) // calling it again replays the registered call
	}
	endSpan(span, replayed, err)
	return inv, err
}

// StartWorkflow registers (or finds) the main invocation of the workflow whose id the
// caller chose, and runs it like ExecuteTask: run is called when this caller gets the
// main task's lease; a finished workflow returns its recorded outcome (a replay).
// workflow.WorkflowType (the main task's id) is required.
//
// With tracing on and no span in ctx, the run gets a "pynenc.workflow <type>" span.
func (c *Client) StartWorkflow(ctx context.Context, appID string, workflow Identity, args any, run TaskFunc) (inv *Invocation, err error) {
	argsJSON, err := argumentsJSON(args)
	if err != nil {
		return nil, err
	}
	ctx, span := startRun(ctx, appID, workflow)
	defer func() { endSpan(span, inv != nil && inv.Replayed, err) }()
	// include_log: a replay gets the log with the reply (when small), saving a GetWorkflowLog.
	resp, err := c.Executor.StartWorkflow(ctx, &sidecarv1.StartWorkflowRequest{
		AppId: appID, Workflow: workflow.proto(), ArgumentsJson: argsJSON, RunnerId: c.runnerID,
		LeaseTtl: durationpb.New(c.leaseTTL), IncludeLog: true,
	})
	if err != nil {
		return nil, wrap(err)
	}
	inv = invocationFrom(resp.GetInvocation())
	inv.Replayed = resp.GetReplayed()
	var log *workflowLog // nil: read at the run's first operation
	switch {
	case !resp.GetReplayed():
		log = emptyLog()
	case resp.GetLog() != nil:
		log = logFrom(resp.GetLog().GetBatches())
	}
	return c.drive(ctx, appID, inv, resp.GetLease(), run, c.leaseTTL, log)
}

// RetryWorkflow makes a FAILED workflow runnable again from its failed steps: every
// FAILED invocation in it (its main task, the failed tasks inside it, failed child
// workflows) is reset to RETRY; everything recorded is kept. It returns the invocations
// it reset, the main task last. Then StartWorkflow with the same identity runs the
// workflow again: recorded steps replay and the reset tasks run again. A workflow that is
// not FAILED is an *Error with reason ReasonWorkflowNotFailed; an unknown one
// ReasonWorkflowNotFound.
func (c *Client) RetryWorkflow(ctx context.Context, appID, workflowID string) ([]*Invocation, error) {
	resp, err := c.Executor.RetryWorkflow(ctx, &sidecarv1.RetryWorkflowRequest{AppId: appID, WorkflowId: workflowID})
	if err != nil {
		return nil, wrap(err)
	}
	reset := make([]*Invocation, 0, len(resp.GetInvocations()))
	for _, p := range resp.GetInvocations() {
		reset = append(reset, invocationFrom(p))
	}
	return reset, nil
}

// drive brings an invocation to an outcome: run it under the lease if one is held,
// otherwise wait for the holder (and take over if its lease lapses).
//
// log is the workflow log the first run uses (nil: read at its first operation); a run
// after waiting for another holder reads the log anew, as that holder recorded meanwhile.
func (c *Client) drive(ctx context.Context, appID string, inv *Invocation, lease *sidecarv1.TaskLease, run TaskFunc, ttl time.Duration, log *workflowLog) (*Invocation, error) {
	replayed, ran, slices := inv.Replayed, false, 0
	for !inv.Finished() {
		if lease != nil {
			if run == nil {
				return inv, fmt.Errorf("wf: granted the lease on %s (%s) but no task function was given", inv.ID, inv.TaskID)
			}
			ran = true
			done, err := c.runLeased(ctx, appID, inv, lease.GetLeaseId(), run, ttl, log)
			if err != nil && !IsReason(err, ReasonLeaseNotHeld) {
				inv.Replayed, inv.Ran = replayed, ran
				return inv, err
			}
			lease = nil
			if done != nil {
				inv = done
				break
			}
			// The lease was taken over by a live holder: wait for its outcome.
		}
		c.logf("%s", describeWait(inv, time.Now(), slices > 0))
		slices++
		resp, err := c.Executor.WaitTask(ctx, &sidecarv1.WaitTaskRequest{
			AppId: appID, InvocationId: inv.ID, RunnerId: c.runnerID,
			Timeout: durationpb.New(c.waitSlice), LeaseTtl: durationpb.New(ttl),
		})
		if err != nil {
			return inv, wrap(err)
		}
		inv, lease, log = invocationFrom(resp.GetInvocation()), resp.GetLease(), nil
	}
	inv.Replayed, inv.Ran = replayed, ran
	return inv, nil
}

// logTask is the task state the run's log holds for an invocation (nil when none).
func (w *Context) logTask(invocationID string) *sidecarv1.TaskInvocation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.tasks[invocationID]
}

func finishedState(state *sidecarv1.TaskInvocation) bool {
	return state.GetStatus() == sidecarv1.InvocationStatus_INVOCATION_STATUS_SUCCESS ||
		state.GetStatus() == sidecarv1.InvocationStatus_INVOCATION_STATUS_FAILED
}

// describeWait says what a run waits for and until when, in the same words in every SDK.
func describeWait(inv *Invocation, now time.Time, again bool) string {
	verb, holder := "waiting", "another worker"
	if again {
		verb = "still waiting"
	}
	if inv.LeaseRunnerID != "" {
		quoted, _ := json.Marshal(inv.LeaseRunnerID)
		holder = "runner " + string(quoted)
	}
	if inv.Dispatched {
		return describeDispatchedWait(inv, now, verb, holder)
	}
	text := fmt.Sprintf("%s for task %s (invocation %s, workflow %s) held by %s: ", verb, inv.TaskID, inv.ID,
		inv.Workflow.WorkflowID, holder)
	if inv.LeaseExpireTime.IsZero() {
		return text + "its lease expiry is unknown"
	}
	at := inv.LeaseExpireTime.UTC().Format("2006-01-02T15:04:05.000Z")
	left := inv.LeaseExpireTime.Sub(now).Seconds()
	if left <= 0 {
		return text + "its lease expired at " + at + "; this run takes the task over now"
	}
	return text + fmt.Sprintf("its lease expires at %s (%.1f s left); this run takes the task over then "+
		"unless the holder renews it", at, left)
}

// describeDispatchedWait: what a caller waits for when its task is dispatched to a worker.
func describeDispatchedWait(inv *Invocation, now time.Time, verb, holder string) string {
	text := fmt.Sprintf("%s for task %s (invocation %s, workflow %s), dispatched to a worker serving it: ", verb,
		inv.TaskID, inv.ID, inv.Workflow.WorkflowID)
	if inv.Status == sidecarv1.InvocationStatus_INVOCATION_STATUS_RUNNING {
		return text + fmt.Sprintf("attempt %d runs on %s", inv.Attempt, holder)
	}
	if inv.QueueTime.IsZero() {
		return text + "queued"
	}
	at := inv.QueueTime.UTC().Format("2006-01-02T15:04:05.000Z")
	retry := ""
	if inv.Attempt > 0 && inv.LastError != nil {
		retry = fmt.Sprintf(" (attempt %d failed: %s)", inv.Attempt, inv.LastError.Type)
	}
	waited := now.Sub(inv.QueueTime).Seconds()
	if waited < 0 {
		return text + "to be retried at " + at + retry
	}
	return text + fmt.Sprintf("queued since %s (%.1f s)%s", at, waited, retry)
}

// runLeased runs the task while renewing its lease, then records its outcome. It
// returns the finished invocation, or an error (LEASE_NOT_HELD when another holder took
// the task over).
//
// The run buffers its operations (docs/client-contract.md, "One round trip per blocking
// point"); a commit refused with COMMIT_CONFLICT means its log was stale, so the log is read
// again and the code runs again from its top, replaying the winner's record (at most
// ConflictReruns times).
func (c *Client) runLeased(ctx context.Context, appID string, inv *Invocation, leaseID string, run TaskFunc, ttl time.Duration, log *workflowLog) (*Invocation, error) {
	taskCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := new(atomic.Bool)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Add(1)
	go func() { // renew the lease every ttl/3 until the run has its outcome
		defer wg.Done()
		ticker := time.NewTicker(ttl / RenewFraction)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
				callCtx, done := context.WithTimeout(ctx, ttl/RenewFraction)
				_, err := c.Executor.RenewTaskLease(callCtx, &sidecarv1.RenewTaskLeaseRequest{
					AppId: appID, InvocationId: inv.ID, LeaseId: leaseID, LeaseTtl: durationpb.New(ttl),
				})
				done()
				if e := FromError(err); e != nil && (e.Reason == ReasonLeaseNotHeld || e.Code == codes.NotFound) {
					// The task lost its lease: its next operation fails LEASE_NOT_HELD, and
					// cooperative task code sees its context cancelled.
					lost.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	for rerun := 0; ; rerun++ {
		task := c.Context(appID, inv.Workflow, inv.ID)
		task.log, task.argumentsJSON, task.lost, task.buffer = log, inv.ArgumentsJSON, lost, newRunBuffer(leaseID)
		done, err := c.runOnce(ctx, taskCtx, appID, inv, leaseID, run, task)
		if err == nil || !task.buffer.isConflicted() || rerun >= ConflictReruns {
			return done, err
		}
		c.logf("invocation %s: %v; reading the log again and running the task again", inv.ID, err)
		if log, err = c.readLog(ctx, appID, inv.Workflow.WorkflowID); err != nil {
			return nil, err
		}
	}
}

// runOnce is one run of a leased task's code, then its outcome recorded with the run's
// buffer (CompleteTask, fenced by the lease).
func (c *Client) runOnce(ctx, taskCtx context.Context, appID string, inv *Invocation, leaseID string, run TaskFunc, task *Context) (*Invocation, error) {
	result, runErr := safeRun(taskCtx, task, run)
	if errors.Is(runErr, ErrSuspended) {
		return nil, runErr // records nothing: the buffer is dropped
	}
	if task.buffer.isConflicted() {
		if IsReason(runErr, ReasonCommitConflict) {
			return nil, runErr
		}
		// Code that caught a conflict and went on still ran on a stale log: run it again.
		return nil, localError(codes.Aborted, ReasonCommitConflict, "a commit of invocation "+inv.ID+
			" was refused with "+ReasonCommitConflict)
	}

	req := &sidecarv1.CompleteTaskRequest{AppId: appID, InvocationId: inv.ID, LeaseId: leaseID}
	if runErr == nil {
		var data []byte
		data, runErr = json.Marshal(result)
		if runErr == nil {
			req.Outcome = &sidecarv1.CompleteTaskRequest_ResultJson{ResultJson: string(data)}
		} else {
			runErr = &TaskError{Type: "SerializationError", Message: runErr.Error()}
		}
	}
	if runErr != nil {
		req.Outcome = &sidecarv1.CompleteTaskRequest_Error{Error: taskErrorProto(runErr)}
	}
	// The buffer goes with the outcome, fenced by this request's own lease id.
	complete := func() (*sidecarv1.CompleteTaskResponse, error) {
		return carry(task.buffer, inv.Workflow.WorkflowID, "", func(commit *sidecarv1.OperationCommit) (*sidecarv1.CompleteTaskResponse, error) {
			req.Commit = commit
			resp, err := c.Executor.CompleteTask(ctx, req)
			return resp, wrap(err)
		})
	}
	resp, err := complete()
	if e := FromError(err); e != nil && e.Code == codes.ResourceExhausted {
		// Refused before the sidecar's handler saw it (larger than its gRPC message limit):
		// record that as the task's failure, so the task does not stay RUNNING.
		req.Outcome = &sidecarv1.CompleteTaskRequest_Error{Error: tooLargeError(req, inv, e)}
		resp, err = complete()
	}
	if err != nil {
		return nil, err
	}
	return invocationFrom(resp.GetInvocation()), nil
}

// tooLargeError is the failure recorded for an outcome larger than one request may be.
func tooLargeError(req *sidecarv1.CompleteTaskRequest, inv *Invocation, refusal *Error) *sidecarv1.TaskError {
	what, size := "error", proto.Size(req.GetError())
	if r, ok := req.Outcome.(*sidecarv1.CompleteTaskRequest_ResultJson); ok {
		what, size = "result", len(r.ResultJson)
	}
	return &sidecarv1.TaskError{Type: "ResultTooLarge", Message: fmt.Sprintf(
		"the %s of task %s (invocation %s) is %d bytes, more than the sidecar accepts in one request (%s): "+
			"return less (keep large data elsewhere and return a reference), or raise the sidecar's "+
			"--max-message-bytes / PYNENC_SIDECAR_MAX_MESSAGE_BYTES and --max-value-bytes / "+
			"PYNENC_SIDECAR_MAX_VALUE_BYTES", what, inv.TaskID, inv.ID, size, refusal.Message)}
}

func safeRun(ctx context.Context, task *Context, run TaskFunc) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &TaskError{Type: "panic", Message: fmt.Sprint(r), Traceback: string(debug.Stack())}
		}
	}()
	return run(ctx, task)
}

// taskErrorProto is the error recorded for err. Go errors carry no stack: the traceback
// is what %+v prints (a stack for errors that keep one), or a panic's stack.
func taskErrorProto(err error) *sidecarv1.TaskError {
	var te *TaskError
	if errors.As(err, &te) {
		return &sidecarv1.TaskError{Type: te.Type, Message: te.Message, DetailJson: te.DetailJSON, Traceback: te.Traceback}
	}
	trace := fmt.Sprintf("%+v", err)
	var typed TypedError
	if errors.As(err, &typed) {
		return &sidecarv1.TaskError{Type: typed.ErrorType(), Message: err.Error(), Traceback: trace}
	}
	name := strings.TrimLeft(reflect.TypeOf(err).String(), "*")
	return &sidecarv1.TaskError{Type: name, Message: err.Error(), Traceback: trace}
}
