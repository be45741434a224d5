"""Faults, races and lifecycle, with real processes (redis-server, the sidecar, workers).

* Redis killed (-9) mid-load and restarted on the same directory: with AOF, no acknowledged
  value is lost (and without persistence the same test does see the loss).
* Redis stopped or frozen mid-load under concurrent calls: every call fails fast with
  UNAVAILABLE inside its deadline, the server stays up, and recovers by itself.
* Readiness: health NOT_SERVING while Redis does not answer, SERVING when it does; the
  `liveness` service stays SERVING.
* SIGTERM with a call longer than --grace-period: the call is cut off, exit 0 in time.
* Worker processes replaying one workflow at once; a worker holding a lease killed -9 and
  its task finished by another process.
* The bounded soak (scripts/soak.py --quick).
Everything listens on loopback, is bounded in time, and is stopped by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from executor_client import error_details, position
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import RedisServer, SidecarServer, wait_until

ROOT = Path(__file__).resolve().parent.parent
APP = "reliability"
EXPECTED_FAILURES = {grpc.StatusCode.UNAVAILABLE}


# --- load helpers ------------------------------------------------------------------------------
class Load:
    """Worker threads issuing writes through the sidecar; every acknowledged write is kept."""

    def __init__(self, address: str, workers: int, deadline_s: float = 5.0) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = de_grpc.DeterministicExecutorServiceStub(self.channel)
        self.workers = workers
        self.deadline_s = deadline_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[tuple[str, str, str]] = []  # (kind, key, value)
        self.failures: Counter = Counter()
        self.slowest_failure_s = 0.0
        self.run_id = uuid.uuid4().hex[:8]
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        self.channel.close()

    def successes(self) -> int:
        with self.lock:
            return len(self.acked)

    def _one(self, worker: int, n: int) -> list[tuple[str, str, str]]:
        workflow = f"load-{self.run_id}-{worker}"
        kind = n % 3
        if kind == 0:  # a recorded custom operation
            value = json.dumps({"w": worker, "n": n})
            reply = self.stub.Record(de.RecordRequest(position=position(APP, workflow, n + 1), operation="op",
                                                      value_json=value), timeout=self.deadline_s)
            return [("record", f"{workflow}|{n + 1}", reply.value_json)]
        if kind == 1:  # workflow data under a key of its own
            value = json.dumps(n)
            self.stub.SetData(de.SetDataRequest(app_id=APP, workflow_id=workflow, key=f"k{n}", value_json=value),
                              timeout=self.deadline_s)
            return [("data", f"{workflow}|k{n}", value)]
        # a task: registered with a lease, then completed
        started = self.stub.ExecuteTask(de.ExecuteTaskRequest(
            position=position(APP, workflow, n + 1), task_id="load.step", arguments_json=json.dumps({"n": n}),
            runner_id=f"load-{worker}"), timeout=self.deadline_s)
        if not started.HasField("lease"):
            return []  # a retried position whose first attempt took the lease
        result = json.dumps({"done": n})
        self.stub.CompleteTask(de.CompleteTaskRequest(app_id=APP, invocation_id=started.invocation.invocation_id,
                                                      lease_id=started.lease.lease_id, result_json=result),
                               timeout=self.deadline_s)
        return [("task", started.invocation.invocation_id, result)]

    def _work(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                acked = self._one(worker, n)
                with self.lock:
                    self.acked.extend(acked)
                n += 1
            except grpc.RpcError as error:
                elapsed = time.monotonic() - began
                with self.lock:
                    self.failures[error.code()] += 1
                    self.slowest_failure_s = max(self.slowest_failure_s, elapsed)
                time.sleep(0.02)  # retry the same step: every write is idempotent


def lost_values(stub, acked: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str | None]]:
    """Acknowledged writes whose value is not what the sidecar reads back now."""
    lost = []
    for kind, key, value in acked:
        if kind == "record":
            workflow, sequence = key.split("|")
            reply = stub.GetRecorded(de.GetRecordedRequest(position=position(APP, workflow, int(sequence)),
                                                           kind=de.OPERATION_KIND_CUSTOM, custom_name="op"), timeout=10)
            now = reply.operation.json_value if reply.found else None
        elif kind == "data":
            workflow, data_key = key.split("|")
            reply = stub.GetData(de.GetDataRequest(app_id=APP, workflow_id=workflow, key=data_key), timeout=10)
            now = reply.value_json if reply.found else None
        else:
            try:
                reply = stub.WaitTask(de.WaitTaskRequest(app_id=APP, invocation_id=key, timeout={"seconds": 0}),
                                      timeout=10)
                now = reply.invocation.result_json if reply.invocation.status == common_pb2.INVOCATION_STATUS_SUCCESS \
                    else None
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, error
                now = None
        if now != value:
            lost.append((kind, key, value, now))
    return lost


def wait_answering(stub, timeout: float = 30) -> None:
    def answers() -> bool:
        try:
            stub.GetData(de.GetDataRequest(app_id=APP, workflow_id="probe", key="k"), timeout=2)
            return True
        except grpc.RpcError:
            return False

    wait_until(answers, timeout, "the sidecar to answer again")


# --- 1a. durability across a Redis crash -----------------------------------------------------------
@pytest.mark.parametrize("persistence, loses", [
    (["--appendonly", "yes", "--appendfsync", "always"], False),
    (["--appendonly", "yes", "--appendfsync", "everysec"], False),  # a process crash; not a power cut
    ([], True),  # no persistence: the test must see the loss, or it proves nothing
], ids=["aof-always", "aof-everysec", "no-persistence"])
def test_redis_killed_mid_load_and_restarted_loses_no_acknowledged_value(persistence, loses):
    redis = RedisServer(extra_args=persistence).start()
    server = SidecarServer(redis.url).start()
    try:
        with Load(server.address, workers=8) as load:
            wait_until(lambda: load.successes() >= 300, 30, "load before the crash")
            redis.stop(signal.SIGKILL)  # kill -9 mid-load: calls are in flight
            acked_before_crash = load.successes()
            time.sleep(0.5)
            redis.start()  # same port, same directory: replays its AOF
            wait_until(lambda: load.successes() >= acked_before_crash + 300, 60, "load after the restart")
        assert set(load.failures) <= EXPECTED_FAILURES, load.failures
        with grpc.insecure_channel(server.address) as channel:
            lost = lost_values(de_grpc.DeterministicExecutorServiceStub(channel), load.acked)
        print(f"\n[durability {persistence or 'none'}] acknowledged {len(load.acked)}, lost {len(lost)}, "
              f"failed calls {dict(load.failures)}")
        if loses:
            assert lost, "without persistence the crash must lose values: the check is blind"
        else:
            assert lost == [], f"{len(lost)} of {len(load.acked)} acknowledged values lost: {lost[:5]}"
            assert {kind for kind, _, _ in load.acked} == {"record", "data", "task"}
        assert server.process.poll() is None
    finally:
        server.stop()
        redis.cleanup()


def test_embedded_store_sidecar_killed_mid_load_loses_no_acknowledged_value(tmp_path):
    """The embedded SQLite store (WAL, synchronous=FULL) lives in the sidecar's process:
    kill -9 the sidecar itself mid-load, start it again on the same file."""
    data_file = str(tmp_path / "sidecar.db")
    server = SidecarServer(None, data_file=data_file).start()
    try:
        with Load(server.address, workers=8) as load:
            wait_until(lambda: load.successes() >= 300, 30, "load before the crash")
            server.stop(signal.SIGKILL)
            acked_before_crash = load.successes()
            time.sleep(0.3)
            server = SidecarServer(None, data_file=data_file, port=server.port).start()
            wait_until(lambda: load.successes() >= acked_before_crash + 300, 60, "load after the restart")
        assert set(load.failures) <= EXPECTED_FAILURES, load.failures
        with grpc.insecure_channel(server.address) as channel:
            assert lost_values(de_grpc.DeterministicExecutorServiceStub(channel), load.acked) == []
    finally:
        server.stop()


# --- 1b. Redis stopped / frozen under concurrent load -----------------------------------------------
@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_calls_fail_fast_under_load_while_redis_is_away_and_the_server_recovers(fault):
    """stopped: the process is gone (connections refused). frozen: SIGSTOP, so connections
    hang; the store's 2 s socket timeout bounds every call. AOF keeps what was acknowledged."""
    redis = RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    server = SidecarServer(redis.url).start()
    try:
        with Load(server.address, workers=16, deadline_s=10) as load:
            wait_until(lambda: load.successes() >= 200, 30, "load before the fault")
            if fault == "stopped":
                redis.stop(signal.SIGTERM)
            else:
                redis.process.send_signal(signal.SIGSTOP)
            failures_before = sum(load.failures.values())
            wait_until(lambda: sum(load.failures.values()) >= failures_before + 64, 30, "calls failing")
            away_successes = load.successes()
            time.sleep(3)  # a few more rounds of failing calls
            if fault == "stopped":
                redis.start()
            else:
                redis.process.send_signal(signal.SIGCONT)
            wait_until(lambda: load.successes() >= away_successes + 200, 30, "recovery under load")
        print(f"\n[redis {fault}] ok {load.successes()}, failed {dict(load.failures)}, "
              f"slowest failure {load.slowest_failure_s:.2f}s")
        assert server.process.poll() is None, "the server must stay up"
        assert set(load.failures) == {grpc.StatusCode.UNAVAILABLE}, load.failures
        # no call hung until its 10 s deadline: each failed within the store's 2 s timeout (+ slack for a busy CI)
        assert load.slowest_failure_s < 6, load.slowest_failure_s
        with grpc.insecure_channel(server.address) as channel:
            stub = de_grpc.DeterministicExecutorServiceStub(channel)
            assert lost_values(stub, load.acked) == []
            with pytest.raises(grpc.RpcError) as info:  # the reason, as documented
                redis.process.send_signal(signal.SIGSTOP)
                try:
                    stub.Random(de.RandomRequest(position=position(APP, "after", 1)), timeout=10)
                finally:
                    redis.process.send_signal(signal.SIGCONT)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_details(info.value)[0] == "STORE_UNAVAILABLE"
    finally:
        if redis.process and redis.process.poll() is None:
            redis.process.send_signal(signal.SIGCONT)
        server.stop()
        redis.cleanup()


# --- 6b. readiness follows Redis ---------------------------------------------------------------
def _health(channel, service: str = "") -> int:
    try:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=2).status
    except grpc.RpcError as error:
        return -error.code().value[0]


def test_health_is_not_serving_while_redis_is_unreachable_and_serving_again_after():
    redis = RedisServer().start()
    server = SidecarServer(redis.url, extra_args=["--readiness-interval", "0.5s"]).start()
    SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    executor = "pynenc.sidecar.v1.DeterministicExecutorService"
    try:
        with grpc.insecure_channel(server.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
            assert next(watch).status == SERVING
            redis.stop()
            stopped = time.monotonic()
            assert next(watch).status == NOT_SERVING  # pushed to watchers too
            print(f"\n[readiness] NOT_SERVING {time.monotonic() - stopped:.2f}s after Redis stopped")
            assert time.monotonic() - stopped < 3
            assert _health(channel) == NOT_SERVING and _health(channel, executor) == NOT_SERVING
            assert _health(channel, "liveness") == SERVING  # alive: do not restart it
            redis.start()
            restarted = time.monotonic()
            assert next(watch).status == SERVING
            print(f"[readiness] SERVING {time.monotonic() - restarted:.2f}s after Redis restarted")
            assert time.monotonic() - restarted < 3
            watch.cancel()
            assert _health(channel) == SERVING and _health(channel, executor) == SERVING
        assert "health NOT_SERVING" in server.log() and "health SERVING" in server.log()
    finally:
        server.stop()
        redis.cleanup()


# --- 6a. a call longer than the grace period --------------------------------------------------------
def test_sigterm_cuts_off_a_call_longer_than_the_grace_period_and_exits_zero_in_time(redis_server):
    grace = 1.0
    server = SidecarServer(redis_server.url, extra_args=["--grace-period", f"{grace}s"]).start()
    channel = grpc.insecure_channel(server.address)
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    task = stub.ExecuteTask(de.ExecuteTaskRequest(position=position(APP, f"grace-{uuid.uuid4().hex}", 1),
                                                  task_id="m.long", arguments_json="{}", lease_ttl={"seconds": 600}))
    outcome: dict = {}

    def long_call() -> None:  # waits up to 60 s for a task nobody finishes
        began = time.monotonic()
        try:
            outcome["reply"] = stub.WaitTask(de.WaitTaskRequest(
                app_id=APP, invocation_id=task.invocation.invocation_id, timeout={"seconds": 60}), timeout=90)
        except grpc.RpcError as error:
            outcome["code"] = error.code()
        outcome["elapsed"] = time.monotonic() - began

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(0.5)  # in flight
    began = time.monotonic()
    code = server.stop(signal.SIGTERM, timeout=grace + 10)
    exited_after = time.monotonic() - began
    caller.join(15)
    channel.close()
    print(f"\n[grace {grace}s] exit {code} after {exited_after:.2f}s; the call ended with {outcome.get('code')} "
          f"after {outcome['elapsed']:.2f}s")
    assert code == 0
    assert exited_after < grace + 3, exited_after
    assert "reply" not in outcome and outcome["code"] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert outcome["elapsed"] < grace + 3


# --- 2. races between worker processes ----------------------------------------------------------------
def _workers(address: str, tmp_path: Path, workflow_id: str, count: int, lease: float, step: float,
             app: str) -> tuple[list[subprocess.Popen], list[Path], Path, Path]:
    journal, go = tmp_path / "journal", tmp_path / "go"
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": address, "PSC_RACE_APP": app, "PSC_RACE_JOURNAL": str(journal),
           "PSC_RACE_GO": str(go), "PSC_RACE_LEASE": str(lease), "PSC_RACE_STEP": str(step),
           "PYTHONPATH": str(ROOT / "tests")}
    outs = [tmp_path / f"out-{i}.json" for i in range(count)]
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "race_workers.py"), workflow_id, str(out)],
                              env=env, stderr=subprocess.PIPE) for out in outs]
    return procs, outs, journal, go


def _journal(path: Path) -> list[tuple[str, int, float]]:
    return [(event, int(pid), float(at)) for event, pid, at in (line.split() for line in path.read_text().splitlines())]


def _log_tasks(address: str, app: str, workflow_id: str) -> tuple[list, list]:
    with grpc.insecure_channel(address) as channel:
        batches = list(de_grpc.DeterministicExecutorServiceStub(channel).GetWorkflowLog(
            de.GetWorkflowLogRequest(app_id=app, workflow_id=workflow_id), timeout=10))
    operations = [op for batch in batches for op in batch.operations]
    tasks = [task for batch in batches for task in batch.tasks]
    return operations, tasks


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("store", ["redis", "sqlite"])
def test_worker_processes_replaying_one_workflow_at_once_agree_and_run_each_task_once(request, tmp_path, store):
    sidecar = request.getfixturevalue("sidecar" if store == "redis" else "sqlite_sidecar")
    app, workflow_id, count = f"race-{uuid.uuid4().hex[:8]}", f"wf-race-{uuid.uuid4().hex}", 6
    procs, outs, journal, go = _workers(sidecar.address, tmp_path, workflow_id, count, lease=1.5, step=2.0, app=app)
    try:
        time.sleep(1.0)  # every process imported and waits for the go file
        go.touch()
        for proc in procs:
            assert proc.wait(90) == 0, proc.stderr.read().decode()[-3000:]
    finally:
        _stop_all(procs)
    results = {out.read_text() for out in outs}
    assert len(results) == 1, "every process must see the same recorded values"
    result = json.loads(results.pop())
    events = _journal(journal)
    for n in range(3):  # each task ran once, though every step outlived its 1.5 s lease (renewed)
        assert len([e for e in events if e[0] == f"start:{n}"]) == 1, events
        assert len([e for e in events if e[0] == f"end:{n}"]) == 1, events
        assert result["steps"][n]["n"] == n
    operations, tasks = _log_tasks(sidecar.address, app, workflow_id)
    task_positions = [(op.scope, op.sequence) for op in operations if op.kind == de.OPERATION_KIND_TASK]
    assert len(task_positions) == len(set(task_positions)) == 3  # one invocation per task position
    assert len({t.invocation_id for t in tasks}) == 3
    assert all(t.status == common_pb2.INVOCATION_STATUS_SUCCESS for t in tasks)
    randoms = [op for op in operations if op.kind == de.OPERATION_KIND_RANDOM and op.scope == workflow_id]
    assert sorted(op.sequence for op in randoms) == [1, 2, 3]  # one value per operation
    assert [op.random_value for op in sorted(randoms, key=lambda op: op.sequence)] == result["random"]


def test_worker_killed_while_holding_a_lease_is_taken_over_by_another_process(sidecar, tmp_path):
    app, workflow_id = f"race-kill-{uuid.uuid4().hex[:8]}", f"wf-race-kill-{uuid.uuid4().hex}"
    procs, outs, journal, go = _workers(sidecar.address, tmp_path, workflow_id, 4, lease=1.5, step=2.0, app=app)
    try:
        time.sleep(1.0)
        go.touch()
        wait_until(lambda: journal.exists() and "start:0" in journal.read_text(), 30, "the first step to start")
        holder = next(pid for event, pid, _ in _journal(journal) if event == "start:0")
        victim = next(proc for proc in procs if proc.pid == holder)
        victim.send_signal(signal.SIGKILL)  # kill -9 while it holds the lease of step 0 (and of the workflow)
        victim.wait()
        killed_at = time.time()
        survivors = [proc for proc in procs if proc is not victim]
        for proc in survivors:
            assert proc.wait(90) == 0, proc.stderr.read().decode()[-3000:]
    finally:
        _stop_all(procs)
    results = {outs[procs.index(proc)].read_text() for proc in survivors}
    assert len(results) == 1
    result = json.loads(results.pop())
    events = _journal(journal)
    starts = [e for e in events if e[0] == "start:0"]
    ends = [e for e in events if e[0] == "end:0"]
    assert len(starts) == 2 and len(ends) == 1, events  # the victim's run, cut short, and the successor's
    successor = ends[0][1]
    assert successor != holder and result["steps"][0]["by"] == successor
    assert starts[1][1] == successor and starts[1][2] >= killed_at - 0.05, "the two runs must not overlap"
    for n in (1, 2):
        assert len([e for e in events if e[0] == f"start:{n}"]) == 1
    _, tasks = _log_tasks(sidecar.address, app, workflow_id)
    assert len(tasks) == 3 and all(t.status == common_pb2.INVOCATION_STATUS_SUCCESS for t in tasks)


# --- 3. the soak, in its quick mode -------------------------------------------------------------------
@pytest.mark.slow
def test_soak_quick_mode_has_no_errors_and_flat_memory(tmp_path):
    import shutil

    if not any([os.environ.get("GHZ"), shutil.which("ghz"), shutil.which("go"), (Path.home() / "go/bin/ghz").exists()]):
        pytest.skip("neither ghz nor Go (to `go install` ghz) is available")
    report_path = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), "--quick", "--json", str(report_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads(report_path.read_text())
    assert report["errors"] == 0 and report["calls"] > 0
    assert report["rss_growth_mb"] <= report["max_rss_growth_mb"]
    assert "| method |" in run.stdout and "RSS" in run.stdout
