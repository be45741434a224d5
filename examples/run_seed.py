"""Run one of the seed workflows under a workflow id you choose; run it again to replay.

    python examples/run_seed.py process_order_workflow order-42 --args '["A-1"]'

Prints the workflow's result as JSON. `--step-delay` pauses after every call to the
sidecar, so a run can be killed midway (the kill-and-resume tests use it).
`--crash-before-outcome` stops the run (exit 3) right before the workflow's outcome would be
recorded, as a worker killed at that moment would: the next run (once the lease lapses)
resumes it, replaying every step recorded up to the run's last blocking call; the steps after
it were buffered for the outcome (docs/client-contract.md) and run again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed_workflows  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de  # noqa: E402

EXAMPLE_ARGS = {
    "process_order_workflow": ["A-1"],
    "call_independent_workflow": [{"source": "docs"}],
    "deterministic_operations_example": [],
    "stateful_workflow": ["user-7"],
    "parent_workflow": [{"Name": "Ada", "Items": 3}],
    "robust_processing_workflow": [{"order_id": "O-1", "customer_id": "C-9", "total": 42.5,
                                    "items": [{"id": "sku-1", "quantity": 2}, {"id": "sku-2", "quantity": 1}]}],
}


def slow_down(client, delay: float) -> None:
    call, stream = client.call, client.stream

    def slow_call(*args, **kwargs):
        reply = call(*args, **kwargs)
        time.sleep(delay)
        return reply

    def slow_stream(*args, **kwargs):
        reply = stream(*args, **kwargs)
        time.sleep(delay)
        return reply

    client.call, client.stream = slow_call, slow_stream


class SimulatedCrash(BaseException):
    """Not an Exception: nothing on the way catches it, as nothing survives a kill."""


def crash_before_outcome(client, workflow_id: str) -> None:
    call = client.call

    def refuse_outcome(method, request, *args, **kwargs):
        if isinstance(request, de.CompleteTaskRequest) and request.invocation_id == workflow_id:
            raise SimulatedCrash
        return call(method, request, *args, **kwargs)

    client.call = refuse_outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", choices=sorted(EXAMPLE_ARGS))
    parser.add_argument("workflow_id", help="the id to run under; the same id replays")
    parser.add_argument("--args", help="JSON list of arguments (default: an example)")
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to pause after each sidecar call")
    parser.add_argument("--crash-before-outcome", action="store_true",
                        help="exit 3 right before the workflow's outcome would be recorded")
    options = parser.parse_args()
    if options.step_delay:
        slow_down(seed_workflows.app.client, options.step_delay)
    if options.crash_before_outcome:
        crash_before_outcome(seed_workflows.app.client, options.workflow_id)
    args = json.loads(options.args) if options.args else EXAMPLE_ARGS[options.workflow]
    task = getattr(seed_workflows, options.workflow)
    try:
        invocation = task.run_workflow(options.workflow_id, *args)
    except SimulatedCrash:
        print(json.dumps({"workflow_id": options.workflow_id, "crashed": True}))
        return 3
    print(json.dumps({"workflow_id": options.workflow_id, "replayed": invocation.replayed,
                      "result": invocation.result}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
