package wf

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestSentinelErrorsMatchByReason(t *testing.T) {
	lost := fmt.Errorf("run: %w", &Error{Code: codes.FailedPrecondition, Reason: ReasonLeaseNotHeld, Message: "taken over"})
	if !errors.Is(lost, ErrLeaseNotHeld) {
		t.Fatal("a wrapped LEASE_NOT_HELD error is not ErrLeaseNotHeld")
	}
	if errors.Is(lost, ErrNondeterministicReplay) || errors.Is(errors.New("other"), ErrLeaseNotHeld) {
		t.Fatal("a sentinel matched another reason")
	}
	if !errors.Is(lost, &Error{Code: codes.FailedPrecondition}) || errors.Is(lost, &Error{Code: codes.Aborted}) {
		t.Fatal("matching by code changed")
	}
	for _, sentinel := range []*Error{ErrInvalidArgument, ErrInvocationNotFound, ErrWorkflowAccessDenied,
		ErrNondeterministicReplay, ErrLeaseNotHeld, ErrStoreUnavailable, ErrUnauthenticated, ErrWorkflowNotFound,
		ErrWorkflowNotFailed} {
		if !errors.Is(&Error{Code: codes.Internal, Reason: sentinel.Reason}, sentinel) {
			t.Errorf("%s does not match its reason", sentinel.Reason)
		}
	}
}
