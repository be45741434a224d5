"""The Python SDK's dispatch: a workflow in this process, its tasks served by worker
processes (tests/dispatch_workers.py), on both stores: results, replay without dispatching,
retries, kill -9 of a worker mid-task, graceful shutdown, the concurrency limit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

import dispatch_workers as tasks
from pynenc_sidecar_sdk import TaskFailedError
from pynenc_sidecar_sdk.client import SidecarClient
from support import wait_until

WORKERS = Path(__file__).resolve().parent / "dispatch_workers.py"


@pytest.fixture(params=["redis", "sqlite"])
def any_sidecar(request):
    return request.getfixturevalue("sidecar" if request.param == "redis" else "sqlite_sidecar")


class Workers:
    """Worker processes of one test's app, and the JSON lines their tasks wrote."""

    def __init__(self, address: str, app_id: str, log: Path) -> None:
        self.address, self.app_id, self.log = address, app_id, log
        self.processes: list[subprocess.Popen] = []

    def start(self, *args: str, lease_ttl: float = 30) -> subprocess.Popen:
        env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": self.address, "DISPATCH_APP": self.app_id,
               "DISPATCH_LOG": str(self.log), "PYNENC_SIDECAR_LEASE_TTL": str(lease_ttl)}
        before = len(self.events("ready"))
        process = subprocess.Popen([sys.executable, str(WORKERS), *args], env=env)
        self.processes.append(process)
        wait_until(lambda: len(self.events("ready")) > before, 20, "a dispatch worker to start")
        return process

    def events(self, event: str) -> list[dict]:
        if not self.log.exists():
            return []
        return [line for line in map(json.loads, self.log.read_text().splitlines()) if line["event"] == event]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(any_sidecar, tmp_path, monkeypatch):
    app_id = "sdk-dispatch-" + uuid.uuid4().hex[:8]
    log = tmp_path / "tasks.jsonl"
    monkeypatch.setenv("DISPATCH_LOG", str(log))
    # This process is the caller: the module's app, pointed at this test's sidecar and app.
    monkeypatch.setattr(tasks.app, "app_id", app_id)
    monkeypatch.setattr(tasks.app, "client", SidecarClient(any_sidecar.address))
    running = Workers(any_sidecar.address, app_id, log)
    yield running
    running.stop()


def test_a_workflow_step_runs_in_the_worker_and_replays_without_dispatching(workers):
    workers.start()
    first = tasks.order.run_workflow("order-1", "o-1", 30)
    payment = first.result["payment"]
    assert payment["order_id"] == "o-1" and payment["charged"] == 30
    [ran] = workers.events("charge")
    assert ran["pid"] != os.getpid()  # the worker process ran it, not the caller
    again = tasks.order.run_workflow("order-1", "o-1", 30)
    assert again.result == first.result and again.replayed
    assert len(workers.events("charge")) == 1  # the replay dispatched nothing


def test_a_declined_charge_is_retried_by_the_policy(workers):
    workers.start()
    result = tasks.order.run_workflow("order-2", "o-2", 5, 2).result
    assert result["payment"]["charged"] == 5
    assert len(workers.events("charge")) == 3  # two declined attempts, then the charge


def test_a_charge_declined_more_often_than_its_attempts_fails_the_step(workers):
    workers.start()
    with pytest.raises(TaskFailedError) as failed:
        tasks.order.run_workflow("order-3", "o-3", 5, 9).result
    assert failed.value.error_type == "Declined" and len(workers.events("charge")) == 3


def test_kill_9_of_a_worker_mid_task_another_worker_completes_it_once(workers):
    doomed = workers.start("--tasks", "slow", lease_ttl=2)
    outcome: dict = {}
    caller = threading.Thread(target=lambda: outcome.update(
        result=tasks.waits_for_slow.run_workflow("slow-1", "m-1", 1.5).result))
    caller.start()
    wait_until(lambda: workers.events("start"), 20, "the task to start in the first worker")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    workers.start("--tasks", "slow", lease_ttl=2)
    caller.join(60)
    assert outcome == {"result": "m-1"}
    starts, ends = workers.events("start"), workers.events("end")
    assert len(starts) == 2 and starts[0]["pid"] == doomed.pid and starts[1]["pid"] != doomed.pid
    assert len(ends) == 1 and ends[0]["pid"] != doomed.pid  # completed once, by the survivor


def test_graceful_shutdown_hands_back_what_it_cannot_finish(workers):
    stopping = workers.start("--tasks", "slow", "--grace", "0.2")
    outcome: dict = {}
    caller = threading.Thread(target=lambda: outcome.update(
        result=tasks.waits_for_slow.run_workflow("slow-2", "m-2", 1.0).result))
    caller.start()
    wait_until(lambda: workers.events("start"), 20, "the task to start")
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(20) == 0
    workers.start("--tasks", "slow")  # handed back: taken at once, not after a lease
    caller.join(60)
    assert outcome == {"result": "m-2"}
    assert [line["pid"] for line in workers.events("start")][1] != stopping.pid


def test_a_worker_runs_at_most_its_concurrency(workers):
    workers.start("--tasks", "slow", "--concurrency", "2")
    callers = [threading.Thread(target=tasks.waits_for_slow.run_workflow, args=(f"par-{i}", f"p-{i}", 0.5))
               for i in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(60)
    starts, ends = workers.events("start"), workers.events("end")
    assert len(ends) == 4
    moments = sorted([(line["at"], 1) for line in starts] + [(line["at"], -1) for line in ends])
    running = peak = 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    assert peak == 2
