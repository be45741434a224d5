"""The plugin's config fields, read like every Pynenc setting: config_values, the YAML/TOML
config file, or Pynenc's env form (PYNENC__SIDECAR_ADDRESS=...)."""

from __future__ import annotations

from dataclasses import dataclass

from cistell import ConfigField
from pynenc.conf.config_state_backend import ConfigStateBackend

from pynenc_sidecar_proto.connection import DEFAULT_ADDRESS, ENV, ClientSecurity, OptionNames, env_value


class ConfigSidecar(ConfigStateBackend):
    """Where the sidecar is and how to reach it.

    An empty field falls back to the SDKs' variable (PYNENC_SIDECAR_ADDRESS, PYNENC_SIDECAR_TLS_CA,
    PYNENC_SIDECAR_CLIENT_CERT, PYNENC_SIDECAR_CLIENT_KEY, PYNENC_SIDECAR_TOKEN, PYNENC_SIDECAR_TLS),
    so one environment configures Pynenc apps and SDK workers alike.

    :cvar sidecar_address: host:port of the sidecar (default $PYNENC_SIDECAR_ADDRESS, else 127.0.0.1:50051).
    :cvar sidecar_tls: TLS with the system's CAs; on by itself when any TLS file is set.
    :cvar sidecar_tls_ca: PEM file of the CA that signed the sidecar's certificate.
    :cvar sidecar_client_cert: PEM certificate of this app, for mutual TLS (with sidecar_client_key).
    :cvar sidecar_client_key: PEM key of sidecar_client_cert.
    :cvar sidecar_token: bearer token sent as `authorization: Bearer <token>` on every call.
    :cvar sidecar_timeout_sec: deadline of every call, retries included.
    :cvar sidecar_retry_attempts: attempts (first one included) of an idempotent call that
        failed UNAVAILABLE, with exponential backoff (gRPC's retry policy, at most 5).
    :cvar sidecar_max_message_bytes: largest reply accepted (gRPC's default is 4 MiB; a
        Pynenc result or argument can be larger). What the sidecar accepts is its own
        setting: --max-payload-bytes and --max-message-bytes.
    """

    sidecar_address = ConfigField("")
    sidecar_tls = ConfigField(False)
    sidecar_tls_ca = ConfigField("")
    sidecar_client_cert = ConfigField("")
    sidecar_client_key = ConfigField("")
    sidecar_token = ConfigField("")
    sidecar_timeout_sec = ConfigField(30.0)
    sidecar_retry_attempts = ConfigField(5)
    sidecar_max_message_bytes = ConfigField(64 * 1024 * 1024)


# How errors name the options: this plugin's config fields.
OPTION_NAMES = OptionNames(tls_ca="sidecar_tls_ca", client_cert="sidecar_client_cert", client_key="sidecar_client_key")


@dataclass(frozen=True)
class ConnectionSettings:
    """The resolved settings; one channel per process and per distinct settings."""

    address: str
    security: ClientSecurity
    timeout_sec: float
    retry_attempts: int
    max_message_bytes: int

    @classmethod
    def from_conf(cls, conf: ConfigSidecar) -> ConnectionSettings:
        # Empty fields fall back to the PYNENC_SIDECAR_* variables, by the SDKs' own rule.
        security = ClientSecurity.resolve(
            tls=True if conf.sidecar_tls else None, tls_ca=conf.sidecar_tls_ca or None,
            client_cert=conf.sidecar_client_cert or None, client_key=conf.sidecar_client_key or None,
            token=conf.sidecar_token or None, names=OPTION_NAMES)
        timeout = float(conf.sidecar_timeout_sec)
        if timeout <= 0:
            raise ValueError(f"sidecar_timeout_sec must be > 0, got {timeout}")
        attempts = int(conf.sidecar_retry_attempts)
        if not 1 <= attempts <= 5:
            raise ValueError(f"sidecar_retry_attempts must be between 1 and 5 (gRPC's limit), got {attempts}")
        max_message = int(conf.sidecar_max_message_bytes)
        if max_message < 4 * 1024 * 1024:
            raise ValueError(f"sidecar_max_message_bytes must be at least 4 MiB (4194304), got {max_message}")
        return cls(
            address=conf.sidecar_address or env_value(ENV["address"]) or DEFAULT_ADDRESS,
            security=security, timeout_sec=timeout, retry_attempts=attempts, max_message_bytes=max_message,
        )
