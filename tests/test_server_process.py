"""The server as a process: reflection, health, SIGTERM drain, kill -9 and restart, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
from google.protobuf import duration_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from executor_client import position
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import SidecarServer, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_reflection_lists_both_services_and_health(sidecar):
    with grpc.insecure_channel(sidecar.address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"pynenc.sidecar.v1.DeterministicExecutorService", "pynenc.sidecar.v1.StateBackendService",
            "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services


def test_sigterm_drains_in_flight_calls_and_exits_zero(redis_server):
    server = SidecarServer(redis_server.url).start()
    channel = grpc.insecure_channel(server.address)
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    started = stub.ExecuteTask(de.ExecuteTaskRequest(position=position("drain", uuid.uuid4().hex, 1),
                                                     task_id="m.t", arguments_json="{}"))
    outcome = {}

    def wait() -> None:
        try:
            outcome["reply"] = stub.WaitTask(de.WaitTaskRequest(
                app_id="drain", invocation_id=started.invocation.invocation_id,
                timeout=duration_pb2.Duration(seconds=2)), timeout=20)
        except grpc.RpcError as error:
            outcome["error"] = error

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)  # the WaitTask call is in flight
    assert server.stop(signal.SIGTERM) == 0
    waiter.join(10)
    channel.close()
    assert "reply" in outcome, outcome.get("error")
    assert "draining" in server.log()


def test_server_killed_mid_workflow_restarts_and_the_workflow_resumes(redis_server, tmp_path):
    port = free_port()
    server = SidecarServer(redis_server.url, port=port).start()
    journal = tmp_path / "journal"
    workflow_id = f"wf-server-kill-{uuid.uuid4().hex}"
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": server.address, "PSC_TEST_JOURNAL": str(journal),
           "PSC_TEST_APP": "server-kill", "PSC_TEST_PAUSE": "0.5", "PSC_TEST_LEASE": "1.5",
           "PYTHONPATH": str(ROOT / "tests")}
    worker = subprocess.Popen([sys.executable, str(ROOT / "tests" / "sdk_workflows.py"), workflow_id, "o-s",
                               str(tmp_path / "first.json")], env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: journal.exists() and "charge:o-s" in journal.read_text(), 30, "charge to start")
        server.stop(signal.SIGKILL)
        worker.wait(60)  # the worker fails: its sidecar is gone
        assert worker.returncode != 0
        server = SidecarServer(redis_server.url, port=port).start()
        env["PSC_TEST_PAUSE"] = "0"
        for name in ("second", "third"):
            subprocess.run([sys.executable, str(ROOT / "tests" / "sdk_workflows.py"), workflow_id, "o-s",
                            str(tmp_path / f"{name}.json")], env=env, check=True, timeout=60)
        assert (tmp_path / "second.json").read_text() == (tmp_path / "third.json").read_text()
        entries = journal.read_text().split()
        assert entries.count("ship:o-s") == 1
    finally:
        worker.kill()
        server.stop()


def test_settings_come_from_the_environment(redis_server):
    port = free_port()
    env = {**os.environ, "PYNENC_SIDECAR_HOST": "127.0.0.1", "PYNENC_SIDECAR_PORT": str(port),
           "PYNENC_SIDECAR_REDIS_URL": redis_server.url}
    process = subprocess.Popen([sys.executable, "-m", "pynenc_sidecar", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = de_grpc.DeterministicExecutorServiceStub(channel)
                    stub.Random(de.RandomRequest(position=position("env", "w", 1)), timeout=1)
                    return True
            except grpc.RpcError:
                return False

        wait_until(answers, 20, "the server configured by environment")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


def test_version_and_help():
    version = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("pynenc-sidecar ")
    help_text = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "serve", "--help"],
                               capture_output=True, text=True).stdout
    for option in ("--host", "--port", "--redis-url", "PYNENC_SIDECAR_HOST", "PYNENC_SIDECAR_PORT",
                   "PYNENC_SIDECAR_REDIS_URL"):
        assert option in help_text


def test_reflection_resolves_method_names_as_ghz_asks(sidecar):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    def file_containing(symbol: str) -> reflection_pb2.ServerReflectionResponse:
        with grpc.insecure_channel(sidecar.address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
            return next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))

    found = file_containing("pynenc.sidecar.v1.DeterministicExecutorService.Random")
    assert found.HasField("file_descriptor_response")
    unknown = file_containing("pynenc.sidecar.v1.DeterministicExecutorService.NoSuchMethod")
    assert unknown.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_ghz_loads_the_server_through_reflection_alone(sidecar):
    import json
    import shutil

    ghz = shutil.which("ghz") or str(Path.home() / "go" / "bin" / "ghz")
    if not Path(ghz).exists():
        import pytest

        pytest.skip("ghz is not installed (go install github.com/bojand/ghz/cmd/ghz@v0.121.0)")
    data = json.dumps({"position": {"app_id": "ghz", "workflow": {"workflow_id": uuid.uuid4().hex},
                                    "sequence": "{{.RequestNumber}}"}})
    result = subprocess.run([ghz, "--insecure", "--call", "pynenc.sidecar.v1.DeterministicExecutorService.Uuid",
                             "-d", data, "-n", "50", "-c", "2",
                             "--format", "json", sidecar.address], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Request numbers start at 0, which is not a valid sequence: exactly one INVALID_ARGUMENT.
    assert report["statusCodeDistribution"] == {"OK": 49, "InvalidArgument": 1}
