"""pynenc-sidecar: the Pynenc workflow context over gRPC."""

__version__ = "0.1.0"
