"""The polyglot example's two tasks served in Python: the same work as the Go payment worker,
the TypeScript inventory worker and sdk/java's PolyglotWorker, for a machine without Go or
Node, and the Python row of the dispatch benchmark (bench/dispatch.py).

    python examples/polyglot/python_worker.py --concurrency 4
(address: $PYNENC_SIDECAR_ADDRESS; app: $PYNENC_APP_ID, default "polyglot")
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from pynenc_sidecar_sdk import Pynenc

app = Pynenc(app_id=os.environ.get("PYNENC_APP_ID", "polyglot"))
DELAY_S = 0.0  # --delay-ms: a pause before each result, so that a test can kill a worker mid-task


@app.task(task_id="orders.process_payment")
def process_payment(order_id: str) -> dict[str, Any]:
    payment_id = process_payment.wf.uuid()
    processing_time = process_payment.wf.utc_now()
    time.sleep(DELAY_S)
    return {"payment_id": payment_id, "order_id": order_id, "processed_at": processing_time.isoformat(),
            "status": "completed"}


@app.task(task_id="orders.reserve_inventory")
def reserve_inventory(order_data: dict[str, Any]) -> dict[str, Any]:
    reservation_id = reserve_inventory.wf.uuid()
    reserved_at = reserve_inventory.wf.utc_now()
    time.sleep(DELAY_S)
    items = [{"sku": item.get("sku"), "quantity": item.get("quantity", 1)} for item in order_data.get("items", [])]
    return {"reservation_id": reservation_id, "order_id": order_data.get("order_id"), "reserved_items": items,
            "reserved_at": reserved_at.isoformat()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=None, help="the app id (default $PYNENC_APP_ID, else polyglot)")
    parser.add_argument("--address", default=None, help="the sidecar (default $PYNENC_SIDECAR_ADDRESS)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease-ttl", type=float, default=None, help="lease length in seconds (default 30)")
    parser.add_argument("--delay-ms", type=int, default=0, help="pause before each result")
    parser.add_argument("--tasks", default="orders.process_payment,orders.reserve_inventory",
                        help="the task ids to serve, comma-separated")
    args = parser.parse_args()
    if args.app or args.address or args.lease_ttl:
        app = Pynenc(app_id=args.app or app.app_id, address=args.address, lease_ttl=args.lease_ttl)
        for task in (process_payment, reserve_inventory):
            task.app = app
            app.tasks[task.task_id] = task
    DELAY_S = args.delay_ms / 1000
    served = [app.tasks[task_id] for task_id in args.tasks.split(",")]
    app.worker(served, concurrency=args.concurrency).run()
