"""Tasks served by a Python worker process for the dispatch tests (tests/test_sdk_dispatch.py).

Run as a worker:  python tests/dispatch_workers.py --concurrency N --grace S
(address: $PYNENC_SIDECAR_ADDRESS; app: $DISPATCH_APP; lease: $PYNENC_SIDECAR_LEASE_TTL).
Every run of a task appends a JSON line to $DISPATCH_LOG: what ran, when it started and ended.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk" / "python"))

from pynenc_sidecar_sdk import Dispatch, Pynenc  # noqa: E402

app = Pynenc(app_id=os.environ.get("DISPATCH_APP", "dispatch-tests"))
_log_lock = threading.Lock()


def note(event: str, **fields) -> None:
    path = os.environ.get("DISPATCH_LOG")
    if path:
        with _log_lock, open(path, "a") as log:
            log.write(json.dumps({"event": event, "pid": os.getpid(), "at": time.time(), **fields}) + "\n")


@app.task(dispatch=Dispatch(max_attempts=3, initial_backoff=0.1, retry_on=["Declined"]))
def charge(order_id: str, amount: int, decline_times: int = 0) -> dict:
    """Charges an order; declines (retryably) its first `decline_times` attempts."""
    invocation = charge.wf.uuid()  # a recorded step inside the dispatched task
    attempts = len([line for line in _lines() if line.get("event") == "charge" and line["order_id"] == order_id])
    note("charge", order_id=order_id)
    if attempts < decline_times:
        raise Declined(f"card declined for {order_id}")
    return {"order_id": order_id, "charged": amount, "receipt": invocation}


class Declined(Exception):  # noqa: N818 - its name is the error type the retry policy lists
    pass


@app.task(dispatch=True)
def slow(marker: str, seconds: float) -> str:
    note("start", marker=marker)
    time.sleep(seconds)
    note("end", marker=marker)
    return marker


@app.task
def order(order_id: str, amount: int, decline_times: int = 0) -> dict:
    """The workflow (run by the test): its payment step is dispatched to a worker."""
    tracking = f"TRK-{order_id}-{int(order.wf.random() * 100000):05d}"
    payment = charge(order_id=order_id, amount=amount, decline_times=decline_times)
    return {"tracking": tracking, "payment": payment.result}


@app.task
def waits_for_slow(marker: str, seconds: float) -> str:
    return slow(marker=marker, seconds=seconds).result


def _lines() -> list[dict]:
    path = os.environ.get("DISPATCH_LOG")
    if not path or not os.path.exists(path):
        return []
    with open(path) as log:
        return [json.loads(line) for line in log if line.strip()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--tasks", default="charge,slow")
    args = parser.parse_args()
    served = [task for name, task in (("charge", charge), ("slow", slow)) if name in args.tasks.split(",")]
    worker = app.worker(served, concurrency=args.concurrency, shutdown_grace=args.grace, poll_timeout=5)
    note("ready", worker_id=worker.worker_id)
    worker.run()
    note("stopped", worker_id=worker.worker_id)
