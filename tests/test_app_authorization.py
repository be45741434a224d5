"""Authorization per app (issue 12, case 8), against real servers on both stores.

A token file line `TOKEN APP [APP ...]` (or a PYNENC_SIDECAR_AUTH_TOKEN entry of the same
form) binds the token to those apps: its calls naming another app are PERMISSION_DENIED
(reason APP_NOT_AUTHORIZED) and write nothing; DiscoverAppInfos lists only its apps. An
unbound token keeps every app. A bound token may purge its own app only if its line grants
`+purge` (else PERMISSION_DENIED, reason METHOD_NOT_AUTHORIZED, nothing deleted). No listing
returns a secret-looking config value. Rejected calls are counted in the pynenc.auth.rejected
metric.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from executor_client import error_details, position
from pynenc_sidecar import security
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from support import SidecarServer, free_port
from test_tracing import metric, scrape

SUFFIX = uuid.uuid4().hex[:8]
SHOP, BILLING, OTHER = f"shop-{SUFFIX}", f"billing-{SUFFIX}", f"other-{SUFFIX}"
SHOP_TOKEN = "shop-token-0123456789abcdef"  # file: bound to SHOP
ADMIN_TOKEN = "admin-token-0123456789abcdef"  # file: unbound, every app
ENV_TOKEN = "billing-token-0123456789abcdef"  # variable: bound to BILLING and OTHER
OPS_TOKEN = "ops-token-0123456789abcdef"  # file: bound to OTHER, may purge it
CONFIG = {"redis_password": "hunter2", "apiKey": "k-123", "url": "redis://:pw@db:6379/0", "workers": 4}


@pytest.fixture(scope="module", params=["redis", "sqlite"])
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SidecarServer]:
    directory = tmp_path_factory.mktemp("authz")
    tokens = directory / "tokens"
    tokens.write_text(f"# token, then the apps it may use\n{SHOP_TOKEN} {SHOP}\n{ADMIN_TOKEN}\n"
                      f"{OPS_TOKEN} {OTHER} +purge\n")
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    subject = SidecarServer(redis_url, data_file=None if redis_url else str(directory / "state.db"),
                            extra_args=["--auth-token-file", str(tokens), "--metrics-port", str(free_port())],
                            env={"PYNENC_SIDECAR_AUTH_TOKEN": f"{ENV_TOKEN} {BILLING} {OTHER}"}).start()
    yield subject
    subject.stop()


def stubs(server: SidecarServer, token: str):
    channel = server.channel()
    credentials = [("authorization", f"Bearer {token}")]
    return (
        channel,
        de_grpc.DeterministicExecutorServiceStub(channel),
        sb_grpc.StateBackendServiceStub(channel),
        credentials,
    )


def denied(call) -> tuple[str, dict[str, str], str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    reason, _, metadata = error_details(caught.value)
    return reason, metadata, caught.value.details()


def test_a_bound_token_reaches_its_apps_only_and_writes_nothing_elsewhere(server: SidecarServer) -> None:
    channel, executor, backend, shop = stubs(server, SHOP_TOKEN)
    with channel:
        assert not executor.Random(
            de.RandomRequest(position=position(SHOP, "w", 1)), metadata=shop, timeout=10
        ).replayed
        backend.SetResult(
            sb.SetResultRequest(app_id=SHOP, invocation_id="i", result_json="1"), metadata=shop, timeout=10
        )
        calls = [
            lambda: executor.Random(de.RandomRequest(position=position(BILLING, "w", 1)), metadata=shop, timeout=10),
            lambda: backend.SetResult(sb.SetResultRequest(app_id=BILLING, invocation_id="i", result_json="2"),
                                      metadata=shop, timeout=10),
            lambda: backend.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(app_id=BILLING, module="m")),
                                         metadata=shop, timeout=10),
            lambda: list(executor.GetWorkflowLog(de.GetWorkflowLogRequest(app_id=BILLING, workflow_id="w"),
                                                 metadata=shop, timeout=10)),
            lambda: backend.PurgeApp(sb.PurgeAppRequest(app_id=BILLING), metadata=shop, timeout=10),
        ]
        for call in calls:
            reason, metadata, message = denied(call)
            assert (reason, metadata["app_id"]) == (security.APP_NOT_AUTHORIZED, BILLING)
            assert BILLING in message and SHOP in message and SHOP_TOKEN not in message
        # An empty app id is the servicer's INVALID_ARGUMENT, naming the field.
        with pytest.raises(grpc.RpcError) as caught:
            backend.GetResult(sb.GetResultRequest(app_id="", invocation_id="i"), metadata=shop, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "app_id" in caught.value.details()
    channel, executor, backend, billing = stubs(server, ENV_TOKEN)
    with channel:  # nothing was written for BILLING: the billing token sees no result, no random value
        with pytest.raises(grpc.RpcError) as caught:
            backend.GetResult(sb.GetResultRequest(app_id=BILLING, invocation_id="i"), metadata=billing, timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert not executor.GetRecorded(de.GetRecordedRequest(position=position(BILLING, "w", 1),
                                                              kind=de.OPERATION_KIND_RANDOM),
                                        metadata=billing, timeout=10).found
        assert denied(lambda: backend.GetResult(sb.GetResultRequest(app_id=SHOP, invocation_id="i"),
                                                metadata=billing, timeout=10))[0] == security.APP_NOT_AUTHORIZED
    channel, _, backend, admin = stubs(server, ADMIN_TOKEN)
    with channel:  # the unbound token reaches every app
        assert backend.GetResult(sb.GetResultRequest(app_id=SHOP, invocation_id="i"), metadata=admin,
                                 timeout=10).result_json == "1"


def test_a_bound_token_purges_its_own_app_only_with_the_purge_permission(server: SidecarServer) -> None:
    channel, executor, backend, billing = stubs(server, ENV_TOKEN)
    with channel:
        for app_id in (BILLING, OTHER):
            backend.SetResult(sb.SetResultRequest(app_id=app_id, invocation_id="kept", result_json="7"),
                              metadata=billing, timeout=10)
        reason, metadata, message = denied(
            lambda: backend.PurgeApp(sb.PurgeAppRequest(app_id=BILLING), metadata=billing, timeout=10))
        assert (reason, metadata["permission"]) == (security.METHOD_NOT_AUTHORIZED, "purge")
        assert "+purge" in message and BILLING in message and ENV_TOKEN not in message
        # Nothing was deleted: the result written before is still there.
        assert backend.GetResult(sb.GetResultRequest(app_id=BILLING, invocation_id="kept"), metadata=billing,
                                 timeout=10).result_json == "7"
        # Other methods of the same token still work.
        assert not executor.Random(de.RandomRequest(position=position(BILLING, "p", 1)), metadata=billing,
                                   timeout=10).replayed
    channel, _, backend, ops = stubs(server, OPS_TOKEN)
    with channel:  # +purge covers the token's own app, never another one
        assert denied(lambda: backend.PurgeApp(sb.PurgeAppRequest(app_id=BILLING), metadata=ops,
                                               timeout=10))[0] == security.APP_NOT_AUTHORIZED
        backend.PurgeApp(sb.PurgeAppRequest(app_id=OTHER), metadata=ops, timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            backend.GetResult(sb.GetResultRequest(app_id=OTHER, invocation_id="kept"), metadata=ops, timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_discover_app_infos_lists_the_callers_apps_with_secrets_masked(server: SidecarServer) -> None:
    for app_id, token in ((SHOP, SHOP_TOKEN), (BILLING, ENV_TOKEN), (OTHER, ENV_TOKEN)):
        channel, _, backend, credentials = stubs(server, token)
        with channel:
            backend.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(
                app_id=app_id, module="app.module", config_values_json=json.dumps(CONFIG))),
                metadata=credentials, timeout=10)
    listings = {}
    for name, token in (("shop", SHOP_TOKEN), ("billing", ENV_TOKEN), ("admin", ADMIN_TOKEN)):
        channel, _, backend, credentials = stubs(server, token)
        with channel:
            listings[name] = backend.DiscoverAppInfos(sb.DiscoverAppInfosRequest(), metadata=credentials,
                                                      timeout=10).app_infos
    assert set(listings["shop"]) == {SHOP}
    assert set(listings["billing"]) == {BILLING, OTHER}
    assert {SHOP, BILLING, OTHER} <= set(listings["admin"])
    for info in [*listings["shop"].values(), *listings["admin"].values()]:
        text = info.config_values_json
        assert "hunter2" not in text and "k-123" not in text and ":pw@" not in text
        if info.app_id in (SHOP, BILLING, OTHER):
            assert json.loads(text) == {"redis_password": "***", "apiKey": "***", "url": "redis://***@db:6379/0",
                                        "workers": 4}
    channel, _, backend, shop = stubs(server, SHOP_TOKEN)
    with channel:  # the app's own GetAppInfo still returns its config as stored
        own = backend.GetAppInfo(sb.GetAppInfoRequest(app_id=SHOP), metadata=shop, timeout=10).app_info
        assert json.loads(own.config_values_json) == CONFIG


def test_rejected_calls_are_counted_in_the_metrics(server: SidecarServer) -> None:
    before = scrape(server)
    channel, executor, _, shop = stubs(server, SHOP_TOKEN)
    with channel:
        for n in range(3):
            denied(lambda: executor.Random(de.RandomRequest(position=position(OTHER, "m", n + 1)), metadata=shop,  # noqa: B023 - called at once
                                           timeout=10))
        with pytest.raises(grpc.RpcError):
            executor.Random(de.RandomRequest(position=position(SHOP, "m", 1)), timeout=10)  # no token
    after = scrape(server)
    name = "pynenc_auth_rejected_total"
    assert metric(after, name, reason="APP_NOT_AUTHORIZED") - metric(before, name, reason="APP_NOT_AUTHORIZED") == 3
    assert metric(after, name, reason="UNAUTHENTICATED", rpc_method="Random") - \
        metric(before, name, reason="UNAUTHENTICATED", rpc_method="Random") == 1


def test_token_entries_bind_apps_in_the_file_and_the_variable(tmp_path: Path) -> None:
    grants = security.parse_token_lines(f"{SHOP_TOKEN}   a  b\n# c\n{ADMIN_TOKEN}\n", "f")
    assert [(g.token, g.apps) for g in grants] == [(SHOP_TOKEN, frozenset({"a", "b"})), (ADMIN_TOKEN, None)]
    grants = security.parse_token_list(f"{SHOP_TOKEN} a, {ENV_TOKEN}\n{ADMIN_TOKEN} c d", "")
    assert [g.apps for g in grants] == [frozenset({"a"}), None, frozenset({"c", "d"})]
    grants = security.parse_token_lines(f"{SHOP_TOKEN} a +purge b\n", "f")
    assert [(g.apps, g.permissions) for g in grants] == [(frozenset({"a", "b"}), frozenset({"purge"}))]


@pytest.mark.parametrize("line, problem", [
    (f"{SHOP_TOKEN} a +drop", "unknown permission +drop"),
    (f"{SHOP_TOKEN} +purge", "only applies to a token bound to apps"),
])
def test_a_malformed_permission_is_refused_with_what_to_change(line: str, problem: str) -> None:
    with pytest.raises(security.CredentialsError) as caught:
        security.parse_token_lines(line, "tokens")
    assert problem in str(caught.value) and "tokens line 1" in str(caught.value) and SHOP_TOKEN not in str(caught.value)
    merged = security.merge_grants([security.TokenGrant(SHOP_TOKEN, frozenset({"a"})),
                                    security.TokenGrant(SHOP_TOKEN, frozenset({"b"}))])
    assert [(g.token, g.apps) for g in merged] == [(SHOP_TOKEN, frozenset({"a", "b"}))]
    with pytest.raises(security.CredentialsError, match="at least 16"):
        security.parse_token_lines("short app\n", "f")
