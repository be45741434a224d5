"""Generated from protos/pynenc/sidecar/v1 by scripts/gen_protos.py; do not edit."""
