package wf

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every error the sidecar reports.
const ErrorDomain = "sidecar.pynenc.org"

// Reasons the sidecar reports in google.rpc.ErrorInfo (stable; switch on them).
const (
	ReasonInvalidArgument        = "INVALID_ARGUMENT"
	ReasonInvocationNotFound     = "INVOCATION_NOT_FOUND"
	ReasonWorkflowAccessDenied   = "WORKFLOW_ACCESS_DENIED"
	ReasonNondeterministicReplay = "NONDETERMINISTIC_REPLAY"
	ReasonLeaseNotHeld           = "LEASE_NOT_HELD"
	ReasonStoreUnavailable       = "STORE_UNAVAILABLE"
	// ReasonUnauthenticated: the call carried no bearer token, or not an accepted one.
	ReasonUnauthenticated = "UNAUTHENTICATED"
	// ReasonWorkflowNotFound: RetryWorkflow named a workflow the app does not have.
	ReasonWorkflowNotFound = "WORKFLOW_NOT_FOUND"
	// ReasonWorkflowNotFailed: RetryWorkflow on a workflow that is not FAILED
	// (metadata "status" names its status).
	ReasonWorkflowNotFailed = "WORKFLOW_NOT_FAILED"
)

// Sentinel errors, one per reason: errors.Is(err, wf.ErrLeaseNotHeld) holds for every
// *Error carrying that reason, whatever its code and message.
var (
	ErrInvalidArgument        = reasonSentinel(ReasonInvalidArgument)
	ErrInvocationNotFound     = reasonSentinel(ReasonInvocationNotFound)
	ErrWorkflowAccessDenied   = reasonSentinel(ReasonWorkflowAccessDenied)
	ErrNondeterministicReplay = reasonSentinel(ReasonNondeterministicReplay)
	ErrLeaseNotHeld           = reasonSentinel(ReasonLeaseNotHeld)
	ErrStoreUnavailable       = reasonSentinel(ReasonStoreUnavailable)
	ErrUnauthenticated        = reasonSentinel(ReasonUnauthenticated)
	ErrWorkflowNotFound       = reasonSentinel(ReasonWorkflowNotFound)
	ErrWorkflowNotFailed      = reasonSentinel(ReasonWorkflowNotFailed)
)

// reasonSentinel is an *Error matching by reason alone (its Code is OK, which no failed
// call has).
func reasonSentinel(reason string) *Error {
	return &Error{Reason: reason, Domain: ErrorDomain, Message: "any sidecar error with reason " + reason}
}

// FieldViolation is one google.rpc.BadRequest field violation.
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a failed sidecar call with its status and the google.rpc details the server
// sent in the grpc-status-details-bin trailer (decoded by grpc-go's status package).
type Error struct {
	Code            codes.Code
	Message         string
	Reason          string            // ErrorInfo.reason, "" when the server sent none
	Domain          string            // ErrorInfo.domain
	Metadata        map[string]string // ErrorInfo.metadata
	FieldViolations []FieldViolation  // BadRequest.field_violations
	status          *status.Status
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("sidecar: %s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("sidecar: %s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see through an *Error.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Is matches the sentinel of e's reason (errors.Is(err, wf.ErrLeaseNotHeld)), and another
// *Error with the same code and, when it names one, the same reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t.Code == codes.OK {
		return t.Reason != "" && t.Reason == e.Reason
	}
	return t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// FromError converts a gRPC error into an *Error; it returns nil for nil and the
// *Error itself if err already is (or wraps) one.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.Unknown, err.Error())
	}
	e = &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			e.Reason, e.Domain, e.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		}
	}
	return e
}

// wrap converts a non-nil gRPC error into an *Error, keeping nil an untyped nil.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	return FromError(err)
}

// Reason is the ErrorInfo reason of err ("" when err is nil or carries none).
func Reason(err error) string {
	if e := FromError(err); e != nil {
		return e.Reason
	}
	return ""
}

// IsReason reports whether err carries the given ErrorInfo reason.
func IsReason(err error, reason string) bool { return err != nil && Reason(err) == reason }

// TaskError is the failure a task recorded (its CompleteTask error). Invocation.Result
// returns it for a FAILED invocation. A task function that returns it (or wraps it)
// records it unchanged: a child's failure keeps its type, message and traceback.
type TaskError struct {
	Type       string
	Message    string
	DetailJSON string
	// Traceback: where the error was raised, as the failing task's language printed it.
	Traceback string
}

func (e *TaskError) Error() string { return fmt.Sprintf("task failed: %s: %s", e.Type, e.Message) }

// TypedError lets a task function choose the error type name recorded for its failure
// (default: the Go type name, e.g. "errors.errorString").
type TypedError interface {
	error
	ErrorType() string
}
