"""The seed's order workflow (Pynenc's workflow documentation, seed 002) as a Pynenc 0.4.0 app
whose state backend is the sidecar (pynenc-sidecar-plugin).

The app is plain Pynenc: nothing here names the sidecar. pynenc.yaml beside this file (or
PYNENC__STATE_BACKEND_CLS=SidecarStateBackend, or config values) selects SidecarStateBackend.

Changed from the documentation for Pynenc 0.4.0's API, and nothing else:
- `@app.task(force_new_workflow=True)` -> `@app.workflow`;
- `wf.random()` / `wf.utc_now()` / `wf.uuid()` / `wf.execute_task()` -> `wf.root.…`: 0.4.0
  allows deterministic operations only in the workflow-defining task, so the payment id and
  time are drawn by the workflow and passed to `process_payment`.
"""

from datetime import datetime, timedelta
from typing import Any

from pynenc import Pynenc

app = Pynenc()


@app.workflow
def process_order_workflow(order_id: str) -> dict[str, Any]:
    """Main order processing workflow: its deterministic values replay identically."""
    tracking_number = generate_tracking_number(order_id)
    payment = process_order_workflow.wf.root.execute_task(
        process_payment, order_id, process_order_workflow.wf.root.uuid(),
        process_order_workflow.wf.root.utc_now().isoformat())
    notification_time = process_order_workflow.wf.root.utc_now() + timedelta(hours=1)
    process_order_workflow.wf.set_data("tracking_number", tracking_number)
    process_order_workflow.wf.set_data("notification_time", notification_time.isoformat())
    return {
        "order_id": order_id,
        "tracking_number": tracking_number,
        "payment_status": payment.result,
        "notification_scheduled": notification_time.isoformat(),
    }


def generate_tracking_number(order_id: str) -> str:
    random_suffix = int(process_order_workflow.wf.root.random() * 100000)
    return f"TRK-{order_id}-{random_suffix:05d}"


@app.task
def process_payment(order_id: str, payment_id: str, processed_at: str) -> dict[str, Any]:
    """Process payment for an order."""
    datetime.fromisoformat(processed_at)  # a timestamp the workflow recorded
    return {"payment_id": payment_id, "processed_at": processed_at, "status": "completed"}
