"""The embedded store end to end: `pynenc-sidecar serve` with no Redis URL keeps everything in
one SQLite file, and a workflow replays after the server restarts on that file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from pynenc_sidecar.cli import build_parser
from pynenc_sidecar.server import DEFAULT_DATA_FILE, _redact
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import SidecarServer

STORE_ENV = ("PYNENC_SIDECAR_REDIS_URL", "PYNENC_SIDECAR_DATA_FILE")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STORE_ENV}
    env.update(extra)
    return env


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 30
         ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pynenc_sidecar", *args], capture_output=True, text=True,
                          cwd=cwd, env=env or _clean_env(), timeout=timeout)


class Flows:
    """tests/sdk_workflows.py imported afresh against one sidecar: a new worker process, in effect."""

    def __init__(self, monkeypatch, address: str, journal_path: Path, app_id: str) -> None:
        monkeypatch.setenv("PYNENC_SIDECAR_ADDRESS", address)
        monkeypatch.setenv("PSC_TEST_JOURNAL", str(journal_path))
        monkeypatch.setenv("PSC_TEST_APP", app_id)
        sys.modules.pop("sdk_workflows", None)
        import sdk_workflows

        self.module = sdk_workflows

    def close(self) -> None:
        self.module.app.client.close()
        sys.modules.pop("sdk_workflows", None)


def _journal(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_serve_help_explains_every_option_and_its_env_var():
    result = _cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    serve_parser = build_parser()._subparsers._group_actions[0].choices["serve"]
    options = [opt for action in serve_parser._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help"]
    assert {"--host", "--port", "--redis-url", "--data-file", "--grace-period", "--log-level"} <= set(options)
    for option in options:
        env_var = "PYNENC_SIDECAR_" + option[2:].upper().replace("-", "_")
        assert option in text and env_var in text, f"{option} / {env_var} not explained in --help"
    # Says what happens with no Redis URL, and where the file goes by default.
    assert f"./{DEFAULT_DATA_FILE}" in text and "SQLite" in text and "working directory" in text


def test_workflow_replays_after_the_server_restarts_on_the_same_file(tmp_path, monkeypatch):
    data_file = tmp_path / "state" / "sidecar.db"  # its directory is created too
    journal_path = tmp_path / "journal"
    app_id, workflow_id = f"embedded-{uuid.uuid4().hex}", f"wf-{uuid.uuid4().hex}"

    server = SidecarServer(None, data_file=str(data_file)).start()
    try:
        assert data_file.exists()
        assert f"embedded sqlite {data_file}" in server.log()
        flows = Flows(monkeypatch, server.address, journal_path, app_id)
        try:
            first = flows.module.order_flow.run_workflow(workflow_id, "o-1")
            assert not first.replayed
            first_result = first.result
        finally:
            flows.close()
        assert _journal(journal_path) == ["order_flow", "charge:o-1", "ship:o-1"]
        # StateBackendService state is in the same file.
        with grpc.insecure_channel(server.address) as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            stub.SetResult(sb.SetResultRequest(app_id=app_id, invocation_id="sb-inv", result_json='{"ok": true}'),
                           timeout=10)
            stub.AddHistory(sb.AddHistoryRequest(app_id=app_id, invocation_ids=["sb-inv"], history=sb.InvocationHistory(
                timestamp=timestamp_pb2.Timestamp(seconds=1000),
                status=common_pb2.InvocationStatus.Value("INVOCATION_STATUS_SUCCESS"))), timeout=10)
    finally:
        exit_code = server.stop()
    assert exit_code == 0, server.log()

    # Same file, same port: a new server process, and new worker processes.
    restarted = SidecarServer(None, data_file=str(data_file), port=server.port).start()
    try:
        flows = Flows(monkeypatch, restarted.address, journal_path, app_id)
        try:
            second = flows.module.order_flow.run_workflow(workflow_id, "o-1")
            assert second.replayed
            assert second.result == first_result
        finally:
            flows.close()
        # The workflow had finished: its recorded outcome came back and none of its code ran.
        assert _journal(journal_path) == ["order_flow", "charge:o-1", "ship:o-1"]
        with grpc.insecure_channel(restarted.address) as channel:
            executor = de_grpc.DeterministicExecutorServiceStub(channel)
            recorded = executor.GetRecorded(de.GetRecordedRequest(
                position=de.OperationPosition(app_id=app_id, workflow=common_pb2.WorkflowIdentity(
                    workflow_id=workflow_id), sequence=1), kind=de.OPERATION_KIND_RANDOM), timeout=10)
            assert recorded.found and recorded.operation.random_value == first_result["random"][0]
            stub = sb_grpc.StateBackendServiceStub(channel)
            result = stub.GetResult(sb.GetResultRequest(app_id=app_id, invocation_id="sb-inv"), timeout=10)
            assert json.loads(result.result_json) == {"ok": True}
            history = stub.GetHistory(sb.GetHistoryRequest(app_id=app_id, invocation_id="sb-inv"), timeout=10).history
            assert [h.timestamp.seconds for h in history] == [1000]
            runs = stub.ListWorkflowRuns(sb.ListWorkflowRunsRequest(app_id=app_id), timeout=10).workflows
            assert [r.workflow_id for r in runs] == [workflow_id]
    finally:
        exit_code = restarted.stop()
    assert exit_code == 0, restarted.log()


def test_no_store_options_means_the_default_file_in_the_working_directory(tmp_path):
    server = SidecarServer(None, cwd=str(tmp_path)).start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            stub.SetResult(sb.SetResultRequest(app_id="a", invocation_id="i", result_json="1"), timeout=10)
            assert stub.GetResult(sb.GetResultRequest(app_id="a", invocation_id="i"), timeout=10).result_json == "1"
        assert (tmp_path / DEFAULT_DATA_FILE).exists()
        assert f"embedded sqlite {tmp_path / DEFAULT_DATA_FILE}" in server.log()
    finally:
        assert server.stop() == 0, server.log()


def test_data_file_from_the_environment(tmp_path):
    data_file = tmp_path / "from-env.db"
    server = SidecarServer(None, env={"PYNENC_SIDECAR_DATA_FILE": str(data_file)}).start()
    try:
        assert data_file.exists()
        assert f"embedded sqlite {data_file}" in server.log()
    finally:
        assert server.stop() == 0, server.log()


def test_a_file_that_is_not_a_database_stops_the_start_with_a_clear_error(tmp_path):
    data_file = tmp_path / "notes.txt"
    data_file.write_text("these are not the tables you are looking for\n" * 100)
    result = _cli("serve", "--port", "0", "--data-file", str(data_file))
    assert result.returncode == 1
    assert f"cannot open data file {data_file}" in result.stderr
    assert "Traceback" not in result.stderr
    assert data_file.read_text().startswith("these are not")  # left as it was


def test_redis_url_and_data_file_together_are_refused(tmp_path):
    result = _cli("serve", "--redis-url", "redis://127.0.0.1:1/0", "--data-file", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert "not both" in result.stderr
    result = _cli("serve", "--data-file", str(tmp_path / "x.db"),
                  env=_clean_env(PYNENC_SIDECAR_REDIS_URL="redis://127.0.0.1:1/0"))
    assert result.returncode == 2 and "not both" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_the_redis_store_is_logged_without_its_password(redis_server):
    host_port = redis_server.url.split("//", 1)[1]
    server = SidecarServer(f"redis://:s3cret-pw@{host_port}").start()
    try:
        log = server.log()
        assert f"store: redis redis://***@{host_port}" in log
        assert "s3cret-pw" not in log
    finally:
        server.stop()


@pytest.mark.parametrize("url,shown", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:pw@h:6379/0", "redis://***@h:6379/0"),
    ("rediss://user:p%40ss@h:6380/1", "rediss://***@h:6380/1"),
    ("redis://h:6379/0?password=pw&socket_timeout=5", "redis://h:6379/0?password=***&socket_timeout=5"),
    ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
])
def test_redact_hides_redis_passwords(url, shown):
    assert _redact(url) == shown
    assert "pw" not in _redact(url).replace("password", "")
