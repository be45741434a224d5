"""Run the seed order workflow with Pynenc's ThreadRunner, state on the sidecar.

    PYNENC__FILEPATH=examples/pynenc_app/pynenc.yaml python examples/pynenc_app/run_seed.py order-1

Prints one JSON line: the workflow's invocation id (its workflow id) and its result.
"""

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_order_app import app, process_order_workflow  # noqa: E402


def main(order_id: str) -> None:
    runner = threading.Thread(target=app.runner.run, daemon=True)
    runner.start()
    try:
        invocation = process_order_workflow(order_id)
        result = invocation.result
        print(json.dumps({"workflow_id": invocation.invocation_id, "status": invocation.status.name,
                          "result": result}))
    finally:
        app.runner.stop_runner_loop()
        runner.join(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "order-1")
