"""The seed order workflow (seed 002) in Python, its payment and inventory steps served by
workers in other languages: `orders.process_payment` by a Go worker
(sdk/go/examples/payment_worker), `orders.reserve_inventory` by a TypeScript worker
(sdk/ts/examples/inventory_worker.ts), each its own process. See README, "A task in any
language".

    python examples/polyglot/order_workflow.py order-42 A-1

Prints {"result": ..., "replayed": ...} as JSON. Run it again with the same workflow id: it
replays from the record and nothing is dispatched again. The same workflow in Java is sdk/java's
org.pynenc.sidecar.examples.OrderWorkflow.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import Any

from pynenc_sidecar_sdk import Dispatch, Pynenc

app = Pynenc(app_id=os.environ.get("PYNENC_APP_ID", "polyglot"))

# Served elsewhere: known here by task id only. A declined payment is retried twice.
process_payment = app.remote_task("orders.process_payment", params=["order_id"], dispatch=Dispatch(
    max_attempts=3, initial_backoff=0.5, retry_on=["PaymentDeclined"], schedule_to_start=120))
reserve_inventory = app.remote_task("orders.reserve_inventory", params=["order_data"],
                                    dispatch=Dispatch(schedule_to_start=120))


@app.task(force_new_workflow=True)
def process_order_workflow(order_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's order workflow; its steps run in Go and TypeScript."""
    tracking_number = generate_tracking_number(order_id)
    payment_result = process_order_workflow.wf.execute_task(process_payment, order_id)
    inventory_result = process_order_workflow.wf.execute_task(
        reserve_inventory, {"order_id": order_id, "items": items})
    notification_time = process_order_workflow.wf.utc_now() + timedelta(hours=1)
    process_order_workflow.wf.set_data("tracking_number", tracking_number)
    process_order_workflow.wf.set_data("notification_time", notification_time.isoformat())
    return {
        "order_id": order_id,
        "tracking_number": tracking_number,
        "payment_status": payment_result.result,
        "inventory": inventory_result.result,
        "notification_scheduled": notification_time.isoformat(),
    }


def generate_tracking_number(order_id: str) -> str:
    random_suffix = int(process_order_workflow.wf.random() * 100000)
    return f"TRK-{order_id}-{random_suffix:05d}"


if __name__ == "__main__":
    workflow_id, order_id = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "A-1"
    items = [{"sku": "sku-1", "quantity": 2}, {"sku": "sku-2", "quantity": 1}]
    invocation = process_order_workflow.run_workflow(workflow_id, order_id, items)
    print(json.dumps({"result": invocation.result, "replayed": invocation.replayed}))
