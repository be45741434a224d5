"""Pynenc plugin: a Pynenc app's StateBackend kept in a pynenc-sidecar (SidecarStateBackend)."""

from pynenc_sidecar_plugin.state_backend import SidecarStateBackend

__all__ = ["SidecarStateBackend"]
