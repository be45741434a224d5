// Command xlang is the Go side of tests/test_cross_language.py: it performs one step of
// the shared cross-language scenario against a sidecar and prints the outcome as one
// JSON object (flags may be written -flag or --flag). The TypeScript twin is sdk/ts/tools/xlang.ts; the Python one lives in
// the test itself (raw generated stubs).
//
//	xlang run      -address A -app APP -workflow WF   the scenario in WF's main task
//	xlang lease    -address A -app APP -workflow WF -ttl-ms 1000   take task #1's lease and exit
//	xlang complete -address A -app APP -invocation ID -lease LEASE
//	xlang takeover -address A -app APP -workflow WF   run task #1 (waiting for / taking over its lease)
//	xlang errors   -address A -app APP -workflow WF   the error reasons, read from ErrorInfo
//	xlang flow     -address A -app APP -workflow WF -fixed false   two tasks; the second fails unless fixed
//	xlang retry    -address A -app APP -workflow WF -fixed true    RetryWorkflow, then the flow again
//	xlang oversize -address A -app APP -workflow WF -bytes N       a child returning an N-byte string
//	xlang nested   -address A -app APP -workflow WF   in the main task of WF (type contract.nested):
//	               a custom op whose generator calls random (refused), then random, a custom op and
//	               random (docs/client-contract.md); a finished WF prints its recorded result
//	xlang visits   -address A -app APP -workflow WF   n = data "visits" + 1; write it; print n
//	xlang diverge  -address A -app APP -workflow WF -value V   write data "counter" = V (a replay
//	               with another V is NONDETERMINISTIC_REPLAY); print the error reason or null
//	xlang notify   -address A -app APP -workflow WF [-notify yes]   StartWorkflow: task "step",
//	               then (with -notify yes, a newer version of the code) task "notify"
//	xlang lease-loss -address A -app APP -workflow WF -ttl-ms 1000   the contract's lease-loss
//	               scenario: a main task calling random until its lease is taken over
//	xlang takeover-scenario -address A -app APP -workflow WF   the contract's takeover scenario:
//	               wait for a dead holder's main task, take it over, replay its record
//	xlang bench-replay -address A [-app APP] [-workflow WF] -ops N [-repeats 5]   record N randoms
//	               in a workflow's main task, replay them from its log; print {"record_ms": ...,
//	               "replay_ms": ..., "first_op_ms": ..., "log_call_ms": ...} (medians)
//	xlang order-rpcs -address A [-app APP]   the calls, by RPC, of one fresh seed order workflow
//	               (processOrderWorkflow) and of its replay: {"first_run": {...}, "replay": {...}}
//	xlang batch-flow -address A -app APP -workflow WF   buffered operations: 19 operations around
//	               one task call, in four calls (docs/client-contract.md)
//	xlang batch-race -address A -app APP -workflow WF -dir D [-ttl-ms T]   a custom op and a data
//	               write buffered, then D/ready; wait for D/go, then a blocking read
//	xlang batch-stall -address A -app APP -workflow WF -dir D -ttl-ms T   custom op "first" and a
//	               data write committed with a task call, "second" and another write buffered,
//	               then D/ready; wait for D/go, then a blocking read (refused: the lease was lost)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sidecarv1 "github.com/pynenc/pynenc-sidecar/sdk/go/gen/pynenc/sidecar/v1"
	"github.com/pynenc/pynenc-sidecar/sdk/go/wf"
	"google.golang.org/protobuf/types/known/durationpb"
)

const lang = "go"

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: xlang run|lease|complete|takeover|errors|flow|retry|oversize [flags]"))
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	address := fs.String("address", os.Getenv("PYNENC_SIDECAR_ADDRESS"), "sidecar host:port")
	app := fs.String("app", "", "app id")
	workflow := fs.String("workflow", "", "workflow id")
	invocation := fs.String("invocation", "", "invocation id (complete)")
	lease := fs.String("lease", "", "lease id (complete)")
	ttlMs := fs.Int("ttl-ms", 1000, "lease length in milliseconds (lease)")
	fixed := fs.String("fixed", "false", "flow, retry: true when the second task succeeds")
	size := fs.Int("bytes", 0, "oversize: the child's result length")
	ops := fs.Int("ops", 1000, "bench-replay: how many random operations")
	repeats := fs.Int("repeats", 5, "bench-replay: how many replays (the median is printed)")
	dir := fs.String("dir", ".", "batch-race, batch-stall: the directory of its ready and go files")

	value := fs.String("value", "1", "the JSON value to write (diverge)")
	withNotify := fs.String("notify", "no", "yes: the workflow code calls notify after step (notify)")
	_ = fs.Parse(os.Args[2:])

	var options []wf.Option
	if cmd == "lease-loss" || cmd == "batch-race" || cmd == "batch-stall" {
		options = append(options, wf.WithDefaultLeaseTTL(time.Duration(*ttlMs)*time.Millisecond))
	}
	client, err := wf.Dial(*address, options...)
	if err != nil {
		fail(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := wf.Identity{WorkflowID: *workflow}

	var out any
	switch cmd {
	case "run":
		out, err = scenario(ctx, client.Context(*app, id, ""))
	case "lease":
		out, err = takeLease(ctx, client, *app, id, time.Duration(*ttlMs)*time.Millisecond)
	case "complete":
		out, err = complete(ctx, client, *app, *invocation, *lease)
	case "takeover":
		out, err = takeover(ctx, client, *app, id)
	case "errors":
		out, err = reasons(ctx, client, *app, id)
	case "flow":
		out, err = flow(ctx, client, *app, *workflow, *fixed == "true", nil)
	case "retry":
		var reset []*wf.Invocation
		if reset, err = client.RetryWorkflow(ctx, *app, *workflow); err == nil {
			out, err = flow(ctx, client, *app, *workflow, *fixed == "true", reset)
		}
	case "oversize":
		out, err = oversize(ctx, client, *app, *workflow, *size)

	case "nested":
		out, err = nestedWorkflow(ctx, client, *app, id)
	case "visits":
		out, err = visits(ctx, client.Context(*app, id, ""))
	case "diverge":
		out, err = diverge(ctx, client.Context(*app, id, ""), *value)
	case "notify":
		out, err = notifyFlow(ctx, client, *app, id, *withNotify == "yes")
	case "lease-loss":
		out, err = leaseLoss(ctx, client, *app, id)
	case "bench-replay":
		out, err = benchReplay(ctx, client, *app, *workflow, *ops, *repeats)
	case "batch-flow":
		out, err = batchFlow(ctx, client, *app, id)
	case "batch-race":
		out, err = batchRace(ctx, client, *app, id, *dir)
	case "batch-stall":
		out, err = batchStall(ctx, client, *app, id, *dir)
	case "order-rpcs":
		out, err = orderRPCs(ctx, *address, *app)
	case "takeover-scenario":
		out, err = takeoverScenario(ctx, client, *app, id)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "xlang:", err)
	os.Exit(1)
}

type taskOut struct {
	InvocationID  string          `json:"invocation_id"`
	TaskID        string          `json:"task_id"`
	ArgumentsJSON string          `json:"arguments_json"`
	Status        string          `json:"status"`
	Result        json.RawMessage `json:"result"`
	Ran           bool            `json:"ran"`
	Replayed      bool            `json:"replayed"`
}

func taskSummary(inv *wf.Invocation) taskOut {
	result := json.RawMessage("null")
	if inv.ResultJSON != "" {
		result = json.RawMessage(inv.ResultJSON)
	}
	return taskOut{inv.ID, inv.TaskID, inv.ArgumentsJSON, inv.Status.String(), result, inv.Ran, inv.Replayed}
}

// scenario: the operations every language performs, in the same order.
func scenario(ctx context.Context, run *wf.Context) (map[string]any, error) {
	var randoms []float64
	for range 2 {
		r, err := run.Random(ctx)
		if err != nil {
			return nil, err
		}
		randoms = append(randoms, r)
	}
	u, err := run.UUID(ctx)
	if err != nil {
		return nil, err
	}
	var times []int64
	for range 2 {
		t, err := run.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		times = append(times, t.UnixMicro())
	}
	pick, err := wf.Record(ctx, run, "pick", func() (map[string]any, error) {
		return map[string]any{"lang": lang, "n": rand.IntN(1_000_000)}, nil
	})
	if err != nil {
		return nil, err
	}
	double, err := run.ExecuteTask(ctx, "xlang.double", map[string]any{"x": 21, "label": "ünï"},
		func(ctx context.Context, task *wf.Context) (any, error) {
			r, err := task.Random(ctx)
			if err != nil {
				return nil, err
			}
			u, err := task.UUID(ctx)
			if err != nil {
				return nil, err
			}
			return map[string]any{"y": 42, "r": r, "u": u, "lang": lang}, nil
		})
	if err != nil {
		return nil, err
	}
	greet, err := run.ExecuteTask(ctx, "xlang.greet", map[string]any{"name": "wörld"},
		func(ctx context.Context, task *wf.Context) (any, error) {
			return map[string]any{"greeting": "hello wörld", "lang": lang}, nil
		})
	if err != nil {
		return nil, err
	}
	if err := run.SetData(ctx, "summary", map[string]any{"r1": randoms[0], "uuid": u}); err != nil {
		return nil, err
	}
	var summary any
	if _, err := run.GetData(ctx, "summary", &summary); err != nil {
		return nil, err
	}
	return map[string]any{
		"lang": lang, "random": randoms, "uuid": []string{u}, "time_us": times, "pick": pick,
		"tasks": []taskOut{taskSummary(double), taskSummary(greet)}, "data": summary,
	}, nil
}

func handoffPosition(app string, id wf.Identity) *sidecarv1.OperationPosition {
	return &sidecarv1.OperationPosition{AppId: app, Workflow: &sidecarv1.WorkflowIdentity{WorkflowId: id.WorkflowID}, Sequence: 1}
}

func takeLease(ctx context.Context, c *wf.Client, app string, id wf.Identity, ttl time.Duration) (any, error) {
	resp, err := c.Executor.ExecuteTask(ctx, &sidecarv1.ExecuteTaskRequest{
		Position: handoffPosition(app, id), TaskId: "xlang.handoff", ArgumentsJson: `{"k":1}`,
		RunnerId: "xlang-" + lang, LeaseTtl: durationpb.New(ttl),
	})
	if err != nil {
		return nil, wf.FromError(err)
	}
	return map[string]any{
		"invocation_id": resp.GetInvocation().GetInvocationId(), "granted": resp.GetLease() != nil,
		"lease_id": resp.GetLease().GetLeaseId(),
	}, nil
}

func complete(ctx context.Context, c *wf.Client, app, invocation, lease string) (any, error) {
	resp, err := c.Executor.CompleteTask(ctx, &sidecarv1.CompleteTaskRequest{
		AppId: app, InvocationId: invocation, LeaseId: lease,
		Outcome: &sidecarv1.CompleteTaskRequest_ResultJson{ResultJson: fmt.Sprintf(`{"completed_by":%q}`, lang)},
	})
	if err != nil {
		return nil, wf.FromError(err)
	}
	return map[string]any{
		"accepted": resp.GetAccepted(), "status": resp.GetInvocation().GetStatus().String(),
		"result": json.RawMessage(resp.GetInvocation().GetResultJson()),
	}, nil
}

func takeover(ctx context.Context, c *wf.Client, app string, id wf.Identity) (any, error) {
	inv, err := c.Context(app, id, "").ExecuteTask(ctx, "xlang.handoff", map[string]any{"k": 1},
		func(ctx context.Context, task *wf.Context) (any, error) {
			return map[string]any{"completed_by": lang}, nil
		})
	if err != nil {
		return nil, err
	}
	return taskSummary(inv), nil
}

// reasons provokes each client error once and reports the ErrorInfo it carried.
func reasons(ctx context.Context, c *wf.Client, app string, id wf.Identity) (any, error) {
	out := map[string]any{}
	note := func(name string, err error) {
		e := wf.FromError(err)
		if e == nil {
			out[name] = nil
			return
		}
		entry := map[string]any{"code": int(e.Code), "reason": e.Reason, "domain": e.Domain}
		if len(e.FieldViolations) > 0 {
			entry["field"] = e.FieldViolations[0].Field
		}
		out[name] = entry
	}
	run := c.Context(app, id, "")
	if _, err := run.ExecuteTask(ctx, "xlang.first", nil, func(context.Context, *wf.Context) (any, error) { return 1, nil }); err != nil {
		return nil, err
	}
	_, err := c.Context(app, id, "").ExecuteTask(ctx, "xlang.second", nil, nil)
	note("nondeterministic", err)
	note("access_denied", c.Context(app, id, "some-task").SetData(ctx, "k", 1))
	_, err = c.Executor.RenewTaskLease(ctx, &sidecarv1.RenewTaskLeaseRequest{AppId: app, InvocationId: "no-such-invocation", LeaseId: "x"})
	note("not_found", err)
	first, err := c.Context(app, id, "").ExecuteTask(ctx, "xlang.first", nil, nil)
	if err != nil {
		return nil, err
	}
	_, err = c.Executor.RenewTaskLease(ctx, &sidecarv1.RenewTaskLeaseRequest{AppId: app, InvocationId: first.ID, LeaseId: "not-mine"})
	note("lease_not_held", err)
	_, err = c.Context(app, wf.Identity{}, "").Random(ctx)
	note("invalid_argument", err)
	return out, nil
}

// xlangBroken is a task failure with the same type name in every language.
type xlangBroken struct{ msg string }

func (e *xlangBroken) Error() string     { return e.msg }
func (e *xlangBroken) ErrorType() string { return "XlangBroken" }

func failure(inv *wf.Invocation) any {
	if inv.Failure == nil {
		return nil
	}
	return map[string]any{"type": inv.Failure.Type, "message": inv.Failure.Message, "traceback": inv.Failure.Traceback}
}

func outcome(inv *wf.Invocation, ran []string) map[string]any {
	result := json.RawMessage("null")
	if inv.ResultJSON != "" {
		result = json.RawMessage(inv.ResultJSON)
	}
	return map[string]any{"status": inv.Status.String(), "error": failure(inv), "result": result, "ran": ran}
}

// flow: xlang.first, then xlang.second, which fails until fixed.
func flow(ctx context.Context, c *wf.Client, app, workflowID string, fixed bool, reset []*wf.Invocation) (any, error) {
	ran := []string{}
	inv, err := c.StartWorkflow(ctx, app, wf.Identity{WorkflowID: workflowID, WorkflowType: "xlang.retry_flow"}, nil,
		func(ctx context.Context, main *wf.Context) (any, error) {
			first, err := main.ExecuteTask(ctx, "xlang.first", nil, func(ctx context.Context, task *wf.Context) (any, error) {
				ran = append(ran, "first")
				r, err := task.Random(ctx)
				return map[string]any{"r": r, "lang": lang}, err
			})
			if err != nil {
				return nil, err
			}
			second, err := main.ExecuteTask(ctx, "xlang.second", nil, func(ctx context.Context, task *wf.Context) (any, error) {
				ran = append(ran, "second")
				if !fixed {
					return nil, &xlangBroken{"broken in " + lang}
				}
				return map[string]any{"fixed_by": lang}, nil
			})
			if err != nil {
				return nil, err
			}
			var a, b any
			if err := first.Result(&a); err != nil {
				return nil, err
			}
			if err := second.Result(&b); err != nil {
				return nil, err // the child's *TaskError: recorded as it is
			}
			return map[string]any{"first": a, "second": b}, nil
		})
	if err != nil {
		return nil, err
	}
	out := outcome(inv, ran)
	if reset != nil {
		names := []string{}
		for _, r := range reset {
			names = append(names, r.TaskID+":"+r.Status.String())
		}
		out["reset"] = names
	}
	return out, nil
}

// oversize: a child returning a string of n bytes; the parent returns the child's result.
func oversize(ctx context.Context, c *wf.Client, app, workflowID string, n int) (any, error) {
	ran := []string{}
	var child *wf.Invocation
	inv, err := c.StartWorkflow(ctx, app, wf.Identity{WorkflowID: workflowID, WorkflowType: "xlang.big_flow"}, nil,
		func(ctx context.Context, main *wf.Context) (any, error) {
			var err error
			child, err = main.ExecuteTask(ctx, "xlang.big", nil, func(ctx context.Context, task *wf.Context) (any, error) {
				ran = append(ran, "big")
				return strings.Repeat("x", n), nil
			})
			if err != nil {
				return nil, err
			}
			var s string
			if err := child.Result(&s); err != nil {
				return nil, err
			}
			return len(s), nil
		})
	if err != nil {
		return nil, err
	}
	out := outcome(inv, ran)
	if child != nil {
		out["child"] = map[string]any{"status": child.Status.String(), "error": failure(child)}
	}
	return out, nil
}

// visits is issue 11's read-modify-write of workflow data: replayed, it reads what it read
// the first time and does not write again.
func visits(ctx context.Context, run *wf.Context) (any, error) {
	var n int
	if _, err := run.GetData(ctx, "visits", &n); err != nil {
		return nil, err
	}
	n++
	if err := run.SetData(ctx, "visits", n); err != nil {
		return nil, err
	}
	return map[string]any{"n": n}, nil
}

func diverge(ctx context.Context, run *wf.Context, value string) (any, error) {
	err := run.SetData(ctx, "counter", json.RawMessage(value))
	if e := wf.FromError(err); e != nil {
		return map[string]any{"error": e.Reason, "message": e.Message}, nil
	}
	return map[string]any{"error": nil}, err
}

// notifyFlow runs a workflow whose code (with notify, a newer version) adds a task after
// its recorded step: a finished workflow returns its recorded result and runs neither.
func notifyFlow(ctx context.Context, c *wf.Client, app string, id wf.Identity, notify bool) (any, error) {
	ran := []string{}
	id.WorkflowType = "xlang.notify_flow"
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		ran = append(ran, "flow")
		step, err := main.ExecuteTask(ctx, "xlang.step", nil, func(context.Context, *wf.Context) (any, error) {
			ran = append(ran, "step")
			return 41, nil
		})
		if err != nil {
			return nil, err
		}
		var total int
		if err := step.Result(&total); err != nil {
			return nil, err
		}
		if notify {
			if _, err := main.ExecuteTask(ctx, "xlang.notify", nil, func(context.Context, *wf.Context) (any, error) {
				ran = append(ran, "notify")
				return "sent", nil
			}); err != nil {
				return nil, err
			}
		}
		return total + 1, nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"result": json.RawMessage(inv.ResultJSON), "ran": ran, "replayed": inv.Replayed}, nil
}

// nested is the client contract's nested-operation scenario (tests/test_client_contract.py):
// an operation inside a custom operation's generator is refused (OPERATION_IN_GENERATOR)
// and takes no position; the same values computed before the custom operation record.
func nested(ctx context.Context, run *wf.Context) (any, error) {
	_, refused := wf.Record(ctx, run, "refused", func() (float64, error) { return run.Random(ctx) })
	if !errors.Is(refused, wf.ErrOperationInGenerator) {
		return nil, fmt.Errorf("an operation inside a generator: want ErrOperationInGenerator, got %v", refused)
	}
	r, err := run.Random(ctx)
	if err != nil {
		return nil, err
	}
	outer, err := wf.Record(ctx, run, "outer", func() (map[string]any, error) {
		return map[string]any{"r": r, "lang": lang}, nil
	})
	if err != nil {
		return nil, err
	}
	after, err := run.Random(ctx)
	if err != nil {
		return nil, err
	}
	seqs := map[string]int64{}
	for _, kind := range []string{"random", "custom:outer", "custom:refused"} {
		seqs[kind] = run.Sequence(kind)
	}
	return map[string]any{"refused": "OPERATION_IN_GENERATOR", "outer": outer, "after": after, "sequences": seqs,
		"lang": lang}, nil
}

// nestedWorkflow runs nested as the main task of a workflow of type contract.nested (as the
// Python SDK does): buffered, its operations travel with StartWorkflow's CompleteTask. A
// finished workflow prints the result it recorded (in any language), as this language's run.
func nestedWorkflow(ctx context.Context, c *wf.Client, app string, id wf.Identity) (any, error) {
	id.WorkflowType = "contract.nested"
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		return nested(ctx, main)
	})
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := inv.Result(&out); err != nil {
		return nil, err
	}
	out["lang"] = lang
	return out, nil
}

// batchFlow: buffered operations. Everything before the task call travels with ExecuteTask,
// the child's with its CompleteTask, the rest with the main task's CompleteTask.
func batchFlow(ctx context.Context, c *wf.Client, app string, id wf.Identity) (any, error) {
	id.WorkflowType = "contract.batch_flow"
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		var random []float64
		var uuids []string
		var times []int64
		for range 5 {
			r, err := main.Random(ctx)
			if err != nil {
				return nil, err
			}
			random = append(random, r)
		}
		for range 3 {
			u, err := main.UUID(ctx)
			if err != nil {
				return nil, err
			}
			uuids = append(uuids, u)
		}
		for range 3 {
			t, err := main.UtcNow(ctx)
			if err != nil {
				return nil, err
			}
			times = append(times, t.UnixMicro())
		}
		custom, err := wf.Record(ctx, main, "pick", func() (map[string]any, error) { return map[string]any{"k": []int{1, 2}}, nil })
		if err != nil {
			return nil, err
		}
		if err := main.SetData(ctx, "stage", "before-child"); err != nil {
			return nil, err
		}
		child, err := main.ExecuteTask(ctx, "contract.batch_child", map[string]any{"n": 7},
			func(ctx context.Context, task *wf.Context) (any, error) {
				out := []any{}
				for range 3 {
					r, err := task.Random(ctx)
					if err != nil {
						return nil, err
					}
					out = append(out, r)
				}
				return append(out, 7), nil
			})
		if err != nil {
			return nil, err
		}
		var childResult any
		if err := child.Result(&childResult); err != nil {
			return nil, err
		}
		if err := main.SetData(ctx, "stage", "after-child"); err != nil {
			return nil, err
		}
		r, err := main.Random(ctx)
		if err != nil {
			return nil, err
		}
		t, err := main.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"random": random, "uuid": uuids, "time_us": times, "custom": custom, "child": childResult,
			"late": []any{r, t.UnixMicro()}}, nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": inv.Status.String(), "result": json.RawMessage(inv.ResultJSON), "ran": inv.Ran,
		"lang": lang}, nil
}

// batchRace: a custom op and a data write buffered; the blocking read waits for the test's
// go-ahead (dir/go), so that the test can record the custom op's position first, or take the
// lease over, meanwhile.
func batchRace(ctx context.Context, c *wf.Client, app string, id wf.Identity, dir string) (any, error) {
	id.WorkflowType = "contract.batch_race"
	generated, runs := []string{}, 0
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		runs++
		pick, err := wf.Record(ctx, main, "pick", func() (map[string]any, error) {
			generated = append(generated, "gen")
			return map[string]any{"by": lang}, nil
		})
		if err != nil {
			return nil, err
		}
		if err := main.SetData(ctx, "by", lang); err != nil {
			return nil, err
		}
		if err := readyThenGo(ctx, dir); err != nil {
			return nil, err
		}
		if _, _, err := main.GetDataJSON(ctx, "k"); err != nil { // the blocking point: the buffer travels with it
			return nil, err
		}
		return map[string]any{"pick": pick, "lang": lang}, nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": inv.Status.String(), "result": json.RawMessage(inv.ResultJSON), "ran": inv.Ran,
		"generated": generated, "runs": runs, "lang": lang}, nil
}

// batchStall: a worker that lost its lease cannot commit. The main task commits custom op
// "first" and data "by" with a task call, buffers "second" and data "late", and waits for the
// test's go-ahead (dir/go) while the test takes its lease over; the read's commit is refused
// (LEASE_NOT_HELD) and the run waits for the new holder's outcome.
func batchStall(ctx context.Context, c *wf.Client, app string, id wf.Identity, dir string) (any, error) {
	id.WorkflowType = "contract.batch_stall"
	stoppedBy := ""
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		mine := func() (map[string]any, error) { return map[string]any{"by": lang}, nil }
		if _, err := wf.Record(ctx, main, "first", mine); err != nil {
			return nil, err
		}
		if err := main.SetData(ctx, "by", lang); err != nil {
			return nil, err
		}
		if _, err := main.ExecuteTask(ctx, "contract.batch_step", nil,
			func(context.Context, *wf.Context) (any, error) { return 1, nil }); err != nil {
			return nil, err
		}
		if _, err := wf.Record(ctx, main, "second", mine); err != nil {
			return nil, err
		}
		if err := main.SetData(ctx, "late", lang); err != nil {
			return nil, err
		}
		if err := readyThenGo(ctx, dir); err != nil {
			return nil, err
		}
		if _, _, err := main.GetDataJSON(ctx, "by"); err != nil {
			stoppedBy = wf.Reason(err)
			return nil, err
		}
		return map[string]any{"completed_by": lang}, nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": inv.Status.String(), "result": json.RawMessage(inv.ResultJSON), "ran": inv.Ran,
		"stopped_by": stoppedBy, "lang": lang}, nil
}

// readyThenGo creates dir/ready, then waits for the test to create dir/go.
func readyThenGo(ctx context.Context, dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			return nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leaseLoss is the client contract's lease-loss scenario (tests/test_client_contract.py): the
// main task calls random until an operation fails; the test takes its lease over meanwhile.
// The run must stop (its context cancelled, its next operation LEASE_NOT_HELD), its completion
// must be refused, and the outcome it reports is the new holder's.
func leaseLoss(ctx context.Context, c *wf.Client, app string, id wf.Identity) (any, error) {
	id.WorkflowType = "contract.lease_loss"
	var stoppedBy string
	signalled := false
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		for range 1200 { // at most a minute
			if _, err := main.Random(ctx); err != nil {
				stoppedBy, signalled = wf.Reason(err), ctx.Err() != nil
				return nil, err
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return map[string]any{"completed_by": lang}, nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": inv.Status.String(), "result": json.RawMessage(inv.ResultJSON), "ran": inv.Ran,
		"stopped_by": stoppedBy, "signalled": signalled, "lang": lang}, nil
}

// takeoverScenario is the client contract's takeover scenario: the test holds the main task's
// lease and records a custom op "pick" and a time, then dies; this run waits, takes the task
// over once that lease lapses and runs it from the top, replaying what the dead holder recorded.
func takeoverScenario(ctx context.Context, c *wf.Client, app string, id wf.Identity) (any, error) {
	id.WorkflowType = "contract.takeover"
	inv, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		pick := func() (map[string]any, error) {
			return wf.Record(ctx, main, "pick", func() (map[string]any, error) { return map[string]any{"by": lang}, nil })
		}
		first, err := pick()
		if err != nil {
			return nil, err
		}
		at, err := main.UtcNow(ctx)
		if err != nil {
			return nil, err
		}
		r, err := main.Random(ctx)
		if err != nil {
			return nil, err
		}
		second, err := pick()
		if err != nil {
			return nil, err
		}
		return map[string]any{"picks": []any{first, second}, "time_us": at.UnixMicro(), "r": r, "lang": lang}, nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": inv.Status.String(), "result": json.RawMessage(inv.ResultJSON), "ran": inv.Ran,
		"lang": lang}, nil
}

// benchReplay records n randoms in a workflow's main task (buffered: committed with its
// completion, and on their own at every FlushAtOperations), then replays them `repeats` times,
// each in a new run from one read of the log (one GetWorkflowLog, the values served locally),
// checking they are the same; replay_ms is the median replay.
func benchReplay(ctx context.Context, c *wf.Client, app, workflowID string, n, repeats int) (any, error) {
	if app == "" {
		app = "bench-go"
	}
	if workflowID == "" {
		workflowID = fmt.Sprintf("bench-replay-go-%d-%d", os.Getpid(), time.Now().UnixNano())
	}
	id := wf.Identity{WorkflowID: workflowID, WorkflowType: "bench.replay"}
	recorded := make([]float64, 0, n)
	start := time.Now()
	if _, err := c.StartWorkflow(ctx, app, id, nil, func(ctx context.Context, main *wf.Context) (any, error) {
		for range n {
			r, err := main.Random(ctx)
			if err != nil {
				return nil, err
			}
			recorded = append(recorded, r)
		}
		return n, nil
	}); err != nil {
		return nil, err
	}
	recordMs := float64(time.Since(start).Microseconds()) / 1000
	// Besides the whole replay: its first operation (the log's call, decoding and indexing),
	// and a bare GetWorkflowLog stream (the call and protobuf decoding alone), for the
	// per-component breakdown in BENCHMARKS.md.
	replays, firsts, calls := make([]float64, 0, repeats), make([]float64, 0, repeats), make([]float64, 0, repeats)
	for range max(repeats, 1) {
		start = time.Now()
		run := c.Context(app, id, "")
		for i := range n {
			r, err := run.Random(ctx)
			if err != nil {
				return nil, err
			}
			if r != recorded[i] {
				return nil, fmt.Errorf("replay diverged at random #%d: %v != %v", i+1, r, recorded[i])
			}
			if i == 0 {
				firsts = append(firsts, msSince(start))
			}
		}
		replays = append(replays, msSince(start))
		start = time.Now()
		if err := drainLog(ctx, c, app, workflowID); err != nil {
			return nil, err
		}
		calls = append(calls, msSince(start))
	}
	return map[string]float64{"record_ms": recordMs, "replay_ms": median(replays), "first_op_ms": median(firsts),
		"log_call_ms": median(calls)}, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// drainLog reads a workflow's log as one GetWorkflowLog stream and drops it.
func drainLog(ctx context.Context, c *wf.Client, app, workflowID string) error {
	stream, err := c.Executor.GetWorkflowLog(ctx, &sidecarv1.GetWorkflowLogRequest{AppId: app, WorkflowId: workflowID})
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}
