"""The polyglot order example (README, "A task in any language"), run as written: the seed's
order workflow in Python (examples/polyglot/order_workflow.py), `orders.process_payment`
served by a Go worker and `orders.reserve_inventory` by a TypeScript worker, each its own
process, on both stores. Each worker is killed with kill -9 in the middle of its task (the Go
payment worker, then the TypeScript inventory worker): another worker of that task id takes the
task once the dead worker's lease lapses and completes it, once. The workflow then replays with
no worker running: nothing is dispatched again. The same harness runs with the Python workers
(examples/polyglot/python_worker.py) serving both tasks, and with the workflow in Java
(sdk/java's OrderWorkflow) calling the Go payment and Python inventory workers, or Java workers
(PolyglotWorker) for both: each Java worker killed with kill -9 is replaced by another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from executor_client import position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from refusing_proxy import RefusingProxy
from support import wait_until
from test_java_client import java_jar  # noqa: F401  (fixture: the one `mvn package` of the session)
from toolchains import require

ROOT = Path(__file__).resolve().parent.parent
GO_DIR = ROOT / "sdk/go"
TS_DIR = ROOT / "sdk/ts"
PAYMENT, INVENTORY = "orders.process_payment", "orders.reserve_inventory"


@pytest.fixture(params=["redis", "sqlite"])
def any_sidecar(request):
    return request.getfixturevalue("sidecar" if request.param == "redis" else "sqlite_sidecar")


def _build(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="session")
def go_payment_worker(tmp_path_factory) -> list[str]:
    require("go")
    binary = tmp_path_factory.mktemp("polyglot-go") / "payment_worker"
    _build(["go", "build", "-o", str(binary), "./examples/payment_worker"], GO_DIR)
    return [str(binary)]


@pytest.fixture(scope="session")
def ts_inventory_worker() -> list[str]:
    require("node", "npm")
    if not (TS_DIR / "node_modules/.bin/tsc").exists():
        _build(["npm", "ci", "--no-audit", "--no-fund"], TS_DIR)
    _build([str(TS_DIR / "node_modules/.bin/tsc"), "-p", "tsconfig.json"], TS_DIR)
    return ["node", str(TS_DIR / "dist/examples/inventory_worker.js")]


def python_worker(task: str) -> list[str]:
    return [sys.executable, str(ROOT / "examples/polyglot/python_worker.py"), "--tasks", task]


def java_main(jar: Path, main: str) -> list[str]:
    return ["java", "-cp", str(jar), f"org.pynenc.sidecar.examples.{main}"]


def java_worker(jar: Path, task: str) -> list[str]:
    return [*java_main(jar, "PolyglotWorker"), "--tasks", task]


# (the workflow's language, the payment worker's + the inventory worker's)
COMBINATIONS = ["python:go+typescript", "python:python", "java:go+python", "java:java+java"]


@pytest.fixture(params=COMBINATIONS)
def combination(request) -> tuple[list[str], dict[str, tuple[list[str], str]]]:
    """(the order workflow's command, task id -> (its worker's command, its flag prefix: "-" for
    Go, "--" otherwise)): the README's Python workflow with the Go payment worker and the
    TypeScript inventory worker; Python alone; the Java workflow with the Go and Python workers;
    Java alone."""
    workflow_lang, _, workers = request.param.partition(":")
    payment_lang, _, inventory_lang = workers.partition("+")
    jar = request.getfixturevalue("java_jar") if "java" in request.param else None

    def worker(lang: str, task: str) -> tuple[list[str], str]:
        if lang == "go":
            return request.getfixturevalue("go_payment_worker"), "-"
        if lang == "typescript":
            return request.getfixturevalue("ts_inventory_worker"), "--"
        return (java_worker(jar, task) if lang == "java" else python_worker(task)), "--"

    workflow = java_main(jar, "OrderWorkflow") if workflow_lang == "java" \
        else [sys.executable, str(ROOT / "examples/polyglot/order_workflow.py")]
    return workflow, {PAYMENT: worker(payment_lang, PAYMENT), INVENTORY: worker(inventory_lang, INVENTORY)}


class Fleet:
    def __init__(self, address: str, app_id: str, workers_of: dict[str, tuple[list[str], str]], logs: Path) -> None:
        self.address, self.app_id, self.workers_of, self.logs = address, app_id, workers_of, logs
        self.processes: list[subprocess.Popen] = []

    def start(self, task: str, **flags: object) -> subprocess.Popen:
        command, dash = self.workers_of[task]
        args = [*command, f"{dash}address", self.address, f"{dash}app", self.app_id]
        for name, value in flags.items():
            args += [f"{dash}{name.replace('_', '-')}", str(value)]
        log = open(self.logs / f"worker-{len(self.processes)}.log", "wb")
        env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": self.address, "PYNENC_APP_ID": self.app_id}
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def output(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.logs.glob("worker-*.log")))


def order_workflow(command: list[str], address: str, app_id: str, workflow_id: str) -> subprocess.Popen:
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": address, "PYNENC_APP_ID": app_id}
    return subprocess.Popen([*command, workflow_id, "A-1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finished(process: subprocess.Popen, fleet: Fleet) -> dict:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"workflow failed:\n{err[-4000:]}\nworkers:\n{fleet.output()}"
    return json.loads(out)


def test_polyglot_order_survives_kill_9_of_each_worker_and_replays_without_dispatching(any_sidecar, combination,
                                                                                     tmp_path):
    workflow_command, workers_of = combination
    app_id = "polyglot-" + uuid.uuid4().hex[:8]
    workflow_id = "order-" + uuid.uuid4().hex[:8]
    fleet = Fleet(any_sidecar.address, app_id, workers_of, tmp_path)
    channel = grpc.insecure_channel(any_sidecar.address)
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    try:
        # Each first worker holds its task until killed; its successor starts only then.
        doomed = {task: fleet.start(task, lease_ttl=2, delay_ms=60_000) for task in (PAYMENT, INVENTORY)}
        run = order_workflow(workflow_command, any_sidecar.address, app_id, workflow_id)

        def running(sequence: int) -> bool:
            recorded = stub.GetRecorded(de.GetRecordedRequest(position=position(app_id, workflow_id, sequence),
                                                              kind=de.OPERATION_KIND_TASK))
            if not recorded.found:
                return False
            state = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, timeout=duration_pb2.Duration(),
                                                     invocation_id=recorded.operation.task_value.invocation_id))
            return state.invocation.status == common_pb2.INVOCATION_STATUS_RUNNING

        for sequence, task in ((1, PAYMENT), (2, INVENTORY)):
            wait_until(partial(running, sequence), 60, f"{task} to run in its first worker\n{fleet.output()}")
            doomed[task].send_signal(signal.SIGKILL)
            doomed[task].wait()
            fleet.start(task, lease_ttl=2)  # takes the task over once the dead worker's lease lapses
        first = finished(run, fleet)
        result = first["result"]
        assert first["replayed"] is False
        assert result["payment_status"]["status"] == "completed" and result["payment_status"]["order_id"] == "A-1"
        assert result["inventory"]["reserved_items"] == [{"sku": "sku-1", "quantity": 2}, {"sku": "sku-2",
                                                                                          "quantity": 1}]
        for task, outcome in ((PAYMENT, result["payment_status"]), (INVENTORY, result["inventory"])):
            sequence = 1 if task == PAYMENT else 2
            call = stub.GetRecorded(de.GetRecordedRequest(position=position(app_id, workflow_id, sequence),
                                                          kind=de.OPERATION_KIND_TASK)).operation.task_value
            state = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=call.invocation_id)).invocation
            assert call.task_id == task and state.dispatched
            assert state.attempt == 1  # the killed worker's run led to a redelivery, not a failed attempt
            assert json.loads(state.result_json) == outcome  # completed once: the recorded outcome
    finally:
        fleet.stop()
    # No worker runs now: a replay that needed one would wait; it returns the record at once.
    second = finished(order_workflow(workflow_command, any_sidecar.address, app_id, workflow_id), fleet)
    channel.close()
    assert second == {"result": result, "replayed": True}


@pytest.mark.parametrize("language", ["go", "typescript", "python", "java"])
def test_a_worker_runs_a_dispatched_task_without_reading_its_workflows_log(sidecar, request, language, tmp_path):
    """A workflow that dispatched many tasks has a long log; a worker reading it for every task
    it runs is quadratic (the Go worker did: 4 tasks/s at 2,000 queued on Redis). A fresh run
    has nothing recorded: it needs no GetWorkflowLog."""
    command = {"go": lambda: request.getfixturevalue("go_payment_worker"),
               "typescript": lambda: request.getfixturevalue("ts_inventory_worker"),
               "python": lambda: python_worker(PAYMENT),
               "java": lambda: java_worker(request.getfixturevalue("java_jar"), PAYMENT)}[language]()
    task = INVENTORY if language == "typescript" else PAYMENT
    app_id, workflow_id = "logless-" + uuid.uuid4().hex[:8], "wf-" + uuid.uuid4().hex[:8]
    with RefusingProxy(sidecar.address, {}) as proxy:
        fleet = Fleet(proxy.address, app_id, {task: (command, "-" if language == "go" else "--")}, tmp_path)
        channel = grpc.insecure_channel(sidecar.address)
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        try:
            fleet.start(task)
            arguments = {"order_id": "A-1"} if task == PAYMENT else {"order_data": {"order_id": "A-1", "items": []}}
            ids = [stub.ExecuteTask(de.ExecuteTaskRequest(
                position=position(app_id, workflow_id, sequence), task_id=task, arguments_json=json.dumps(arguments),
                dispatch=de.TaskDispatch())).invocation.invocation_id for sequence in range(1, 6)]
            def succeeded(invocation_id: str) -> bool:
                reply = stub.WaitTask(de.WaitTaskRequest(app_id=app_id, invocation_id=invocation_id,
                                                         timeout=duration_pb2.Duration(seconds=1)))
                return reply.invocation.status == common_pb2.INVOCATION_STATUS_SUCCESS

            for invocation_id in ids:
                wait_until(partial(succeeded, invocation_id), 60, f"{task} to complete\n{fleet.output()}")
        finally:
            fleet.stop()
            channel.close()
        assert proxy.calls["CompleteTask"] == 5, proxy.calls
        assert proxy.calls["GetWorkflowLog"] == 0, proxy.calls
