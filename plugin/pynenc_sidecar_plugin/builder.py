"""PynencBuilder().sidecar(...): registered through the `pynenc.plugins` entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pynenc.builder import PynencBuilder

_SETTINGS = ("tls", "tls_ca", "client_cert", "client_key", "token", "timeout_sec", "retry_attempts",
             "max_message_bytes")


class SidecarBuilderPlugin:
    @staticmethod
    def register_builder_methods(builder_class: type[PynencBuilder]) -> None:
        builder_class.register_plugin_method("sidecar", sidecar)


def sidecar(builder: PynencBuilder, address: str | None = None, **settings: Any) -> PynencBuilder:
    """Keep the app's state in a pynenc-sidecar (SidecarStateBackend).

    :param address: host:port; unset, the sidecar_address config field, else
        $PYNENC_SIDECAR_ADDRESS, else 127.0.0.1:50051.
    :param settings: any of tls, tls_ca, client_cert, client_key, token, timeout_sec,
        retry_attempts, max_message_bytes: the config fields sidecar_<name> (conf.ConfigSidecar).
    """
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise ValueError(f"sidecar() got unknown settings {unknown}; known: {list(_SETTINGS)}")
    if address:
        builder._config["sidecar_address"] = address
    for name, value in settings.items():
        builder._config[f"sidecar_{name}"] = value
    builder._config["state_backend_cls"] = "SidecarStateBackend"
    builder._plugin_components.add("sidecar")
    return builder
