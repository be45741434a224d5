"""Python stubs generated from protos/ (see scripts/gen_protos.py)."""
