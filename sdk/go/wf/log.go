package wf

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
	"google.golang.org/grpc/codes"
)

// logKey names one recorded position: the scope (invocation id) whose code recorded it,
// its kind, the custom name or data key, and its sequence.
type logKey struct {
	scope string
	kind  sidecarv1.OperationKind
	name  string
	seq   int64
}

// workflowLog is a snapshot of a workflow's recorded operations and of its tasks' states,
// read once per run (StartWorkflow's include_log, else one GetWorkflowLog stream). Recorded
// values never change, so a snapshot can only be incomplete, never wrong: a position it
// lacks is asked of the sidecar, which also judges any difference (divergence).
type workflowLog struct {
	ops   map[logKey]*sidecarv1.RecordedOperation
	tasks map[string]*sidecarv1.TaskInvocation
	// lastTime is the latest time the log knows of (any scope's utc_now, the base time).
	lastTime time.Time
}

func emptyLog() *workflowLog {
	return &workflowLog{ops: map[logKey]*sidecarv1.RecordedOperation{}, tasks: map[string]*sidecarv1.TaskInvocation{}}
}

func (l *workflowLog) add(batch *sidecarv1.GetWorkflowLogResponse) {
	for _, op := range batch.GetOperations() {
		l.ops[logKey{op.GetScope(), op.GetKind(), op.GetCustomName(), op.GetSequence()}] = op
		if t := op.GetTimeValue(); t != nil {
			l.noteTime(t.AsTime())
		}
	}
	if t := batch.GetBaseTime(); t != nil {
		l.noteTime(t.AsTime())
	}
	for _, task := range batch.GetTasks() {
		l.tasks[task.GetInvocationId()] = task
	}
}

func (l *workflowLog) noteTime(t time.Time) {
	if t.After(l.lastTime) {
		l.lastTime = t
	}
}

func logFrom(batches []*sidecarv1.GetWorkflowLogResponse) *workflowLog {
	l := emptyLog()
	for _, batch := range batches {
		l.add(batch)
	}
	return l
}

// readLog reads a workflow's log in one streaming call.
func (c *Client) readLog(ctx context.Context, appID, workflowID string) (*workflowLog, error) {
	stream, err := c.Executor.GetWorkflowLog(ctx, &sidecarv1.GetWorkflowLogRequest{AppId: appID, WorkflowId: workflowID})
	if err != nil {
		return nil, wrap(err)
	}
	l := emptyLog()
	for {
		batch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return l, nil
		}
		if err != nil {
			return nil, wrap(err)
		}
		l.add(batch)
	}
}

// operationKind maps a sequence kind ("random", "custom:<name>", "data_read:<key>", ...)
// to the log's kind and name.
func operationKind(kind string) (sidecarv1.OperationKind, string) {
	prefix, name, _ := strings.Cut(kind, ":")
	switch prefix {
	case seqRandom:
		return sidecarv1.OperationKind_OPERATION_KIND_RANDOM, ""
	case seqTime:
		return sidecarv1.OperationKind_OPERATION_KIND_TIME, ""
	case seqUUID:
		return sidecarv1.OperationKind_OPERATION_KIND_UUID, ""
	case seqTask:
		return sidecarv1.OperationKind_OPERATION_KIND_TASK, ""
	case "custom":
		return sidecarv1.OperationKind_OPERATION_KIND_CUSTOM, name
	case seqDataRead:
		return sidecarv1.OperationKind_OPERATION_KIND_DATA_READ, name
	case seqDataWrite:
		return sidecarv1.OperationKind_OPERATION_KIND_DATA_WRITE, name
	}
	return sidecarv1.OperationKind_OPERATION_KIND_UNSPECIFIED, ""
}

// ensureLog reads the workflow's log at the run's first operation when no log came with
// the run (a Context made by Client.Context).
func (w *Context) ensureLog(ctx context.Context) error {
	w.mu.Lock()
	loaded := w.log != nil
	w.mu.Unlock()
	if loaded {
		return nil
	}
	l, err := w.client.readLog(ctx, w.appID, w.workflow.WorkflowID)
	if e := FromError(err); e != nil && e.Code == codes.InvalidArgument {
		// The operation's own call names the field as its request has it (position.app_id).
		l, err = emptyLog(), nil
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.log == nil {
		w.log = l
	}
	w.mu.Unlock()
	return nil
}

// recorded is what the log holds at position seq of kind in this run's scope (nil: ask the sidecar).
func (w *Context) recorded(kind string, seq int64) *sidecarv1.RecordedOperation {
	k, name := operationKind(kind)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.ops[logKey{w.InvocationID(), k, name, seq}]
}

// logLastTime is the latest time the run's log knows of.
func (w *Context) logLastTime() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.lastTime
}

// sameJSON reports whether two JSON texts are the same value (as the sidecar compares
// them: canonical JSON, so 1.0 and 1 are equal).
func sameJSON(a, b string) bool {
	if a == b {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
