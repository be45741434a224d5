//go:build sidecar_secure

package wf

// Run against a sidecar serving mutual TLS and requiring a token (tests/test_security.py
// starts one and runs `go test -tags sidecar_secure -run TestSecure ./wf/`), with
// PYNENC_SIDECAR_SECURE_ADDRESS, PYNENC_SIDECAR_TLS_CA, PYNENC_SIDECAR_CLIENT_CERT,
// PYNENC_SIDECAR_CLIENT_KEY and PYNENC_SIDECAR_TOKEN set.

import (
	"context"
	"errors"
	"os"
	"testing"

	"google.golang.org/grpc/codes"
)

func secureAddress(t *testing.T) string {
	t.Helper()
	address := os.Getenv("PYNENC_SIDECAR_SECURE_ADDRESS")
	if address == "" {
		t.Fatal("PYNENC_SIDECAR_SECURE_ADDRESS is not set")
	}
	return address
}

func TestSecureWithTokenAndClientCert(t *testing.T) {
	s := SecurityFromEnv()
	c, err := DialSecure(secureAddress(t), Security{CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile, Token: s.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, id := testCtx(t), Identity{WorkflowID: unique("go-secure")}
	r, err := c.Context("go-secure", id, "").Random(ctx)
	if err != nil {
		t.Fatalf("random over mutual TLS with a token: %v", err)
	}
	if r != DeriveRandom(id.WorkflowID, 1) {
		t.Fatalf("random %v differs from the derivation", r)
	}
	inv, err := c.Context("go-secure", id, "").ExecuteTask(ctx, "secure.echo", map[string]any{"x": 1},
		func(ctx context.Context, task *Context) (any, error) { return map[string]any{"ok": true}, nil })
	if err != nil || !inv.Ran || inv.ResultJSON != `{"ok":true}` {
		t.Fatalf("execute task: %v %+v", err, inv)
	}
}

func TestSecureRejectsAMissingToken(t *testing.T) {
	s := SecurityFromEnv()
	for name, token := range map[string]string{"missing": "", "wrong": "a-wrong-token-0123456789"} {
		c, err := DialSecure(secureAddress(t), Security{CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Context("go-secure", Identity{WorkflowID: unique("go-secure")}, "").Random(testCtx(t))
		c.Close()
		var e *Error
		if !errors.As(err, &e) || e.Code != codes.Unauthenticated || e.Reason != ReasonUnauthenticated {
			t.Fatalf("%s token: want UNAUTHENTICATED with reason %s, got %v", name, ReasonUnauthenticated, err)
		}
	}
}

func TestSecureFromEnv(t *testing.T) {
	c, err := Dial(secureAddress(t)) // no options: security from the PYNENC_SIDECAR_* variables
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Context("go-secure", Identity{WorkflowID: unique("go-secure-env")}, "").UUID(testCtx(t)); err != nil {
		t.Fatalf("uuid with security from the environment: %v", err)
	}
}
