"""One settings object for every command, read from flags, the environment and a config file.

Precedence, per setting: a command-line flag, else its environment variable
(PYNENC_SIDECAR_<NAME>; an empty variable counts as unset), else the TOML config file
(`--config FILE` or PYNENC_SIDECAR_CONFIG; keys are the setting names, `redis_url` or
`redis-url`), else the default. Every value is validated before anything starts, and a bad
one stops the command with exit status 2 and one line naming the setting and where its
value came from (`SettingsError`). Secrets (a Redis password) are never echoed.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from pynenc_sidecar import security
from pynenc_sidecar.connections import ConnectionSettings
from pynenc_sidecar.server import DEFAULT_DATA_FILE, ServerSettings, _redact
from pynenc_sidecar.service import bulk
from pynenc_sidecar.service.validation import Limits
from pynenc_sidecar.storage.redis.connection import RedisOptions  # noqa: F401  (settings.RedisOptions)

ENV_PREFIX = "PYNENC_SIDECAR_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("auto", "text", "json")
# A 16 MiB StateBackend payload, with room for the request's other fields.
DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 20 * 1024 * 1024
# The sweep runs every tenth of the retention period, but at least this often.
MAX_SWEEP_INTERVAL_S = 3600.0


class SettingsError(Exception):
    """A setting's value is unusable; the message names the setting and its source."""


# --- value parsers: raise ValueError with what a good value looks like ----------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from "500ms", "45s", "30m", "12h", "7d", "2w" or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 15m, 12h, 7d or 2w")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("must be a duration such as 30s, 15m, 12h, 7d or 2w (a bare number is seconds)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("must be a duration of 0 or more")
    return seconds


def format_duration(seconds: float) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        text = str(value).strip() if not isinstance(value, bool) else ""
        if isinstance(value, float) or not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"must be an integer {_range(low, high)}")
        number = int(text)
        if number < low or (high is not None and number > high):
            raise ValueError(f"must be an integer {_range(low, high)}")
        return number

    return parse


def _range(low: int, high: int | None) -> str:
    return f"from {low} to {high}" if high is not None else f"of at least {low}"


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        text = text.upper() if upper else text.lower()
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def _optional_port(value: Any) -> int | None:
    return _integer(0, 65535)(value) or None  # 0: off


_SWITCH = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _SWITCH:
        raise ValueError("must be on or off (also: true/false, yes/no, 1/0)")
    return _SWITCH[text]


def redis_hosts(url: str) -> list[tuple[str, int]]:
    """(host, port) of each node a redis:// URL names: one, or a cluster's seed nodes
    (redis://host1:6379,host2:6379)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    nodes = []
    for node in netloc.split(","):
        host, _, port = node.rpartition(":") if "]" not in node.rpartition(":")[2] else (node, "", "")
        nodes.append((host.strip("[]") or node, int(port) if port else 6379))
    return nodes


def _redis_url(value: Any) -> str:
    """One Redis, or a cluster's seed nodes, as redis-py reads the URL; the problem named
    without echoing the URL (it may hold a password)."""
    url = _text(value)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0")
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("names no socket: write unix:///path/to/redis.sock")
    else:
        if "," in hosts:  # a cluster's seed nodes (resolve() requires --redis-cluster): check each
            seeds = hosts.split(",")
            if any(not seed.strip() for seed in seeds):
                raise ValueError(f"names an empty host in {hosts!r}: write redis://host1:6379,host2:6379")
            for seed in seeds[1:]:
                _redis_url(f"{parts.scheme}://{seed}")
            url_checked = url.replace(hosts, seeds[0], 1)
            _redis_url(url_checked)
            return url
        try:
            if parts.port == 0:
                raise ValueError
        except ValueError:
            port = hosts.rpartition(":")[2]
            raise ValueError(f"has port {port!r}: a port is a number from 1 to 65535, e.g. "
                             "redis://127.0.0.1:6379/0") from None
        if not parts.hostname:
            raise ValueError("names no host: write redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0")
        db = unquote(parts.path).strip("/")
        if db and not db.isdigit():
            raise ValueError(f"has database {db!r}: the path is a database number (/0, /1, ...), "
                             "e.g. redis://127.0.0.1:6379/0")
    try:  # the rest (query options) as redis-py reads them; builds a connection, connects nowhere
        aioredis.Redis.from_url(url).connection_pool.make_connection()
    except TypeError as exc:
        unknown = re.search(r"argument '([^']+)'", str(exc))
        raise ValueError(f"has an unknown option {unknown.group(1) if unknown else ''!r} in its query") from None
    except (ValueError, redis_errors.RedisError) as exc:
        raise ValueError(f"is not usable: {exc}") from None
    return url


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host(value: Any) -> str:
    """An IP address ([brackets] allowed around IPv6) or a DNS name: a typo is caught here,
    not as a failed bind."""
    host = _text(value)
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        return host
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels) or all(
            label.isdigit() for label in labels):
        raise ValueError("must be an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0) or a host name")
    return host


def _data_file(value: Any) -> str:
    """A file path: missing is fine (serve creates it, and its directories); a directory, or a
    path under an existing file, is not."""
    path = _text(value)
    resolved = Path(path).expanduser().absolute()
    if resolved.is_dir():
        raise ValueError("is a directory: give a file path, e.g. ./pynenc-sidecar.db")
    existing = next(parent for parent in resolved.parents if parent.exists())
    if not existing.is_dir():
        raise ValueError(f"lies under {existing}, which is a file, not a directory")
    return path


def _pem(what: str, marker: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        path = _readable_file(value)
        try:
            security.read_pem(path, what, marker)
        except security.CredentialsError:
            raise ValueError(f"is not a PEM file holding a {marker.strip('- ')}") from None
        return path

    return parse


def _retention(value: Any) -> float | None:
    if isinstance(value, str) and value.strip().lower() in ("off", "none", "never"):
        return None
    seconds = parse_duration(value)
    return seconds or None  # 0: keep forever


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be a duration above 0, such as 30s or 1h")
    return seconds


def _readable_file(value: Any) -> str:
    path = _text(value)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"is not a readable file: {exc.strerror or exc}") from None
    return path


def _token_file(value: Any) -> str:
    path = _readable_file(value)
    try:
        security.read_token_file(path)
    except security.CredentialsError as exc:
        raise ValueError(f"is not usable: {exc}") from None
    return path


def _tokens(value: Any) -> tuple[security.TokenGrant, ...]:
    try:
        tokens = security.parse_token_list(str(value), "")
    except security.CredentialsError as exc:
        raise ValueError(f"is not usable:{exc}") from None
    if not tokens:
        raise ValueError("holds no token")
    return tuple(tokens)


# --- the settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    name: str
    parse: Callable[[Any], Any]
    help: str
    metavar: str
    default_text: str  # for --help: what applies when unset
    secret: bool = False
    has_flag: bool = True  # False: environment variable and config file only (secrets: not in `ps`)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        """How messages name the setting: its flag, or its variable when it has no flag."""
        return self.flag if self.has_flag else self.env

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


OPTIONS: dict[str, Option] = {o.name: o for o in [
    Option("config", _text, "TOML file of settings (keys: the option names, e.g. port = 50051, "
           "redis_url = \"redis://...\"); flags and environment variables override it", "FILE", "none"),
    Option("host", _host, "address to listen on; 0.0.0.0 for every interface", "HOST", "127.0.0.1"),
    Option("port", _integer(0, 65535), "TCP port to listen on (0: any free port)", "PORT", "50051"),
    Option("redis_url", _redis_url, "keep all state in this Redis, e.g. redis://:password@host:6379/0. "
           "Unset: use the embedded SQLite store at --data-file instead", "URL", "unset", secret=True),
    Option("redis_cluster", _switch, "--redis-url names a Redis Cluster: its node(s) are seeds from which the "
           "cluster's topology is discovered (redis://host1:6379,host2:6379), keys go to the master of their slot, "
           "MOVED/ASK redirections and failovers are followed without a restart", "on|off", "off"),
    Option("redis_wait_replicas", _integer(0), "after every write, wait until this many replicas acknowledged it "
           "(Redis WAIT) before answering; a write not acknowledged within --redis-wait-timeout is answered "
           "UNAVAILABLE. 0: answer once the master has it (a failover may lose the last writes)", "N", "0"),
    Option("redis_wait_timeout", _positive_duration, "how long a write waits for --redis-wait-replicas",
           "DURATION", "1s"),
    Option("data_file", _data_file, "SQLite file of the embedded store, created if missing, used when no Redis URL "
           "is set (relative paths are resolved against the working directory)", "PATH", f"./{DEFAULT_DATA_FILE}"),
    Option("grace_period", parse_duration, "how long SIGTERM waits for in-flight calls before exiting "
           "(seconds, or a duration such as 30s)", "DURATION", "10s"),
    Option("max_value_bytes", _integer(1), "largest JSON value accepted (results, data, custom ops)", "BYTES",
           str(1024 * 1024)),
    Option("max_payload_bytes", _integer(1), "largest StateBackend payload accepted (a result, exception detail, "
           "argument, workflow data or deterministic value); must be below --max-message-bytes", "BYTES",
           str(DEFAULT_MAX_PAYLOAD_BYTES)),
    Option("max_message_bytes", _integer(1024), "largest gRPC request accepted", "BYTES",
           str(DEFAULT_MAX_MESSAGE_BYTES)),
    Option("log_level", _choice(LOG_LEVELS, upper=True), "log level: " + ", ".join(LOG_LEVELS), "LEVEL", "INFO"),
    Option("log_format", _choice(LOG_FORMATS), "log lines on stderr: text, json (one JSON object a line), or "
           "auto: text when stderr is a terminal, json otherwise", "FORMAT", "auto"),
    Option("retention", _retention, "delete each finished workflow (everything it recorded, its tasks, data and "
           "index entries) this long after it finished, e.g. 7d; swept periodically by the server. "
           "0 or off: keep forever", "DURATION", "off"),
    Option("metrics_port", _optional_port, "serve Prometheus metrics at http://HOST:PORT/metrics. Unset or 0: "
           "no metrics endpoint. Tracing is set by the standard OTEL_* variables, e.g. "
           "OTEL_EXPORTER_OTLP_ENDPOINT (see docs/observability.md)", "PORT", "unset"),
    Option("sweep_interval", _positive_duration, "how often the server sweeps for workflows past --retention",
           "DURATION", "a tenth of --retention, at most 1h"),
    Option("tls_cert", _pem("TLS certificate", "CERTIFICATE-----"),
           "serve TLS with this PEM certificate (chain); needs --tls-key", "FILE",
           "unset: plaintext"),
    Option("tls_key", _pem("TLS key", "PRIVATE KEY-----"), "the PEM private key of --tls-cert", "FILE", "unset"),
    Option("tls_client_ca", _pem("client CA", "CERTIFICATE-----"),
           "mutual TLS: require every client to present a certificate signed "
           "by this PEM CA; needs --tls-cert", "FILE", "unset: no client certificates"),
    Option("auth_token_file", _token_file, "require a bearer token (metadata 'authorization: Bearer <token>') on "
           "every call but health checks: the accepted tokens, one a line ('#' comments), 16+ visible ASCII "
           "characters each, optionally followed by the app ids it may use ('TOKEN app1 app2'; none: every "
           "app). More tokens: PYNENC_SIDECAR_AUTH_TOKEN (comma- or newline-separated entries, same syntax)", "FILE",
           "unset: no token required"),
    Option("auth_token", _tokens, "accepted bearer tokens", "TOKENS", "unset", secret=True, has_flag=False),
    Option("health_port", _optional_port, "also serve grpc.health.v1 alone on this plaintext port, without TLS "
           "or token: for probes that cannot present client certificates", "PORT", "unset"),
    Option("readiness_interval", _positive_duration, "how often the server checks that its store answers; health "
           "reports NOT_SERVING while it does not", "DURATION", "1s"),
    # Connection hygiene (connections.py).
    Option("keepalive_time", _positive_duration, "ping a client connection after this long without traffic; "
           "close it when the ping is not answered within --keepalive-timeout", "DURATION", "1m"),
    Option("keepalive_timeout", _positive_duration, "how long a keepalive ping may go unanswered", "DURATION", "20s"),
    Option("max_connection_idle", _positive_duration, "close a client connection with no call in flight for this "
           "long (clients reconnect by themselves)", "DURATION", "5m"),
    Option("max_connection_age", _positive_duration, "ask every client connection to go after this long, so clients "
           "spread over new replicas", "DURATION", "1h"),
    Option("max_connection_age_grace", parse_duration, "how long calls in flight on a connection past "
           "--max-connection-age may still run", "DURATION", "5m"),
    Option("handshake_timeout", _positive_duration, "close a connection that has not completed its TLS and HTTP/2 "
           "handshake within this (one that never sends a byte)", "DURATION", "10s"),
    Option("max_concurrent_streams", _integer(1), "calls in flight on one connection; more wait on the client",
           "N", "1000"),
    Option("max_connections", _integer(1), "client connections accepted at once; the next is refused until one "
           "closes. The soft open-file limit is raised to fit them (up to the hard limit)", "N", "4096"),
    # Small calls before bulk pages (service/bulk.py).
    Option("max_concurrent_bulk_reads", _integer(1), "StateBackend list pages that can be large (GetHistory, "
           "StreamHistoryInTimeRange, ...) read and decoded at once; the rest wait their turn, so other calls "
           "wait behind one page, not many", "N", str(bulk.DEFAULT_CONCURRENT)),
    Option("max_queued_bulk_reads", _integer(0), "bulk reads waiting for --max-concurrent-bulk-reads; a new one "
           "past them is refused with RESOURCE_EXHAUSTED (retry with backoff)", "N", str(bulk.DEFAULT_QUEUED)),
    Option("bulk_read_process", _switch, "build the pages of a history read after its first in a second process, "
           "on its own store connection, so that huge reads do not slow other calls (off: in the server)",
           "on|off", "on"),
]}

CONNECTION_SETTINGS = ["keepalive_time", "keepalive_timeout", "max_connection_idle", "max_connection_age",
                       "max_connection_age_grace", "handshake_timeout", "max_concurrent_streams", "max_connections"]
REDIS = ["redis_url", "redis_cluster", "redis_wait_replicas", "redis_wait_timeout"]
SERVE = ["config", "host", "port", *REDIS, "data_file", "grace_period", "max_value_bytes",
         "max_payload_bytes", "max_message_bytes", "log_level", "log_format", "metrics_port", "retention",
         "sweep_interval",
         "tls_cert", "tls_key", "tls_client_ca", "auth_token_file", "auth_token", "health_port",
         "readiness_interval", *CONNECTION_SETTINGS, "max_concurrent_bulk_reads", "max_queued_bulk_reads",
         "bulk_read_process"]
STORE = ["config", *REDIS, "data_file", "log_level", "log_format"]  # tools that open the store
HEALTH = ["config", "host", "port", "health_port", "tls_cert", "tls_key", "tls_client_ca"]


_DURATIONS = {"redis_wait_timeout", "retention", "sweep_interval", "grace_period", "readiness_interval",
              *CONNECTION_SETTINGS[:6]}


@dataclass(frozen=True)
class Settings:
    config: str | None = None
    host: str = "127.0.0.1"
    port: int = 50051
    redis_url: str | None = None
    redis_cluster: bool = False
    redis_wait_replicas: int = 0
    redis_wait_timeout: float = 1.0
    data_file: str | None = None  # None: DEFAULT_DATA_FILE in the working directory
    grace_period: float = 10.0
    max_value_bytes: int = 1024 * 1024
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    log_level: str = "INFO"
    log_format: str = "auto"
    metrics_port: int | None = None
    retention: float | None = None  # seconds; None keeps finished workflows forever
    sweep_interval: float | None = None  # None: derived from retention
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    auth_token_file: str | None = None
    auth_token: tuple[security.TokenGrant, ...] = field(default=(), repr=False)  # secrets: never shown
    health_port: int | None = None
    readiness_interval: float = 1.0
    keepalive_time: float = ConnectionSettings.keepalive_time_s
    keepalive_timeout: float = ConnectionSettings.keepalive_timeout_s
    max_connection_idle: float = ConnectionSettings.max_connection_idle_s
    max_connection_age: float = ConnectionSettings.max_connection_age_s
    max_connection_age_grace: float = ConnectionSettings.max_connection_age_grace_s
    handshake_timeout: float = ConnectionSettings.handshake_timeout_s
    max_concurrent_streams: int = ConnectionSettings.max_concurrent_streams
    max_connections: int = ConnectionSettings.max_connections
    max_concurrent_bulk_reads: int = bulk.DEFAULT_CONCURRENT
    max_queued_bulk_reads: int = bulk.DEFAULT_QUEUED
    bulk_read_process: bool = True
    # setting name -> where its value came from: "command line", "env PYNENC_SIDECAR_PORT", "config FILE"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def effective_sweep_interval(self) -> float:
        if self.sweep_interval is not None:
            return self.sweep_interval
        return min(MAX_SWEEP_INTERVAL_S, max(1.0, (self.retention or 0) / 10))

    @property
    def store_description(self) -> str:
        if self.redis_url:
            return f"redis {_redact(self.redis_url)}"
        return f"embedded sqlite {self.data_file or DEFAULT_DATA_FILE}"

    def server_settings(self) -> ServerSettings:
        return ServerSettings(
            host=self.host, port=self.port, redis_url=self.redis_url, redis=self.redis_options(),
            data_file=self.data_file or DEFAULT_DATA_FILE,
            grace_period_s=self.grace_period, limits=Limits(max_value_bytes=self.max_value_bytes,
                                                            max_payload_bytes=self.max_payload_bytes),
            max_message_bytes=self.max_message_bytes, metrics_port=self.metrics_port, retention_s=self.retention,
            sweep_interval_s=self.effective_sweep_interval,
            tls=security.TlsFiles(self.tls_cert, self.tls_key, self.tls_client_ca)
            if self.tls_cert and self.tls_key else None,
            auth_tokens=self.auth_tokens(), health_port=self.health_port,
            readiness_interval_s=self.readiness_interval,
            connections=ConnectionSettings(
                keepalive_time_s=self.keepalive_time, keepalive_timeout_s=self.keepalive_timeout,
                max_connection_idle_s=self.max_connection_idle, max_connection_age_s=self.max_connection_age,
                max_connection_age_grace_s=self.max_connection_age_grace, handshake_timeout_s=self.handshake_timeout,
                max_concurrent_streams=self.max_concurrent_streams, max_connections=self.max_connections),
            max_concurrent_bulk_reads=self.max_concurrent_bulk_reads, max_queued_bulk_reads=self.max_queued_bulk_reads,
            bulk_read_process=self.bulk_read_process,
        )

    def redis_options(self) -> RedisOptions:
        return RedisOptions(cluster=self.redis_cluster, wait_replicas=self.redis_wait_replicas,
                            wait_timeout_s=self.redis_wait_timeout)

    def auth_tokens(self) -> tuple[security.TokenGrant, ...]:
        """Every accepted bearer token with its apps: the token file's, then the variable's
        (a token in both may use the apps of both). Empty: no auth."""
        from_file = security.read_token_file(self.auth_token_file) if self.auth_token_file else []
        return tuple(security.merge_grants([*from_file, *self.auth_token]))

    def describe(self, names: Iterable[str] = SERVE) -> str:
        """One line for the start-up log: every setting, where it came from; no secrets."""
        parts = []
        for name in names:
            value = getattr(self, name)
            if name == "redis_url" and value:
                value = _redact(value)
            elif name == "auth_token":
                value = f"{len(value)} token(s)" if value else None
            elif name in _DURATIONS and value is not None:
                value = format_duration(value)
            source = self.sources.get(name, "default")
            parts.append(
                f"{name}={value if value is not None else '-'}" + ("" if source == "default" else f" ({source})")
            )
        return ", ".join(parts)


def add_arguments(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add the flags of these settings. Their values are parsed and checked by `resolve`, so
    a bad flag, variable or file entry gets the same one-line message."""
    for name in names:
        option = OPTIONS[name]
        if not option.has_flag:
            continue
        parser.add_argument(option.flag, dest=name, default=None, metavar=option.metavar,
                            help=f"{option.help} (env {option.env}; default: {option.default_text})")


def load_config(path: str) -> dict[str, Any]:
    """The settings of a TOML file, by setting name. SettingsError when it cannot be used."""
    where = f"--config ({path})"
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read the config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{where}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in OPTIONS or name == "config":
            known = ", ".join(n for n in OPTIONS if n != "config")
            raise SettingsError(f"{where}: unknown setting {key!r} (known: {known})")
        if isinstance(value, (dict, list)):
            raise SettingsError(f"{where}: {key} must be a single value, not a table or list")
        values[name] = value
    return values


def resolve(args: argparse.Namespace, names: Iterable[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for a command from its parsed flags, the environment and the config file."""
    environ = os.environ if environ is None else environ
    names = list(names)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    config_path, config_source = _raw(args, environ, OPTIONS["config"])
    file_values: dict[str, Any] = {}
    if config_path is not None:
        values["config"], sources["config"] = str(config_path), config_source
        file_values = load_config(str(config_path))

    for name in names:
        if name == "config":
            continue
        option = OPTIONS[name]
        raw, source = _raw(args, environ, option)
        if raw is None and name in file_values:
            raw, source = file_values[name], f"config {config_path}"
        if raw is None:
            continue
        try:
            values[name] = option.parse(raw)
        except ValueError as problem:
            shown = "the value" if option.secret else repr(raw)
            raise SettingsError(f"{option.label} (from {source}): {shown} {problem}") from None
        sources[name] = source

    if values.get("redis_url") and values.get("data_file"):
        # State lives in one place: silently ignoring one of the two would hide a mistake.
        raise SettingsError(
            f"set either --redis-url (from {sources['redis_url']}) or --data-file (from {sources['data_file']}), "
            "not both"
        )
    if values.get("redis_url") and "," in urlsplit(values["redis_url"]).netloc and not values.get("redis_cluster"):
        raise SettingsError(f"--redis-url (from {sources['redis_url']}): the value names several hosts: that is "
                            "a Redis Cluster's seed nodes, so add --redis-cluster on "
                            "(PYNENC_SIDECAR_REDIS_CLUSTER=on), or give one Redis, e.g. redis://host:6379/0")
    for name in ("redis_cluster", "redis_wait_replicas"):
        if values.get(name) and not values.get("redis_url"):
            raise SettingsError(f"{OPTIONS[name].flag} (from {sources[name]}) needs --redis-url: the embedded "
                                "SQLite store has no cluster and no replicas")
    if values.get("redis_cluster") and urlsplit(values["redis_url"]).scheme == "unix":
        raise SettingsError(f"--redis-cluster (from {sources['redis_cluster']}) needs redis:// or rediss:// seed "
                            "nodes, not a unix socket")
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        given, missing = ("tls_cert", "--tls-key") if values.get("tls_cert") else ("tls_key", "--tls-cert")
        raise SettingsError(f"--{given.replace('_', '-')} (from {sources[given]}) needs {missing} too")
    if values.get("tls_client_ca") and not values.get("tls_cert"):
        raise SettingsError(f"--tls-client-ca (from {sources['tls_client_ca']}) needs --tls-cert and --tls-key: "
                            "client certificates are checked in a TLS handshake")
    ports = [(name, values[name]) for name in ("port", "health_port", "metrics_port") if values.get(name)]
    for i, (name, port) in enumerate(ports):
        for other, other_port in ports[i + 1:]:
            if port == other_port:
                raise SettingsError(f"{OPTIONS[name].flag} (from {sources[name]}) and {OPTIONS[other].flag} "
                                    f"(from {sources[other]}) are both {port}: give them different ports")
    payload = values.get("max_payload_bytes", DEFAULT_MAX_PAYLOAD_BYTES)
    message = values.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    if "max_payload_bytes" in sources and payload >= message:
        # A payload that large could never arrive: the request holding it would be refused first.
        raise SettingsError(
            f"--max-payload-bytes (from {sources['max_payload_bytes']}) is {payload}: it must be "
            f"below --max-message-bytes ({message}, from {sources.get('max_message_bytes', 'default')})"
        )
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known}, sources=sources)


def _raw(args: argparse.Namespace, environ: Mapping[str, str], option: Option) -> tuple[Any, str]:
    flag_value = getattr(args, option.name, None)
    if flag_value is not None:
        return flag_value, "command line"
    env_value = environ.get(option.env, "")
    if env_value.strip():
        return env_value, f"env {option.env}"
    return None, "default"
