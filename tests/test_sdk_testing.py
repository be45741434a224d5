"""pynenc_sidecar_sdk.testing: the in-process server a user's tests (and this suite's SDK tests)
run against."""

from __future__ import annotations

import os
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pynenc_sidecar_sdk.testing import InProcessSidecar


def _order_app(sidecar: InProcessSidecar, calls: list[str]):
    app = sidecar.app(f"testing-{uuid.uuid4().hex}")

    @app.task
    def charge(order_id: str) -> str:
        calls.append(order_id)
        return charge.wf.uuid()

    @app.task(force_new_workflow=True)
    def order(order_id: str) -> dict:
        return {"lucky": order.wf.random(), "payment": order.wf.execute_task(charge, order_id).result}

    return order


def test_a_workflow_replays_on_the_in_process_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls: list[str] = []
    with InProcessSidecar() as sidecar:
        order = _order_app(sidecar, calls)
        first = order.run_workflow("wf-1", "A-1")
        second = order.run_workflow("wf-1", "A-1")
        assert not first.replayed and second.replayed
        assert second.result == first.result
        assert calls == ["A-1"]
    assert os.listdir(tmp_path) == []  # the store lived in memory: no data file anywhere


def test_each_server_starts_empty_and_forgets_at_stop():
    calls: list[str] = []
    for _ in range(2):  # the same workflow id runs afresh on a second server
        with InProcessSidecar() as sidecar:
            order = _order_app(sidecar, calls)
            assert not order.run_workflow("wf-same", "B-1").replayed
    assert calls == ["B-1", "B-1"]


def test_other_clients_reach_it_by_address_and_it_stops_listening():
    sidecar = InProcessSidecar().start()
    address = sidecar.address
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        sidecar.stop()
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as refused:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_the_address_of_a_server_not_started_says_how_to_start_it():
    with pytest.raises(RuntimeError, match="not started"):
        InProcessSidecar().address
