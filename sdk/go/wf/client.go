// Package wf is a thin, idiomatic helper over the generated pynenc-sidecar client: the
// Pynenc workflow context (`task.wf` in Python) for Go workers.
//
//	client, _ := wf.Dial("127.0.0.1:50051")
//	defer client.Close()
//	run := client.Context("my-app", wf.Identity{WorkflowID: workflowID}, "")
//	r, _ := run.Random(ctx)                 // replayed identically on every run
//	inv, _ := run.ExecuteTask(ctx, "orders.process_payment", map[string]any{"order_id": "42"},
//		func(ctx context.Context, task *wf.Context) (any, error) { ... })
//
// A Context belongs to one run of one invocation's code. It counts a 1-based sequence
// per operation kind (random, time, uuid, task, each custom name), as the sidecar's
// recording model requires; a new run starts a new Context and so replays.
package wf

import (
	"fmt"
	"log"
	"os"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
	"google.golang.org/grpc"
)

// Identity of a workflow: its id is the invocation id of its main task.
type Identity struct {
	WorkflowID       string
	WorkflowType     string
	ParentWorkflowID string
}

func (i Identity) proto() *sidecarv1.WorkflowIdentity {
	return &sidecarv1.WorkflowIdentity{
		WorkflowId: i.WorkflowID, WorkflowType: i.WorkflowType, ParentWorkflowId: i.ParentWorkflowID,
	}
}

func identityFrom(p *sidecarv1.WorkflowIdentity) Identity {
	return Identity{WorkflowID: p.GetWorkflowId(), WorkflowType: p.GetWorkflowType(), ParentWorkflowID: p.GetParentWorkflowId()}
}

// The client contract's defaults (docs/client-contract.md).
const (
	DefaultLeaseTTL  = 30 * time.Second
	DefaultWaitSlice = 10 * time.Second
	// RenewFraction: a held lease is renewed every LeaseTTL/RenewFraction.
	RenewFraction = 3
)

// Client holds the generated DeterministicExecutorService client and the settings
// shared by the Contexts it makes.
type Client struct {
	// Executor is the generated client, for calls the helper does not wrap.
	Executor sidecarv1.DeterministicExecutorServiceClient
	// RunnerID is recorded on the leases this client takes (default host-pid-go).
	RunnerID string
	// LeaseTTL is the length of task leases (default 30 s); they are renewed every
	// LeaseTTL/3 while the task runs.
	LeaseTTL time.Duration
	// WaitTimeout bounds one WaitTask call (default 10 s); waiting repeats until the
	// task finishes or its lease is handed to this client.
	WaitTimeout time.Duration
	// Logger gets a line when a run starts waiting for another worker's lease and on every
	// later wait slice: what it waits for and until when (nil: the standard logger, stderr).
	Logger *log.Logger

	conn *grpc.ClientConn
}

func (c *Client) logf(format string, args ...any) {
	if c.Logger != nil {
		c.Logger.Printf(format, args...)
		return
	}
	log.Printf("pynenc-sidecar: "+format, args...)
}

// Dial connects to a sidecar at target ("host:port"). Without options, its security
// comes from the environment (SecurityFromEnv: PYNENC_SIDECAR_TLS_CA,
// PYNENC_SIDECAR_CLIENT_CERT/_KEY, PYNENC_SIDECAR_TOKEN), and with none of them set the
// connection is plaintext (a sidecar on localhost). Pass options (e.g. from
// Security.DialOptions, or grpc.WithTransportCredentials) to choose yourself. Calls
// refused with UNAVAILABLE are retried (RetryServiceConfig; pass
// grpc.WithDisableRetry() to turn that off).
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		var err error
		if opts, err = SecurityFromEnv().DialOptions(); err != nil {
			return nil, err
		}
	}
	// The retry policy first, so that a service config among opts replaces it.
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{WithRetries()}, opts...)...)
	if err != nil {
		return nil, err
	}
	c := New(conn)
	c.conn = conn
	return c, nil
}

// New wraps an existing connection (Close then leaves it open). Calls through it are
// traced with the global OpenTelemetry TracerProvider (see tracing.go): a CLIENT span per
// call, sent to the sidecar as W3C traceparent; nothing when no provider is set.
func New(cc grpc.ClientConnInterface) *Client {
	host, _ := os.Hostname()
	return &Client{
		Executor:    sidecarv1.NewDeterministicExecutorServiceClient(traced(cc)),
		RunnerID:    fmt.Sprintf("%s-%d-go", host, os.Getpid()),
		LeaseTTL:    DefaultLeaseTTL,
		WaitTimeout: DefaultWaitSlice,
	}
}

// Close closes the connection Dial opened.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Context starts a run of an invocation's code inside a workflow. invocationID is the
// invocation performing the operations (its scope); "" means the workflow's main task.
func (c *Client) Context(appID string, workflow Identity, invocationID string) *Context {
	return &Context{client: c, appID: appID, workflow: workflow, invocationID: invocationID, seqs: map[string]int64{}}
}
