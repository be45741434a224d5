"""The polyglot example's two tasks served in Python: the same work as the Go payment worker
and the TypeScript inventory worker, for a machine without Go or Node, and the Python row of
the dispatch benchmark (bench/dispatch.py).

    python examples/polyglot/python_worker.py --concurrency 4
(address: $PYNENC_SIDECAR_ADDRESS; app: $PYNENC_APP_ID, default "polyglot")
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from pynenc_sidecar_sdk import Pynenc

app = Pynenc(app_id=os.environ.get("PYNENC_APP_ID", "polyglot"))


@app.task(task_id="orders.process_payment")
def process_payment(order_id: str) -> dict[str, Any]:
    payment_id = process_payment.wf.uuid()
    processing_time = process_payment.wf.utc_now()
    return {"payment_id": payment_id, "order_id": order_id, "processed_at": processing_time.isoformat(),
            "status": "completed"}


@app.task(task_id="orders.reserve_inventory")
def reserve_inventory(order_data: dict[str, Any]) -> dict[str, Any]:
    reservation_id = reserve_inventory.wf.uuid()
    reserved_at = reserve_inventory.wf.utc_now()
    items = [{"sku": item.get("sku"), "quantity": item.get("quantity", 1)} for item in order_data.get("items", [])]
    return {"reservation_id": reservation_id, "order_id": order_data.get("order_id"), "reserved_items": items,
            "reserved_at": reserved_at.isoformat()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tasks", default="orders.process_payment,orders.reserve_inventory",
                        help="the task ids to serve, comma-separated")
    args = parser.parse_args()
    served = [app.tasks[task_id] for task_id in args.tasks.split(",")]
    app.worker(served, concurrency=args.concurrency).run()
