"""Authentication and transport security against real server processes.

Bearer tokens (--auth-token-file, PYNENC_SIDECAR_AUTH_TOKEN) -> UNAUTHENTICATED with ErrorInfo
reason UNAUTHENTICATED when missing or wrong, on every service and call shape; health open to
probes, reflection not; no secret in the server's log. TLS (--tls-cert/--tls-key) and mutual
TLS (--tls-client-ca), the plaintext health-only port, the `health` command, the Python SDK's
options and variables; the Go and TypeScript helpers are driven from here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from certs import Certs, make_certs
from executor_client import error_details, position
from pynenc_sidecar import security
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc
from pynenc_sidecar_sdk import Pynenc, SidecarError
from support import SidecarServer, free_port
from toolchains import require

ROOT = Path(__file__).resolve().parent.parent
FILE_TOKENS = ["file-token-one-0123456789abcdef", "file-token-two-fedcba9876543210"]
ENV_TOKEN = "env-token-4f1c2a9e7b3d5c6a8e0f"
ALL_TOKENS = [*FILE_TOKENS, ENV_TOKEN]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens"
    path.write_text("# accepted tokens, one a line\n" + "\n".join(FILE_TOKENS) + "\n\n")
    return path


def _start(redis_url: str, args: list[str], env: dict[str, str] | None = None, credentials=None) -> SidecarServer:
    return SidecarServer(redis_url, extra_args=["--log-format", "json", "--log-level", "DEBUG", *args],
                         env=env or {}, credentials=credentials).start()


@pytest.fixture(scope="module")
def token_server(redis_server, token_file):
    server = _start(redis_server.url, ["--auth-token-file", str(token_file)], {"PYNENC_SIDECAR_AUTH_TOKEN": ENV_TOKEN})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(redis_server, certs, token_file):
    """Mutual TLS, a token, and a plaintext health-only port."""
    health_port = free_port()
    server = _start(redis_server.url, [
        "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key), "--tls-client-ca", str(certs.ca),
        "--auth-token-file", str(token_file), "--health-port", str(health_port)],
        credentials=grpc.ssl_channel_credentials(certs.ca.read_bytes(), certs.client_key.read_bytes(),
                                                 certs.client_cert.read_bytes()))
    server.health_port = health_port
    yield server
    server.stop()


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def assert_unauthenticated(info, needle: str) -> None:
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value
    reason, _, metadata = error_details(info.value)
    assert reason == "UNAUTHENTICATED"
    assert needle in info.value.details()


# --- bearer tokens -----------------------------------------------------------------------------
@pytest.mark.parametrize("metadata, needle", [
    (None, "missing credentials"),
    (bearer("a-wrong-token-of-enough-length"), "invalid bearer token"),
    (bearer(FILE_TOKENS[0] + "x"), "invalid bearer token"),
    (bearer(FILE_TOKENS[0][:-1]), "invalid bearer token"),
    ([("authorization", f"Basic {FILE_TOKENS[0]}")], "must be 'Bearer <token>'"),
    ([("authorization", "Bearer ")], "must be 'Bearer <token>'"),
    ([("authorization", FILE_TOKENS[0])], "must be 'Bearer <token>'"),
])
def test_a_missing_or_wrong_token_is_unauthenticated(token_server, metadata, needle):
    with token_server.channel() as channel:
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Random(de.RandomRequest(position=position("auth", "w", 1)), metadata=metadata, timeout=10)
    assert_unauthenticated(info, needle)
    for token in ALL_TOKENS:  # the message never echoes what was sent
        assert token not in info.value.details()


def test_every_accepted_token_works_and_a_rejected_call_writes_nothing(token_server):
    workflow = f"w-{uuid.uuid4().hex}"
    with token_server.channel() as channel:
        stub = de_grpc.DeterministicExecutorServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.Record(de.RecordRequest(position=position("auth", workflow, 1), operation="op", value_json="1"),
                        metadata=bearer("not-the-right-token-at-all"), timeout=10)
        for sequence, token in enumerate(ALL_TOKENS, start=1):  # file tokens and the variable's
            reply = stub.Record(de.RecordRequest(position=position("auth", workflow, sequence), operation="op",
                                                 value_json=str(sequence)), metadata=bearer(token), timeout=10)
            assert not reply.replayed and reply.value_json == str(sequence)
        # "bearer" is case-insensitive, as HTTP's auth schemes are
        reply = stub.Random(de.RandomRequest(position=position("auth", workflow, 1)),
                            metadata=[("authorization", f"bearer {ENV_TOKEN}")], timeout=10)
        assert 0 <= reply.value < 1


def test_every_call_shape_and_service_is_guarded(token_server):
    with token_server.channel() as channel:
        executor = de_grpc.DeterministicExecutorServiceStub(channel)
        backend = sb_grpc.StateBackendServiceStub(channel)
        calls = [
            lambda md: backend.GetAppInfo(sb.GetAppInfoRequest(app_id="auth"), metadata=md, timeout=10),
            lambda md: backend.DiscoverAppInfos(sb.DiscoverAppInfosRequest(), metadata=md, timeout=10),
            lambda md: list(executor.GetWorkflowLog(de.GetWorkflowLogRequest(app_id="auth", workflow_id="w"),
                                                    metadata=md, timeout=10)),
            lambda md: list(backend.StreamInvocationsInTimeRange(sb.StreamInvocationsInTimeRangeRequest(
                app_id="auth", start_time={"seconds": 0}, end_time={"seconds": 10}), metadata=md, timeout=10)),
            # an unknown method says nothing about what exists before authentication
            lambda md: channel.unary_unary("/pynenc.sidecar.v1.NoSuchService/Nothing")(b"", metadata=md, timeout=10),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as info:
                call(None)
            assert_unauthenticated(info, "missing credentials")
        calls[1](bearer(FILE_TOKENS[1]))
        calls[2](bearer(FILE_TOKENS[1]))
        calls[3](bearer(FILE_TOKENS[1]))
        with pytest.raises(grpc.RpcError) as info:
            calls[4](bearer(FILE_TOKENS[1]))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_needs_no_token_and_reflection_does(token_server):
    with token_server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service="liveness"), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        with pytest.raises(grpc.RpcError) as info:
            ProtoReflectionDescriptorDatabase(channel).get_services()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    authenticated = grpc.intercept_channel(token_server.channel(), _TokenInterceptor(FILE_TOKENS[0]))
    assert "pynenc.sidecar.v1.StateBackendService" in ProtoReflectionDescriptorDatabase(authenticated).get_services()


class _TokenInterceptor(grpc.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self.token = token

    def intercept_stream_stream(self, continuation, details, request_iterator):
        details = details._replace(metadata=[*(details.metadata or ()), *bearer(self.token)])
        return continuation(details, request_iterator)


def test_the_server_log_holds_no_secret(token_server, mtls_server, certs):
    for server in (token_server, mtls_server):
        log = server.log()
        assert "bearer token required" in log  # the start-up line says auth is on ...
        for token in ALL_TOKENS:  # ... and no token appears, not even from the variable
            assert token not in log, "a token was logged"
            assert token[:12] not in log
        key_body = certs.server_key.read_text().splitlines()[1]
        assert key_body not in log
    assert "auth_token=1 token(s) (env PYNENC_SIDECAR_AUTH_TOKEN)" in token_server.log()
    assert "rejected" in token_server.log() and "unauthenticated" in token_server.log()


def test_token_comparison_is_constant_time_over_all_tokens(monkeypatch):
    calls = []
    real = security.hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: calls.append((len(a), len(b))) or real(a, b))
    verifier = security.TokenVerifier(ALL_TOKENS)
    for candidate in (FILE_TOKENS[0], ENV_TOKEN, "x", "y" * 1000):
        calls.clear()
        verifier.verify(candidate.encode())
        # every accepted token is compared, whatever matches; digests hide lengths
        assert calls == [(32, 32)] * len(ALL_TOKENS)
    assert verifier.verify(ENV_TOKEN.encode()) and not verifier.verify(b"nope")


# --- settings ----------------------------------------------------------------------------------
def _serve_fails(args: list[str], env: dict[str, str] | None = None, code: int = 2) -> str:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    full_env.update(env or {})
    run = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "serve", "--port", str(free_port()),
                          "--redis-url", "redis://127.0.0.1:1/0", *args],
                         capture_output=True, text=True, timeout=30, env=full_env)
    assert run.returncode == code, (run.returncode, run.stderr)
    return run.stderr


def test_bad_security_settings_stop_the_start_without_echoing_secrets(tmp_path, certs):
    short = tmp_path / "short"
    short.write_text(FILE_TOKENS[0] + "\nshort-secret\n")
    message = _serve_fails(["--auth-token-file", str(short)])
    assert "--auth-token-file" in message and "line 2" in message and "at least 16" in message
    assert "short-secret" not in message and FILE_TOKENS[0] not in message
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n\n")
    assert "holds no token" in _serve_fails(["--auth-token-file", str(empty)])
    message = _serve_fails([], {"PYNENC_SIDECAR_AUTH_TOKEN": "tiny-secret"})
    assert "PYNENC_SIDECAR_AUTH_TOKEN" in message and "tiny-secret" not in message
    assert "needs --tls-key" in _serve_fails(["--tls-cert", str(certs.server_cert)])
    assert "needs --tls-cert" in _serve_fails(["--tls-client-ca", str(certs.ca)])
    assert "readable" in _serve_fails(["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(certs.server_key)])
    # readable, but not a certificate (or not a key): a malformed setting, exit 2, one line
    message = _serve_fails(["--tls-cert", str(certs.server_key), "--tls-key", str(certs.server_key)])
    assert message.startswith("pynenc-sidecar: error: --tls-cert (from command line): ")
    assert "not a PEM file holding a CERTIFICATE" in message and len(message.splitlines()) == 1
    assert certs.server_key.read_text().splitlines()[1] not in message
    message = _serve_fails(["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_cert)])
    assert "--tls-key (from command line)" in message and "not a PEM file holding a PRIVATE KEY" in message


# --- TLS and mutual TLS --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(redis_server, certs):
    server = _start(redis_server.url, ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)],
                    credentials=grpc.ssl_channel_credentials(certs.ca.read_bytes()))
    yield server
    server.stop()


def _random(channel, metadata=None, timeout: float = 5):
    stub = de_grpc.DeterministicExecutorServiceStub(channel)
    return stub.Random(de.RandomRequest(position=position("tls", "w", 1)), metadata=metadata, timeout=timeout)


def test_tls_serves_clients_that_trust_its_ca_only(tls_server, certs):
    with tls_server.channel() as channel:
        assert 0 <= _random(channel).value < 1
    with grpc.insecure_channel(tls_server.address) as channel:  # plaintext client: no connection
        with pytest.raises(grpc.RpcError) as info:
            _random(channel)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    other = grpc.ssl_channel_credentials(certs.other_ca.read_bytes())
    with grpc.secure_channel(tls_server.address, other) as channel:  # does not trust this server
        with pytest.raises(grpc.RpcError) as info:
            _random(channel)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(mtls_server, certs):
    token = bearer(FILE_TOKENS[0])
    with mtls_server.channel() as channel:
        assert 0 <= _random(channel, token).value < 1
        with pytest.raises(grpc.RpcError) as info:  # TLS does not replace the token
            _random(channel)
        assert_unauthenticated(info, "missing credentials")
    for key, cert in ((None, None), (certs.other_client_key, certs.other_client_cert)):
        credentials = grpc.ssl_channel_credentials(certs.ca.read_bytes(), key and key.read_bytes(),
                                                   cert and cert.read_bytes())
        with grpc.secure_channel(mtls_server.address, credentials) as channel:
            with pytest.raises(grpc.RpcError) as info:
                _random(channel, token)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, "handshake must fail"


def test_health_port_is_plaintext_health_only(mtls_server):
    with grpc.insecure_channel(f"127.0.0.1:{mtls_server.health_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            _random(channel, bearer(FILE_TOKENS[0]))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _health_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "pynenc_sidecar", "health", *args], capture_output=True, text=True,
                          timeout=30, env=full_env)


def test_the_health_command_speaks_tls_or_uses_the_health_port(tls_server, mtls_server, certs):
    tls_env = {"PYNENC_SIDECAR_PORT": str(tls_server.port), "PYNENC_SIDECAR_TLS_CERT": str(certs.server_cert),
               "PYNENC_SIDECAR_TLS_KEY": str(certs.server_key)}
    run = _health_cli(["--tls-ca", str(certs.ca)], tls_env)
    assert run.returncode == 0 and "SERVING" in run.stdout, run.stderr
    assert _health_cli([], {**tls_env, "PYNENC_SIDECAR_TLS_CA": str(certs.ca)}).returncode == 0
    mtls_env = {"PYNENC_SIDECAR_PORT": str(mtls_server.port), "PYNENC_SIDECAR_TLS_CERT": str(certs.server_cert),
                "PYNENC_SIDECAR_TLS_KEY": str(certs.server_key), "PYNENC_SIDECAR_TLS_CLIENT_CA": str(certs.ca)}
    refused = _health_cli([], mtls_env)
    assert refused.returncode == 2 and "--health-port" in refused.stderr
    run = _health_cli([], {**mtls_env, "PYNENC_SIDECAR_HEALTH_PORT": str(mtls_server.health_port)})
    assert run.returncode == 0 and f":{mtls_server.health_port}: SERVING" in run.stdout, run.stderr


# --- the Python SDK ---------------------------------------------------------------------------
def test_python_sdk_with_tls_client_certificate_and_token(mtls_server, certs):
    app = Pynenc(app_id=f"sec-{uuid.uuid4().hex}", address=mtls_server.address, tls_ca=str(certs.ca),
                 tls_cert=str(certs.client_cert), tls_key=str(certs.client_key), token=FILE_TOKENS[1])

    @app.task
    def guarded(n: int) -> dict:
        return {"n": n, "id": guarded.wf.uuid(), "r": guarded.wf.random()}

    first = guarded.run_workflow("wf-sec", 7)
    again = guarded.run_workflow("wf-sec", 7)
    assert again.replayed and again.result == first.result
    app.client.close()

    wrong = Pynenc(app_id=app.app_id, address=mtls_server.address, tls_ca=str(certs.ca),
                   tls_cert=str(certs.client_cert), tls_key=str(certs.client_key), token="a-wrong-token-0123456789")
    wrong_task = wrong.task(guarded.func)
    with pytest.raises(SidecarError) as info:
        wrong_task.run_workflow("wf-sec", 7)
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED and info.value.reason == "UNAUTHENTICATED"
    wrong.client.close()


def test_python_sdk_reads_its_security_settings_from_the_environment(mtls_server, certs, tmp_path):
    script = tmp_path / "env_worker.py"
    script.write_text(
        "from pynenc_sidecar_sdk import Pynenc\n"
        "app = Pynenc(app_id='sec-env')\n"
        "@app.task\n"
        "def hello(name: str) -> str:\n"
        "    return f'hello {name} ' + hello.wf.uuid()\n"
        "print(hello.run_workflow('wf-env', 'tls').result)\n")
    env = {**os.environ, "PYNENC_SIDECAR_ADDRESS": mtls_server.address, "PYNENC_SIDECAR_TLS_CA": str(certs.ca),
           "PYNENC_SIDECAR_CLIENT_CERT": str(certs.client_cert), "PYNENC_SIDECAR_CLIENT_KEY": str(certs.client_key),
           "PYNENC_SIDECAR_TOKEN": FILE_TOKENS[0]}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0 and run.stdout.startswith("hello tls "), run.stderr
    env.pop("PYNENC_SIDECAR_TOKEN")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode != 0 and "SidecarError: missing credentials" in run.stderr


# --- Go and TypeScript helpers against the same server -----------------------------------------
def _secure_env(server: SidecarServer, certs: Certs) -> dict[str, str]:
    return {**os.environ, "PYNENC_SIDECAR_SECURE_ADDRESS": server.address, "PYNENC_SIDECAR_TLS_CA": str(certs.ca),
            "PYNENC_SIDECAR_CLIENT_CERT": str(certs.client_cert), "PYNENC_SIDECAR_CLIENT_KEY": str(certs.client_key),
            "PYNENC_SIDECAR_TOKEN": FILE_TOKENS[0]}


def test_go_helper_with_tls_client_certificate_and_token(mtls_server, certs):
    require("go")
    run = subprocess.run(["go", "test", "-count=1", "-tags", "sidecar_secure", "-run", "TestSecure", "-v", "./wf/"],
                         cwd=ROOT / "sdk" / "go", capture_output=True, text=True, timeout=600,
                         env=_secure_env(mtls_server, certs))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "--- SKIP" not in run.stdout
    for name in ("TestSecureWithTokenAndClientCert", "TestSecureRejectsAMissingToken", "TestSecureFromEnv"):
        assert f"--- PASS: {name}" in run.stdout, run.stdout


def test_ts_helper_with_tls_client_certificate_and_token(mtls_server, certs):
    require("node", "npm")
    ts = ROOT / "sdk" / "ts"
    if not (ts / "node_modules" / ".bin" / "tsc").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ts, check=True, timeout=600)
    subprocess.run([str(ts / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=ts, check=True, timeout=600)
    run = subprocess.run(["node", "--test", str(ts / "dist" / "test" / "secure.test.js")], cwd=ts, capture_output=True,
                         text=True, timeout=300, env=_secure_env(mtls_server, certs))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout and "# skipped 0" in run.stdout and "# pass 3" in run.stdout, run.stdout


def test_a_secret_passed_to_an_abbreviated_flag_is_refused_without_echoing_it():
    import subprocess
    import sys

    secret = "s3cr3t-token-value-0123456789"
    result = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "serve", "--auth-token", secret],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
    assert secret not in result.stderr
