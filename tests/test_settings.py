"""Configuration: flags > environment > config file > defaults, validated up front (exit 2, one
line naming the setting), and logs as text or JSON lines with no secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pynenc_sidecar import settings as config
from pynenc_sidecar.cli import build_parser
from pynenc_sidecar.logs import redact_secrets
from support import SidecarServer, free_port, wait_until

STORE_ENV = ("PYNENC_SIDECAR_REDIS_URL", "PYNENC_SIDECAR_DATA_FILE")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    env.update(extra)
    return env


def resolve(argv: list[str], environ: dict[str, str] | None = None, names=config.SERVE) -> config.Settings:
    return config.resolve(build_parser().parse_args(["serve", *argv]), names, environ or {})


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 30
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pynenc_sidecar", *args], capture_output=True, text=True,
                          env=env or clean_env(), cwd=cwd, timeout=timeout)


# --- resolution ------------------------------------------------------------------------------
def test_defaults():
    settings = resolve([])
    assert (settings.host, settings.port, settings.redis_url, settings.data_file) == ("127.0.0.1", 50051, None, None)
    assert (settings.grace_period, settings.log_level, settings.log_format, settings.retention) == (
        10.0,
        "INFO",
        "auto",
        None,
    )
    assert settings.server_settings().data_file == "pynenc-sidecar.db"
    assert settings.server_settings().retention_s is None


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path):
    conf = tmp_path / "sidecar.toml"
    conf.write_text('port = 1111\nhost = "0.0.0.0"\ngrace-period = "30s"\nlog_level = "debug"\nretention = "7d"\n')
    env = {"PYNENC_SIDECAR_CONFIG": str(conf), "PYNENC_SIDECAR_PORT": "2222", "PYNENC_SIDECAR_LOG_LEVEL": "warning"}
    settings = resolve(["--port", "3333"], env)
    assert settings.port == 3333 and settings.sources["port"] == "command line"
    assert settings.log_level == "WARNING" and settings.sources["log_level"] == "env PYNENC_SIDECAR_LOG_LEVEL"
    assert settings.host == "0.0.0.0" and settings.sources["host"] == f"config {conf}"
    assert settings.grace_period == 30.0 and settings.retention == 7 * 86400
    assert settings.max_value_bytes == 1024 * 1024 and "max_value_bytes" not in settings.sources
    assert resolve([], env).port == 2222
    assert resolve([], {"PYNENC_SIDECAR_CONFIG": str(conf)}).port == 1111
    # --config on the command line beats PYNENC_SIDECAR_CONFIG.
    other = tmp_path / "other.toml"
    other.write_text("port = 4444\n")
    assert resolve(["--config", str(other)], env | {"PYNENC_SIDECAR_PORT": ""}).port == 4444


def test_an_empty_environment_variable_counts_as_unset():
    settings = resolve([], {"PYNENC_SIDECAR_REDIS_URL": "", "PYNENC_SIDECAR_PORT": " "})
    assert settings.redis_url is None and settings.port == 50051


def test_durations():
    parse = config.parse_duration
    assert [parse(v) for v in ["45", "45s", "500ms", "30m", "1.5h", "7d", "2w", 12, 0.5]] == \
        [45, 45, 0.5, 1800, 5400, 604800, 1209600, 12, 0.5]
    for bad in ["7x", "-1s", "d", "", "1 day", True]:
        with pytest.raises(ValueError):
            parse(bad)
    assert [config.format_duration(s) for s in (604800, 86400 * 3, 5400, 90, 0.5)] == ["1w", "3d", "90m", "90s", "0.5s"]


def test_retention_off_and_the_sweep_interval():
    assert resolve(["--retention", "off"]).retention is None
    assert resolve(["--retention", "0"]).retention is None
    assert resolve(["--retention", "7d"]).effective_sweep_interval == 3600  # a tenth, at most 1h
    assert resolve(["--retention", "10m"]).effective_sweep_interval == 60
    assert resolve(["--retention", "2s"]).effective_sweep_interval == 1  # at least 1s
    assert resolve(["--retention", "7d", "--sweep-interval", "5m"]).effective_sweep_interval == 300
    server = resolve(["--retention", "1h", "--metrics-port", "0"]).server_settings()
    assert (server.retention_s, server.sweep_interval_s, server.metrics_port) == (3600, 360, None)


@pytest.mark.parametrize("argv,env,config_text,expected", [
    (["--port", "abc"], {}, None, "--port (from command line): 'abc' must be an integer from 0 to 65535"),
    ([], {"PYNENC_SIDECAR_PORT": "70000"}, None, "--port (from env PYNENC_SIDECAR_PORT): '70000' must be an integer"),
    ([], {}, "port = true", "--port (from config"),
    ([], {}, "port = 1.5", "must be an integer"),
    (["--max-message-bytes", "100"], {}, None,
     "--max-message-bytes (from command line): '100' must be an integer of at least 1024"),
    (["--log-level", "LOUD"], {}, None,
     "--log-level (from command line): 'LOUD' must be one of DEBUG, INFO, WARNING, ERROR"),
    (["--log-format", "xml"], {}, None, "must be one of auto, text, json"),
    (["--retention", "forever"], {}, None, "--retention (from command line): 'forever' must be a duration"),
    (["--sweep-interval", "0"], {}, None, "--sweep-interval (from command line): '0' must be a duration above 0"),
    (["--host", " "], {}, None, "--host (from command line): ' ' must be a non-empty string"),
    ([], {}, "prot = 1", "unknown setting 'prot'"),
    ([], {}, "config = 'x.toml'", "unknown setting 'config'"),
    ([], {}, "port = [1]", "port must be a single value"),
    ([], {}, "port = ", "not valid TOML"),
])
def test_bad_values_name_the_setting_and_where_it_came_from(tmp_path, argv, env, config_text, expected):
    if config_text is not None:
        conf = tmp_path / "bad.toml"
        conf.write_text(config_text + "\n")
        argv = [*argv, "--config", str(conf)]
    with pytest.raises(config.SettingsError) as error:
        resolve(argv, env)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_a_bad_redis_url_is_refused_without_echoing_it():
    with pytest.raises(config.SettingsError) as error:
        resolve(["--redis-url", "http://user:hunter2@h"])
    assert "--redis-url (from command line): the value must be a redis://" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_redis_cluster_settings():
    settings = resolve(["--redis-url", "redis://:pw@10.0.0.1:7000,10.0.0.2:7001", "--redis-wait-replicas", "1"],
                       {"PYNENC_SIDECAR_REDIS_CLUSTER": "on", "PYNENC_SIDECAR_REDIS_WAIT_TIMEOUT": "250ms"})
    assert settings.server_settings().redis == config.RedisOptions(cluster=True, wait_replicas=1, wait_timeout_s=0.25)
    assert "redis_cluster=True (env PYNENC_SIDECAR_REDIS_CLUSTER)" in settings.describe() \
        and "pw" not in settings.describe()
    assert resolve(["--redis-url", "redis://h:6379"]).server_settings().redis == config.RedisOptions()


@pytest.mark.parametrize("argv, expected", [
    (["--redis-url", "redis://a:1,b:2"], "names several hosts: that is a Redis Cluster's seed nodes, so add "
                                          "--redis-cluster on"),
    (["--redis-url", "redis://a:1,,b:2", "--redis-cluster", "on"], "names an empty host"),
    (["--redis-url", "redis://a:1,b:99999", "--redis-cluster", "on"], "a port is a number from 1 to 65535"),
    (["--redis-cluster", "on"], "--redis-cluster (from command line) needs --redis-url"),
    (["--redis-wait-replicas", "1"], "--redis-wait-replicas (from command line) needs --redis-url"),
    (["--redis-url", "redis://h", "--redis-cluster", "maybe"], "'maybe' must be on or off"),
    (["--redis-url", "redis://h", "--redis-wait-replicas", "-1"], "must be an integer of at least 0"),
    (["--redis-url", "unix:///r.sock", "--redis-cluster", "on"], "needs redis:// or rediss:// seed nodes"),
])
def test_bad_redis_cluster_settings_say_what_to_change(argv, expected):
    with pytest.raises(config.SettingsError) as error:
        resolve(argv)
    assert expected in str(error.value)


def test_redis_url_and_data_file_from_any_two_sources_are_refused(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('data_file = "x.db"\n')
    with pytest.raises(config.SettingsError, match="not both") as error:
        resolve(["--config", str(conf)], {"PYNENC_SIDECAR_REDIS_URL": "redis://h/0"})
    assert "(from env PYNENC_SIDECAR_REDIS_URL)" in str(error.value) and f"(from config {conf})" in str(error.value)


def test_every_setting_has_a_flag_an_environment_variable_and_a_config_key(tmp_path):
    help_text = " ".join(cli("serve", "--help").stdout.split())
    for name in config.SERVE:
        option = config.OPTIONS[name]
        if option.has_flag:
            assert option.flag in help_text and option.env in help_text, name
        else:  # secrets: variable and config file only, so they never show in `ps`
            assert f"{option.flag} " not in help_text and option.env in help_text and option.secret, name
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    tokens = tmp_path / "tokens"
    tokens.write_text("0123456789abcdef0123\n")
    valid = {"host": "h", "port": "1", "data_file": "x.db", "grace_period": "1", "max_value_bytes": "1",
             "max_payload_bytes": "1024", "max_message_bytes": "2048", "log_level": "debug", "log_format": "json",
             "metrics_port": "9000", "retention": "1d", "sweep_interval": "1m", "tls_cert": str(pem),
             "tls_key": str(key),
             "tls_client_ca": str(pem), "auth_token_file": str(tokens), "auth_token": "fedcba9876543210fedc",
             "health_port": "9001", "readiness_interval": "2s", "keepalive_time": "30s", "keepalive_timeout": "5s",
             "max_connection_idle": "2m", "max_connection_age": "2h", "max_connection_age_grace": "1m",
             "handshake_timeout": "3s", "max_concurrent_streams": "50", "max_connections": "100",
             "max_concurrent_bulk_reads": "2", "max_queued_bulk_reads": "0", "bulk_read_process": "off"}
    # The Redis settings need a Redis URL (no data file): test_redis_cluster_settings.
    assert set(valid) == set(config.SERVE) - {"config", *config.REDIS}
    conf = tmp_path / "all.toml"
    conf.write_text("".join(f'{name} = "{value}"\n' for name, value in valid.items()))
    settings = resolve(["--config", str(conf)])
    assert all(settings.sources[name] == f"config {conf}" for name in valid)
    assert (settings.port, settings.data_file, settings.retention, settings.sweep_interval) == (1, "x.db", 86400, 60)
    connections = settings.server_settings().connections
    assert (connections.max_connection_idle_s, connections.handshake_timeout_s, connections.max_connections) == \
        (120, 3, 100)
    assert ("grpc.max_allowed_incoming_connections", 100) in connections.grpc_options()
    server = settings.server_settings()
    assert (server.max_concurrent_bulk_reads, server.max_queued_bulk_reads) == (2, 0)


def test_the_settings_line_hides_the_password():
    settings = resolve(["--redis-url", "redis://:hunter2@h:6379/0", "--retention", "7d"])
    line = settings.describe()
    assert "redis_url=redis://***@h:6379/0 (command line)" in line and "retention=1w (command line)" in line
    assert "hunter2" not in line


def test_log_redaction():
    assert redact_secrets("url redis://:p@ss/w@h:1/0?password=x&db=1 and a@b") == \
        "url redis://***@h:1/0?password=***&db=1 and a@b"
    assert redact_secrets("redis://h:6379/0") == "redis://h:6379/0"


# --- real processes ---------------------------------------------------------------------------
def test_the_server_takes_its_settings_from_file_then_environment_then_flags(tmp_path):
    ports = [free_port() for _ in range(3)]
    conf = tmp_path / "sidecar.toml"
    conf.write_text(f'port = {ports[0]}\ndata-file = "{tmp_path / "from-config.db"}"\nlog_level = "info"\n')
    # The file alone.
    server = SidecarServer(None, port=ports[0], env={"PYNENC_SIDECAR_CONFIG": str(conf)})
    server.store_args = lambda: []  # no --data-file flag: the file names it
    start_and_stop(server, lambda: (tmp_path / "from-config.db").exists())
    assert f"config {conf}" in server.log()
    # The environment beats the file (port), the file still gives the data file.
    env = {"PYNENC_SIDECAR_CONFIG": str(conf), "PYNENC_SIDECAR_PORT": str(ports[1])}
    process = subprocess.Popen([sys.executable, "-m", "pynenc_sidecar", "serve"], env=clean_env(**env),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: health(ports[1]), 20, "the server on the environment's port")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    # A flag beats both.
    server = SidecarServer(None, port=ports[2], env=env)
    server.store_args = lambda: []
    start_and_stop(server, lambda: health(ports[2]))


def start_and_stop(server: SidecarServer, check) -> None:
    server.start()
    try:
        assert check()
    finally:
        assert server.stop() == 0, server.log()


def health(port: int) -> bool:
    return cli("health", "--port", str(port), "--timeout", "1").returncode == 0


@pytest.mark.parametrize("args,env,needle", [
    (["serve", "--port", "nope"], {}, "--port (from command line): 'nope'"),
    (["serve"], {"PYNENC_SIDECAR_MAX_VALUE_BYTES": "0"}, "--max-value-bytes (from env PYNENC_SIDECAR_MAX_VALUE_BYTES)"),
    (["serve", "--config", "/nonexistent/sidecar.toml"], {}, "--config (/nonexistent/sidecar.toml): cannot read"),
    (["serve", "--retention", "soon"], {}, "--retention (from command line): 'soon'"),
    (["inspect", "wf", "--log-format", "yaml"], {}, "--log-format (from command line): 'yaml'"),
    (["health"], {"PYNENC_SIDECAR_PORT": "-1"}, "--port (from env PYNENC_SIDECAR_PORT): '-1'"),
])
def test_a_bad_setting_stops_any_command_with_exit_2_and_one_line(tmp_path, args, env, needle):
    result = cli(*args, env=clean_env(**env), cwd=tmp_path)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pynenc-sidecar: error: ") and needle in lines[0], result.stderr
    assert not (tmp_path / "pynenc-sidecar.db").exists()  # nothing started


def test_json_logs_are_one_object_a_line_with_no_password(redis_server):
    host_port = redis_server.url.split("//", 1)[1]
    server = SidecarServer(f"redis://:s3cret-pw@{host_port}", extra_args=["--log-format", "json"]).start()
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    messages = [entry["message"] for entry in lines]
    assert any(m.startswith("settings: ") and "redis_url=redis://***@" in m for m in messages)
    assert any("serving on" in m for m in messages) and any(m == "stopped" for m in messages)
    assert lines[0]["time"].endswith("Z") and lines[0]["level"] == "INFO"
    assert "s3cret-pw" not in server.log()


def test_text_logs_and_auto_is_json_when_not_a_terminal(tmp_path):
    text = SidecarServer(None, data_file=str(tmp_path / "a.db"), extra_args=["--log-format", "text"]).start()
    assert text.stop() == 0
    first = text.log().splitlines()[0]
    assert " INFO pynenc_sidecar: settings: " in first and not first.startswith("{")
    # The test captures stderr in a file: auto (the default) means JSON.
    auto = SidecarServer(None, data_file=str(tmp_path / "b.db"),
                         env={"PYNENC_SIDECAR_LOG_LEVEL": "warning"}).start()
    assert auto.stop() == 0
    assert auto.log().strip() == ""  # WARNING: the INFO lines are not written


def test_json_logs_of_a_failed_start_say_why(tmp_path):
    data_file = tmp_path / "notes.txt"
    data_file.write_text("not a database\n" * 100)
    result = cli("serve", "--port", "0", "--data-file", str(data_file), "--log-format", "json")
    assert result.returncode == 1
    errors = [json.loads(line) for line in result.stderr.splitlines() if '"ERROR"' in line]
    assert errors and errors[-1]["message"].startswith(f"cannot start: cannot open data file {data_file}")


# --- every malformed setting, from every source, for every command --------------------------
def malformed_values(tmp_path: Path) -> dict[str, list[str]]:
    """Per setting, values that must be refused before the command does anything."""
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    weak = tmp_path / "weak-tokens"
    weak.write_text("short\n")
    return {
        "config": [str(tmp_path / "missing.toml")],
        "host": ["not a host", "999.1.1.1", "-bad-.example"],
        "port": ["abc", "70000"],
        # Secrets ("hunter2") must never be echoed.
        "redis_url": ["redis://:hunter2@127.0.0.1:notaport/0", "redis://:hunter2@a:1,b:2/0", "http://h:6379/0",
                      "redis://:hunter2@127.0.0.1:6379/x", "redis://127.0.0.1:6379/-1", "redis://127.0.0.1:99999/0",
                      "redis://:hunter2@127.0.0.1:6379/0?nosuchoption=1", "redis://:hunter2@/0", "unix://",
                      "redis://127.0.0.1:6379/0?db=x"],
        "redis_cluster": ["maybe"],
        "redis_wait_replicas": ["-1", "all"],
        "redis_wait_timeout": ["0s", "soon"],
        "data_file": [str(tmp_path), str(not_pem / "x.db")],  # a directory; a path under a file
        "grace_period": ["soon"],
        "max_value_bytes": ["0"],
        "max_message_bytes": ["100"],
        "max_payload_bytes": ["0"],
        "keepalive_time": ["0s", "soon"],
        "keepalive_timeout": ["0s"],
        "max_connection_idle": ["0s"],
        "max_connection_age": ["0s"],
        "max_connection_age_grace": ["later"],
        "handshake_timeout": ["0s"],
        "max_concurrent_streams": ["0"],
        "max_connections": ["0", "many"],
        "max_concurrent_bulk_reads": ["0", "one"],
        "max_queued_bulk_reads": ["-1"],
        "bulk_read_process": ["sometimes"],
        "log_level": ["LOUD"],
        "log_format": ["xml"],
        "retention": ["forever"],
        "metrics_port": ["-1"],
        "sweep_interval": ["0"],
        "tls_cert": [str(not_pem), str(tmp_path / "missing.pem")],
        "tls_key": [str(not_pem)],
        "tls_client_ca": [str(not_pem)],
        "auth_token_file": [str(weak)],
        "auth_token": ["hunter2"],
        "health_port": ["x"],
        "readiness_interval": ["0s"],
    }


COMMANDS = {"serve": ([], config.SERVE), "inspect": (["wf"], config.STORE), "workflows": ([], config.STORE),
            "purge": (["--workflow-id", "wf"], config.STORE), "health": ([], config.HEALTH)}


def sources_of(name: str) -> list[str]:
    option = config.OPTIONS[name]
    return (["flag"] if option.has_flag else []) + ["env"] + (["file"] if name != "config" else [])


def test_every_malformed_setting_stops_every_command_with_one_line_naming_it_and_its_source(
        tmp_path, monkeypatch, capsys):
    from pynenc_sidecar.cli import main

    for key in [k for k in os.environ if k.startswith("PYNENC_SIDECAR_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    bad = malformed_values(tmp_path)
    assert set(bad) == set(config.OPTIONS)  # a new setting needs its malformed values here
    checked = 0
    for command, (base_args, names) in COMMANDS.items():
        for name in names:
            option = config.OPTIONS[name]
            for value in bad[name]:
                for source in sources_of(name):
                    args, env = [command, *base_args], {}
                    if source == "flag":
                        args.append(f"{option.flag}={value}")
                        where = "(from command line)" if name != "config" else f"--config ({value})"
                    elif source == "env":
                        env[option.env] = value
                        where = f"(from env {option.env})" if name != "config" else f"--config ({value})"
                    else:
                        conf = tmp_path / "bad.toml"
                        conf.write_text(f"{name} = {json.dumps(value)}\n")
                        args += ["--config", str(conf)]
                        where = f"(from config {conf})"
                    with monkeypatch.context() as patch:
                        for key, text in env.items():
                            patch.setenv(key, text)
                        code = main(args)
                    out, err = capsys.readouterr()
                    case = f"{command} {name}={value!r} via {source}: {err!r}"
                    assert code == 2 and out == "", case
                    lines = err.strip().splitlines()
                    assert len(lines) == 1 and lines[0].startswith("pynenc-sidecar: error: "), case
                    assert option.label in lines[0] and where in lines[0], case
                    assert "hunter2" not in lines[0], case
                    checked += 1
    assert not (tmp_path / "pynenc-sidecar.db").exists()  # nothing started, nothing created
    assert checked >= 260


@pytest.mark.parametrize("url,needle", [
    ("redis://127.0.0.1:notaport/0", "has port 'notaport': a port is a number from 1 to 65535"),
    ("redis://a:1,b:2/0", "names several hosts: that is a Redis Cluster's seed nodes, so add --redis-cluster on"),
    ("ftp://127.0.0.1/0", "must be a redis://, rediss:// or unix:// URL"),
    ("redis://127.0.0.1:6379/x", "has database 'x': the path is a database number"),
    ("redis://:hunter2@127.0.0.1:6379/0?bogus=1", "has an unknown option 'bogus' in its query"),
])
def test_a_malformed_redis_url_is_one_line_and_exit_2_for_the_binary(tmp_path, url, needle):
    result = cli("workflows", "--redis-url", url, cwd=tmp_path)
    assert result.returncode == 2, result
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"pynenc-sidecar: error: --redis-url (from command line): the value {needle}"), line
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_two_servers_on_one_port_are_refused(tmp_path):
    with pytest.raises(config.SettingsError) as error:
        resolve(["--port", "7000"], {"PYNENC_SIDECAR_HEALTH_PORT": "7000"})
    assert str(error.value) == ("--port (from command line) and --health-port (from env PYNENC_SIDECAR_HEALTH_PORT) "
                                "are both 7000: give them different ports")


def test_the_payload_limit_defaults_to_16_mib_under_the_message_limit_and_must_stay_below_it():
    settings = resolve([], {})
    assert (settings.max_payload_bytes, settings.max_message_bytes) == (16 * 1024 * 1024, 20 * 1024 * 1024)
    assert settings.server_settings().limits.max_payload_bytes == 16 * 1024 * 1024
    assert resolve(["--max-payload-bytes", "1000", "--max-message-bytes", "2048"], {}).max_payload_bytes == 1000
    # Only the message limit lowered: the message limit refuses large requests first.
    assert resolve(["--max-message-bytes", "4096"], {}).max_payload_bytes == 16 * 1024 * 1024
    with pytest.raises(config.SettingsError) as error:
        resolve(["--max-payload-bytes", "4096"], {"PYNENC_SIDECAR_MAX_MESSAGE_BYTES": "4096"})
    assert str(error.value) == ("--max-payload-bytes (from command line) is 4096: it must be below "
                                "--max-message-bytes (4096, from env PYNENC_SIDECAR_MAX_MESSAGE_BYTES)")
