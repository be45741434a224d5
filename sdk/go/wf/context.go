package wf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
)

const (
	seqRandom = "random"
	seqTime   = "time"
	seqUUID   = "uuid"
	seqTask   = "task"
	// Data reads and writes count a sequence per key: "data_read:<key>", "data_write:<key>".
	seqDataRead  = "data_read"
	seqDataWrite = "data_write"
)

// Context is the workflow context of one run of one invocation's code: Pynenc's `wf`.
// Its operations are meant to be called in program order: each takes the next position
// of its kind when called, and gives it back if it fails (docs/client-contract.md).
type Context struct {
	client       *Client
	appID        string
	workflow     Identity
	invocationID string

	mu   sync.Mutex
	seqs map[string]int64
	// generating names the custom operation whose generator runs now ("" when none).
	generating string
	// lost is set when another worker took this run's task over (shared by the reruns of one
	// leased run).
	lost *atomic.Bool
	// buffer holds the operations a leased run has not committed yet (nil: no lease, so
	// every new operation is its own call).
	buffer *runBuffer
	// log serves recorded positions locally (nil: read at the first operation).
	log *workflowLog
	// argumentsJSON: the invocation's arguments, when the run knows them (Arguments).
	argumentsJSON string
}

// ErrOperationInGenerator is returned by an operation called while a custom operation's
// generator runs: the generator's value is recorded once and the generator does not run
// on replay, so operations inside it would take positions only the first time and every
// later operation would replay another position's value (docs/client-contract.md).
var ErrOperationInGenerator = errors.New("wf: OPERATION_IN_GENERATOR: a workflow operation was called inside a " +
	"custom operation's generator; call it before the custom operation and use its value inside the generator")

// AppID is the tenant every call is scoped by.
func (w *Context) AppID() string { return w.appID }

// Workflow is the identity of the workflow the code runs in.
func (w *Context) Workflow() Identity { return w.workflow }

// InvocationID is the scope of the operations: the invocation whose code runs
// (the workflow id for the main task).
func (w *Context) InvocationID() string {
	if w.invocationID == "" {
		return w.workflow.WorkflowID
	}
	return w.invocationID
}

// IsMainTask reports whether the code is the workflow's main task (which alone may SetData).
func (w *Context) IsMainTask() bool { return w.InvocationID() == w.workflow.WorkflowID }

// Client is the client this context calls through.
func (w *Context) Client() *Client { return w.client }

// Sequence is the last sequence used for an operation kind in this run ("random",
// "time", "uuid", "task", "custom:<name>", "data_read:<key>" or "data_write:<key>").
func (w *Context) Sequence(kind string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seqs[kind]
}

// at runs call at the next sequence of kind (docs/client-contract.md, "Positions").
// The call runs inside the operation's span (name: a task id or custom operation's
// name); call returns whether the value was replayed.
// call gets what the workflow's log holds at the position (nil when nothing): it serves
// that locally when it can, and asks the sidecar otherwise.
type operationCall func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error)

func (w *Context) at(ctx context.Context, kind, name string, call operationCall) error {
	_, span, replayed, err := w.open(ctx, kind, name, call)
	endSpan(span, replayed, err)
	return err
}

// open is at, leaving the operation's span open (and returning its context) when the
// call succeeds: the caller ends it with endSpan.
//
// The position is taken when the operation is called, and the lock is not held during
// the call: a custom operation's generator may call other operations, which take later
// positions. A failed call gives its position back unless a later operation of the same
// kind was called meanwhile, so calling it again takes the same position (and replays
// whatever the failed attempt may have recorded there).
func (w *Context) open(ctx context.Context, kind, name string, call operationCall) (context.Context, trace.Span, bool, error) {
	if err := w.refusal(kind); err != nil {
		return ctx, nil, false, err
	}
	if err := w.ensureLog(ctx); err != nil {
		return ctx, nil, false, err
	}
	w.mu.Lock()
	seq := w.seqs[kind] + 1
	w.seqs[kind] = seq
	w.mu.Unlock()
	recorded := w.recorded(kind, seq)
	spanKind, _, _ := strings.Cut(kind, ":") // custom:<name>, data_read:<key>, ...
	ctx, span := w.startOperation(ctx, spanKind, name, seq, recorded)
	replayed, err := call(ctx, w.position(seq), recorded)
	if err != nil {
		if w.lost.Load() && errors.Is(ctx.Err(), context.Canceled) {
			// Cancelled in flight because the lease was lost: say so, not "context canceled".
			err = w.leaseLostError()
		}
		w.giveBack(kind, seq)
		endSpan(span, replayed, err)
		return ctx, nil, replayed, err
	}
	return ctx, span, replayed, nil
}

// refusal is the error an operation of kind gets before calling the sidecar: inside a
// custom operation's generator, or after the run lost its lease (nil otherwise).
func (w *Context) refusal(kind string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.generating != "" {
		return fmt.Errorf("%w (operation %s inside the generator of %q)", ErrOperationInGenerator, kind, w.generating)
	}
	if w.lost.Load() {
		return w.leaseLostError()
	}
	return nil
}

// leaseLostError is what every operation of a run that lost its lease returns.
func (w *Context) leaseLostError() error {
	return &Error{Code: codes.FailedPrecondition, Reason: ReasonLeaseNotHeld, Domain: ErrorDomain,
		Message: "this worker lost its lease on invocation " + w.InvocationID() +
			": another worker took the task over, so this run stops at its next workflow operation"}
}

// giveBack returns the position seq of kind after its operation failed, unless a later
// operation of that kind was called meanwhile.
func (w *Context) giveBack(kind string, seq int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seqs[kind] == seq {
		w.seqs[kind] = seq - 1
	}
}

func (w *Context) position(seq int64) *sidecarv1.OperationPosition {
	return &sidecarv1.OperationPosition{
		AppId: w.appID, Workflow: w.workflow.proto(), InvocationId: w.invocationID, Sequence: seq,
	}
}

// Random is a deterministic float in [0, 1), replayed identically. Not for secrets.
func (w *Context) Random(ctx context.Context) (float64, error) {
	var value float64
	err := w.at(ctx, seqRandom, "", func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error) {
		if v, ok := recorded.GetValue().(*sidecarv1.RecordedOperation_RandomValue); ok {
			value = v.RandomValue
			return true, nil
		}
		if w.buffer != nil {
			value = DeriveRandom(w.InvocationID(), pos.GetSequence())
			return false, w.buffered(ctx, &sidecarv1.BufferedOperation{Kind: sidecarv1.OperationKind_OPERATION_KIND_RANDOM,
				Sequence: pos.GetSequence(), Value: &sidecarv1.BufferedOperation_RandomValue{RandomValue: value}})
		}
		resp, err := w.client.Executor.Random(ctx, &sidecarv1.RandomRequest{Position: pos})
		if err != nil {
			return false, wrap(err)
		}
		value = resp.GetValue()
		return resp.GetReplayed(), nil
	})
	return value, err
}

// UtcNow is the real UTC time at first record, strictly later than every earlier
// recorded time of the workflow, replayed identically.
func (w *Context) UtcNow(ctx context.Context) (time.Time, error) {
	var value time.Time
	err := w.at(ctx, seqTime, "", func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error) {
		if v, ok := recorded.GetValue().(*sidecarv1.RecordedOperation_TimeValue); ok {
			value = v.TimeValue.AsTime()
			return true, nil
		}
		if w.buffer != nil {
			value = w.buffer.nextTime(w.logLastTime())
			return false, w.buffered(ctx, &sidecarv1.BufferedOperation{Kind: sidecarv1.OperationKind_OPERATION_KIND_TIME,
				Sequence: pos.GetSequence(), Value: &sidecarv1.BufferedOperation_TimeValue{TimeValue: timestamppb.New(value)}})
		}
		resp, err := w.client.Executor.UtcNow(ctx, &sidecarv1.UtcNowRequest{Position: pos})
		if err != nil {
			return false, wrap(err)
		}
		value = resp.GetTime().AsTime()
		return resp.GetReplayed(), nil
	})
	return value, err
}

// UUID is a deterministic UUIDv5 (canonical lowercase text), replayed identically.
func (w *Context) UUID(ctx context.Context) (string, error) {
	var value string
	err := w.at(ctx, seqUUID, "", func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error) {
		if v, ok := recorded.GetValue().(*sidecarv1.RecordedOperation_UuidValue); ok {
			value = v.UuidValue
			return true, nil
		}
		if w.buffer != nil {
			value = DeriveUUID(w.InvocationID(), pos.GetSequence())
			return false, w.buffered(ctx, &sidecarv1.BufferedOperation{Kind: sidecarv1.OperationKind_OPERATION_KIND_UUID,
				Sequence: pos.GetSequence(), Value: &sidecarv1.BufferedOperation_UuidValue{UuidValue: value}})
		}
		resp, err := w.client.Executor.Uuid(ctx, &sidecarv1.UuidRequest{Position: pos})
		if err != nil {
			return false, wrap(err)
		}
		value = resp.GetUuid()
		return resp.GetReplayed(), nil
	})
	return value, err
}

// RecordJSON is a custom deterministic operation on JSON text: the value recorded at the
// next position of the operation `name`, or, when nothing is recorded there, the one
// gen returns (gen runs only then). The first value recorded wins.
func (w *Context) RecordJSON(ctx context.Context, name string, gen func() (string, error)) (string, error) {
	var value string
	err := w.at(ctx, "custom:"+name, name, func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error) {
		if v, ok := recorded.GetValue().(*sidecarv1.RecordedOperation_JsonValue); ok {
			value = v.JsonValue
			return true, nil
		}
		// Buffered, the log is the record: the generator runs when the log has nothing here
		// (a stale log makes the commit COMMIT_CONFLICT, and the run runs again).
		if w.buffer == nil {
			got, err := w.client.Executor.GetRecorded(ctx, &sidecarv1.GetRecordedRequest{
				Position: pos, Kind: sidecarv1.OperationKind_OPERATION_KIND_CUSTOM, CustomName: name,
			})
			if err != nil {
				return false, wrap(err)
			}
			if got.GetFound() {
				value = got.GetOperation().GetJsonValue()
				return true, nil
			}
		}
		w.mu.Lock()
		w.generating = name
		w.mu.Unlock()
		generated, err := gen()
		w.mu.Lock()
		w.generating = ""
		w.mu.Unlock()
		if err != nil {
			return false, err
		}
		if w.buffer != nil {
			if !json.Valid([]byte(generated)) {
				return false, fmt.Errorf("wf: the value of custom operation %q is not JSON text", name)
			}
			value = generated
			return false, w.buffered(ctx, &sidecarv1.BufferedOperation{Kind: sidecarv1.OperationKind_OPERATION_KIND_CUSTOM,
				CustomName: name, Sequence: pos.GetSequence(), Value: &sidecarv1.BufferedOperation_JsonValue{JsonValue: generated}})
		}
		resp, err := w.client.Executor.Record(ctx, &sidecarv1.RecordRequest{Position: pos, Operation: name, ValueJson: generated})
		if err != nil {
			return false, wrap(err)
		}
		value = resp.GetValueJson()
		return resp.GetReplayed(), nil
	})
	return value, err
}

// Record is RecordJSON for any JSON-serializable type (Pynenc's
// `wf.deterministic._deterministic_operation(name, generator)`).
func Record[T any](ctx context.Context, w *Context, name string, gen func() (T, error)) (T, error) {
	var out T
	text, err := w.RecordJSON(ctx, name, func() (string, error) {
		v, err := gen()
		if err != nil {
			return "", err
		}
		data, err := json.Marshal(v)
		return string(data), err
	})
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return out, fmt.Errorf("wf: recorded value of %q does not fit %T: %w", name, out, err)
	}
	return out, nil
}

// GetDataJSON reads a workflow data key as JSON text. A stored `null` is found. The read
// is a recorded step (the key's next data_read position): a replay returns what this
// position read the first time, whatever the data holds now.
func (w *Context) GetDataJSON(ctx context.Context, key string) (string, bool, error) {
	var value string
	var found bool
	err := w.at(ctx, seqDataRead+":"+key, key, func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error) {
		if v, ok := recorded.GetValue().(*sidecarv1.RecordedOperation_DataValue); ok {
			value, found = v.DataValue.GetValueJson(), v.DataValue.GetFound()
			return true, nil
		}
		// With the buffer: the read sees this run's own buffered writes.
		resp, err := blocking(w, func(commit *sidecarv1.OperationCommit) (*sidecarv1.GetDataResponse, error) {
			resp, err := w.client.Executor.GetData(ctx, &sidecarv1.GetDataRequest{Key: key, Position: pos, Commit: commit})
			return resp, wrap(err)
		})
		if err != nil {
			return false, err
		}
		value, found = resp.GetValueJson(), resp.GetFound()
		return resp.GetReplayed(), nil
	})
	return value, found, err
}

// GetData reads a workflow data key into out (any task of the workflow may read).
func (w *Context) GetData(ctx context.Context, key string, out any) (bool, error) {
	text, found, err := w.GetDataJSON(ctx, key)
	if err != nil || !found || out == nil {
		return found, err
	}
	return true, json.Unmarshal([]byte(text), out)
}

// SetData writes a workflow data key. Only the workflow's main task may write: any other
// task gets an *Error with reason WORKFLOW_ACCESS_DENIED. The write is a recorded step
// (the key's next data_write position): a replay does not apply it again, and a replay
// writing another value fails with reason NONDETERMINISTIC_REPLAY.
func (w *Context) SetData(ctx context.Context, key string, value any) error {
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if w.buffer != nil && !w.IsMainTask() {
		return localError(codes.PermissionDenied, ReasonWorkflowAccessDenied, "invocation "+w.InvocationID()+
			" is not the main task of workflow "+w.workflow.WorkflowID+": only the workflow's main task may write its data")
	}
	return w.at(ctx, seqDataWrite+":"+key, key, func(ctx context.Context, pos *sidecarv1.OperationPosition, recorded *sidecarv1.RecordedOperation) (bool, error) {
		// Recorded with the same value: nothing to write. Another value goes to the
		// sidecar, which judges the difference (NONDETERMINISTIC_REPLAY).
		if v, ok := recorded.GetValue().(*sidecarv1.RecordedOperation_DataValue); ok && sameJSON(v.DataValue.GetValueJson(), string(data)) {
			return true, nil
		}
		if w.buffer != nil {
			if v, ok := recorded.GetValue().(*sidecarv1.RecordedOperation_DataValue); ok {
				return false, localError(codes.FailedPrecondition, ReasonNondeterministicReplay, fmt.Sprintf(
					"non-deterministic replay at data write %q #%d of invocation %s: data key %q was written %.256s there, "+
						"the replay writes %.256s", key, pos.GetSequence(), w.InvocationID(), key,
					v.DataValue.GetValueJson(), data))
			}
			return false, w.buffered(ctx, &sidecarv1.BufferedOperation{Kind: sidecarv1.OperationKind_OPERATION_KIND_DATA_WRITE,
				CustomName: key, Sequence: pos.GetSequence(), Value: &sidecarv1.BufferedOperation_JsonValue{JsonValue: string(data)}})
		}
		resp, err := w.client.Executor.SetData(ctx, &sidecarv1.SetDataRequest{Key: key, ValueJson: string(data), Position: pos})
		if err != nil {
			return false, wrap(err)
		}
		return resp.GetReplayed(), nil
	})
}

// BaseTime is the workflow's time zero, recorded at its first use.
// A run under a lease commits its buffer first: a buffered utc_now may fix the base time.
func (w *Context) BaseTime(ctx context.Context) (time.Time, error) {
	if err := w.Flush(ctx); err != nil {
		return time.Time{}, err
	}
	resp, err := w.client.Executor.GetBaseTime(ctx, &sidecarv1.GetBaseTimeRequest{AppId: w.appID, WorkflowId: w.workflow.WorkflowID})
	if err != nil {
		return time.Time{}, wrap(err)
	}
	return resp.GetBaseTime().AsTime(), nil
}
