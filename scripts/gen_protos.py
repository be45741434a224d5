"""Regenerate the Python stubs from protos/ (one command: `python scripts/gen_protos.py`).

protoc names Python modules after the proto package (`pynenc.sidecar.v1`), which would
collide with the real `pynenc` package, so the stubs are written to a temporary tree,
moved to `pynenc_sidecar_proto/v1/`, and their imports rewritten to match.
`--check` regenerates into a temporary directory and fails if the committed stubs differ.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
TARGET = ROOT / "stubs" / "python" / "pynenc_sidecar_proto" / "v1"
PROTO_PACKAGE_DIR = Path("pynenc") / "sidecar" / "v1"
# mypy-protobuf's plugin types the service stubs (grpc_tools' --pyi_out covers messages only).
MYPY_GRPC = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
IMPORT_RE = re.compile(r"\bfrom pynenc\.sidecar\.v1 import\b")
DOTTED_RE = re.compile(r"\bpynenc\.sidecar\.v1\.(\w+_pb2)")


def generate(out_dir: Path) -> None:
    """Write the rewritten stubs into out_dir."""
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PROTO_PACKAGE_DIR).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            f"--plugin=protoc-gen-mypy_grpc={MYPY_GRPC}",
            f"--mypy_grpc_out={raw}",
            *proto_files,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted((Path(raw) / PROTO_PACKAGE_DIR).iterdir()):
            text = src.read_text()
            text = IMPORT_RE.sub("from pynenc_sidecar_proto.v1 import", text)
            text = re.sub(
                r"^import pynenc\.sidecar\.v1\.(\w+) as", r"import pynenc_sidecar_proto.v1.\1 as", text, flags=re.M
            )
            (out_dir / src.name).write_text(text)
    (out_dir / "__init__.py").write_text(
        '"""Generated from protos/pynenc/sidecar/v1 by scripts/gen_protos.py; do not edit."""\n'
    )


def stale_files(committed: Path) -> list[str]:
    """Names of stub files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as fresh:
        generate(Path(fresh))
        fresh_names = {p.name for p in Path(fresh).iterdir()}
        committed_names = {p.name for p in committed.glob("*") if p.is_file()} if committed.exists() else set()
        differ = sorted(fresh_names ^ committed_names)
        for name in sorted(fresh_names & committed_names):
            if not filecmp.cmp(Path(fresh) / name, committed / name, shallow=False):
                differ.append(name)
        return differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs are stale")
    args = parser.parse_args()
    if args.check:
        differ = stale_files(TARGET)
        if differ:
            print("stale generated stubs: " + ", ".join(differ) + "\nrun: python scripts/gen_protos.py")
            return 1
        print("generated stubs are up to date")
        return 0
    if TARGET.exists():
        shutil.rmtree(TARGET)
    generate(TARGET)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
