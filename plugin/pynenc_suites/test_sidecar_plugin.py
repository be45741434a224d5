"""The plugin's own behaviour on a real sidecar: selection by every config form, the builder
method, settings and their defaults, error translation, the channel after fork, and how
Pynenc's objects travel (paged lists, payload kinds, history fields, purge)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_sidecar_plugin import SidecarStateBackend, channel, rpc
from pynenc_sidecar_plugin.conf import DEFAULT_ADDRESS, ConfigSidecar, ConnectionSettings
from pynenc_sidecar_plugin.rpc import SidecarRequestError, SidecarUnavailableError
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb

ADDRESS = os.environ["PYNENC_SIDECAR_ADDRESS"]


def _unique(prefix: str) -> str:
    return f"psc.plugin.{prefix}.{uuid.uuid4().hex[:8]}"


def _round_trip(app: Pynenc) -> None:
    backend = app.state_backend
    assert isinstance(backend, SidecarStateBackend)
    backend.set_result(InvocationId("inv-1"), {"answer": 42})
    assert backend.get_result(InvocationId("inv-1")) == {"answer": 42}
    assert backend.get_app_info().app_id == app.app_id


def test_config_values_select_the_sidecar() -> None:
    app = Pynenc(config_values={"app_id": _unique("values"), "state_backend_cls": "SidecarStateBackend",
                                "sidecar_address": ADDRESS})
    _round_trip(app)
    assert app.state_backend.rpc.settings.address == ADDRESS


def test_a_yaml_config_file_selects_the_sidecar(tmp_path: Path) -> None:
    config = tmp_path / "pynenc.yaml"
    config.write_text(f"app_id: {_unique('yaml')}\nstate_backend_cls: SidecarStateBackend\n"
                      f"sidecar_address: {ADDRESS}\nsidecar_timeout_sec: 7.5\n")
    app = Pynenc(config_filepath=str(config))
    _round_trip(app)
    assert app.state_backend.rpc.settings.timeout_sec == 7.5


def test_pynenc_env_form_selects_the_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYNENC__APP_ID", _unique("env"))
    monkeypatch.setenv("PYNENC__STATE_BACKEND_CLS", "SidecarStateBackend")
    monkeypatch.setenv("PYNENC__SIDECAR_ADDRESS", ADDRESS)
    monkeypatch.setenv("PYNENC_SIDECAR_ADDRESS", "127.0.0.1:1")  # the Pynenc field wins over the SDK variable
    app = Pynenc()
    _round_trip(app)
    assert app.state_backend.rpc.settings.address == ADDRESS


def test_the_builder_method_selects_the_sidecar() -> None:
    app = PynencBuilder().memory().app_id(_unique("builder")).sidecar(address=ADDRESS, timeout_sec=9).build()
    assert app.conf.state_backend_cls == "SidecarStateBackend"
    _round_trip(app)
    assert app.state_backend.rpc.settings.timeout_sec == 9


def test_the_builder_names_an_unknown_setting() -> None:
    with pytest.raises(ValueError, match=r"unknown settings \['adress'\]"):
        PynencBuilder().sidecar(adress=ADDRESS)


def test_the_address_defaults_to_the_sdk_variable_then_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Pynenc(config_values={"app_id": _unique("default"), "state_backend_cls": "SidecarStateBackend"})
    assert app.state_backend.rpc.settings.address == ADDRESS  # from $PYNENC_SIDECAR_ADDRESS
    monkeypatch.delenv("PYNENC_SIDECAR_ADDRESS")
    other = Pynenc(config_values={"app_id": _unique("default"), "state_backend_cls": "SidecarStateBackend"})
    conf = ConfigSidecar(config_values=other.config_values)
    assert conf.sidecar_address == ""
    assert ConnectionSettings.from_conf(conf).address == DEFAULT_ADDRESS


def test_a_client_certificate_without_its_key_is_refused_by_name() -> None:
    app = Pynenc(config_values={"app_id": _unique("tls"), "state_backend_cls": "SidecarStateBackend",
                                "sidecar_client_cert": "/some/cert.pem"})
    with pytest.raises(ValueError, match="sidecar_client_key"):
        app.state_backend


def test_an_unreachable_sidecar_names_its_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        app = Pynenc(config_values={"app_id": _unique("down"), "state_backend_cls": "SidecarStateBackend",
                                    "sidecar_address": f"127.0.0.1:{port}", "sidecar_timeout_sec": 3.0,
                                    "sidecar_retry_attempts": 2})
        with pytest.raises(SidecarUnavailableError, match=f"127.0.0.1:{port}"):
            app.state_backend  # storing the app info is the first call


def test_an_invalid_request_names_the_field() -> None:
    app = PynencBuilder().memory().app_id(_unique("invalid")).sidecar(address=ADDRESS).build()
    workflow = WorkflowIdentity(workflow_id=InvocationId("wf-1"), workflow_type=TaskId("m", "f"))
    with pytest.raises(SidecarRequestError, match="key"):
        app.state_backend.set_workflow_data(workflow, "bad\x01key", 1)


def test_an_exception_travels_with_its_type_and_message() -> None:
    app = PynencBuilder().memory().app_id(_unique("exc")).sidecar(address=ADDRESS).build()
    app.state_backend.set_exception(InvocationId("inv-x"), ValueError("boom"))
    stored = app.state_backend.rpc._call("GetException", sb.GetExceptionRequest(app_id=app.app_id,
                                                                                 invocation_id="inv-x"))
    assert (stored.exception.type, stored.exception.message) == ("ValueError", "boom")
    assert stored.detail.WhichOneof("kind") == "json"  # Pynenc's serialized exception is JSON
    assert json.loads(stored.detail.json)["error_name"] == "ValueError"
    restored = app.state_backend.get_exception(InvocationId("inv-x"))
    assert isinstance(restored, ValueError) and str(restored) == "boom"


def test_only_add_history_is_never_retried() -> None:
    config = json.loads(channel.service_config(5))["methodConfig"]
    add_history, everything = config
    assert add_history == {"name": [{"service": channel.SERVICE, "method": "AddHistory"}]}
    assert everything["name"] == [{"service": channel.SERVICE}, {"service": channel.EXECUTOR_SERVICE}]
    assert everything["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert everything["retryPolicy"]["maxAttempts"] == 5


def _child_call(app_id: str, queue) -> None:
    inherited = len(channel._channels)
    app = PynencBuilder().memory().app_id(app_id).sidecar(address=ADDRESS).build()
    queue.put((inherited, app.state_backend.get_result(InvocationId("inv-fork"))))


def test_a_forked_child_opens_its_own_channel() -> None:
    app_id = _unique("fork")
    app = PynencBuilder().memory().app_id(app_id).sidecar(address=ADDRESS).build()
    app.state_backend.set_result(InvocationId("inv-fork"), "from the parent")
    assert len(channel._channels) >= 1
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_call, args=(app_id, queue))
    child.start()
    inherited, result = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert (inherited, result) == (0, "from the parent")
    assert app.state_backend.get_result(InvocationId("inv-fork")) == "from the parent"  # the parent's still works


def test_a_bearer_token_is_sent() -> None:
    token_address, token = os.environ["PSC_TOKEN_SIDECAR_ADDRESS"], os.environ["PSC_TOKEN"]
    with_token = PynencBuilder().memory().app_id(_unique("token")).sidecar(address=token_address, token=token).build()
    _round_trip(with_token)
    without = PynencBuilder().memory().app_id(_unique("token")).sidecar(address=token_address).build()
    with pytest.raises(PermissionError, match="UNAUTHENTICATED"):
        without.state_backend.get_app_info()


def _invocations(app: Pynenc, count: int, **fields) -> list[str]:
    ids = [f"inv-{i:05d}" for i in range(count)]
    app.state_backend.rpc.upsert_invocations([
        sb.Invocation(invocation_id=i, task_id="m.f", call_id=f"m.f#{i}", **fields) for i in ids])
    return ids


def test_invocations_by_parent_event_come_back_over_several_pages() -> None:
    app = PynencBuilder().memory().app_id(_unique("event")).sidecar(address=ADDRESS).build()
    ids = _invocations(app, rpc.PAGE_SIZE + 5, parent_event_id="event-1")
    assert sorted(app.state_backend.get_invocations_by_parent_event("event-1")) == ids
    assert list(app.state_backend.get_invocations_by_parent_event("event-2")) == []


def test_child_invocations_come_back_over_several_pages() -> None:
    app = PynencBuilder().memory().app_id(_unique("children")).sidecar(address=ADDRESS).build()
    ids = _invocations(app, rpc.PAGE_SIZE + 5, parent_invocation_id="parent-1")
    assert sorted(app.state_backend.get_child_invocations(InvocationId("parent-1"))) == ids


def test_payloads_are_json_when_the_serializer_wrote_json_and_opaque_otherwise() -> None:
    json_app = PynencBuilder().memory().app_id(_unique("json")).sidecar(address=ADDRESS).build()
    pickle_app = Pynenc(config_values={"app_id": _unique("pickle"), "state_backend_cls": "SidecarStateBackend",
                                       "serializer_cls": "PickleSerializer"})
    for app, kind in ((json_app, "json"), (pickle_app, "opaque")):
        app.state_backend.set_result(InvocationId("inv-p"), {"answer": 42})
        stored = app.state_backend.rpc.get_result("inv-p")
        assert stored.WhichOneof("kind") == kind, app.conf.serializer_cls
        assert app.state_backend.get_result(InvocationId("inv-p")) == {"answer": 42}
    assert json.loads(json_app.state_backend.rpc.get_result("inv-p").json) == {"answer": 42}


def test_history_fields_are_first_class() -> None:
    app = PynencBuilder().memory().app_id(_unique("history")).sidecar(address=ADDRESS).build()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    entry = InvocationHistory(invocation_id="inv-h", runner_context_id="ctx-1", registered_by_inv_id="inv-parent",
                              status_record=InvocationStatusRecord(status=InvocationStatus.REGISTERED,
                                                                   runner_id="runner-9", timestamp=when))
    app.state_backend._add_histories([InvocationId("inv-h")], entry)
    (stored,) = app.state_backend.rpc.get_history("inv-h")
    assert (stored.status_runner_id, stored.registered_by_invocation_id) == ("runner-9", "inv-parent")
    assert stored.status_timestamp.ToDatetime(tzinfo=UTC) == when and stored.execution_context_json == ""
    (read,) = app.state_backend._get_history(InvocationId("inv-h"))
    assert (read.status_record.runner_id, read.status_record.timestamp, read.registered_by_inv_id) == (
        "runner-9", when, "inv-parent")


def test_purge_keeps_the_app_info() -> None:
    app = PynencBuilder().memory().app_id(_unique("purge")).sidecar(address=ADDRESS).build()
    app.state_backend.set_result(InvocationId("inv-q"), 1)
    app.purge()
    assert app.app_id in SidecarStateBackend.discover_app_infos()
    with pytest.raises(KeyError):
        app.state_backend._get_result(InvocationId("inv-q"))


def test_fork_waits_until_no_call_is_inside_grpc() -> None:
    """A fork while another thread is inside a call would leave gRPC's fork handlers out."""
    import threading

    forked = threading.Event()

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        forked.set()

    with channel.gate.call():  # a call in flight
        forker = threading.Thread(target=fork)
        forker.start()
        assert not forked.wait(0.5), "fork() went ahead while a call was in flight"
    assert forked.wait(30)
    forker.join(30)
    app = PynencBuilder().memory().app_id(_unique("gate")).sidecar(address=ADDRESS).build()
    _round_trip(app)  # and calls pass again
