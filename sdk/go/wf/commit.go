package wf

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
)

// The client contract's commit constants (docs/client-contract.md, "One round trip per
// blocking point"; tests/vectors/client_contract.json "commit").
const (
	// FlushAtOperations: a run's buffer is committed on its own (CommitOperations) when it
	// holds this many operations.
	FlushAtOperations = 1000
	// ConflictReruns: how often a run refused with COMMIT_CONFLICT is run again on a fresh
	// log before the error reaches the caller.
	ConflictReruns = 3
	// TimeStep: how much later than the latest time the run knows of a new utc_now is, at least.
	TimeStep = time.Microsecond
	// ReasonCommitConflict: a commit found a position recorded by another run with another
	// value (ABORTED); nothing of it was written, and the run runs again on a fresh log.
	ReasonCommitConflict = "COMMIT_CONFLICT"
)

// ErrCommitConflict matches every *Error with reason COMMIT_CONFLICT.
var ErrCommitConflict = reasonSentinel(ReasonCommitConflict)

// runBuffer holds a leased run's buffered operations (random, uuid, utc_now, custom values,
// the main task's data writes): computed by the SDK and sent, in call order, as one
// OperationCommit with the run's next blocking call, fenced by the run's lease.
type runBuffer struct {
	leaseID string

	mu      sync.Mutex
	pending []*sidecarv1.BufferedOperation
	// lastTime is the latest utc_now this run gave out (zero: none yet).
	lastTime time.Time
	// conflicted: a commit was refused with COMMIT_CONFLICT, so the run must run again.
	conflicted bool
}

func newRunBuffer(leaseID string) *runBuffer { return &runBuffer{leaseID: leaseID} }

// add buffers op and reports whether the buffer is now full (to be flushed).
func (b *runBuffer) add(op *sidecarv1.BufferedOperation) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, op)
	return len(b.pending) >= FlushAtOperations
}

// drop takes op back out of the buffer (its flush failed, so its operation fails).
func (b *runBuffer) drop(op *sidecarv1.BufferedOperation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, p := range b.pending {
		if p == op {
			b.pending = append(b.pending[:i], b.pending[i+1:]...)
			return
		}
	}
}

func (b *runBuffer) isConflicted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conflicted
}

// carry sends the buffer with a blocking call (send gets nil when it is empty). What was
// sent leaves the buffer only when the call succeeds: a failed call leaves it to the next
// one (every commit is safe to repeat). leaseID "" lets CompleteTask's own lease fence it.
func carry[T any](b *runBuffer, workflowID, leaseID string, send func(*sidecarv1.OperationCommit) (T, error)) (T, error) {
	if b == nil {
		return send(nil)
	}
	b.mu.Lock()
	n := len(b.pending)
	var commit *sidecarv1.OperationCommit
	if n > 0 {
		commit = &sidecarv1.OperationCommit{LeaseId: leaseID, WorkflowId: workflowID,
			Operations: append([]*sidecarv1.BufferedOperation(nil), b.pending...)}
	}
	b.mu.Unlock()
	reply, err := send(commit)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if IsReason(err, ReasonCommitConflict) {
			b.conflicted = true
		}
		return reply, err
	}
	b.pending = b.pending[n:]
	return reply, nil
}

// nextTime is a new utc_now: now, or TimeStep after the latest time the run knows of
// (known: the log's latest time), in whole microseconds as the sidecar records them.
func (b *runBuffer) nextTime(known time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	last := b.lastTime
	if last.IsZero() {
		last = known
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if !now.After(last) {
		now = last.Add(TimeStep)
	}
	b.lastTime = now
	return now
}

// buffered adds op to the run's buffer; a full buffer is committed now (if that fails, so
// does the operation, and op leaves the buffer).
func (w *Context) buffered(ctx context.Context, op *sidecarv1.BufferedOperation) error {
	if !w.buffer.add(op) {
		return nil
	}
	if err := w.Flush(ctx); err != nil {
		w.buffer.drop(op)
		return err
	}
	return nil
}

// Flush commits the run's buffered operations on their own (CommitOperations). Every
// blocking call carries the buffer anyway; a Context without a lease buffers nothing.
func (w *Context) Flush(ctx context.Context) error {
	if w.buffer == nil {
		return nil
	}
	_, err := carry(w.buffer, w.workflow.WorkflowID, w.buffer.leaseID, func(commit *sidecarv1.OperationCommit) (*sidecarv1.CommitOperationsResponse, error) {
		if commit == nil {
			return nil, nil
		}
		resp, err := w.client.Executor.CommitOperations(ctx, &sidecarv1.CommitOperationsRequest{
			AppId: w.appID, WorkflowId: w.workflow.WorkflowID, InvocationId: w.invocationID, Commit: commit,
		})
		return resp, wrap(err)
	})
	return err
}

// blocking sends a blocking call with the run's buffer (nil commit: nothing buffered).
func blocking[T any](w *Context, send func(*sidecarv1.OperationCommit) (T, error)) (T, error) {
	if w.buffer == nil {
		return send(nil)
	}
	return carry(w.buffer, w.workflow.WorkflowID, w.buffer.leaseID, send)
}

// localError is a refusal the SDK makes itself, without a call, worded as the sidecar's.
func localError(code codes.Code, reason, message string) *Error {
	return &Error{Code: code, Reason: reason, Domain: ErrorDomain, Message: message}
}
