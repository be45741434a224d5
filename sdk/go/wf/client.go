// Package wf is a thin, idiomatic helper over the generated pynenc-sidecar client: the
// Pynenc workflow context (`task.wf` in Python) for Go workers.
//
//	client, _ := wf.Dial("127.0.0.1:50051") // options: wf.WithDefaultLeaseTTL(d), wf.WithRunnerID(id), ...
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
	"sync/atomic"
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
// shared by the Contexts it makes (set with Options when it is made).
type Client struct {
	// Executor is the generated client, for calls the helper does not wrap.
	Executor sidecarv1.DeterministicExecutorServiceClient

	runnerID  string
	leaseTTL  time.Duration
	waitSlice time.Duration
	logger    *log.Logger
	conn      *grpc.ClientConn
}

// RunnerID is recorded on the leases this client takes (default host-pid-go; WithRunnerID).
func (c *Client) RunnerID() string { return c.runnerID }

// LeaseTTL is the length of the task leases this client takes (default 30 s;
// WithDefaultLeaseTTL); they are renewed every LeaseTTL/3 while the task runs.
func (c *Client) LeaseTTL() time.Duration { return c.leaseTTL }

// WaitSlice bounds one WaitTask call (default 10 s; WithWaitSlice); waiting repeats until
// the task finishes or its lease is handed to this client.
func (c *Client) WaitSlice() time.Duration { return c.waitSlice }

// Option configures a Client made by Dial, DialSecure or New: the SDK's one options
// convention (functional options), as ExecuteTask's TaskOption and NewWorker's WorkerOption.
type Option func(*clientConfig)

type clientConfig struct {
	grpcOptions []grpc.DialOption
	apply       []func(*Client)
}

// WithGRPCOptions passes options to grpc.NewClient (Dial, DialSecure). Given any, Dial
// takes no security from the environment: they choose it (e.g. Security.DialOptions).
func WithGRPCOptions(opts ...grpc.DialOption) Option {
	return func(c *clientConfig) { c.grpcOptions = append(c.grpcOptions, opts...) }
}

// WithRunnerID names this client on the leases it takes.
func WithRunnerID(id string) Option {
	return func(c *clientConfig) { c.apply = append(c.apply, func(cl *Client) { cl.runnerID = id }) }
}

// WithDefaultLeaseTTL sets the length of the task leases this client takes (1 s .. 1 h);
// ExecuteTask's WithLeaseTTL overrides it for one task.
func WithDefaultLeaseTTL(d time.Duration) Option {
	return func(c *clientConfig) { c.apply = append(c.apply, func(cl *Client) { cl.leaseTTL = d }) }
}

// WithWaitSlice bounds one WaitTask call (default 10 s).
func WithWaitSlice(d time.Duration) Option {
	return func(c *clientConfig) { c.apply = append(c.apply, func(cl *Client) { cl.waitSlice = d }) }
}

// WithLogger gets a line when a run starts waiting for another worker's lease and on every
// later wait slice: what it waits for and until when (default: the standard logger, stderr).
func WithLogger(l *log.Logger) Option {
	return func(c *clientConfig) { c.apply = append(c.apply, func(cl *Client) { cl.logger = l }) }
}

func configure(opts []Option) clientConfig {
	var cfg clientConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

func (c *Client) logf(format string, args ...any) {
	if c.logger != nil {
		c.logger.Printf(format, args...)
		return
	}
	log.Printf("pynenc-sidecar: "+format, args...)
}

// Dial connects to a sidecar at target ("host:port"). Without WithGRPCOptions, its
// security comes from the environment (SecurityFromEnv: PYNENC_SIDECAR_TLS_CA,
// PYNENC_SIDECAR_CLIENT_CERT/_KEY, PYNENC_SIDECAR_TOKEN), and with none of them set the
// connection is plaintext (a sidecar on localhost). Calls refused with UNAVAILABLE are
// retried (RetryServiceConfig; WithGRPCOptions(grpc.WithDisableRetry()) turns that off).
func Dial(target string, opts ...Option) (*Client, error) {
	cfg := configure(opts)
	grpcOptions := cfg.grpcOptions
	if len(grpcOptions) == 0 {
		var err error
		if grpcOptions, err = SecurityFromEnv().DialOptions(); err != nil {
			return nil, err
		}
	}
	// The retry policy first, so that a service config among the options replaces it.
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{WithRetries()}, grpcOptions...)...)
	if err != nil {
		return nil, err
	}
	c := New(conn, opts...)
	c.conn = conn
	return c, nil
}

// New wraps an existing connection (Close then leaves it open; WithGRPCOptions does not
// apply). Calls through it are traced with the global OpenTelemetry TracerProvider (see
// tracing.go): a CLIENT span per call, sent to the sidecar as W3C traceparent; nothing
// when no provider is set.
func New(cc grpc.ClientConnInterface, opts ...Option) *Client {
	host, _ := os.Hostname()
	c := &Client{
		Executor:  sidecarv1.NewDeterministicExecutorServiceClient(traced(cc)),
		runnerID:  fmt.Sprintf("%s-%d-go", host, os.Getpid()),
		leaseTTL:  DefaultLeaseTTL,
		waitSlice: DefaultWaitSlice,
	}
	for _, apply := range configure(opts).apply {
		apply(c)
	}
	return c
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
	return &Context{client: c, appID: appID, workflow: workflow, invocationID: invocationID, seqs: map[string]int64{},
		lost: new(atomic.Bool)}
}
